//! Claim mapping: from an IdP's claim names and JSON values to local
//! attributes.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::attribute::{AttributeName, AttributeValue, Attributes};
use crate::error::{ConfigError, MappingError};
use crate::schema::{AttributeSchema, EMAIL, USERNAME, is_system};

/// The claim that says whether the IdP verified the email address.
pub const EMAIL_VERIFIED_CLAIM: &str = "email_verified";
/// The claim whose value `email_verified` speaks about.
pub const EMAIL_CLAIM: &str = "email";
/// Longest claim name accepted.
pub const MAX_CLAIM_NAME_LEN: usize = 256;

/// An OpenID Connect standard claim (Core §5.1) as jit knows it: the local
/// attribute it maps onto when a connection configures nothing, and the
/// scope that releases it in our tokens (`None`: always released).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardClaim {
    /// The claim's name.
    pub claim: &'static str,
    /// The local attribute of that name, or `username` for
    /// `preferred_username`; `None` for a claim that is no attribute
    /// (`email_verified`, `phone_number_verified`).
    pub attribute: Option<&'static str>,
    /// The scope that releases it.
    pub scope: Option<&'static str>,
}

const fn claim(claim: &'static str, attribute: &'static str, scope: &'static str) -> StandardClaim {
    StandardClaim { claim, attribute: Some(attribute), scope: Some(scope) }
}

/// Every standard claim: the one table that the default claim mapping, the
/// standard attribute schema and the claims released per scope come from.
pub const STANDARD_CLAIMS: &[StandardClaim] = &[
    claim("preferred_username", USERNAME, "profile"),
    claim("name", "name", "profile"),
    claim("given_name", "given_name", "profile"),
    claim("family_name", "family_name", "profile"),
    claim("middle_name", "middle_name", "profile"),
    claim("nickname", "nickname", "profile"),
    claim("profile", "profile", "profile"),
    claim("picture", "picture", "profile"),
    claim("website", "website", "profile"),
    claim("gender", "gender", "profile"),
    claim("birthdate", "birthdate", "profile"),
    claim("zoneinfo", "zoneinfo", "profile"),
    claim("locale", "locale", "profile"),
    claim(EMAIL_CLAIM, EMAIL, "email"),
    StandardClaim { claim: EMAIL_VERIFIED_CLAIM, attribute: None, scope: Some("email") },
    claim("phone_number", "phone_number", "phone"),
    StandardClaim { claim: "phone_number_verified", attribute: None, scope: Some("phone") },
    StandardClaim { claim: "groups", attribute: Some("groups"), scope: Some("groups") },
    StandardClaim { claim: "roles", attribute: Some("roles"), scope: Some("roles") },
];

/// The scope that releases `claim`, if a scope does (standard claims only;
/// every other claim is always released).
pub fn scope_of(claim: &str) -> Option<&'static str> {
    STANDARD_CLAIMS.iter().find(|standard| standard.claim == claim).and_then(|standard| standard.scope)
}

/// The result of mapping an IdP's claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappedClaims {
    /// The local attributes.
    pub attributes: Attributes,
    /// Whether the IdP verified the mapped `email` (see
    /// [`ClaimMapping::map_documents`]).
    pub email_verified: bool,
    /// The claims no mapping took (protocol claims such as `iss` or
    /// `nonce` aside): dropped, and listed by the dry run.
    pub dropped: std::collections::BTreeSet<String>,
}

/// Which claim becomes which local attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimMapping {
    entries: BTreeMap<String, AttributeName>,
}

impl ClaimMapping {
    /// The standard OpenID Connect mapping.
    pub fn standard() -> Self {
        let entries = STANDARD_CLAIMS
            .iter()
            .filter_map(|standard| standard.attribute.map(|attribute| (standard.claim.to_owned(), attribute)))
            .map(|(claim, attribute)| (claim, AttributeName::known(attribute)))
            .collect();
        Self { entries }
    }

    /// This mapping with `overrides` added; an override for a claim replaces
    /// its standard mapping, and a standard claim whose attribute is now
    /// taken by an override is dropped, so one attribute has one source.
    pub fn with_overrides(mut self, overrides: &BTreeMap<String, AttributeName>) -> Self {
        let overridden: Vec<&AttributeName> = overrides.values().collect();
        self.entries.retain(|claim, attribute| overrides.contains_key(claim) || !overridden.contains(&&*attribute));
        self.entries.extend(overrides.iter().map(|(c, a)| (c.clone(), a.clone())));
        self
    }

