//! Short-lived records with expiry and a version ([`ExpiringRecordStore`]).

use async_trait::async_trait;
use jit_domain::ports::{ExpiringRecordStore, RecordKind, StoreError, Versioned};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};
use serde_json::Value;
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{from_json, millis, to_json};
use crate::entity::expiring_records::{ActiveModel, Column, Entity};
use crate::error::classify;
use crate::secrets::record_place;

/// The record `kind`/`key`, unexpired at `now`.
fn live(kind: RecordKind, key: &str, now: OffsetDateTime) -> Condition {
    Condition::all()
        .add(Column::Kind.eq(kind.as_str()))
        .add(Column::RecordKey.eq(key))
        .add(Column::ExpiresAt.gt(millis(now)))
}

/// The record `kind`/`key`, unexpired at `now`, still at `version`.
fn at_version(kind: RecordKind, key: &str, version: i64, now: OffsetDateTime) -> Condition {
    live(kind, key, now).add(Column::Version.eq(version))
}

impl Store {
    /// A record's value sealed for its row.
    fn seal_record(&self, kind: RecordKind, key: &str, value: &Value) -> Result<String, StoreError> {
        self.seal(to_json(value)?.as_bytes(), &record_place(kind, key))
    }
}

#[async_trait]
impl ExpiringRecordStore for Store {
    async fn insert_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: &Value,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        Entity::insert(ActiveModel {
            kind: Set(kind.as_str().to_owned()),
            record_key: Set(key.to_owned()),
            version: Set(1),
            value: Set(self.seal_record(kind, key, value)?),
            expires_at: Set(millis(expires_at)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn record(
        &self,
        kind: RecordKind,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned<Value>>, StoreError> {
        let Some(row) = Entity::find().filter(live(kind, key, now)).one(&self.db).await.map_err(classify)? else {
            return Ok(None);
        };
        let clear = self.open(&row.value, &record_place(kind, key))?;
        let text =
            String::from_utf8(clear).map_err(|_| StoreError::backend(format!("{}: not UTF-8", kind.as_str())))?;
        Ok(Some(Versioned { value: from_json(&text, kind.as_str())?, version: row.version }))
    }

    async fn replace_record(
        &self,
        kind: RecordKind,
        key: &str,
        version: i64,
        value: &Value,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let replaced = Entity::update_many()
            .col_expr(Column::Value, Expr::value(self.seal_record(kind, key, value)?))
            .col_expr(Column::Version, Expr::value(version + 1))
            .col_expr(Column::ExpiresAt, Expr::value(millis(expires_at)))
            .filter(at_version(kind, key, version, now))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(replaced.rows_affected == 1)
    }

    async fn take_record(&self, kind: RecordKind, key: &str, now: OffsetDateTime) -> Result<Option<Value>, StoreError> {
        let Some(record) = self.record(kind, key, now).await? else { return Ok(None) };
        // Whoever deletes the row owns the record: a concurrent take
        // deletes nothing and gets nothing.
        Ok(self.delete_record_if(kind, key, record.version, now).await?.then_some(record.value))
    }

    async fn delete_record_if(
        &self,
        kind: RecordKind,
        key: &str,
        version: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let deleted =
            Entity::delete_many().filter(at_version(kind, key, version, now)).exec(&self.db).await.map_err(classify)?;
        Ok(deleted.rows_affected == 1)
    }

    async fn purge_expired_records(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let result =
            Entity::delete_many().filter(Column::ExpiresAt.lte(millis(now))).exec(&self.db).await.map_err(classify)?;
        Ok(result.rows_affected)
    }
}
