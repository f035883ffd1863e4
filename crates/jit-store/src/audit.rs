//! Reading the provisioning audit trail (it is written by `apply`).

use async_trait::async_trait;
use jit_domain::audit::{AuditEvent, AuditFilter};
use jit_domain::ports::{AuditLog, StoreError};
use jit_domain::user::UserId;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::convert::{from_json, from_millis};
use crate::entity::audit_events;
use crate::error::classify;

/// Most events one call returns.
const MAX_EVENTS: u64 = 1000;

#[async_trait]
impl AuditLog for Store {
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let mut query = audit_events::Entity::find();
        if let Some(user) = filter.user {
            query = query.filter(audit_events::Column::UserId.eq(user.0));
        }
        if let Some(connection) = &filter.connection {
            query = query.filter(audit_events::Column::Connection.eq(connection.as_str()));
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_events::Column::Action.eq(action.as_str()));
        }
        let limit = if filter.limit == 0 { MAX_EVENTS } else { filter.limit.min(MAX_EVENTS) };
        let rows = query.order_by_desc(audit_events::Column::Id).limit(limit).all(&self.db).await.map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                Ok(AuditEvent {
                    at: from_millis(row.at),
                    connection: row.connection.try_into()?,
                    subject: row.subject.try_into()?,
                    user: row.user_id.map(UserId),
                    action: from_json(&row.detail, "audit event")?,
                })
            })
            .collect()
    }
}
