//! The per-account lockout of local password sign-in: a failure counter
//! and a lock on `users`, written only by
//! [`jit_domain::ports::PasswordLockoutStore`], never by provisioning or
//! sync.
//!
//! One column per `ALTER TABLE` statement: SQLite adds a single column at a
//! time.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("users").add_column(integer("password_failures").default(0)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table("users").add_column(big_integer_null("password_locked_until")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("users").drop_column("password_locked_until").to_owned()).await?;
        manager.alter_table(Table::alter().table("users").drop_column("password_failures").to_owned()).await
    }
}
