//! Group and role memberships, and how a sign-in syncs them without
//! trampling grants it does not own.
//!
//! Every membership records who granted it: an administrator, or a
//! connection. A sign-in through a connection adds what the IdP sends
//! (mapped onto local groups or roles); with
//! [`MembershipSync::OverrideAll`] it also removes the memberships **that
//! same connection granted** and the IdP no longer sends. Memberships an
//! administrator or another connection granted are never touched.
//! [`MembershipSync::MergeWithExisting`] only adds.
//!
//! The plan ([`plan_memberships`]) is pure: the store applies it in the
//! sign-in's transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::connection::ConnectionName;

/// The role of jit's own administrators (the console signs in those who
/// hold it).
pub const ADMIN_ROLE: &str = "admin";

/// Longest group or role name, in characters.
pub const MAX_MEMBERSHIP_NAME_LEN: usize = 128;

/// Most values of a groups or roles claim a sign-in considers: an IdP (which
/// may be hostile) cannot make one sign-in create or grant more.
pub const MAX_RECEIVED_MEMBERSHIPS: usize = 256;

pub use crate::schema::valid_description;

/// Groups or roles: the same rules, kept apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MembershipKind {
    /// Groups (the `groups` claim).
    Group,
    /// Roles (the `roles` claim).
    Role,
}

impl MembershipKind {
    /// One of them: `group` or `role` (also how the store names the kind).
    pub fn singular(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::Role => "role",
        }
    }

    /// The claim and scope they go out under, and their collection's name.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Group => "groups",
            Self::Role => "roles",
        }
    }
}

/// Who granted a membership.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Grant {
    /// An administrator (by hand, through the admin API).
    Admin,
    /// A sign-in through this connection.
    Connection(ConnectionName),
}

impl TryFrom<String> for Grant {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value == "admin" {
            return Ok(Self::Admin);
        }
        let name =
            value.strip_prefix("connection:").ok_or_else(|| format!("{value:?} is not admin or connection:<name>"))?;
        ConnectionName::new(name).map(Self::Connection).map_err(|e| e.to_string())
    }
}

impl From<Grant> for String {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::Admin => "admin".into(),
            Grant::Connection(name) => format!("connection:{}", name.as_str()),
        }
    }
}

/// One membership of a user.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    /// The group's or role's name.
    pub name: String,
    /// Who granted it: `admin` or `connection:<name>`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub granted_by: Grant,
}

/// What to do with IdP values the mapping does not name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmapped {
    /// Ignore them.
    #[default]
    Ignore,
    /// Create local groups (or roles) of the same names.
    Create,
}

/// How a sign-in syncs memberships (WSO2's `idpGroupSyncMethod`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipSync {
    /// Add what the IdP sends; remove what this connection granted and the
    /// IdP no longer sends.
    #[default]
    OverrideAll,
    /// Only add.
    MergeWithExisting,
}

/// A connection's mapping of the IdP's groups (or roles) onto local ones:
/// `{"claim": "groups", "mappings": {"<idp value>": "<local>"},
/// "unmapped": "ignore" | "create", "sync_method": "override_all" |
/// "merge_with_existing"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipMapping {
    /// The claim that carries them (name, URI or dotted path); by default
    /// `groups` or `roles`.
    #[serde(default)]
    pub claim: Option<String>,
    /// IdP value → local group or role.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// What happens to values `mappings` does not name.
    #[serde(default)]
    pub unmapped: Unmapped,
    /// How memberships follow the IdP.
    #[serde(default)]
    pub sync_method: MembershipSync,
}

/// What the IdP sent of one kind, with the connection's mapping for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMemberships {
    /// Groups or roles.
    pub kind: MembershipKind,
    /// The values of the mapping's claim.
    pub values: Vec<String>,
    /// The mapping.
    pub mapping: MembershipMapping,
}

/// What a sign-in does to one user's memberships of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipPlan {
    /// Memberships to add, granted by the connection.
    pub add: BTreeSet<String>,
    /// Memberships (granted by this connection) to remove.
    pub remove: BTreeSet<String>,
    /// Local groups (or roles) to create first (`unmapped: create`).
    pub create: BTreeSet<String>,
    /// Values the mapping named but that name no local group (or role):
    /// reported in the audit event, never silently dropped.
    pub unknown: BTreeSet<String>,
}

impl MembershipPlan {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.create.is_empty()
    }
}