    /// This mapping without the standard mapping of claim `claim` (unless
    /// an override maps it elsewhere, which stays).
    pub fn without_standard(mut self, claim: &str) -> Self {
        if self.entries.get(claim).is_some_and(|attribute| attribute.as_str() == claim) {
            self.entries.remove(claim);
        }
        self
    }

    /// The claim → attribute pairs.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &AttributeName)> {
        self.entries.iter().map(|(claim, attribute)| (claim.as_str(), attribute))
    }

    /// Checks every target against the schema: known, not a system
    /// attribute, and not the target of two claims.
    pub fn validate(&self, schema: &AttributeSchema) -> Result<(), ConfigError> {
        let mut sources: BTreeMap<&AttributeName, &str> = BTreeMap::new();
        for (claim, attribute) in &self.entries {
            if claim.is_empty() || claim.len() > MAX_CLAIM_NAME_LEN {
                return Err(ConfigError::InvalidClaimName(claim.clone()));
            }
            if is_system(attribute.as_str()) {
                return Err(ConfigError::SystemAttribute(attribute.clone()));
            }
            schema.require(attribute)?;
            if let Some(first) = sources.insert(attribute, claim) {
                return Err(ConfigError::DuplicateMappingTarget {
                    attribute: attribute.clone(),
                    first: first.to_owned(),
                    second: claim.clone(),
                });
            }
        }
        Ok(())
    }

    /// Maps `claims` (one JSON object, e.g. an ID token's) to attributes;
    /// see [`map_documents`](Self::map_documents).
    pub fn map(&self, claims: &Map<String, Value>, schema: &AttributeSchema) -> Result<MappedClaims, MappingError> {
        self.map_documents(&[claims], schema)
    }

    /// Maps the claims of several documents of one sign-in (userinfo, then
    /// the ID token: the first that has a claim gives its value) to
    /// attributes. Absent and `null` claims are skipped; strings, numbers
    /// and booleans become strings; arrays of those become multiple values.
    /// Values are checked against the schema (arity, size).
    ///
    /// The email counts as verified only if the `email` attribute is mapped
    /// from the `email` claim and a document carrying that exact value as
    /// its `email` says `email_verified: true` (or `"true"`) itself: a flag
    /// never vouches for a value from another claim (`upn` mapped onto
    /// `email`) or from another document (userinfo's address under the ID
    /// token's flag).
    pub fn map_documents(
        &self,
        documents: &[&Map<String, Value>],
        schema: &AttributeSchema,
    ) -> Result<MappedClaims, MappingError> {
        let mut attributes = Attributes::new();
        for (claim, attribute) in &self.entries {
            let Some((value, _)) = first_claim(documents, claim) else { continue };
            let unsupported = || MappingError::UnsupportedValue { claim: claim.clone(), attribute: attribute.clone() };
            let Some(values) = json_values(value).map_err(|()| unsupported())? else { continue };
            let multi = schema.get(attribute.as_str()).is_some_and(|d| d.multi_valued);
            let value = match (multi, values.len()) {
                (_, 0) => continue,
                (false, 1) => AttributeValue::Single(values.into_iter().next().unwrap_or_default()),
                _ => AttributeValue::Multi(values),
            };
            attributes.insert(attribute.clone(), value);
        }
        schema.check(&attributes).map_err(|source| {
            let claim = match &source {
                ConfigError::NotSingleValued(a)
                | ConfigError::TooManyValues(a)
                | ConfigError::ValueTooLong(a)
                | ConfigError::EmptyUniqueValue(a) => self.claim_of(a),
                _ => None,
            };
            MappingError::Invalid { claim: claim.unwrap_or_default(), source }
        })?;
        let email_verified = self.email_verified(documents, &attributes);
        let dropped = documents
            .iter()
            .flat_map(|document| document.keys())
            .filter(|claim| !PROTOCOL_CLAIMS.contains(&claim.as_str()))
            .filter(|claim| !self.entries.keys().any(|mapped| consumes(mapped, claim)))
            .cloned()
            .collect();
        Ok(MappedClaims { attributes, email_verified, dropped })
    }

    /// Whether the mapped email is vouched for by a document that carries
    /// exactly that value under `email` with its own `email_verified`.
    fn email_verified(&self, documents: &[&Map<String, Value>], attributes: &Attributes) -> bool {
        let from_email_claim = self.entries.get(EMAIL_CLAIM).is_some_and(|attribute| attribute.as_str() == EMAIL);
        let Some(value) = attributes.get(EMAIL).and_then(|v| v.single()) else { return false };
        from_email_claim
            && documents.iter().any(|document| {
                document.get(EMAIL_CLAIM).and_then(Value::as_str) == Some(value) && email_verified(document)
            })
    }

    fn claim_of(&self, attribute: &AttributeName) -> Option<String> {
        self.entries.iter().find(|(_, a)| *a == attribute).map(|(c, _)| c.clone())
    }
}

