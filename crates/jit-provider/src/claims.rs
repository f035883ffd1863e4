//! The claims we assert about a signed-in subject, filtered by scope.

use jit_domain::attribute::{AttributeValue, Attributes};
use jit_domain::claims::{EMAIL_VERIFIED_CLAIM, STANDARD_CLAIMS, scope_of};
use jit_domain::connection::ConnectionName;
use jit_domain::schema::{EMAIL, USERNAME};
use jit_domain::user::{LocalUser, Subject};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The scopes we grant: `openid` and those that release standard claims
/// ([`STANDARD_CLAIMS`]). Others are ignored (not granted, not echoed
/// back).
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", "email", "phone"];

/// Claims of the protocol itself, in every ID token (`sub` also at
/// userinfo).
const PROTOCOL_CLAIMS: &[&str] = &["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr"];

/// Every claim we may assert, for discovery's `claims_supported`: those of
/// the protocol and the standard ones (`groups` and `roles` among them).
pub fn claims_supported() -> Vec<&'static str> {
    PROTOCOL_CLAIMS.iter().copied().chain(STANDARD_CLAIMS.iter().map(|standard| standard.claim)).collect()
}

/// The requested scopes we grant, in request order, each once.
pub fn granted_scopes(requested: &str) -> String {
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(|s| SUPPORTED_SCOPES.contains(s)) {
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    granted.join(" ")
}

/// The `sub` of a federated user without a local account: stable for
/// (connection, subject), and not the IdP's identifier itself.
pub fn pass_through_subject(connection: &ConnectionName, subject: &Subject) -> String {
    let name = format!("{}\n{}", connection.as_str(), subject.as_str());
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// Claims of a local user. Every `email` comes with `email_verified`.
pub fn local_user_claims(user: &LocalUser, scopes: &[&str]) -> Map<String, Value> {
    let mut claims = attribute_claims(&user.attributes, scopes, user.email_verified);
    claims.insert("sub".into(), Value::String(user.id.to_string()));
    if released("preferred_username", scopes) {
        claims.insert("preferred_username".into(), Value::String(user.username.to_string()));
    }
    claims
}

/// Claims of a pass-through (JIT-disabled) user: the mapped attributes,
/// and `email_verified` as the IdP said it for that email.
pub fn pass_through_claims(
    connection: &ConnectionName,
    subject: &Subject,
    attributes: &Attributes,
    email_verified: bool,
    scopes: &[&str],
) -> Map<String, Value> {
    let mut claims = attribute_claims(attributes, scopes, email_verified);
    claims.insert("sub".into(), Value::String(pass_through_subject(connection, subject)));
    claims
}

/// The attributes as claims released by `scopes`; an `email` is always
/// released with `email_verified` (finding 8 of the security review: we
/// never assert an address without saying whether anybody verified it).
fn attribute_claims(attributes: &Attributes, scopes: &[&str], email_verified: bool) -> Map<String, Value> {
    let mut claims: Map<String, Value> = attributes
        .iter()
        .map(|(name, value)| (claim_name(name.as_str()), value))
        .filter(|(claim, _)| released(claim, scopes))
        .map(|(claim, value)| {
            let value = match value {
                AttributeValue::Single(v) => Value::String(v.clone()),
                AttributeValue::Multi(vs) => Value::Array(vs.iter().cloned().map(Value::String).collect()),
            };
            (claim, value)
        })
        .collect();
    if claims.contains_key(EMAIL) {
        claims.insert(EMAIL_VERIFIED_CLAIM.into(), Value::Bool(email_verified));
    }
    claims
}

fn claim_name(attribute: &str) -> String {
    if attribute == USERNAME { "preferred_username".into() } else { attribute.into() }
}

/// Whether `scopes` release `claim`: a standard claim with its scope, any
/// other claim (groups, roles, declared attributes) always.
fn released(claim: &str, scopes: &[&str]) -> bool {
    scope_of(claim).is_none_or(|scope| scopes.contains(&scope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_domain::user::{UserId, Username};
    use serde_json::json;

    #[test]
    fn claims_follow_scopes() {
        let user = LocalUser {
            id: UserId(Uuid::nil()),
            username: Username::new("ann").unwrap(),
            attributes: serde_json::from_value(json!({"email": "a@x", "given_name": "Ann", "groups": ["g"]})).unwrap(),
            email_verified: false,
        };
        let claims = local_user_claims(&user, &["openid", "email"]);
        assert_eq!(
            Value::Object(claims),
            json!({"sub": "00000000-0000-0000-0000-000000000000", "email": "a@x", "email_verified": false, "groups": ["g"]})
        );
        let verified = LocalUser { email_verified: true, ..user.clone() };
        assert_eq!(local_user_claims(&verified, &["openid", "email"]).get("email_verified"), Some(&json!(true)));
        let claims = local_user_claims(&user, &["openid", "profile"]);
        assert_eq!(claims.get("preferred_username"), Some(&json!("ann")));
        assert_eq!(claims.get("given_name"), Some(&json!("Ann")));
        assert!(claims.get("email").is_none());
    }

    #[test]
    fn only_supported_scopes_are_granted() {
        assert_eq!(granted_scopes("openid email"), "openid email");
        assert_eq!(granted_scopes("openid  admin email openid <script>"), "openid email");
        assert!(STANDARD_CLAIMS.iter().filter_map(|c| c.scope).all(|scope| SUPPORTED_SCOPES.contains(&scope)));
    }

    #[test]
    fn pass_through_subjects_are_stable_and_distinct() {
        let c = ConnectionName::new("corp").unwrap();
        let a = pass_through_subject(&c, &Subject::new("1").unwrap());
        assert_eq!(a, pass_through_subject(&c, &Subject::new("1").unwrap()));
        assert_ne!(a, pass_through_subject(&c, &Subject::new("2").unwrap()));
        assert_ne!(a, pass_through_subject(&ConnectionName::new("other").unwrap(), &Subject::new("1").unwrap()));
    }
}
