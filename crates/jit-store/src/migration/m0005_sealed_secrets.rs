//! Secrets sealed at rest (see `sealing`): `jit_meta` remembers which key
//! sealed the database's secrets, so that an instance without that key
//! refuses to start; `flow_states.digest` is the SHA-256 of a sign-in's
//! state in clear, which compare-and-swap compares now that the stored
//! state is sealed (a fresh nonce each time); TOTP secrets grow to fit
//! their sealed form. Existing secrets are sealed by `Store::prepare_secrets`
//! at the next start.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("jit_meta")
                    .col(string_len("name", 64).primary_key())
                    .col(text("value"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table("flow_states").add_column(string_len_null("digest", 64)).to_owned())
            .await?;
        // SQLite does not enforce VARCHAR lengths (and cannot alter a column).
        if manager.get_database_backend() != sea_orm::DbBackend::Sqlite {
            manager.alter_table(Table::alter().table("user_totp").modify_column(text("secret")).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("flow_states").drop_column("digest").to_owned()).await?;
        manager.drop_table(Table::drop().table("jit_meta").to_owned()).await
    }
}
