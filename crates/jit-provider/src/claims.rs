//! The claims we assert about a signed-in subject, filtered by scope.

use jit_domain::application::{Application, CustomScope};
use jit_domain::attribute::{AttributeValue, Attributes};
use jit_domain::claims::{EMAIL_VERIFIED_CLAIM, STANDARD_CLAIMS, scope_of};
use jit_domain::connection::ConnectionName;
use jit_domain::schema::{EMAIL, USERNAME};
use jit_domain::user::{LocalUser, Subject};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The scopes every application may be granted: `openid` and those that
/// release standard claims ([`STANDARD_CLAIMS`]: `profile`, `email`,
/// `phone`, `groups`, `roles`). An application adds its own custom scopes;
/// any other scope is ignored (not granted, not echoed back).
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", "email", "phone", "groups", "roles"];

/// What a token may release: the granted scopes, and the application's
/// custom scopes that say which declared attributes a scope releases.
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    /// The granted scopes.
    pub scopes: &'a [&'a str],
    /// The application's custom scopes.
    pub custom: &'a [CustomScope],
}

/// Claims of the protocol itself, in every ID token (`sub` also at
/// userinfo).
const PROTOCOL_CLAIMS: &[&str] = &["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr"];

/// Every claim we may assert, for discovery's `claims_supported`: those of
/// the protocol and the standard ones (`groups` and `roles` among them).
pub fn claims_supported() -> Vec<&'static str> {
    PROTOCOL_CLAIMS.iter().copied().chain(STANDARD_CLAIMS.iter().map(|standard| standard.claim)).collect()
}

/// The requested scopes we grant `application`, in request order, each
/// once: the supported ones and its own.
pub fn granted_scopes(requested: &str, application: &Application) -> String {
    let known = |scope: &&str| SUPPORTED_SCOPES.contains(scope) || application.scopes.iter().any(|c| c.scope == *scope);
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(known) {
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
pub fn local_user_claims(user: &LocalUser, release: Release<'_>) -> Map<String, Value> {
    let mut claims = attribute_claims(&user.attributes, release, user.email_verified);
    claims.insert("sub".into(), Value::String(user.id.to_string()));
    if released("preferred_username", release) {
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
    release: Release<'_>,
) -> Map<String, Value> {
    let mut claims = attribute_claims(attributes, release, email_verified);
    claims.insert("sub".into(), Value::String(pass_through_subject(connection, subject)));
    claims
}

/// The attributes as claims released by `scopes`; an `email` is always
/// released with `email_verified` (finding 8 of the security review: we
/// never assert an address without saying whether anybody verified it).
fn attribute_claims(attributes: &Attributes, release: Release<'_>, email_verified: bool) -> Map<String, Value> {
    let mut claims: Map<String, Value> = attributes
        .iter()
        .map(|(name, value)| (claim_name(name.as_str()), value))
        .filter(|(claim, _)| released(claim, release))
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

/// Whether `release` releases `claim`: a standard claim under its scope; a
/// declared attribute under a granted custom scope that names it, and
/// otherwise not at all (least disclosure).
fn released(claim: &str, release: Release<'_>) -> bool {
    match scope_of(claim) {
        Some(scope) => release.scopes.contains(&scope),
        None => release.custom.iter().any(|custom| {
            release.scopes.contains(&custom.scope.as_str()) && custom.claims.iter().any(|a| a.as_str() == claim)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_domain::user::{UserId, Username};
    use serde_json::json;

    fn app(scopes: serde_json::Value) -> Application {
        serde_json::from_value(json!({"name": "app", "client_id": "app", "client_secret_hash": null,
                                      "redirect_uris": ["https://app.example/cb"], "public": true,
                                      "sign_in": {"steps": [{"options": ["LOCAL"]}]}, "scopes": scopes}))
        .unwrap()
    }

    #[test]
    fn claims_follow_scopes() {
        let user = LocalUser {
            id: UserId(Uuid::nil()),
            username: Username::new("ann").unwrap(),
            attributes: serde_json::from_value(
                json!({"email": "a@x", "given_name": "Ann", "groups": ["g"], "department": "Sales", "badge": "7"}),
            )
            .unwrap(),
            email_verified: false,
        };
        let app = app(json!([{"scope": "employee", "claims": ["department"]}]));
        let release = |scopes: &'static [&'static str]| Release { scopes, custom: &app.scopes };
        let claims = local_user_claims(&user, release(&["openid", "email"]));
        assert_eq!(
            Value::Object(claims),
            json!({"sub": "00000000-0000-0000-0000-000000000000", "email": "a@x", "email_verified": false})
        );
        let verified = LocalUser { email_verified: true, ..user.clone() };
        assert_eq!(
            local_user_claims(&verified, release(&["openid", "email"])).get("email_verified"),
            Some(&json!(true))
        );
        let claims = local_user_claims(&user, release(&["openid", "profile", "groups"]));
        assert_eq!(claims.get("preferred_username"), Some(&json!("ann")));
        assert_eq!(claims.get("given_name"), Some(&json!("Ann")));
        assert_eq!(claims.get("groups"), Some(&json!(["g"])), "groups under the groups scope");
        assert!(claims.get("email").is_none() && claims.get("department").is_none());
        // A declared attribute goes out only under a custom scope naming it.
        let claims = local_user_claims(&user, release(&["openid", "employee"]));
        assert_eq!(claims.get("department"), Some(&json!("Sales")));
        assert!(claims.get("badge").is_none(), "named by no scope: never released");
    }

    #[test]
    fn only_supported_and_own_scopes_are_granted() {
        let app = app(json!([{"scope": "employee", "claims": ["department"]}]));
        assert_eq!(granted_scopes("openid email", &app), "openid email");
        assert_eq!(
            granted_scopes("openid  admin email openid <script> employee groups", &app),
            "openid email employee groups"
        );
        assert_eq!(granted_scopes("openid employee", &self::app(json!([]))), "openid", "another app's scope");
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
