//! Associations of (connection, subject) with local users.

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "federated_identities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connection: String,
    pub subject: String,
    pub user_id: Uuid,
    pub first_seen: i64,
    pub last_seen: i64,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
