//! Provisioning as a whole: decide on fresh data, apply atomically, and
//! decide again when the write lost a race.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::attribute::{AttributeName, AttributeValue};
use crate::claims::first_claim;
use crate::connection::{Connection, JitPolicy};
use crate::error::MappingError;
use crate::ports::{ProvisioningFacts, ProvisioningStore, StoreError};
use crate::provisioning::{Decision, LookupKey, ProvisioningInput, Refusal, decide, plan_lookups};
use crate::schema::{AttributeSchema, USERNAME};
use crate::user::{FederatedIdentity, LocalUser, Subject};

/// How often a decision is retried after losing a race. Each retry sees the
/// winner's write, so two attempts settle almost every race; the rest covers
/// busy databases.
pub const MAX_ATTEMPTS: usize = 8;

/// What a federated sign-in came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProvisioningOutcome {
    /// JIT is off: sign in with the mapped attributes, no local account.
    PassThrough(FederatedIdentity),
    /// Signed in as this local account (associated, linked or created).
    SignedIn {
        /// The account as it is now.
        user: LocalUser,
        /// What was decided (and applied).
        decision: Decision,
    },
    /// Refused; the audit trail records why.
    Refused(Refusal),
}

/// Errors of [`provision`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every attempt lost a race.
    #[error("provisioning kept conflicting with concurrent sign-ins after {MAX_ATTEMPTS} attempts; try again")]
    Contention,
}

/// Who signed in through `connection`, from the IdP's `subject` and claim
/// documents (userinfo first, then the ID token; see
/// [`ClaimMapping::map_documents`](crate::claims::ClaimMapping::map_documents)).
/// The one way from claims to a [`FederatedIdentity`]: a real sign-in and
/// the admin API's dry run both use it.
pub fn identity_from_claims(
    connection: &Connection,
    subject: &str,
    documents: &[&Map<String, Value>],
    schema: &AttributeSchema,
) -> Result<FederatedIdentity, MappingError> {
    identity_and_dropped_claims(connection, subject, documents, schema).map(|(identity, _)| identity)
}

/// [`identity_from_claims`], with the claims no mapping took (what the dry
/// run shows).
pub fn identity_and_dropped_claims(
    connection: &Connection,
    subject: &str,
    documents: &[&Map<String, Value>],
    schema: &AttributeSchema,
) -> Result<(FederatedIdentity, std::collections::BTreeSet<String>), MappingError> {
    let subject = Subject::new(subject).map_err(|_| MappingError::InvalidSubject)?;
    let mut mapped = connection.claim_mapping().map_documents(documents, schema)?;
    if let Some(template) = &connection.jit.username_template {
        // The template decides the new account's name; without a value
        // the fallback name is used (see `JitPolicy::username_template`).
        let username = AttributeName::known(USERNAME);
        match template.render(&connection.name, subject.as_str(), documents) {
            Some(rendered) => mapped.attributes.insert(username, AttributeValue::Single(rendered)),
            None => {
                mapped.attributes.remove(&username);
            }
        }
    }
    // The claims linking rules look up, by their names at the IdP: the
    // first document that carries one as a single string gives it.
    let claims = connection
        .jit
        .linking
        .effective_rules()
        .into_iter()
        .filter_map(|rule| {
            let (value, _) = first_claim(documents, &rule.federated)?;
            Some((rule.federated, value.as_str()?.to_owned()))
        })
        .collect();
    let memberships: Vec<crate::membership::ReceivedMemberships> = connection
        .membership_mappings()
        .into_iter()
        .map(|(kind, mapping)| {
            let claim = mapping.claim.clone().unwrap_or_else(|| kind.plural().to_owned());
            let values = match first_claim(documents, &claim).map(|(value, _)| value) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .take(crate::membership::MAX_RECEIVED_MEMBERSHIPS)
                    .collect(),
                Some(Value::String(single)) => vec![single.clone()],
                _ => Vec::new(),
            };
            crate::membership::ReceivedMemberships { kind, values, mapping: mapping.clone() }
        })
        .collect();
    if !connection.jit.enabled {
        // No account to hold memberships: the mapped names go to the
        // application as the `groups` / `roles` attributes of the sign-in.
        for received in &memberships {
            let names = crate::membership::mapped_names(&received.values, &received.mapping);
            if !names.is_empty() {
                let name = AttributeName::known(received.kind.plural());
                mapped.attributes.insert(name, AttributeValue::Multi(names));
            }
        }
    }
    let identity = FederatedIdentity {
        connection: connection.name.clone(),
        subject,
        attributes: mapped.attributes,
        email_verified: mapped.email_verified,
        claims,
        filtered_out: connection.filtered_out(documents).map(|filter| filter.claim.clone()),
        memberships,
    };
    Ok((identity, mapped.dropped))
}

