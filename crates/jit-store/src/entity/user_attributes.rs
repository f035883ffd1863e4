//! One value of one profile attribute of a user.

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_attributes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: Uuid,
    pub name: String,
    pub position: i32,
    #[sea_orm(column_type = "Text")]
    pub value: String,
    /// SHA-256 (hex) of the normalised value: indexed for lookups.
    pub lookup_hash: String,
    /// `lookup_hash` for unique attributes, NULL otherwise: a unique index
    /// on (name, unique_hash) keeps unique values unique.
    pub unique_hash: Option<String>,
    /// Who set the value: `admin` or `connection:<name>` (m0013).
    pub source: Option<String>,
    /// When it last changed, ms since the epoch (m0013).
    pub changed_at: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