/// Claims of the protocol rather than about the user: never mapped, never
/// reported as dropped.
const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "auth_time",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "s_hash",
    EMAIL_VERIFIED_CLAIM,
    "phone_number_verified",
    "updated_at",
];

/// Whether mapping `mapped` takes the top-level claim `claim`: the same
/// name, or a dotted path into it (`address.country` takes `address`).
fn consumes(mapped: &str, claim: &str) -> bool {
    mapped == claim || mapped.strip_prefix(claim).is_some_and(|rest| rest.starts_with('.'))
}

/// The value of claim `name` in `document`: the top-level claim of that
/// very name if there is one (URIs such as
/// `http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn` are names,
/// dots and all), else a dotted path into nested objects
/// (`address.country`). `null` counts as absent.
pub fn claim_value<'a>(document: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = document.get(name) {
        return Some(value).filter(|v| !v.is_null());
    }
    let mut parts = name.split('.');
    let mut current = document.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current).filter(|v| !v.is_null())
}

/// The first document (of userinfo, then the ID token) that carries claim
/// `name`, with the value.
pub fn first_claim<'a>(
    documents: &[&'a Map<String, Value>],
    name: &str,
) -> Option<(&'a Value, &'a Map<String, Value>)> {
    documents.iter().find_map(|document| claim_value(document, name).map(|value| (value, *document)))
}