/// What provisioning would do, and what it read to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The values looked up ([`plan_lookups`]).
    pub keys: Vec<LookupKey>,
    /// What the store said, from one snapshot (nothing when JIT is off).
    pub facts: ProvisioningFacts,
    /// The decision.
    pub decision: Decision,
}

/// Reads the facts for `identity` and decides, writing nothing: one round
/// of [`provision`], and the whole of the admin API's dry run. JIT off reads
/// nothing.
pub async fn plan<S: ProvisioningStore + ?Sized>(
    store: &S,
    policy: &JitPolicy,
    schema: &AttributeSchema,
    identity: &FederatedIdentity,
) -> Result<Plan, StoreError> {
    let keys = plan_lookups(policy, schema, identity);
    let facts = if policy.enabled { store.facts(identity, &keys).await? } else { ProvisioningFacts::default() };
    let decision = decide(ProvisioningInput {
        policy,
        schema,
        identity,
        associated: facts.associated.as_ref(),
        lookups: &facts.lookups,
    });
    Ok(Plan { keys, facts, decision })
}

/// Provisions `identity` under `policy`: [`plan`]s, applies; plans again on
/// [`StoreError::Conflict`]. Race-free as long as the store's `apply` is
/// atomic and backed by unique constraints.
pub async fn provision<S: ProvisioningStore + ?Sized>(
    store: &S,
    policy: &JitPolicy,
    schema: &AttributeSchema,
    identity: &FederatedIdentity,
    now: OffsetDateTime,
) -> Result<ProvisioningOutcome, ProvisionError> {
    // JIT off touches no store, unless a claim filter refuses the sign-in:
    // that refusal is audited too.
    if !policy.enabled && identity.filtered_out.is_none() {
        return Ok(ProvisioningOutcome::PassThrough(identity.clone()));
    }
    for _ in 0..MAX_ATTEMPTS {
        let Plan { decision, .. } = plan(store, policy, schema, identity).await?;
        match store.apply(identity, &decision, now).await {
            Ok(Some(user)) => return Ok(ProvisioningOutcome::SignedIn { user, decision }),
            Ok(None) => {
                return Ok(match decision {
                    Decision::Refuse(refusal) => ProvisioningOutcome::Refused(refusal),
                    _ => ProvisioningOutcome::PassThrough(identity.clone()),
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ProvisionError::Contention)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connection::{ConnectionName, LinkRule, OidcSettings, UsernameTemplate};

    fn connection(rules: Vec<LinkRule>) -> Connection {
        let mut jit = JitPolicy::default();
        jit.linking.rules = rules;
        Connection {
            name: ConnectionName::new("corp").unwrap_or_else(|e| unreachable!("{e}")),
            display_name: "Corp".into(),
            protocol: Default::default(),
            oidc: OidcSettings::default(),
            claim_mappings: Default::default(),
            jit,
            claim_filters: Vec::new(),
            groups: None,
            roles: None,
        }
    }

    /// Issue 9 §2: a rule's federated side is the claim as the IdP sends
    /// it — a name the standard mapping renames (`preferred_username`), a
    /// URI, a nested path — found in the first document that has it.
    #[test]
    fn linking_rules_name_the_idps_claims() {
        let upn = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
        let rule = |federated: &str| LinkRule {
            federated: federated.into(),
            local: crate::attribute::AttributeName::known("username"),
            trusted: true,
        };
        let connection = connection(vec![rule("preferred_username"), rule(upn), rule("org.employee.id")]);
        let id_token = json!({"sub": "s", "preferred_username": "ann", upn: "ann@corp.example",
                              "org": {"employee": {"id": "E1"}}});
        let userinfo = json!({"sub": "s", "preferred_username": "ann-from-userinfo"});
        let documents = [
            userinfo.as_object().unwrap_or_else(|| unreachable!()),
            id_token.as_object().unwrap_or_else(|| unreachable!()),
        ];
        let identity = identity_from_claims(&connection, "s", &documents, &AttributeSchema::standard())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(identity.claims.get("preferred_username").map(String::as_str), Some("ann-from-userinfo"));
        assert_eq!(identity.claims.get(upn).map(String::as_str), Some("ann@corp.example"));
        assert_eq!(identity.claims.get("org.employee.id").map(String::as_str), Some("E1"));
        assert!(!identity.claims.contains_key("email"), "no email claim was sent");
    }

    /// Issue 9 §2: the username of a new account comes from the
    /// connection's template; a missing claim leaves it to the fallback
    /// name, never to another account.
    #[test]
    fn a_username_template_names_new_accounts() {
        let mut corp = connection(Vec::new());
        corp.jit.username_template = Some(
            UsernameTemplate::parse("{connection}-{address.locality}-{employee_id}")
                .unwrap_or_else(|e| unreachable!("{e}")),
        );
        let claims =
            json!({"sub": "s-9", "preferred_username": "ann", "address": {"locality": "lyon"}, "employee_id": 42});
        let documents = [claims.as_object().unwrap_or_else(|| unreachable!())];
        let schema = AttributeSchema::standard();
        let identity = identity_from_claims(&corp, "s-9", &documents, &schema).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(identity.attributes.get(USERNAME).and_then(|v| v.single()), Some("corp-lyon-42"));

        corp.jit.username_template = Some(UsernameTemplate::parse("{email}").unwrap_or_else(|e| unreachable!("{e}")));
        let identity = identity_from_claims(&corp, "s-9", &documents, &schema).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(identity.attributes.get(USERNAME), None, "no email claim: the fallback name will be used");

        for bad in ["", "{", "}", "{}", "a{b", "{a{b}}", "x}"] {
            assert!(UsernameTemplate::parse(bad).is_err(), "{bad:?}");
        }
        let json: Result<JitPolicy, _> = serde_json::from_value(json!({"username_template": "{email"}));
        assert!(json.is_err(), "checked when read");
    }

    /// Issue 9 §5: with JIT off the same mapping applies: the mapped group
    /// names go to the application as the sign-in's `groups`.
    #[test]
    fn a_pass_through_sign_in_carries_its_mapped_groups() {
        let mut corp = connection(Vec::new());
        corp.jit.enabled = false;
        corp.groups = Some(crate::membership::MembershipMapping {
            mappings: [("Staff".to_owned(), "staff".to_owned())].into(),
            ..Default::default()
        });
        let claims = json!({"sub": "s", "groups": ["Staff", "Other"]});
        let documents = [claims.as_object().unwrap_or_else(|| unreachable!())];
        let identity = identity_from_claims(&corp, "s", &documents, &AttributeSchema::standard())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(identity.attributes.get("groups").map(|v| v.values().to_vec()), Some(vec!["staff".to_owned()]));
    }

    /// A hostile IdP cannot make one sign-in consider (and create or
    /// grant) more than `MAX_RECEIVED_MEMBERSHIPS` groups.
    #[test]
    fn the_groups_one_sign_in_considers_are_bounded() {
        let mut corp = connection(Vec::new());
        corp.groups = Some(crate::membership::MembershipMapping {
            unmapped: crate::membership::Unmapped::Create,
            ..Default::default()
        });
        let many: Vec<String> = (0..10_000).map(|i| format!("g{i}")).collect();
        let claims = json!({"sub": "s", "groups": many});
        let documents = [claims.as_object().unwrap_or_else(|| unreachable!())];
        let identity = identity_from_claims(&corp, "s", &documents, &AttributeSchema::standard())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(identity.memberships[0].values.len(), crate::membership::MAX_RECEIVED_MEMBERSHIPS);
    }
}
