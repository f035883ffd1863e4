//! `attribute_definitions`: the attributes operators declare beside the
//! standard ones, in the database so that every instance sees the same
//! schema.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// As in the initial migration.
const NAME_LEN: u32 = 64;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("attribute_definitions")
                    .col(string_len("name", NAME_LEN).primary_key())
                    .col(boolean("is_unique"))
                    .col(boolean("multi_valued"))
                    .col(string_len("normalization", 32))
                    .col(text("description"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("attribute_definitions").to_owned()).await
    }
}
