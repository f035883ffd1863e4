//! The provisioning decision: what happens to local accounts when a
//! federated user signs in.
//!
//! Deciding is pure and done in three moves, so that the store can run it in
//! a retry loop without the rules knowing about databases:
//! 1. [`plan_lookups`] names the attribute values to look up (linking rule
//!    values and received unique values);
//! 2. the store looks them up and fills [`Lookups`];
//! 3. [`decide`] returns exactly one [`Decision`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attribute::{AttributeName, Attributes};
use crate::claims::EMAIL_CLAIM;
use crate::connection::{ConnectionName, JitPolicy, LinkRule};
use crate::schema::{AttributeSchema, EMAIL, USERNAME, is_sync_protected};
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

/// What the store found for each [`LookupKey`], and the connections each
/// user found already has an identity at. A key with no entry found no
/// user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    found: BTreeMap<LookupKey, Vec<LocalUser>>,
    identities: BTreeMap<UserId, BTreeSet<ConnectionName>>,
}

impl Lookups {
    /// Records the users found for `key`.
    pub fn insert(&mut self, key: LookupKey, users: Vec<LocalUser>) {
        self.found.insert(key, users);
    }

    /// Records that `user` has an identity at `connection`.
    pub fn insert_identity(&mut self, user: UserId, connection: ConnectionName) {
        self.identities.entry(user).or_default().insert(connection);
    }

