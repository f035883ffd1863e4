//! The provisioning audit trail: what happened to local accounts, and why.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::attribute::AttributeName;
use crate::connection::ConnectionName;
use crate::provisioning::{Decision, MatchedRule, Refusal};
use crate::schema::AttributeSchema;
use crate::sync::ValueChange;
use crate::user::{Subject, UserId};

impl AuditAction {
    /// The actions, as stored and filtered on.
    pub const ACTIONS: [&'static str; 5] = ["created", "linked", "synced", "refused", "memberships"];
}

/// What a provisioning event did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuditAction {
    /// A local account was created.
    Created,
    /// The identity was linked to an existing account.
    Linked {
        /// The rule that matched.
        rule: MatchedRule,
        /// Attributes the sync changed.
        changed: BTreeSet<AttributeName>,
        /// Their values before and after (sensitive ones redacted).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        diff: BTreeMap<AttributeName, ValueChange>,
    },
    /// A returning user's attributes changed.
    Synced {
        /// Attributes the sync changed.
        changed: BTreeSet<AttributeName>,
        /// Their values before and after (sensitive ones redacted).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        diff: BTreeMap<AttributeName, ValueChange>,
    },
    /// The sign-in was refused.
    Refused {
        /// Why.
        refusal: Refusal,
    },
    /// The sign-in synced the account's groups or roles.
    Memberships {
        /// Groups or roles.
        kind: crate::membership::MembershipKind,
        /// Memberships added (granted by the connection).
        added: BTreeSet<String>,
        /// Memberships this connection had granted, removed.
        removed: BTreeSet<String>,
        /// Local groups or roles created for unmapped values.
        created: BTreeSet<String>,
        /// Mapped values that name no local group or role.
        unknown: BTreeSet<String>,
    },
}

impl AuditAction {
    /// The event for `decision`, if it is worth recording: pass-throughs and
    /// sign-ins that changed nothing are not.
    pub fn for_decision(decision: &Decision, schema: &AttributeSchema) -> Option<Self> {
        let sensitive = |name: &str| schema.get(name).is_some_and(|d| d.sensitive);
        match decision {
            Decision::PassThrough { .. } => None,
            Decision::SignIn { update, .. } if update.is_empty() => None,
            Decision::SignIn { update, .. } => {
                Some(Self::Synced { changed: update.changed.clone(), diff: update.redacted_diff(sensitive) })
            }
            Decision::Link { matched, update, .. } => Some(Self::Linked {
                rule: matched.clone(),
                changed: update.changed.clone(),
                diff: update.redacted_diff(sensitive),
            }),
            Decision::Create { .. } => Some(Self::Created),
            Decision::Refuse(refusal) => Some(Self::Refused { refusal: refusal.clone() }),
        }
    }

    /// `created`, `linked`, `synced` or `refused`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Linked { .. } => "linked",
            Self::Synced { .. } => "synced",
            Self::Refused { .. } => "refused",
            Self::Memberships { .. } => "memberships",
        }
    }
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Through which connection.
    pub connection: ConnectionName,
    /// The IdP's subject.
    pub subject: Subject,
    /// The local account concerned, if any.
    pub user: Option<UserId>,
    /// What happened.
    #[serde(flatten)]
    pub action: AuditAction,
}

/// Which events to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events about this user.
    pub user: Option<UserId>,
    /// Only events through this connection.
    pub connection: Option<ConnectionName>,
    /// Only events of this action (one of [`AuditAction::ACTIONS`]).
    pub action: Option<String>,
    /// At most this many, newest first.
    pub limit: u64,
}
