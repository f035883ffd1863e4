//! Local users and federated identities as the rules see them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::attribute::Attributes;
use crate::connection::ConnectionName;
use crate::error::ConfigError;

/// Longest username accepted.
pub const MAX_USERNAME_LEN: usize = 320;
/// Longest federated subject accepted (the `sub` claim is at most 255 ASCII
/// characters in OpenID Connect).
pub const MAX_SUBJECT_LEN: usize = 255;

/// A local user's stable identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A local account's login name. Unique case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct Username(String);

impl Username {
    /// Validates a username: 1 to [`MAX_USERNAME_LEN`] characters, no
    /// surrounding white space, no control characters.
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.chars().count() <= MAX_USERNAME_LEN
            && value.trim() == value
            && !value.chars().any(char::is_control);
        if ok { Ok(Self(value)) } else { Err(ConfigError::InvalidUsername(value)) }
    }

    /// The username as entered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparable form: usernames are unique ignoring ASCII case (see
    /// [`Normalization::CaseInsensitive`](crate::attribute::Normalization)).
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl TryFrom<String> for Username {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A local account: its identity and its (non-system) attributes. System
/// attributes such as credentials and lock state live beside it in the store
/// and never pass through the provisioning rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUser {
    /// Stable identifier.
    pub id: UserId,
    /// Login name.
    pub username: Username,
    /// Profile attributes (never `username` or a system attribute).
    pub attributes: Attributes,
    /// Whether the account's `email` is verified (a system attribute): set
    /// by an IdP that verified that very value (or a connection trusted
    /// for email), by an administrator, or by a completed Email OTP. Only
    /// a verified email holds the address uniquely, and only an account
    /// with a verified email can be linked on it.
    #[serde(default)]
    pub email_verified: bool,
}

/// The subject identifier an IdP gives a user (`sub`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct Subject(String);

impl Subject {
    /// Validates a subject: 1 to [`MAX_SUBJECT_LEN`] characters.
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        if value.is_empty() || value.len() > MAX_SUBJECT_LEN {
            Err(ConfigError::InvalidSubject)
        } else {
            Ok(Self(value))
        }
    }

    /// The subject as the IdP sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Subject {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Subject> for String {
    fn from(value: Subject) -> Self {
        value.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest local password accepted, in bytes (argon2 takes any length;
/// this bounds the work one request can ask for).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A user as an external IdP asserted them, after claim mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedIdentity {
    /// The connection the user signed in through.
    pub connection: ConnectionName,
    /// The IdP's subject identifier.
    pub subject: Subject,
    /// The mapped attributes (may include `username`).
    pub attributes: Attributes,
    /// Whether the IdP verified the mapped `email`: `email_verified` was
    /// true in the same document that carried that exact value under the
    /// `email` claim (see [`ClaimMapping::map`](crate::claims::ClaimMapping::map)).
    pub email_verified: bool,
    /// The single string values of the claims the connection's linking
    /// rules name, as the IdP sent them (rules link on claims, not on
    /// mapped attributes).
    pub claims: std::collections::BTreeMap<String, String>,
    /// The claim of the connection's first claim filter this sign-in
    /// fails, if one does: the sign-in is refused before anything is
    /// written (see `Connection::claim_filters`).
    pub filtered_out: Option<String>,
    /// The groups and roles the IdP sent, for the connection's membership
    /// mappings (see [`plan_memberships`](crate::membership::plan_memberships)).
    pub memberships: Vec<crate::membership::ReceivedMemberships>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        let check = |input: &str, ok: bool| assert_eq!(Username::new(input).is_ok(), ok, "{input:?}");
        check("alice", true);
        check("alice@example.com", true);
        check("", false);
        check(" alice", false);
        check("al\nice", false);
        check(&"a".repeat(MAX_USERNAME_LEN), true);
        check(&"a".repeat(MAX_USERNAME_LEN + 1), false);
        assert_eq!(Username::new("Alice").map(|u| u.normalized()).ok().as_deref(), Some("alice"));
    }

    #[test]
    fn subjects() {
        assert!(Subject::new("248289761001").is_ok());
        assert!(Subject::new("").is_err());
        assert!(Subject::new("x".repeat(256)).is_err());
    }
}
