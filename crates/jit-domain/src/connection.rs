//! Connections to external IdPs and their Just-in-Time provisioning policy.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attribute::AttributeName;
use crate::claims::{ClaimMapping, EMAIL_CLAIM, MAX_CLAIM_NAME_LEN};
use crate::error::ConfigError;
use crate::schema::{AttributeSchema, EMAIL, is_system};

/// Longest connection name accepted.
pub const MAX_CONNECTION_NAME_LEN: usize = 64;
/// Longest display name of a connection, in characters.
pub const MAX_DISPLAY_NAME_LEN: usize = 200;

/// A connection's name: it appears in URLs (`fidp=`, the callback path), so
/// it is restricted to lowercase ASCII letters, digits, `-` and `_`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct ConnectionName(String);

impl ConnectionName {
    /// Validates a name. Names that read as built-in step options (`local`,
    /// `totp`, `email_otp`, in any case) are reserved.
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        let mut chars = value.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && value.len() <= MAX_CONNECTION_NAME_LEN;
        if !ok {
            return Err(ConfigError::InvalidConnectionName(value));
        }
        if ["local", "totp", "email_otp"].contains(&value.as_str()) {
            return Err(ConfigError::ReservedConnectionName(value));
        }
        Ok(Self(value))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConnectionName {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ConnectionName> for String {
    fn from(value: ConnectionName) -> Self {
        value.0
    }
}

impl fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How attributes of an existing local account follow what the IdP sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SyncMethod {
    /// The local attributes become exactly the received ones (system
    /// attributes excepted).
    #[default]
    OverrideAll,
    /// Received attributes overwrite; local ones the IdP did not send stay.
    PreserveLocal,
    /// Nothing changes.
    None,
}

/// "Federated attribute X equals local attribute Y".
///
/// A rule links only on a value somebody vouches for: a federated `email`
/// is proven by the IdP's `email_verified` for that value (or the policy's
/// `trust_email`); any other federated attribute only by `trusted: true`,
/// the administrator's statement that this IdP is authoritative for it.
/// A rule whose local attribute is `email` only ever links into an account
/// whose email is verified.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkRule {
    /// The claim as the IdP sends it (the seeds' "federated attribute"): a
    /// name, a URI, or a dotted path into nested claims (see
    /// [`claim_value`](crate::claims::claim_value)). Its single string
    /// value is looked up.
    pub federated: String,
    /// The local attribute it must equal; must be unique.
    pub local: AttributeName,
    /// The IdP is authoritative for the federated attribute: its values are
    /// linked on without further proof. Required for every federated
    /// attribute but `email`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trusted: bool,
}

impl LinkRule {
    /// The rule used when linking is on and no rules are configured:
    /// email equals email.
    pub fn default_email() -> Self {
        Self { federated: EMAIL_CLAIM.to_owned(), local: AttributeName::known(EMAIL), trusted: false }
    }

    /// Whether some proof can back the rule's federated value: it is
    /// trusted, or it is the email (proven per sign-in by `email_verified`).
    pub fn can_be_proven(&self) -> bool {
        self.trusted || self.federated == EMAIL_CLAIM
    }

    /// Whether the rule's local target is the email, so that only accounts
    /// with a verified email may be linked through it.
    pub fn targets_email(&self) -> bool {
        self.local.as_str() == EMAIL
    }
}

/// Local account linking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkingPolicy {
    /// Whether a first login is matched against existing local accounts.
    pub enabled: bool,
    /// The first match rule and, optionally, the fallback rule. Empty means
    /// "match on email".
    pub rules: Vec<LinkRule>,
    /// Refuse the sign-in instead of creating an account when a first login
    /// finds no local account (whether or not linking is enabled).
    pub skip_provisioning_without_match: bool,
}

impl Default for LinkingPolicy {
    fn default() -> Self {
        Self { enabled: true, rules: Vec::new(), skip_provisioning_without_match: false }
    }
}

impl LinkingPolicy {
    /// The rules in evaluation order (the default email rule when none are
    /// configured).
    pub fn effective_rules(&self) -> Vec<LinkRule> {
        if self.rules.is_empty() { vec![LinkRule::default_email()] } else { self.rules.clone() }
    }
}

