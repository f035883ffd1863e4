//! Where each attribute value came from (`source`: `admin`,
//! `connection:<name>`) and when it last changed (`changed_at`). Values
//! stored before this migration have neither.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("user_attributes").add_column(string_len_null("source", 80)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table("user_attributes").add_column(big_integer_null("changed_at")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("user_attributes").drop_column("changed_at").to_owned()).await?;
        manager.alter_table(Table::alter().table("user_attributes").drop_column("source").to_owned()).await
    }
}
