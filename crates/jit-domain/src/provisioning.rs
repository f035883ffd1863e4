//! The provisioning decision: what happens to local accounts when a
//! federated user signs in.
//!
//! Deciding is pure and done in three moves, so that the store can run it in
//! a retry loop without the rules knowing about databases:
//! 1. [`plan_lookups`] names the attribute values to look up (linking rule
//!    values and received unique values);
//! 2. the store looks them up and fills [`Lookups`];
//! 3. [`decide`] returns exactly one [`Decision`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attribute::{AttributeName, Attributes};
use crate::connection::{JitPolicy, LinkRule};
use crate::schema::{AttributeSchema, USERNAME, is_sync_protected};
use crate::sync::{AttributeUpdate, plan_update};
use crate::user::{FederatedIdentity, LocalUser, MAX_USERNAME_LEN, UserId, Username};

/// A value to look up: the local users whose attribute `attribute` has the
/// normalised value `normalized`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LookupKey {
    /// The local attribute (`username` included).
    pub attribute: AttributeName,
    /// The value in comparable form.
    pub normalized: String,
}

/// What the store found for each [`LookupKey`]. A key with no entry found
/// no user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    found: BTreeMap<LookupKey, Vec<LocalUser>>,
}

impl Lookups {
    /// Records the users found for `key`.
    pub fn insert(&mut self, key: LookupKey, users: Vec<LocalUser>) {
        self.found.insert(key, users);
    }

    /// The users found for `key`.
    pub fn get(&self, key: &LookupKey) -> &[LocalUser] {
        self.found.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Which linking rule matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatchedRule {
    /// 0 for the first match rule, 1 for the fallback rule.
    pub index: usize,
    /// The rule (the default email rule when none is configured).
    pub rule: LinkRule,
}

impl MatchedRule {
    /// "first" or "fallback".
    pub fn label(&self) -> &'static str {
        if self.index == 0 { "first" } else { "fallback" }
    }
}

/// Why a sign-in was refused. Every refusal says what happened in words an
/// end user's helpdesk can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Refusal {
    /// No local account matched and the connection skips provisioning.
    NoMatchingAccount,
    /// A rule matched several local accounts.
    AmbiguousMatch {
        /// The rule.
        rule: LinkRule,
        /// How many accounts it matched.
        matches: usize,
    },
    /// A local account has this email, but the IdP did not verify it and the
    /// connection does not trust its emails.
    UnverifiedEmail,
    /// A unique value the IdP sent already belongs to another account, which
    /// this sign-in may not take over.
    UniqueValueTaken {
        /// The attribute.
        attribute: AttributeName,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMatchingAccount => f.write_str(
                "no local account matches this user and the connection does not create accounts \
                 (skip provisioning when no local account is found)",
            ),
            Self::AmbiguousMatch { rule, matches } => write!(
                f,
                "linking rule {} = {} matched {matches} local accounts; none was linked",
                rule.federated, rule.local
            ),
            Self::UnverifiedEmail => f.write_str(
                "a local account has this email address, but the identity provider did not mark it as verified, \
                 so it cannot be linked",
            ),
            Self::UniqueValueTaken { attribute } => {
                write!(f, "the {attribute} sent by the identity provider already belongs to another local account")
            }
        }
    }
}

/// The one thing that happens to local accounts for a federated sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// JIT is off: no local account is touched; these attributes go to the
    /// application as they are.
    PassThrough {
        /// The mapped attributes.
        attributes: Attributes,
    },
    /// The identity is associated with this account: sign in and sync.
    SignIn {
        /// The account.
        user: UserId,
        /// Its synchronised attributes.
        update: AttributeUpdate,
    },
    /// A linking rule matched this account: associate, then sync.
    Link {
        /// The account.
        user: UserId,
        /// The rule that matched.
        matched: MatchedRule,
        /// Its synchronised attributes.
        update: AttributeUpdate,
    },
    /// Create an account and associate the identity with it.
    Create {
        /// The new account's login name.
        username: Username,
        /// Its attributes.
        attributes: Attributes,
    },
    /// Refuse the sign-in; nothing is written but the audit event.
    Refuse(Refusal),
}

/// Everything [`decide`] needs.
#[derive(Clone, Copy, Debug)]
pub struct ProvisioningInput<'a> {
    /// The connection's policy (validated).
    pub policy: &'a JitPolicy,
    /// The local attribute schema.
    pub schema: &'a AttributeSchema,
    /// Who signed in.
    pub identity: &'a FederatedIdentity,
    /// The account the identity is associated with, if any.
    pub associated: Option<&'a LocalUser>,
    /// The results of the lookups named by [`plan_lookups`].
    pub lookups: &'a Lookups,
}