/// A connection's Just-in-Time provisioning policy.
///
/// The defaults reproduce "updates the existing local account created with
/// the same email address, or creates a user profile": JIT on, linking on
/// with the email rule (verified emails only), sync override all.
/// Fields left out of a JSON document take these defaults too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JitPolicy {
    /// Whether local accounts are created, linked and updated at all.
    pub enabled: bool,
    /// How an existing account's attributes follow the IdP.
    pub sync_method: SyncMethod,
    /// Treat the IdP's emails as verified even without `email_verified`:
    /// for linking, and for marking the emails of accounts it creates or
    /// updates as verified. Only for IdPs that verify every address.
    pub trust_email: bool,
    /// Local account linking.
    pub linking: LinkingPolicy,
    /// How the username of an account this connection creates is made, e.g.
    /// `{preferred_username}`, `{email}` or `{connection}.{sub}`. Without
    /// one, the mapped `username` (the `preferred_username` claim by
    /// default). Either way, when it is missing, not a valid username, or
    /// taken, the account is named `{connection}.{sub}`; if that is taken
    /// too, the sign-in is refused. An existing account is never merged
    /// into by its username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_template: Option<UsernameTemplate>,
}

/// A username template: text with `{claim}` placeholders (a claim's name,
/// URI or dotted path, see [`claim_value`](crate::claims::claim_value)),
/// and `{connection}` and `{sub}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "{preferred_username}"))]
pub struct UsernameTemplate(String);

/// Longest username template, in characters.
pub const MAX_TEMPLATE_LEN: usize = 256;

impl UsernameTemplate {
    /// `template`, if every `{` opens a placeholder with a name and a `}`.
    pub fn parse(template: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidUsernameTemplate(template.to_owned());
        if template.trim().is_empty() || template.chars().count() > MAX_TEMPLATE_LEN {
            return Err(invalid());
        }
        let mut rest = template;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(invalid());
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(invalid)?;
            let name = &after[..close];
            if name.trim().is_empty() || name.contains('{') {
                return Err(invalid());
            }
            rest = &after[close + 1..];
        }
        Ok(Self(template.to_owned()))
    }

    /// The username for `subject` of `connection` from the claim
    /// `documents` (userinfo first): `None` when a placeholder's claim is
    /// missing or not a string or number.
    pub fn render(
        &self,
        connection: &ConnectionName,
        subject: &str,
        documents: &[&serde_json::Map<String, serde_json::Value>],
    ) -> Option<String> {
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}')?;
            let value = match &after[..close] {
                "connection" => connection.as_str().to_owned(),
                "sub" => subject.to_owned(),
                claim => match crate::claims::first_claim(documents, claim)?.0 {
                    serde_json::Value::String(value) => value.clone(),
                    serde_json::Value::Number(value) => value.to_string(),
                    _ => return None,
                },
            };
            out.push_str(&value);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

impl TryFrom<String> for UsernameTemplate {
    type Error = ConfigError;

    fn try_from(template: String) -> Result<Self, Self::Error> {
        Self::parse(&template)
    }
}

impl From<UsernameTemplate> for String {
    fn from(template: UsernameTemplate) -> Self {
        template.0
    }
}

impl Default for JitPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            sync_method: SyncMethod::OverrideAll,
            trust_email: false,
            linking: LinkingPolicy::default(),
            username_template: None,
        }
    }
}