/// `email_verified` as a boolean. Some IdPs send the string `"true"`; any
/// other value, or none, means unverified.
pub fn email_verified(claims: &Map<String, Value>) -> bool {
    match claims.get(EMAIL_VERIFIED_CLAIM) {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(verified)) => verified.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The string values of a claim: `Ok(None)` for `null`, `Err(())` for
/// objects (or arrays holding objects or arrays).
fn json_values(value: &Value) -> Result<Option<Vec<String>>, ()> {
    fn scalar(value: &Value) -> Result<Option<String>, ()> {
        match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            Value::Bool(b) => Ok(Some(b.to_string())),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Array(_) | Value::Object(_) => Err(()),
        }
    }
    match value {
        Value::Array(items) => {
            let values: Result<Vec<Option<String>>, ()> = items.iter().map(scalar).collect();
            Ok(Some(values?.into_iter().flatten().collect()))
        }
        other => Ok(scalar(other)?.map(|v| vec![v])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(mapping: &ClaimMapping, claims: Value) -> Result<MappedClaims, MappingError> {
        let Value::Object(claims) = claims else { unreachable!() };
        mapping.map(&claims, &AttributeSchema::standard())
    }

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, AttributeName> {
        pairs.iter().map(|(c, a)| ((*c).to_owned(), AttributeName::new(*a).unwrap())).collect()
    }

    #[test]
    fn standard_claims_map_by_default() {
        let mapped = map(
            &ClaimMapping::standard(),
            json!({"sub": "x", "preferred_username": "alice", "email": "Alice@Example.com",
                   "email_verified": true, "groups": ["a", "b"], "given_name": null, "unmapped": 1}),
        )
        .unwrap();
        let expected: Attributes =
            serde_json::from_value(json!({"username": "alice", "email": "Alice@Example.com", "groups": ["a", "b"]}))
                .unwrap();
        assert_eq!(mapped.attributes, expected);
        assert!(mapped.email_verified);
        assert_eq!(mapped.dropped.into_iter().collect::<Vec<_>>(), ["unmapped"], "sub and email_verified are protocol");
    }

    #[test]
    fn claims_are_found_by_name_uri_or_dotted_path() {
        let upn = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
        let mapping =
            ClaimMapping::standard().with_overrides(&overrides(&[(upn, "nickname"), ("address.country", "locale")]));
        let mapped = map(
            &mapping,
            json!({"sub": "x", upn: "ann@corp.example", "address": {"country": "FR", "locality": "Lyon"},
                   "department": "Sales"}),
        )
        .unwrap();
        assert_eq!(mapped.attributes.get("nickname").and_then(|v| v.single()), Some("ann@corp.example"));
        assert_eq!(mapped.attributes.get("locale").and_then(|v| v.single()), Some("FR"));
        assert_eq!(mapped.dropped.into_iter().collect::<Vec<_>>(), ["department"], "address was taken, in part");
        let doc = json!({"a.b": "top", "a": {"b": "nested"}});
        assert_eq!(claim_value(doc.as_object().unwrap(), "a.b"), Some(&json!("top")), "a name wins over a path");
        let doc = json!({"a": {"b": null}});
        assert_eq!(claim_value(doc.as_object().unwrap(), "a.b"), None);
    }

    #[test]
    fn email_verified_forms() {
        let check = |claims: Value, expected: bool| {
            let Value::Object(claims) = claims else { unreachable!() };
            assert_eq!(email_verified(&claims), expected);
        };
        check(json!({"email_verified": true}), true);
        check(json!({"email_verified": "TRUE"}), true);
        check(json!({"email_verified": false}), false);
        check(json!({"email_verified": "yes"}), false);
        check(json!({}), false);
    }

    /// Finding 3 of the security review: `email_verified` vouches only for
    /// the value it came with.
    #[test]
    fn email_verified_is_tied_to_its_value_and_document() {
        let schema = AttributeSchema::standard();
        let doc = |v: Value| match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let check = |mapping: &ClaimMapping, documents: &[Value], email: &str, verified: bool| {
            let documents: Vec<Map<String, Value>> = documents.iter().cloned().map(doc).collect();
            let refs: Vec<&Map<String, Value>> = documents.iter().collect();
            let mapped = mapping.map_documents(&refs, &schema).unwrap();
            assert_eq!(mapped.attributes.get(EMAIL).and_then(|v| v.single()), Some(email), "{documents:?}");
            assert_eq!(mapped.email_verified, verified, "{documents:?}");
        };
        let standard = ClaimMapping::standard();
        let id_token = json!({"email": "mallory@evil.test", "email_verified": true});
        check(&standard, std::slice::from_ref(&id_token), "mallory@evil.test", true);
        // (b) userinfo's other address, without a flag, under the ID token's flag.
        check(&standard, &[json!({"email": "victim@corp.test"}), id_token.clone()], "victim@corp.test", false);
        // The same address in both: the ID token's flag vouches for it.
        check(&standard, &[json!({"email": "mallory@evil.test"}), id_token.clone()], "mallory@evil.test", true);
        // A flag for another spelling vouches for nothing.
        check(&standard, &[json!({"email": "Mallory@evil.test", "email_verified": true})], "Mallory@evil.test", true);
        check(
            &standard,
            &[json!({"email": "victim@corp.test"}), json!({"email": "Victim@corp.test", "email_verified": true})],
            "victim@corp.test",
            false,
        );
        // (a) upn mapped onto email, beside a verified email of the attacker.
        let upn = ClaimMapping::standard().with_overrides(&overrides(&[("upn", "email")]));
        check(
            &upn,
            &[json!({"email": "mallory@evil.test", "email_verified": true, "upn": "victim@corp.test"})],
            "victim@corp.test",
            false,
        );
        // Cognito-style string flags.
        check(&standard, &[json!({"email": "a@corp.test", "email_verified": "true"})], "a@corp.test", true);
        check(&standard, &[json!({"email": "a@corp.test", "email_verified": "false"})], "a@corp.test", false);
    }

    #[test]
    fn overrides_replace_and_extend() {
        let mapping = ClaimMapping::standard().with_overrides(&overrides(&[("upn", "email"), ("dept", "groups")]));
        let mapped = map(&mapping, json!({"email": "ignored@x", "upn": "a@corp", "dept": "r&d", "roles": 7})).unwrap();
        let expected: Attributes =
            serde_json::from_value(json!({"email": "a@corp", "groups": ["r&d"], "roles": ["7"]})).unwrap();
        assert_eq!(mapped.attributes, expected);
        assert!(mapping.validate(&AttributeSchema::standard()).is_ok());
    }

    #[test]
    fn invalid_mappings_are_reported() {
        let schema = AttributeSchema::standard();
        let check = |pairs: &[(&str, &str)]| {
            ClaimMapping::standard().with_overrides(&overrides(pairs)).validate(&schema).map_err(|e| e.to_string())
        };
        assert!(check(&[("x", "shoe_size")]).is_err_and(|e| e.contains("unknown attribute")));
        assert!(check(&[("x", "totp_secret")]).is_err_and(|e| e.contains("system attribute")));
        assert!(check(&[("", "name")]).is_err_and(|e| e.contains("claim name")));
    }

    #[test]
    fn bad_values_are_errors() {
        let mapping = ClaimMapping::standard();
        assert!(matches!(map(&mapping, json!({"email": {"a": 1}})), Err(MappingError::UnsupportedValue { .. })));
        assert!(matches!(
            map(&mapping, json!({"email": ["a@x", "b@x"]})),
            Err(MappingError::Invalid { ref claim, .. }) if claim == "email"
        ));
        assert!(map(&mapping, json!({"name": "x".repeat(5000)})).is_err());
    }
}
