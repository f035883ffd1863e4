//! `expiring_records` replaces `flow_states`: every short-lived record is
//! stored under its kind and key (no string prefixes), with a version
//! number that compare-and-swap compares (instead of a digest of the whole
//! state). Records in flight when this migration runs (sign-ins not
//! finished, codes not exchanged, access tokens) are dropped: each lives
//! minutes at most, and a user whose sign-in was cut starts it again.

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
                    .table("expiring_records")
                    .col(string_len("kind", 32))
                    .col(string_len("record_key", 128))
                    .col(big_integer("version"))
                    .col(text("value"))
                    .col(big_integer("expires_at"))
                    .primary_key(Index::create().col("kind").col("record_key"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_expiring_records_expiry")
                    .table("expiring_records")
                    .col("expires_at")
                    .to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table("flow_states").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("flow_states")
                    .col(string_len("id", 128).primary_key())
                    .col(text("state"))
                    .col(big_integer("expires_at"))
                    .col(string_len_null("digest", 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_flow_states_expiry").table("flow_states").col("expires_at").to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table("expiring_records").to_owned()).await
    }
}
