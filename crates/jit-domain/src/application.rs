//! Applications: the OpenID Connect clients that send users to jit.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::error::ConfigError;
use crate::flow::SignInFlow;

/// Longest application name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Most redirect URIs per application.
pub const MAX_REDIRECT_URIS: usize = 32;
/// Longest redirect URI, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;
/// Schemes that can never receive an authorization code.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// A registered application (an OpenID Connect client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Unique name.
    pub name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret's hash (confidential clients only); the secret
    /// itself is shown once and never stored.
    pub client_secret_hash: Option<String>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<RedirectUri>,
    /// Whether the client is public (no secret; PKCE required).
    pub public: bool,
    /// How its users sign in.
    pub sign_in: SignInFlow,
    /// Scopes of its own that release declared attributes, e.g.
    /// `{"scope": "employee", "claims": ["employee_id", "department"]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<CustomScope>,
}

/// An application's own scope: asking for it releases these declared
/// attributes as claims (declared attributes are released only this way).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomScope {
    /// The scope's name.
    pub scope: String,
    /// The declared attributes it releases.
    pub claims: Vec<crate::attribute::AttributeName>,
}

/// Scopes with a meaning of their own: never an application's custom scope.
pub const RESERVED_SCOPES: &[&str] =
    &["openid", "profile", "email", "phone", "address", "groups", "roles", "offline_access"];

/// Most custom scopes per application.
pub const MAX_CUSTOM_SCOPES: usize = 32;

impl CustomScope {
    /// A name of 1 to 64 characters (letters, digits, `_`, `-`, `.`, `:`),
    /// not a reserved scope, releasing 1 to 64 declared attributes (not
    /// standard or system ones: those have their own scopes or none).
    pub fn validate(&self, schema: &crate::schema::AttributeSchema) -> Result<(), ConfigError> {
        let invalid = |why: &str| ConfigError::InvalidCustomScope { scope: self.scope.clone(), why: why.to_owned() };
        let name_ok = (1..=64).contains(&self.scope.len())
            && self.scope.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !name_ok {
            return Err(invalid("use 1 to 64 letters, digits, '_', '-', '.' or ':'"));
        }
        if RESERVED_SCOPES.contains(&self.scope.as_str()) {
            return Err(invalid("it is a standard scope"));
        }
        if self.claims.is_empty() || self.claims.len() > 64 {
            return Err(invalid("name 1 to 64 declared attributes"));
        }
        for claim in &self.claims {
            if crate::schema::is_system(claim.as_str()) || crate::schema::is_standard(claim.as_str()) {
                return Err(invalid(&format!("{:?} is not a declared attribute", claim.as_str())));
            }
            schema.require(claim)?;
        }
        Ok(())
    }
}