impl JitPolicy {
    /// Checks the rules against the schema: at most two, a claim name on
    /// the federated side, a known unique local attribute, and a proof for
    /// each (see [`LinkRule`]).
    pub fn validate(&self, schema: &AttributeSchema) -> Result<(), ConfigError> {
        if self.linking.rules.len() > 2 {
            return Err(ConfigError::TooManyLinkRules(self.linking.rules.len()));
        }
        for rule in &self.linking.rules {
            if rule.federated.trim().is_empty() || rule.federated.len() > MAX_CLAIM_NAME_LEN {
                return Err(ConfigError::InvalidClaimName(rule.federated.clone()));
            }
            if is_system(rule.local.as_str()) {
                return Err(ConfigError::SystemAttribute(rule.local.clone()));
            }
            schema.require(&rule.local)?;
            if !schema.is_unique(rule.local.as_str()) {
                return Err(ConfigError::NonUniqueLinkTarget(rule.local.clone()));
            }
            if !rule.can_be_proven() {
                return Err(ConfigError::UntrustedLinkRule {
                    federated: rule.federated.clone(),
                    local: rule.local.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Protocol {
    /// OpenID Connect.
    #[default]
    Oidc,
}

/// How we authenticate to an IdP's token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenAuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    #[default]
    ClientSecretBasic,
    /// In the form body (`client_secret_post`).
    ClientSecretPost,
}

/// Settings of an OpenID Connect connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OidcSettings {
    /// The IdP's issuer identifier (discovery starts here).
    pub issuer: String,
    /// Our client id at the IdP.
    pub client_id: String,
    /// Our client secret at the IdP (never logged, never returned by the API).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes to request; `openid` is always added.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Token endpoint authentication.
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    /// ID token signature algorithms accepted (empty: the client's safe
    /// default of asymmetric algorithms). `none` is never accepted.
    #[serde(default)]
    pub allowed_algorithms: Vec<String>,
    /// Whether to fetch userinfo after the token exchange.
    #[serde(default = "yes")]
    pub fetch_userinfo: bool,
    /// Accept a plain `http://` issuer on a host other than loopback: its
    /// tokens, secrets and users' attributes then cross the network
    /// unencrypted. Off by default; for test networks only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            scopes: Vec::new(),
            token_auth_method: TokenAuthMethod::default(),
            allowed_algorithms: Vec::new(),
            fetch_userinfo: true,
            allow_insecure_http: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// A connection to an external IdP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// Unique name (used in URLs).
    pub name: ConnectionName,
    /// Shown on the sign-in page.
    pub display_name: String,
    /// The protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// OpenID Connect settings.
    pub oidc: OidcSettings,
    /// Claim-to-attribute mappings added to (or replacing) the standard ones.
    #[serde(default)]
    pub claim_mappings: BTreeMap<String, AttributeName>,
    /// The JIT policy.
    #[serde(default)]
    pub jit: JitPolicy,
    /// Conditions every sign-in's claims must meet (all of them), checked
    /// before anything is written: e.g. "only members of group X may sign
    /// in here". A sign-in that fails one is refused, with an audit event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_filters: Vec<ClaimFilter>,
    /// How the IdP's groups become local group memberships (none: the
    /// `groups` claim maps onto the `groups` attribute, as any claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub groups: Option<crate::membership::MembershipMapping>,
    /// The same for roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub roles: Option<crate::membership::MembershipMapping>,
}

/// One condition on a claim (by name, URI or dotted path): it `equals` a
/// value, or `matches` a regular expression (Rust `regex` syntax, linear
/// time). A claim that is an array meets it if one of its values does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimFilter {
    /// The claim.
    pub claim: String,
    /// The value it must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// A regular expression one of its values must match (anchor it with
    /// `^…$` to match whole values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
}

/// Longest regular expression of a claim filter, in bytes.
pub const MAX_FILTER_PATTERN_LEN: usize = 1024;

impl ClaimFilter {
    /// A claim name, and exactly one of `equals` and `matches` (a pattern
    /// that compiles, within [`MAX_FILTER_PATTERN_LEN`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: &str| ConfigError::InvalidClaimFilter { claim: self.claim.clone(), why: why.to_owned() };
        if self.claim.trim().is_empty() || self.claim.len() > MAX_CLAIM_NAME_LEN {
            return Err(ConfigError::InvalidClaimName(self.claim.clone()));
        }
        match (&self.equals, &self.matches) {
            (Some(_), None) => Ok(()),
            (None, Some(pattern)) if pattern.len() > MAX_FILTER_PATTERN_LEN => Err(invalid("the pattern is too long")),
            (None, Some(pattern)) => self.regex(pattern).map(drop).map_err(|e| invalid(&e.to_string())),
            _ => Err(invalid("give exactly one of equals and matches")),
        }
    }

    fn regex(&self, pattern: &str) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(pattern).size_limit(1 << 20).build()
    }

    /// Whether the claim documents (userinfo first) meet the condition.
    pub fn admits(&self, documents: &[&serde_json::Map<String, serde_json::Value>]) -> bool {
        use serde_json::Value;
        let Some((value, _)) = crate::claims::first_claim(documents, &self.claim) else { return false };
        let values: Vec<String> = match value {
            Value::Array(items) => items.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect(),
        };
        match (&self.equals, &self.matches) {
            (Some(expected), _) => values.iter().any(|v| v == expected),
            (None, Some(pattern)) => self.regex(pattern).is_ok_and(|re| values.iter().any(|v| re.is_match(v))),
            (None, None) => false,
        }
    }
}

fn scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Connection {
    /// The effective claim mapping: the standard OpenID Connect claims,
    /// overridden and extended by this connection's mappings.
    pub fn claim_mapping(&self) -> ClaimMapping {
        let mut mapping = ClaimMapping::standard().with_overrides(&self.claim_mappings);
        // Groups and roles synced as memberships are not attributes too.
        for (kind, configured) in [("groups", &self.groups), ("roles", &self.roles)] {
            if configured.is_some() {
                mapping = mapping.without_standard(kind);
            }
        }
        mapping
    }

    /// The memberships configured: kind and mapping.
    pub fn membership_mappings(
        &self,
    ) -> Vec<(crate::membership::MembershipKind, &crate::membership::MembershipMapping)> {
        use crate::membership::MembershipKind;
        [(MembershipKind::Group, &self.groups), (MembershipKind::Role, &self.roles)]
            .into_iter()
            .filter_map(|(kind, mapping)| mapping.as_ref().map(|mapping| (kind, mapping)))
            .collect()
    }

    /// Everything a connection must satisfy before it is stored: a display
    /// name, its OpenID Connect settings ([`OidcSettings::validate`]), its
    /// mappings and its JIT policy against the schema. The admin API (and
    /// any other writer) calls this, so every writer gets the same messages.
    pub fn validate(&self, schema: &AttributeSchema) -> Result<(), ConfigError> {
        let display_name = self.display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > MAX_DISPLAY_NAME_LEN {
            return Err(ConfigError::InvalidDisplayName);
        }
        self.oidc.validate()?;
        self.claim_mapping().validate(schema)?;
        self.claim_filters.iter().try_for_each(ClaimFilter::validate)?;
        self.jit.validate(schema)
    }

    /// The first of the connection's claim filters the documents fail, if
    /// any.
    pub fn filtered_out(&self, documents: &[&serde_json::Map<String, serde_json::Value>]) -> Option<&ClaimFilter> {
        self.claim_filters.iter().find(|filter| !filter.admits(documents))
    }

    /// How this connection uses local attribute `attribute`, in words: as a
    /// target of its own claim mappings, or in its linking rules. Empty
    /// when it does not (the standard mapping aside: standard attributes
    /// are never deleted).
    pub fn uses_of(&self, attribute: &str) -> Vec<String> {
        let mut uses: Vec<String> = self
            .claim_mappings
            .iter()
            .filter(|(_, target)| target.as_str() == attribute)
            .map(|(claim, _)| format!("connection {:?} maps claim {claim:?} onto it", self.name.as_str()))
            .collect();
        for rule in &self.jit.linking.rules {
            if rule.local.as_str() == attribute {
                uses.push(format!(
                    "connection {:?} links on it ({} = {})",
                    self.name.as_str(),
                    rule.federated,
                    rule.local.as_str()
                ));
            }
        }
        uses
    }
}

impl OidcSettings {
    /// The issuer is an absolute http(s) URL without query, fragment or
    /// credentials, https unless on loopback (or `allow_insecure_http`);
    /// the client id is set; scopes are single words; `none` is no
    /// algorithm.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_issuer(&self.issuer, self.allow_insecure_http)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::EmptyClientId);
        }
        if let Some(scope) = self.scopes.iter().find(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            return Err(ConfigError::InvalidScope(scope.clone()));
        }
        if let Some(bad) =
            self.allowed_algorithms.iter().find(|a| a.trim().is_empty() || a.eq_ignore_ascii_case("none"))
        {
            return Err(ConfigError::InvalidAlgorithm(bad.clone()));
        }
        Ok(())
    }
}

