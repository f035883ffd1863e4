//! Attribute synchronisation: what an existing local account's attributes
//! become when its federated user signs in again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::attribute::{AttributeName, AttributeValue, Attributes};
use crate::connection::SyncMethod;
use crate::schema::is_sync_protected;

/// New attributes for a local account and the names that changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttributeUpdate {
    /// The account's attributes after the sync.
    pub attributes: Attributes,
    /// Names added, changed or removed.
    pub changed: BTreeSet<AttributeName>,
    /// For each changed name, the value before and after (`null`: absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub diff: BTreeMap<AttributeName, ValueChange>,
}

/// One attribute's value before and after a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueChange {
    /// Before (absent: none).
    pub old: Option<AttributeValue>,
    /// After (absent: removed).
    pub new: Option<AttributeValue>,
}

/// What an audit trail shows of a sensitive attribute's value.
pub const REDACTED: &str = "[redacted]";

impl AttributeUpdate {
    /// The diff with the values of attributes `is_sensitive` says so
    /// replaced by [`REDACTED`] (for the audit trail).
    pub fn redacted_diff(&self, is_sensitive: impl Fn(&str) -> bool) -> BTreeMap<AttributeName, ValueChange> {
        let hide = |value: &Option<AttributeValue>| value.as_ref().map(|_| AttributeValue::Single(REDACTED.into()));
        self.diff
            .iter()
            .map(|(name, change)| {
                let change = if is_sensitive(name.as_str()) {
                    ValueChange { old: hide(&change.old), new: hide(&change.new) }
                } else {
                    change.clone()
                };
                (name.clone(), change)
            })
            .collect()
    }
}

impl AttributeUpdate {
    /// Whether anything changes.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

/// The attributes after synchronising `local` with `received` by `method`.
///
/// Protected attributes (system attributes and `username`) are never taken
/// from `received` and never dropped from `local`, whatever the method:
/// - [`SyncMethod::OverrideAll`]: exactly the received attributes, plus
///   local protected ones;
/// - [`SyncMethod::PreserveLocal`]: local attributes overwritten by the
///   received ones;
/// - [`SyncMethod::None`]: `local` unchanged.
pub fn sync_attributes(method: SyncMethod, local: &Attributes, received: &Attributes) -> Attributes {
    let syncable = received.iter().filter(|(name, _)| !is_sync_protected(name.as_str()));
    match method {
        SyncMethod::None => local.clone(),
        SyncMethod::PreserveLocal => {
            let mut result = local.clone();
            for (name, value) in syncable {
                result.insert(name.clone(), value.clone());
            }
            result
        }
        SyncMethod::OverrideAll => {
            let protected = local.iter().filter(|(name, _)| is_sync_protected(name.as_str()));
            protected.chain(syncable).map(|(name, value)| (name.clone(), value.clone())).collect()
        }
    }
}

/// Synchronises and reports which names changed.
pub fn plan_update(method: SyncMethod, local: &Attributes, received: &Attributes) -> AttributeUpdate {
    let attributes = sync_attributes(method, local, received);
    let changed = changed_names(local, &attributes);
    let diff = changed
        .iter()
        .map(|name| {
            let change =
                ValueChange { old: local.get(name.as_str()).cloned(), new: attributes.get(name.as_str()).cloned() };
            (name.clone(), change)
        })
        .collect();
    AttributeUpdate { attributes, changed, diff }
}

/// Names whose values differ between `before` and `after` (including added
/// and removed ones).
pub fn changed_names(before: &Attributes, after: &Attributes) -> BTreeSet<AttributeName> {
    let names: BTreeSet<&AttributeName> = before.names().chain(after.names()).collect();
    names.into_iter().filter(|name| before.get(name.as_str()) != after.get(name.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(value: serde_json::Value) -> Attributes {
        serde_json::from_value(value).unwrap()
    }

    fn check(method: SyncMethod, local: serde_json::Value, received: serde_json::Value, expected: serde_json::Value) {
        assert_eq!(sync_attributes(method, &attrs(local), &attrs(received)), attrs(expected), "{method:?}");
    }

    #[test]
    fn override_all_takes_exactly_what_was_received() {
        check(
            SyncMethod::OverrideAll,
            json!({"email": "old@x", "phone_number": "1", "totp_secret": "S"}),
            json!({"email": "new@x", "given_name": "Ann"}),
            json!({"email": "new@x", "given_name": "Ann", "totp_secret": "S"}),
        );
    }

    #[test]
    fn preserve_local_keeps_attributes_not_received() {
        check(
            SyncMethod::PreserveLocal,
            json!({"email": "old@x", "phone_number": "1"}),
            json!({"email": "new@x", "given_name": "Ann"}),
            json!({"email": "new@x", "given_name": "Ann", "phone_number": "1"}),
        );
    }

    #[test]
    fn none_changes_nothing() {
        check(SyncMethod::None, json!({"email": "old@x"}), json!({"email": "new@x"}), json!({"email": "old@x"}));
    }

    #[test]
    fn protected_attributes_are_never_received() {
        for method in [SyncMethod::OverrideAll, SyncMethod::PreserveLocal, SyncMethod::None] {
            check(
                method,
                json!({"locked": "false", "username": "ann"}),
                json!({"locked": "true", "username": "mallory", "totp_secret": "EVIL"}),
                json!({"locked": "false", "username": "ann"}),
            );
        }
    }

    #[test]
    fn update_reports_changed_names() {
        let update = plan_update(
            SyncMethod::OverrideAll,
            &attrs(json!({"email": "a@x", "phone_number": "1", "name": "A"})),
            &attrs(json!({"email": "a@x", "name": "B", "locale": "fr"})),
        );
        let changed: Vec<&str> = update.changed.iter().map(AttributeName::as_str).collect();
        assert_eq!(changed, ["locale", "name", "phone_number"]);
        assert_eq!(
            serde_json::to_value(&update.diff).unwrap(),
            json!({"locale": {"old": null, "new": "fr"}, "name": {"old": "A", "new": "B"},
                   "phone_number": {"old": "1", "new": null}})
        );
        let redacted = update.redacted_diff(|name| name == "phone_number");
        assert_eq!(serde_json::to_value(&redacted["phone_number"]).unwrap(), json!({"old": "[redacted]", "new": null}));
    }
}