/// A redirect URI that may be registered: valid by construction
/// ([`RedirectUri::parse`] applies [`check_redirect_uri`], also when read
/// back from storage), and matched exactly ([`RedirectUri::matches`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    /// `uri`, if it may be registered.
    pub fn parse(uri: &str) -> Result<Self, ConfigError> {
        check_redirect_uri(uri)?;
        Ok(Self(uri.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this URI: simple string comparison (RFC 6749
    /// §3.1.2.3, OpenID Connect Core §3.1.2.1), no normalisation, no
    /// prefix or pattern matching.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0 == candidate
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = ConfigError;

    fn try_from(uri: String) -> Result<Self, Self::Error> {
        check_redirect_uri(&uri)?;
        Ok(Self(uri))
    }
}

impl From<RedirectUri> for String {
    fn from(uri: RedirectUri) -> Self {
        uri.0
    }
}

impl std::fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Application {
    /// Checks the custom scopes against the schema: each valid, none twice,
    /// at most [`MAX_CUSTOM_SCOPES`].
    pub fn validate_scopes(&self, schema: &crate::schema::AttributeSchema) -> Result<(), ConfigError> {
        if self.scopes.len() > MAX_CUSTOM_SCOPES {
            return Err(ConfigError::InvalidCustomScope {
                scope: String::new(),
                why: format!("at most {MAX_CUSTOM_SCOPES} scopes"),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for scope in &self.scopes {
            scope.validate(schema)?;
            if !seen.insert(scope.scope.as_str()) {
                return Err(ConfigError::InvalidCustomScope {
                    scope: scope.scope.clone(),
                    why: "it is listed twice".into(),
                });
            }
        }
        Ok(())
    }

    /// Checks the application's own rules: its name ([`Self::checked_name`]
    /// would keep it as is) and 1 to [`MAX_REDIRECT_URIS`] distinct
    /// redirect URIs (each valid by its type). The sign-in flow is checked
    /// with the connections it names (`SignInFlow::validate`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if Self::checked_name(&self.name)? != self.name {
            return Err(ConfigError::InvalidApplicationName);
        }
        let distinct: std::collections::BTreeSet<&RedirectUri> = self.redirect_uris.iter().collect();
        if self.redirect_uris.is_empty()
            || self.redirect_uris.len() > MAX_REDIRECT_URIS
            || distinct.len() != self.redirect_uris.len()
        {
            return Err(ConfigError::RedirectUriCount);
        }
        Ok(())
    }

    /// The name to store: trimmed, 1 to [`MAX_NAME_LEN`] printable
    /// characters.
    pub fn checked_name(name: &str) -> Result<String, ConfigError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(ConfigError::InvalidApplicationName);
        }
        Ok(name.to_owned())
    }

    /// The redirect URIs to store: 1 to [`MAX_REDIRECT_URIS`], each valid
    /// ([`RedirectUri::parse`]), repeats dropped (first kept).
    pub fn checked_redirect_uris(uris: Vec<String>) -> Result<Vec<RedirectUri>, ConfigError> {
        if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
            return Err(ConfigError::RedirectUriCount);
        }
        let mut checked: Vec<RedirectUri> = Vec::with_capacity(uris.len());
        for uri in uris {
            let uri = RedirectUri::try_from(uri)?;
            if !checked.contains(&uri) {
                checked.push(uri);
            }
        }
        Ok(checked)
    }
}

/// A redirect URI that may be registered: absolute, no fragment, no white
/// space; `https`, `http` only on loopback hosts, or a native app's
/// private-use scheme (RFC 8252 §7.1), never `javascript:`, `data:` and
/// the like. Redirects then match the registered URI exactly.
pub fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let refuse = |why: String| Err(ConfigError::InvalidRedirectUri(why));
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return refuse(format!("redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters"));
    }
    let Ok(url) = Url::parse(uri) else {
        return refuse(format!(
            "redirect URI {uri:?} is not an absolute URL (such as https://app.example.com/callback)"
        ));
    };
    if uri.contains('#') {
        return refuse(format!("redirect URI {uri:?} has a fragment (#...), which redirect URIs must not have"));
    }
    if url.as_str().chars().any(char::is_whitespace) || uri.chars().any(char::is_whitespace) {
        return refuse(format!("redirect URI {uri:?} contains white space"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "https" => refuse(format!("redirect URI {uri:?} has no host")),
        "http" => {
            let loopback = match url.host() {
                Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
                Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                refuse(format!(
                    "redirect URI {uri:?} uses http on a host other than 127.0.0.1, localhost or [::1]: use https"
                ))
            }
        }
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => {
            refuse(format!("redirect URI {uri:?} uses the {scheme}: scheme, which cannot receive authorization codes"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        let ok = |uri: &str| check_redirect_uri(uri).is_ok();
        assert!(ok("https://app.example.com/callback"));
        assert!(ok("https://app.example.com/callback?x=1"));
        assert!(ok("http://127.0.0.1:8080/cb"));
        assert!(ok("http://localhost/cb"));
        assert!(ok("http://[::1]:9000/cb"));
        assert!(ok("com.example.app:/cb"));
        assert!(!ok("http://app.example.com/cb"));
        assert!(!ok("https://app.example.com/cb#frag"));
        assert!(!ok("/relative/cb"));
        assert!(!ok("app.example.com/cb"));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("data:text/html,x"));
        assert!(!ok("https://app.example.com/c b"));
    }

    #[test]
    fn names_and_uri_lists() {
        assert_eq!(Application::checked_name("  Demo ").unwrap(), "Demo");
        assert!(Application::checked_name(" ").is_err() && Application::checked_name("a\nb").is_err());
        let uris = vec!["https://a.example/cb".to_owned(), "https://a.example/cb".to_owned()];
        assert_eq!(Application::checked_redirect_uris(uris).unwrap().len(), 1, "repeats dropped");
        assert_eq!(Application::checked_redirect_uris(Vec::new()), Err(ConfigError::RedirectUriCount));
    }

    #[test]
    fn a_redirect_uri_is_valid_by_construction_and_matched_exactly() {
        let uri = RedirectUri::parse("https://app.example/cb").unwrap();
        assert!(uri.matches("https://app.example/cb"));
        assert!(!uri.matches("https://app.example/cb/") && !uri.matches("https://APP.example/cb"));
        assert!(!uri.matches("https://app.example/cb?x=1"));
        // Read back from storage, the rules hold too.
        let stored: Result<RedirectUri, _> = serde_json::from_value(serde_json::json!("javascript:alert(1)"));
        assert!(stored.is_err());
        assert_eq!(serde_json::to_value(&uri).unwrap(), serde_json::json!("https://app.example/cb"));
    }

    #[test]
    fn an_application_validates_its_own_rules() {
        let uri = RedirectUri::parse("https://app.example/cb").unwrap();
        let app = Application {
            name: "Demo".into(),
            client_id: "demo".into(),
            client_secret_hash: None,
            redirect_uris: vec![uri.clone()],
            public: true,
            sign_in: SignInFlow::default(),
            scopes: Vec::new(),
        };
        assert_eq!(app.validate(), Ok(()));
        let padded = Application { name: " Demo".into(), ..app.clone() };
        assert_eq!(padded.validate(), Err(ConfigError::InvalidApplicationName));
        let twice = Application { redirect_uris: vec![uri.clone(), uri], ..app.clone() };
        assert_eq!(twice.validate(), Err(ConfigError::RedirectUriCount));
        let none = Application { redirect_uris: Vec::new(), ..app };
        assert_eq!(none.validate(), Err(ConfigError::RedirectUriCount));
    }
}
