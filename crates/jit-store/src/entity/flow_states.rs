//! Sign-in flow state, so any request of a sign-in can land on any instance.

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The state, sealed.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub expires_at: i64,
    /// SHA-256 of the state in clear (migration m0005): what
    /// compare-and-swap compares.
    pub digest: Option<String>,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
