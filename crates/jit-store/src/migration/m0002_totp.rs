//! TOTP enrolments: one row per enrolled user, deleted with the user.
//!
//! (The `users.totp_secret` column of the initial migration is unused: the
//! secret lives here, beside the counters that make each code single-use
//! and lock out guessing, and this table is written only by
//! [`jit_domain::ports::TotpStore`], never by provisioning or sync.)

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Longest base32 secret (512 bits), as `jit_domain::mfa::MAX_TOTP_SECRET_LEN`.
const SECRET_LEN: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("user_totp")
                    .col(pk_uuid("user_id"))
                    .col(string_len("secret", SECRET_LEN))
                    .col(big_integer("enrolled_at"))
                    .col(big_integer("last_used_step"))
                    .col(integer("failures").default(0))
                    .col(big_integer_null("locked_until"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_totp_user")
                            .from("user_totp", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("user_totp").to_owned()).await
    }
}
