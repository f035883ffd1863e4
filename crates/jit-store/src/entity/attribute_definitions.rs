//! Operator-declared attributes (migration m0010).

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attribute_definitions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// `unique` is a reserved word in SQL.
    pub is_unique: bool,
    pub multi_valued: bool,
    /// `exact`, `case_insensitive` or `email`.
    pub normalization: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// Values redacted in the audit trail (migration m0012).
    pub is_sensitive: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