/// What a sign-in through `connection` does to a user who holds `current`,
/// when the IdP sends `received` and the local groups (or roles) are
/// `existing`.
pub fn plan_memberships(
    current: &[Membership],
    received: &[String],
    connection: &ConnectionName,
    mapping: &MembershipMapping,
    existing: &BTreeSet<String>,
) -> MembershipPlan {
    let mut plan = MembershipPlan::default();
    let mut wanted = BTreeSet::new();
    for value in received {
        match mapping.mappings.get(value) {
            Some(local) if existing.contains(local) => {
                wanted.insert(local.clone());
            }
            Some(local) => {
                plan.unknown.insert(local.clone());
            }
            None if mapping.unmapped == Unmapped::Create && valid_name(value) => {
                if !existing.contains(value) {
                    plan.create.insert(value.clone());
                }
                wanted.insert(value.clone());
            }
            None => {}
        }
    }
    let held: BTreeSet<&str> = current.iter().map(|m| m.name.as_str()).collect();
    plan.add = wanted.iter().filter(|name| !held.contains(name.as_str())).cloned().collect();
    if mapping.sync_method == MembershipSync::OverrideAll {
        let ours = Grant::Connection(connection.clone());
        plan.remove = current
            .iter()
            .filter(|m| m.granted_by == ours && !wanted.contains(&m.name))
            .map(|m| m.name.clone())
            .collect();
    }
    plan
}

/// The local names the IdP's `received` values map to, without an account
/// (a pass-through sign-in): mapped ones, and unmapped ones kept as they
/// are when the mapping creates groups of the same name. Sorted, each once.
pub fn mapped_names(received: &[String], mapping: &MembershipMapping) -> Vec<String> {
    let names: BTreeSet<String> = received
        .iter()
        .filter_map(|value| match mapping.mappings.get(value) {
            Some(local) => Some(local.clone()),
            None if mapping.unmapped == Unmapped::Create && valid_name(value) => Some(value.clone()),
            None => None,
        })
        .collect();
    names.into_iter().collect()
}

/// The memberships after applying `plan` for `connection`.
pub fn apply_plan(current: &[Membership], plan: &MembershipPlan, connection: &ConnectionName) -> Vec<Membership> {
    let mut after: Vec<Membership> = current.iter().filter(|m| !plan.remove.contains(&m.name)).cloned().collect();
    after.extend(
        plan.add
            .iter()
            .map(|name| Membership { name: name.clone(), granted_by: Grant::Connection(connection.clone()) }),
    );
    after.sort();
    after
}

/// A group or role name: 1 to [`MAX_MEMBERSHIP_NAME_LEN`] characters, no
/// control characters, no surrounding white space.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.trim() == name
        && name.chars().count() <= MAX_MEMBERSHIP_NAME_LEN
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corp() -> ConnectionName {
        ConnectionName::new("corp").unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn grants_read_and_write_as_the_api_shows_them() {
        let admin: Grant = serde_json::from_value(serde_json::json!("admin")).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(admin, Grant::Admin);
        let corp_grant: Grant =
            serde_json::from_value(serde_json::json!("connection:corp")).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(corp_grant, Grant::Connection(corp()));
        assert!(serde_json::from_value::<Grant>(serde_json::json!("root")).is_err());
    }

    /// A manual grant survives an override-all sign-in that drops the IdP
    /// group; the connection's own stale grant goes; unknown targets are
    /// reported.
    #[test]
    fn override_all_removes_only_what_the_connection_granted() {
        let existing: BTreeSet<String> = ["staff", "hr", "vpn"].map(String::from).into();
        let mapping = MembershipMapping {
            mappings: [("Staff", "staff"), ("HR", "hr"), ("Legacy", "gone")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            ..Default::default()
        };
        let current = vec![
            Membership { name: "hr".into(), granted_by: Grant::Connection(corp()) },
            Membership { name: "vpn".into(), granted_by: Grant::Admin },
        ];
        let plan = plan_memberships(
            &current,
            &["Staff".into(), "Legacy".into(), "Other".into()],
            &corp(),
            &mapping,
            &existing,
        );
        assert_eq!(plan.add, ["staff".to_owned()].into());
        assert_eq!(plan.remove, ["hr".to_owned()].into(), "the connection's own grant, no longer sent");
        assert_eq!(plan.unknown, ["gone".to_owned()].into());
        assert!(plan.create.is_empty());
        let after = apply_plan(&current, &plan, &corp());
        assert!(after.contains(&Membership { name: "vpn".into(), granted_by: Grant::Admin }), "{after:?}");
    }

    #[test]
    fn unmapped_values_become_groups_when_asked_and_merge_only_adds() {
        let mapping = MembershipMapping {
            unmapped: Unmapped::Create,
            sync_method: MembershipSync::MergeWithExisting,
            ..Default::default()
        };
        let current = vec![Membership { name: "old".into(), granted_by: Grant::Connection(corp()) }];
        let plan = plan_memberships(&current, &["new".into(), " bad ".into()], &corp(), &mapping, &BTreeSet::new());
        assert_eq!(plan.create, ["new".to_owned()].into());
        assert_eq!(plan.add, ["new".to_owned()].into());
        assert!(plan.remove.is_empty(), "merge never removes");
    }
}