    /// The users found for `key`.
    pub fn get(&self, key: &LookupKey) -> &[LocalUser] {
        self.found.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether `user` already has an identity at `connection`.
    pub fn has_identity_at(&self, user: UserId, connection: &ConnectionName) -> bool {
        self.identities.get(&user).is_some_and(|connections| connections.contains(connection))
    }

    /// Every user found, once.
    pub fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.found.values().flatten().map(|user| user.id).collect::<BTreeSet<_>>().into_iter()
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
    /// The account a rule matched already has an identity at this
    /// connection (another subject of the same IdP): an address recycled
    /// at the IdP, or an attempt to take the account over. Nothing is
    /// linked; an administrator can unlink the old identity.
    AlreadyLinked {
        /// The rule that matched.
        rule: LinkRule,
    },
    /// The sign-in's claims fail one of the connection's claim filters.
    ClaimFilter {
        /// The claim of the filter.
        claim: String,
    },
    /// A unique value the IdP sent already belongs to another account, which
    /// this sign-in may not take over.
    UniqueValueTaken {
        /// The attribute.
        attribute: AttributeName,
    },
}

impl Refusal {
    /// A short, stable name of the reason (the `reason` of its serde form;
    /// metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoMatchingAccount => "no_matching_account",
            Self::AmbiguousMatch { .. } => "ambiguous_match",
            Self::AlreadyLinked { .. } => "already_linked",
            Self::ClaimFilter { .. } => "claim_filter",
            Self::UniqueValueTaken { .. } => "unique_value_taken",
        }
    }
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
            Self::AlreadyLinked { rule } => write!(
                f,
                "the local account whose {} matches this user's {} is already linked to another user of this \
                 identity provider, so it was not linked again; ask an administrator",
                rule.local, rule.federated
            ),
            Self::ClaimFilter { claim } => write!(
                f,
                "this connection admits only sign-ins whose {claim} meets its filter, and this one does not; ask \
                 the administrator if you should have access"
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
        /// Whether its email is verified afterwards.
        email_verified: bool,
    },
    /// A linking rule matched this account: associate, then sync.
    Link {
        /// The account.
        user: UserId,
        /// The rule that matched.
        matched: MatchedRule,
        /// Its synchronised attributes.
        update: AttributeUpdate,
        /// Whether its email is verified afterwards.
        email_verified: bool,
    },
    /// Create an account and associate the identity with it.
    Create {
        /// The new account's login name.
        username: Username,
        /// Its attributes.
        attributes: Attributes,
        /// Whether its email is verified (the IdP verified it, or the
        /// connection is trusted for email).
        email_verified: bool,
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
/// value was received and is proven (see [`LinkRule`]: an unproven value
/// finds nobody), one per received unique attribute, and the fallback
/// username. Empty when JIT is off. The store also reports, for every user
/// found, the connections it has identities at.
pub fn plan_lookups(policy: &JitPolicy, schema: &AttributeSchema, identity: &FederatedIdentity) -> Vec<LookupKey> {
    if !policy.enabled {
        return Vec::new();
    }
    let mut keys: Vec<LookupKey> = Vec::new();
    if policy.linking.enabled {
        keys.extend(
            policy
                .linking
                .effective_rules()
                .iter()
                .filter(|rule| proven(policy, identity, rule))
                .filter_map(|rule| rule_key(schema, identity, rule)),
        );
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
///
/// Linking, rule by rule (first, then fallback): a rule whose federated
/// value is not proven is skipped; a rule on `email` sees only accounts
/// whose email is verified; one account found is linked unless it already
/// has an identity at this connection ([`Refusal::AlreadyLinked`]); several
/// are [`Refusal::AmbiguousMatch`]. Without a link, an account is created
/// (unless provisioning is skipped), its email marked verified only if the
/// IdP proved it.
pub fn decide(input: ProvisioningInput<'_>) -> Decision {
    let ProvisioningInput { policy, schema, identity, associated, lookups } = input;
    if let Some(claim) = &identity.filtered_out {
        return Decision::Refuse(Refusal::ClaimFilter { claim: claim.clone() });
    }
    if !policy.enabled {
        return Decision::PassThrough { attributes: identity.attributes.clone() };
    }
    if let Some(user) = associated {
        let update = plan_update(policy.sync_method, &user.attributes, &identity.attributes);
        let email_verified = email_verified_after(schema, policy, identity, Some(user), &update.attributes);
        return match taken_unique_value(schema, lookups, &update.attributes, Some(user.id), email_verified) {
            Some(attribute) => Decision::Refuse(Refusal::UniqueValueTaken { attribute }),
            None => Decision::SignIn { user: user.id, update, email_verified },
        };
    }
    if policy.linking.enabled {
        for (index, rule) in policy.linking.effective_rules().into_iter().enumerate() {
            if !proven(policy, identity, &rule) {
                continue;
            }
            let Some(key) = rule_key(schema, identity, &rule) else { continue };
            let candidates: Vec<&LocalUser> =
                lookups.get(&key).iter().filter(|user| !rule.targets_email() || user.email_verified).collect();
            match candidates.as_slice() {
                [] => continue,
                [user] if lookups.has_identity_at(user.id, &identity.connection) => {
                    return Decision::Refuse(Refusal::AlreadyLinked { rule });
                }
                [user] => {
                    let update = plan_update(policy.sync_method, &user.attributes, &identity.attributes);
                    let email_verified = email_verified_after(schema, policy, identity, Some(user), &update.attributes);
                    if let Some(attribute) =
                        taken_unique_value(schema, lookups, &update.attributes, Some(user.id), email_verified)
                    {
                        return Decision::Refuse(Refusal::UniqueValueTaken { attribute });
                    }
                    let matched = MatchedRule { index, rule };
                    return Decision::Link { user: user.id, matched, update, email_verified };
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
    create(schema, policy, identity, lookups)
}

fn create(schema: &AttributeSchema, policy: &JitPolicy, identity: &FederatedIdentity, lookups: &Lookups) -> Decision {
    let mut attributes = identity.attributes.clone();
    attributes.retain(|name| !is_sync_protected(name.as_str()));
    let email_verified = email_verified_after(schema, policy, identity, None, &attributes);
    if let Some(attribute) = taken_unique_value(schema, lookups, &attributes, None, email_verified) {
        return Decision::Refuse(Refusal::UniqueValueTaken { attribute });
    }
    let free = |username: &Username| lookups.get(&username_key(username)).is_empty();
    let received = identity.attributes.get(USERNAME).and_then(|v| v.single()).and_then(|u| Username::new(u).ok());
    match received.filter(free).or_else(|| fallback_username(identity).filter(free)) {
        Some(username) => Decision::Create { username, attributes, email_verified },
        None => Decision::Refuse(Refusal::UniqueValueTaken { attribute: AttributeName::known(USERNAME) }),
    }
}

/// Whether the federated value of `rule` is proven: the rule is trusted,
/// or it links on the `email` claim, that claim's value is the account's
/// mapped email, and the IdP verified it (or the connection is trusted for
/// email).
pub fn proven(policy: &JitPolicy, identity: &FederatedIdentity, rule: &LinkRule) -> bool {
    rule.trusted || (rule.federated == EMAIL_CLAIM && proves_email(policy, identity) && email_claim_is_mapped(identity))
}

/// Whether the `email` claim's value is the mapped `email` (so that its
/// proof is the claim's).
fn email_claim_is_mapped(identity: &FederatedIdentity) -> bool {
    let claim = identity.claims.get(EMAIL_CLAIM).map(|v| v.trim().to_ascii_lowercase());
    let mapped = identity.attributes.get(EMAIL).and_then(|v| v.single()).map(|v| v.trim().to_ascii_lowercase());
    claim.is_some() && claim == mapped
}

/// Whether this sign-in vouches for the received email.
fn proves_email(policy: &JitPolicy, identity: &FederatedIdentity) -> bool {
    policy.trust_email || identity.email_verified
}

/// Whether an account whose attributes become `attributes` has a verified
/// email: the IdP proved that address now, or the account (`current`)
/// already had it verified. Any other email is unverified.
fn email_verified_after(
    schema: &AttributeSchema,
    policy: &JitPolicy,
    identity: &FederatedIdentity,
    current: Option<&LocalUser>,
    attributes: &Attributes,
) -> bool {
    let email =
        |attributes: &Attributes| attributes.get(EMAIL).and_then(|v| v.single()).map(|v| schema.normalize(EMAIL, v));
    let Some(new) = email(attributes) else { return false };
    let proven_now = proves_email(policy, identity) && email(&identity.attributes).as_ref() == Some(&new);
    let kept = current.is_some_and(|user| user.email_verified && email(&user.attributes).as_ref() == Some(&new));
    proven_now || kept
}

/// The username given to a new account whose IdP sent none (or one that is
/// taken): `<connection>.<subject>`.
pub fn fallback_username(identity: &FederatedIdentity) -> Option<Username> {
    let name = format!("{}.{}", identity.connection, identity.subject);
    let name: String = name.chars().filter(|c| !c.is_control()).take(MAX_USERNAME_LEN).collect();
    Username::new(name.trim()).ok()
}

/// The first attribute of `attributes` that the account would hold
/// uniquely (see [`AttributeSchema::holds_uniquely`]) while another account
/// than `owner` holds it uniquely already.
fn taken_unique_value(
    schema: &AttributeSchema,
    lookups: &Lookups,
    attributes: &Attributes,
    owner: Option<UserId>,
    email_verified: bool,
) -> Option<AttributeName> {
    attributes.iter().filter(|(name, _)| schema.holds_uniquely(name.as_str(), email_verified)).find_map(
        |(name, value)| {
            let key = key(schema, name, value.single()?);
            lookups
                .get(&key)
                .iter()
                .filter(|user| schema.holds_uniquely(name.as_str(), user.email_verified))
                .any(|user| Some(user.id) != owner)
                .then(|| name.clone())
        },
    )
}

fn rule_key(schema: &AttributeSchema, identity: &FederatedIdentity, rule: &LinkRule) -> Option<LookupKey> {
    let value = identity.claims.get(&rule.federated)?;
    (!value.trim().is_empty()).then(|| key(schema, &rule.local, value))
}

fn key(schema: &AttributeSchema, attribute: &AttributeName, value: &str) -> LookupKey {
    LookupKey { attribute: attribute.clone(), normalized: schema.normalize(attribute.as_str(), value) }
}

fn username_key(username: &Username) -> LookupKey {
    LookupKey { attribute: AttributeName::known(USERNAME), normalized: username.normalized() }
}
