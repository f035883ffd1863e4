//! Drops `users.totp_secret` and `users.locked` of the initial migration:
//! never written but with their defaults (the TOTP secret lives in
//! `user_totp`, lock state in the attempt counters).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("users").drop_column("totp_secret").to_owned()).await?;
        manager.alter_table(Table::alter().table("users").drop_column("locked").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("users").add_column(text_null("totp_secret")).to_owned()).await?;
        manager.alter_table(Table::alter().table("users").add_column(boolean("locked").default(false)).to_owned()).await
    }
}