/// The lookups [`decide`] needs: one per linking rule whose federated
/// attribute was received, one per received unique attribute, and the
/// fallback username. Empty when JIT is off.
pub fn plan_lookups(policy: &JitPolicy, schema: &AttributeSchema, identity: &FederatedIdentity) -> Vec<LookupKey> {
    if !policy.enabled {
        return Vec::new();
    }
    let mut keys: Vec<LookupKey> = Vec::new();
    if policy.linking.enabled {
        keys.extend(policy.linking.effective_rules().iter().filter_map(|rule| rule_key(schema, identity, rule)));
    }
    keys.extend(
        identity
            .attributes
            .iter()
            .filter(|(name, _)| schema.is_unique(name.as_str()))
            .filter_map(|(name, value)| value.single().map(|v| key(schema, name, v))),
    );
    if let Some(fallback) = fallback_username(identity) {
        keys.push(username_key(&fallback));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Decides what happens. Assumes the lookups of [`plan_lookups`] were done.
pub fn decide(input: ProvisioningInput<'_>) -> Decision {
    let ProvisioningInput { policy, schema, identity, associated, lookups } = input;
    if !policy.enabled {
        return Decision::PassThrough { attributes: identity.attributes.clone() };
    }
    if let Some(user) = associated {
        let update = plan_update(policy.sync_method, &user.attributes, &identity.attributes);
        return match taken_unique_value(schema, lookups, &update.attributes, Some(user.id)) {
            Some(attribute) => Decision::Refuse(Refusal::UniqueValueTaken { attribute }),
            None => Decision::SignIn { user: user.id, update },
        };
    }
    if policy.linking.enabled {
        for (index, rule) in policy.linking.effective_rules().into_iter().enumerate() {
            let Some(key) = rule_key(schema, identity, &rule) else { continue };
            let matches = lookups.get(&key);
            match matches {
                [] => continue,
                _ if rule.involves_email() && !identity.email_verified && !policy.trust_email => {
                    return Decision::Refuse(Refusal::UnverifiedEmail);
                }
                [user] => {
                    let update = plan_update(policy.sync_method, &user.attributes, &identity.attributes);
                    if let Some(attribute) = taken_unique_value(schema, lookups, &update.attributes, Some(user.id)) {
                        return Decision::Refuse(Refusal::UniqueValueTaken { attribute });
                    }
                    return Decision::Link { user: user.id, matched: MatchedRule { index, rule }, update };
                }
                several => {
                    return Decision::Refuse(Refusal::AmbiguousMatch { rule, matches: several.len() });
                }
            }
        }
    }
    if policy.linking.skip_provisioning_without_match {
        return Decision::Refuse(Refusal::NoMatchingAccount);
    }
    create(schema, identity, lookups)
}

fn create(schema: &AttributeSchema, identity: &FederatedIdentity, lookups: &Lookups) -> Decision {
    let mut attributes = identity.attributes.clone();
    attributes.retain(|name| !is_sync_protected(name.as_str()));
    if let Some(attribute) = taken_unique_value(schema, lookups, &attributes, None) {
        return Decision::Refuse(Refusal::UniqueValueTaken { attribute });
    }
    let free = |username: &Username| lookups.get(&username_key(username)).is_empty();
    let received = identity.attributes.get(USERNAME).and_then(|v| v.single()).and_then(|u| Username::new(u).ok());
    match received.filter(free).or_else(|| fallback_username(identity).filter(free)) {
        Some(username) => Decision::Create { username, attributes },
        None => Decision::Refuse(Refusal::UniqueValueTaken { attribute: AttributeName::known(USERNAME) }),
    }
}

/// The username given to a new account whose IdP sent none (or one that is
/// taken): `<connection>.<subject>`.
pub fn fallback_username(identity: &FederatedIdentity) -> Option<Username> {
    let name = format!("{}.{}", identity.connection, identity.subject);
    let name: String = name.chars().filter(|c| !c.is_control()).take(MAX_USERNAME_LEN).collect();
    Username::new(name.trim()).ok()
}

/// The first unique attribute of `attributes` whose value belongs to an
/// account other than `owner`.
fn taken_unique_value(
    schema: &AttributeSchema,
    lookups: &Lookups,
    attributes: &Attributes,
    owner: Option<UserId>,
) -> Option<AttributeName> {
    attributes.iter().filter(|(name, _)| schema.is_unique(name.as_str())).find_map(|(name, value)| {
        let key = key(schema, name, value.single()?);
        lookups.get(&key).iter().any(|user| Some(user.id) != owner).then(|| name.clone())
    })
}

fn rule_key(schema: &AttributeSchema, identity: &FederatedIdentity, rule: &LinkRule) -> Option<LookupKey> {
    let value = identity.attributes.get(rule.federated.as_str())?.single()?;
    (!value.trim().is_empty()).then(|| key(schema, &rule.local, value))
}

fn key(schema: &AttributeSchema, attribute: &AttributeName, value: &str) -> LookupKey {
    LookupKey { attribute: attribute.clone(), normalized: schema.normalize(attribute.as_str(), value) }
}

fn username_key(username: &Username) -> LookupKey {
    LookupKey { attribute: AttributeName::known(USERNAME), normalized: username.normalized() }
}
