//! Short-lived records (sign-ins, pending federations, authorization
//! grants, access tokens), so any request can land on any instance.

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "expiring_records")]
pub struct Model {
    /// `RecordKind::as_str`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// The hash of the record's bearer secret (or an access token's `jti`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub record_key: String,
    /// 1 when inserted, one more at each compare-and-swap.
    pub version: i64,
    /// The record, sealed.
    #[sea_orm(column_type = "Text")]
    pub value: String,
    pub expires_at: i64,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