fn check_issuer(issuer: &str, allow_insecure_http: bool) -> Result<(), ConfigError> {
    let invalid = || ConfigError::InvalidIssuer(issuer.to_owned());
    let url = url::Url::parse(issuer).map_err(|_| invalid())?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !ok {
        return Err(invalid());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback && !allow_insecure_http {
        return Err(ConfigError::InsecureIssuer(issuer.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::Normalization;
    use crate::schema::AttributeDefinition;

    fn rule(federated: &str, local: &str) -> LinkRule {
        LinkRule { federated: federated.to_owned(), local: AttributeName::new(local).unwrap(), trusted: false }
    }

    fn trusted(federated: &str, local: &str) -> LinkRule {
        LinkRule { trusted: true, ..rule(federated, local) }
    }

    fn policy_with(rules: Vec<LinkRule>) -> JitPolicy {
        JitPolicy { linking: LinkingPolicy { rules, ..LinkingPolicy::default() }, ..JitPolicy::default() }
    }

    #[test]
    fn new_connection_defaults_follow_the_seed() {
        // "updates the existing local account created with the same email
        // address or if a new user, creates a user profile"
        let policy = JitPolicy::default();
        assert!(policy.enabled);
        assert!(policy.linking.enabled);
        assert!(!policy.linking.skip_provisioning_without_match);
        assert!(!policy.trust_email);
        assert_eq!(policy.sync_method, SyncMethod::OverrideAll);
        assert_eq!(policy.linking.effective_rules(), vec![LinkRule::default_email()]);
    }

    #[test]
    fn rule_targets_must_be_unique_and_known() {
        let schema = AttributeSchema::standard();
        let check = |rules: Vec<LinkRule>| policy_with(rules).validate(&schema).map_err(|e| e.to_string());
        assert!(check(vec![rule("email", "email")]).is_ok());
        assert!(check(vec![rule("email", "email"), trusted("username", "username")]).is_ok());
        assert!(check(vec![rule("email", "username")]).is_ok(), "a verified email may find a username");
        assert!(check(vec![trusted("given_name", "given_name")]).is_err_and(|e| e.contains("not unique")));
        assert!(check(vec![rule("email", "shoe_size")]).is_err_and(|e| e.contains("unknown attribute")));
        assert!(check(vec![rule("email", "email"); 3]).is_err_and(|e| e.contains("at most two")));
        assert!(check(vec![rule("email", "password")]).is_err_and(|e| e.contains("system attribute")));
    }

    #[test]
    fn declared_unique_attributes_can_be_link_targets() {
        let schema = AttributeSchema::standard()
            .declare(AttributeDefinition {
                name: AttributeName::new("employee_id").unwrap(),
                unique: true,
                multi_valued: false,
                normalization: Normalization::Exact,
                description: String::new(),
                sensitive: false,
            })
            .unwrap();
        assert!(policy_with(vec![trusted("employee_id", "employee_id")]).validate(&schema).is_ok());
    }

    /// Finding 7 of the security review: a rule on anything but email
    /// needs the administrator's word that the IdP is authoritative for it.
    #[test]
    fn rules_on_unproven_attributes_must_be_trusted() {
        let schema = AttributeSchema::standard();
        let refused = policy_with(vec![rule("username", "username")]).validate(&schema);
        assert!(
            matches!(&refused, Err(ConfigError::UntrustedLinkRule { .. }))
                && refused.as_ref().is_err_and(|e| e.to_string().contains("\"trusted\": true")),
            "{refused:?}"
        );
        assert!(policy_with(vec![rule("email", "email"), rule("username", "email")]).validate(&schema).is_err());
        let json = r#"{"federated": "username", "local": "username", "trusted": true}"#;
        let parsed: LinkRule = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, trusted("username", "username"));
        assert_eq!(
            serde_json::to_value(rule("email", "email")).unwrap(),
            serde_json::json!({"federated": "email", "local": "email"})
        );
    }

    #[test]
    fn issuers() {
        let ok = |issuer: &str| check_issuer(issuer, false).is_ok();
        assert!(ok("https://idp.example.com"));
        assert!(ok("https://idp.example.com/realms/corp"));
        assert!(ok("http://127.0.0.1:8081"));
        assert!(!ok("idp.example.com"));
        assert!(!ok("/relative"));
        assert!(!ok("ftp://idp.example.com"));
        assert!(!ok("https://idp.example.com/?x=1"));
        assert!(!ok("https://idp.example.com/#f"));
        assert!(!ok("https://user:pw@idp.example.com"));
        assert!(!ok(""));
        // Plain http only on loopback, unless explicitly allowed.
        assert!(ok("http://localhost:8081") && ok("http://[::1]:8081"));
        assert!(matches!(check_issuer("http://idp.example.com", false), Err(ConfigError::InsecureIssuer(_))));
        assert!(!ok("http://10.0.0.7"));
        assert!(check_issuer("http://idp.example.com", true).is_ok());
    }

    #[test]
    fn oidc_settings() {
        let good = OidcSettings {
            issuer: "https://idp.example.com".into(),
            client_id: "jit".into(),
            ..OidcSettings::default()
        };
        assert!(good.validate().is_ok());
        let check = |settings: OidcSettings| settings.validate().map_err(|e| e.to_string());
        assert!(check(OidcSettings { client_id: " ".into(), ..good.clone() }).is_err_and(|e| e.contains("client_id")));
        assert!(
            check(OidcSettings { scopes: vec!["a b".into()], ..good.clone() }).is_err_and(|e| e.contains("scopes"))
        );
        let none = OidcSettings { allowed_algorithms: vec!["None".into()], ..good };
        assert!(check(none).is_err_and(|e| e.contains("unsigned")));
    }

    #[test]
    fn connection_names() {
        let check = |input: &str, ok: bool| assert_eq!(ConnectionName::new(input).is_ok(), ok, "{input:?}");
        check("google", true);
        check("corp-idp_2", true);
        check("Google", false);
        check("", false);
        check("a/b", false);
        check("local", false);
        check("totp", false);
        check(&"a".repeat(65), false);
    }

    #[test]
    fn policy_json_shape() {
        let json = r#"{"enabled":true,"sync_method":"preserve_local","trust_email":false,
            "linking":{"enabled":true,"rules":[{"federated":"email","local":"email"}],
            "skip_provisioning_without_match":true}}"#;
        let policy: JitPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(policy.sync_method, SyncMethod::PreserveLocal);
        assert!(policy.linking.skip_provisioning_without_match);
    }

    #[test]
    fn claim_filters_check_values_and_refuse_bad_definitions() {
        let filter = |json: serde_json::Value| -> ClaimFilter { serde_json::from_value(json).unwrap() };
        let doc = serde_json::json!({"groups": ["staff", "hr"], "org": {"unit": "R&D"}, "level": 3});
        let docs = [doc.as_object().unwrap()];
        assert!(filter(serde_json::json!({"claim": "groups", "equals": "hr"})).admits(&docs));
        assert!(!filter(serde_json::json!({"claim": "groups", "equals": "admins"})).admits(&docs));
        assert!(filter(serde_json::json!({"claim": "org.unit", "matches": "^R&"})).admits(&docs));
        assert!(filter(serde_json::json!({"claim": "level", "equals": "3"})).admits(&docs));
        assert!(!filter(serde_json::json!({"claim": "missing", "matches": ".*"})).admits(&docs), "absent fails");
        for bad in [
            serde_json::json!({"claim": "groups"}),
            serde_json::json!({"claim": "groups", "equals": "a", "matches": "b"}),
            serde_json::json!({"claim": "groups", "matches": "("}),
            serde_json::json!({"claim": "", "equals": "a"}),
        ] {
            assert!(filter(bad.clone()).validate().is_err(), "{bad}");
        }
    }
}
