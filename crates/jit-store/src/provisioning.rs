//! Applying provisioning decisions: one transaction per decision, with its
//! audit event. Losing a race surfaces as a unique-constraint violation,
//! which rolls the transaction back and is reported as
//! [`StoreError::Conflict`] so the caller decides again on fresh data.

use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};

use jit_domain::audit::AuditAction;
use jit_domain::connection::ConnectionName;
use jit_domain::membership::{Grant, Membership, ReceivedMemberships, plan_memberships};
use jit_domain::ports::{ConflictKind, ProvisioningFacts, ProvisioningStore, StoreError};
use jit_domain::provisioning::{Decision, LookupKey, Lookups};
use jit_domain::schema::AttributeSchema;
use jit_domain::sync::AttributeUpdate;
use jit_domain::user::{FederatedIdentity, LocalUser, Subject, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    AccessMode, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    IsolationLevel, QueryFilter, QuerySelect, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::convert::{millis, to_json};
use crate::entity::{audit_events, collections, federated_identities, memberships};
use crate::error::classify;
use crate::users::{Writer, insert_user, load_users, touch_user, user_ids_by_value, write_attributes};

/// Most users returned per lookup: enough to tell "one" from "several".
const LOOKUP_LIMIT: u64 = 8;

#[async_trait]
impl ProvisioningStore for Store {
    async fn facts(&self, identity: &FederatedIdentity, keys: &[LookupKey]) -> Result<ProvisioningFacts, StoreError> {
        let schema = self.schema().await?;
        // One snapshot: repeatable read on PostgreSQL and MySQL; SQLite's
        // read transactions are snapshots already (and take no options).
        let tx = match self.db.get_database_backend() {
            DbBackend::Sqlite => self.db.begin().await,
            _ => self.db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await,
        }
        .map_err(classify)?;
        let associated = match associated_user_id(&tx, &identity.connection, &identity.subject).await? {
            Some(user) => load_users(&tx, &schema, &[user]).await?.pop(),
            None => None,
        };
        // The ids each key finds, then every user they name loaded at once
        // (the associated one is loaded already): a returning user found by
        // several keys is read once, not once per key.
        let mut found_by_key = Vec::with_capacity(keys.len());
        for key in keys {
            found_by_key.push(user_ids_by_value(&tx, key.attribute.as_str(), &key.normalized, LOOKUP_LIMIT).await?);
        }
        let associated_id = associated.as_ref().map(|user| user.id.0);
        let mut wanted: Vec<Uuid> =
            found_by_key.iter().flatten().copied().filter(|id| Some(*id) != associated_id).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut loaded: BTreeMap<Uuid, LocalUser> =
            load_users(&tx, &schema, &wanted).await?.into_iter().map(|user| (user.id.0, user)).collect();
        if let Some(user) = &associated {
            loaded.insert(user.id.0, user.clone());
        }
        let mut lookups = Lookups::default();
        for (key, ids) in keys.iter().zip(found_by_key) {
            lookups.insert(key.clone(), ids.iter().filter_map(|id| loaded.get(id).cloned()).collect());
        }
        let found: Vec<Uuid> = lookups.users().map(|user| user.0).collect();
        if !found.is_empty() {
            let linked = federated_identities::Entity::find()
                .select_only()
                .column(federated_identities::Column::UserId)
                .filter(federated_identities::Column::Connection.eq(identity.connection.as_str()))
                .filter(federated_identities::Column::UserId.is_in(found))
                .into_tuple::<Uuid>()
                .all(&tx)
                .await
                .map_err(classify)?;
            for user in linked {
                lookups.insert_identity(UserId(user), identity.connection.clone());
            }
        }
        tx.commit().await.map_err(classify)?;
        Ok(ProvisioningFacts { associated, lookups })
    }

    async fn apply(
        &self,
        identity: &FederatedIdentity,
        decision: &Decision,
        now: OffsetDateTime,
    ) -> Result<Option<LocalUser>, StoreError> {
        crate::metrics::transaction(async {
            let schema = self.schema().await?;
            if let Decision::PassThrough { .. } = decision {
                return Ok(None);
            }
            // What this sign-in writes is the connection's.
            let source = String::from(Grant::Connection(identity.connection.clone()));
            let tx = self.db.begin().await.map_err(classify)?;
            let user = match decision {
                Decision::PassThrough { .. } | Decision::Refuse(_) => None,
                Decision::SignIn { user, update, email_verified } => {
                    // Write first: on SQLite this takes the write lock before any
                    // read, so the transaction cannot fail to upgrade later.
                    touch_identity(&tx, identity, *user, now).await?;
                    Some(update_user(&tx, &schema, *user, update, *email_verified, &source, now).await?)
                }
                Decision::Link { user, update, email_verified, .. } => {
                    insert_identity(&tx, identity, *user, now).await?;
                    Some(update_user(&tx, &schema, *user, update, *email_verified, &source, now).await?)
                }
                Decision::Create { username, attributes, email_verified } => {
                    let created = insert_user(
                        &tx,
                        &schema,
                        username,
                        attributes,
                        *email_verified,
                        None,
                        Writer { source: &source, at: now },
                    )
                    .await?;
                    insert_identity(&tx, identity, created.id, now).await?;
                    Some(created)
                }
            };
            if let Some(action) = AuditAction::for_decision(decision, &schema) {
                record(&tx, identity, user.as_ref().map(|u| u.id), &action, now).await?;
            }
            if let Some(user) = &user {
                for received in &identity.memberships {
                    sync_memberships(&tx, identity, user.id, received, now).await?;
                }
            }
            tx.commit().await.map_err(classify)?;
            Ok(user)
        })
        .await
    }
}

/// Applies the connection's membership mapping to `user` in the sign-in's
/// transaction (see `jit_domain::membership::plan_memberships`), and
/// records what changed, and any mapped value naming no local group, in
/// the audit trail.
async fn sync_memberships(
    tx: &DatabaseTransaction,
    identity: &FederatedIdentity,
    user: UserId,
    received: &ReceivedMemberships,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let kind = received.kind.singular();
    let rows = memberships::Entity::find()
        .filter(memberships::Column::Kind.eq(kind))
        .filter(memberships::Column::UserId.eq(user.0))
        .all(tx)
        .await
        .map_err(classify)?;
    let current: Vec<Membership> = rows
        .into_iter()
        .filter_map(|row| {
            Grant::try_from(row.granted_by).ok().map(|granted_by| Membership { name: row.name, granted_by })
        })
        .collect();
    let existing: BTreeSet<String> = collections::Entity::find()
        .filter(collections::Column::Kind.eq(kind))
        .all(tx)
        .await
        .map_err(classify)?
        .into_iter()
        .map(|row| row.name)
        .collect();
    let plan = plan_memberships(&current, &received.values, &identity.connection, &received.mapping, &existing);
    for name in &plan.create {
        collections::Entity::insert(collections::ActiveModel {
            kind: Set(kind.to_owned()),
            name: Set(name.clone()),
            description: Set(format!("created by connection {}", identity.connection)),
            created_at: Set(millis(now)),
        })
        .exec_without_returning(tx)
        .await
        .map_err(classify)?;
    }
    let grant = String::from(Grant::Connection(identity.connection.clone()));
    for name in &plan.add {
        memberships::Entity::insert(memberships::ActiveModel {
            kind: Set(kind.to_owned()),
            name: Set(name.clone()),
            user_id: Set(user.0),
            granted_by: Set(grant.clone()),
            granted_at: Set(millis(now)),
        })
        .exec_without_returning(tx)
        .await
        .map_err(classify)?;
    }
    if !plan.remove.is_empty() {
        memberships::Entity::delete_many()
            .filter(memberships::Column::Kind.eq(kind))
            .filter(memberships::Column::UserId.eq(user.0))
            .filter(memberships::Column::GrantedBy.eq(grant.as_str()))
            .filter(memberships::Column::Name.is_in(plan.remove.iter().cloned()))
            .exec(tx)
            .await
            .map_err(classify)?;
    }
    if !plan.is_empty() || !plan.unknown.is_empty() {
        let action = AuditAction::Memberships {
            kind: received.kind,
            added: plan.add,
            removed: plan.remove,
            created: plan.create,
            unknown: plan.unknown,
        };
        record(tx, identity, Some(user), &action, now).await?;
    }
    Ok(())
}

/// Applies a sync update (and the email's verification) to an existing
/// user and returns the user. `schema` is read before the transaction: a
/// read through the pool here would wait for a second connection while
/// this one holds the write lock, and a burst of sign-ins would exhaust
/// the pool.
async fn update_user<C: ConnectionTrait>(
    db: &C,
    schema: &AttributeSchema,
    user: UserId,
    update: &AttributeUpdate,
    email_verified: bool,
    source: &str,
    now: OffsetDateTime,
) -> Result<LocalUser, StoreError> {
    let before = touch_user(db, user.0, now).await?;
    if !update.is_empty() || before.email_verified != email_verified {
        let writer = Writer { source, at: now };
        write_attributes(db, schema, user.0, &update.attributes, email_verified, writer).await?;
    }
    let mut loaded = load_users(db, schema, &[user.0]).await?;
    loaded.pop().ok_or_else(|| StoreError::conflict(ConflictKind::Changed, format!("user {user} was deleted")))
}

async fn associated_user_id<C: ConnectionTrait>(
    db: &C,
    connection: &ConnectionName,
    subject: &Subject,
) -> Result<Option<Uuid>, StoreError> {
    let row = federated_identities::Entity::find()
        .filter(federated_identities::Column::Connection.eq(connection.as_str()))
        .filter(federated_identities::Column::Subject.eq(subject.as_str()))
        .one(db)
        .await
        .map_err(classify)?;
    Ok(row.map(|row| row.user_id))
}

async fn insert_identity<C: ConnectionTrait>(
    db: &C,
    identity: &FederatedIdentity,
    user: UserId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    federated_identities::Entity::insert(federated_identities::ActiveModel {
        connection: Set(identity.connection.as_str().to_owned()),
        subject: Set(identity.subject.as_str().to_owned()),
        user_id: Set(user.0),
        first_seen: Set(millis(now)),
        last_seen: Set(millis(now)),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Updates `last_seen`, and checks that the association still points at
/// `user` (it may have been deleted since the decision was taken).
async fn touch_identity<C: ConnectionTrait>(
    db: &C,
    identity: &FederatedIdentity,
    user: UserId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    federated_identities::Entity::update_many()
        .col_expr(federated_identities::Column::LastSeen, Expr::value(millis(now)))
        .filter(federated_identities::Column::Connection.eq(identity.connection.as_str()))
        .filter(federated_identities::Column::Subject.eq(identity.subject.as_str()))
        .exec(db)
        .await
        .map_err(classify)?;
    match associated_user_id(db, &identity.connection, &identity.subject).await? {
        Some(current) if current == user.0 => Ok(()),
        _ => Err(StoreError::conflict(ConflictKind::Changed, "the federated identity's association changed")),
    }
}

/// Appends an audit event.
pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    identity: &FederatedIdentity,
    user: Option<UserId>,
    action: &AuditAction,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    audit_events::Entity::insert(audit_events::ActiveModel {
        at: Set(millis(now)),
        connection: Set(identity.connection.as_str().to_owned()),
        subject: Set(identity.subject.as_str().to_owned()),
        user_id: Set(user.map(|u| u.0)),
        action: Set(action.kind().to_owned()),
        detail: Set(to_json(action)?),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await
    .map_err(classify)?;
    Ok(())
}
