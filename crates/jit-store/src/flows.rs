//! Sign-in flow state with expiry.

use async_trait::async_trait;
use jit_domain::ports::{FlowStateStore, StoreError};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};
use serde_json::Value;
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{from_json, millis, to_json};
use crate::entity::flow_states;
use crate::error::classify;
use crate::secrets::{digest, flow_place};

/// The row `id`, unexpired at `now`, whose state is still `expected`.
fn still_as_loaded(id: &str, expected: &Value, now: OffsetDateTime) -> Result<Condition, StoreError> {
    Ok(Condition::all()
        .add(flow_states::Column::Id.eq(id))
        .add(flow_states::Column::Digest.eq(digest(&to_json(expected)?)))
        .add(flow_states::Column::ExpiresAt.gt(millis(now))))
}

impl Store {
    /// A sign-in's state sealed for its row, and the digest of its text.
    fn seal_state(&self, id: &str, state: &Value) -> Result<(String, String), StoreError> {
        let text = to_json(state)?;
        Ok((self.seal(text.as_bytes(), &flow_place(id))?, digest(&text)))
    }
}

#[async_trait]
impl FlowStateStore for Store {
    async fn put_flow(&self, id: &str, state: &Value, expires_at: OffsetDateTime) -> Result<(), StoreError> {
        let (sealed, digest) = self.seal_state(id, state)?;
        flow_states::Entity::insert(flow_states::ActiveModel {
            id: Set(id.to_owned()),
            state: Set(sealed),
            expires_at: Set(millis(expires_at)),
            digest: Set(Some(digest)),
        })
        .on_conflict(
            OnConflict::column(flow_states::Column::Id)
                .update_columns([
                    flow_states::Column::State,
                    flow_states::Column::ExpiresAt,
                    flow_states::Column::Digest,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn flow(&self, id: &str, now: OffsetDateTime) -> Result<Option<Value>, StoreError> {
        let row = flow_states::Entity::find_by_id(id)
            .filter(flow_states::Column::ExpiresAt.gt(millis(now)))
            .one(&self.db)
            .await
            .map_err(classify)?;
        // A state written in clear (before secrets were sealed) is gone.
        let Some(row) = row.filter(|row| row.digest.is_some()) else { return Ok(None) };
        let clear = self.open(&row.state, &flow_place(id))?;
        let text = String::from_utf8(clear).map_err(|_| StoreError::Backend("flow state: not UTF-8".into()))?;
        from_json(&text, "flow state").map(Some)
    }

    async fn replace_flow(
        &self,
        id: &str,
        expected: &Value,
        state: &Value,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // The digest is of serde_json's rendering of the value in clear, so
        // the expected value renders to the same text (the sealed text
        // differs each time: a fresh nonce).
        let (sealed, new_digest) = self.seal_state(id, state)?;
        let replaced = flow_states::Entity::update_many()
            .col_expr(flow_states::Column::State, Expr::value(sealed))
            .col_expr(flow_states::Column::Digest, Expr::value(new_digest))
            .col_expr(flow_states::Column::ExpiresAt, Expr::value(millis(expires_at)))
            .filter(still_as_loaded(id, expected, now)?)
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(replaced.rows_affected == 1)
    }

    async fn take_flow(&self, id: &str, now: OffsetDateTime) -> Result<Option<Value>, StoreError> {
        let Some(state) = self.flow(id, now).await? else { return Ok(None) };
        // Whoever deletes the row owns the state: a concurrent take deletes
        // nothing and gets nothing.
        let deleted = flow_states::Entity::delete_by_id(id).exec(&self.db).await.map_err(classify)?;
        Ok((deleted.rows_affected == 1).then_some(state))
    }

    async fn delete_flow_if(&self, id: &str, expected: &Value, now: OffsetDateTime) -> Result<bool, StoreError> {
        let deleted = flow_states::Entity::delete_many()
            .filter(still_as_loaded(id, expected, now)?)
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected == 1)
    }

    async fn purge_expired_flows(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let result = flow_states::Entity::delete_many()
            .filter(flow_states::Column::ExpiresAt.lte(millis(now)))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(result.rows_affected)
    }
}
