//! Local groups and roles (`collections`, by kind) and memberships that
//! record who granted them. A membership goes with its user and with its
//! group.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Longest group or role name (the domain's `MAX_MEMBERSHIP_NAME_LEN`).
const NAME_LEN: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("collections")
                    .col(string_len("kind", 16))
                    .col(string_len("name", NAME_LEN))
                    .col(text("description"))
                    .col(big_integer("created_at"))
                    .primary_key(Index::create().col("kind").col("name"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("memberships")
                    .col(string_len("kind", 16))
                    .col(string_len("name", NAME_LEN))
                    .col(uuid("user_id"))
                    .col(string_len("granted_by", 80))
                    .col(big_integer("granted_at"))
                    .primary_key(Index::create().col("kind").col("name").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_memberships_collection")
                            .from("memberships", ("kind", "name"))
                            .to("collections", ("kind", "name"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_memberships_user")
                            .from("memberships", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_memberships_user").table("memberships").col("user_id").col("kind").to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("memberships").to_owned()).await?;
        manager.drop_table(Table::drop().table("collections").to_owned()).await
    }
}
