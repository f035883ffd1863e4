//! Test support: an in-memory world of local users that answers lookups the
//! way a store would.

#![allow(dead_code, clippy::unwrap_used)]

use jit_domain::prelude::*;
use serde_json::Value;
use uuid::Uuid;

/// The standard schema plus a declared unique `employee_id`.
pub fn schema() -> AttributeSchema {
    AttributeSchema::standard()
        .declare(AttributeDefinition {
            name: AttributeName::new("employee_id").unwrap(),
            unique: true,
            multi_valued: false,
            normalization: Normalization::Exact,
            description: String::new(),
            sensitive: false,
        })
        .unwrap()
}

pub fn attrs(value: Value) -> Attributes {
    serde_json::from_value(value).unwrap()
}

/// A local user whose email (if any) is verified.
pub fn user(n: u128, username: &str, attributes: Value) -> LocalUser {
    LocalUser {
        id: UserId(Uuid::from_u128(n)),
        username: Username::new(username).unwrap(),
        attributes: attrs(attributes),
        email_verified: true,
    }
}

/// A local user whose email nobody verified.
pub fn unverified_user(n: u128, username: &str, attributes: Value) -> LocalUser {
    LocalUser { email_verified: false, ..user(n, username, attributes) }
}

/// Who signed in, as if the IdP sent claims named like the attributes
/// (which is what linking rules look up).
pub fn identity(attributes: Value, email_verified: bool) -> FederatedIdentity {
    let attributes = attrs(attributes);
    FederatedIdentity {
        connection: ConnectionName::new("corp").unwrap(),
        subject: Subject::new("sub-1").unwrap(),
        claims: claims_like(&attributes),
        attributes,
        email_verified,
        filtered_out: None,
        memberships: Vec::new(),
    }
}

/// Claims of the same names and single values as `attributes`.
pub fn claims_like(attributes: &Attributes) -> std::collections::BTreeMap<String, String> {
    attributes.iter().filter_map(|(name, value)| Some((name.as_str().to_owned(), value.single()?.to_owned()))).collect()
}

pub fn rule(federated: &str, local: &str) -> LinkRule {
    LinkRule { federated: federated.to_owned(), local: AttributeName::new(local).unwrap(), trusted: false }
}

/// A rule whose federated attribute the IdP is authoritative for.
pub fn trusted(federated: &str, local: &str) -> LinkRule {
    LinkRule { trusted: true, ..rule(federated, local) }
}

/// Answers `keys` from `users` as a store would: by normalised value,
/// `username` included.
pub fn lookups(schema: &AttributeSchema, users: &[LocalUser], keys: &[LookupKey]) -> Lookups {
    lookups_linked(schema, users, keys, &[])
}

/// As [`lookups`], where the users `linked` already have an identity at
/// the connection `corp`.
pub fn lookups_linked(schema: &AttributeSchema, users: &[LocalUser], keys: &[LookupKey], linked: &[UserId]) -> Lookups {
    let mut lookups = Lookups::default();
    for key in keys {
        let found: Vec<LocalUser> = users
            .iter()
            .filter(|u| {
                if key.attribute.as_str() == "username" {
                    return u.username.normalized() == key.normalized;
                }
                u.attributes.get(key.attribute.as_str()).is_some_and(|v| {
                    v.values().iter().any(|v| schema.normalize(key.attribute.as_str(), v) == key.normalized)
                })
            })
            .cloned()
            .collect();
        if !found.is_empty() {
            lookups.insert(key.clone(), found);
        }
    }
    for user in lookups.users().collect::<Vec<_>>() {
        if linked.contains(&user) {
            lookups.insert_identity(user, ConnectionName::new("corp").unwrap());
        }
    }
    lookups
}

/// Plans, looks up in `users`, and decides.
pub fn decide_in(
    policy: &JitPolicy,
    identity: &FederatedIdentity,
    users: &[LocalUser],
    associated: Option<&LocalUser>,
) -> Decision {
    decide_linked(policy, identity, users, associated, &[])
}

/// As [`decide_in`], where the users `linked` already have an identity at
/// the connection `corp`.
pub fn decide_linked(
    policy: &JitPolicy,
    identity: &FederatedIdentity,
    users: &[LocalUser],
    associated: Option<&LocalUser>,
    linked: &[UserId],
) -> Decision {
    let schema = schema();
    let keys = plan_lookups(policy, &schema, identity);
    let lookups = lookups_linked(&schema, users, &keys, linked);
    decide(ProvisioningInput { policy, schema: &schema, identity, associated, lookups: &lookups })
}
