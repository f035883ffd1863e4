//! Email OTP sends per account, across sign-ins: a counter and a lock on
//! `users`, written only through `UserStore::record_email_otp_send` (the
//! attempt counter rule of `LockoutPolicy`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("users").add_column(integer("email_otp_sends").default(0)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table("users").add_column(big_integer_null("email_otp_locked_until")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("users").drop_column("email_otp_locked_until").to_owned()).await?;
        manager.alter_table(Table::alter().table("users").drop_column("email_otp_sends").to_owned()).await
    }
}
