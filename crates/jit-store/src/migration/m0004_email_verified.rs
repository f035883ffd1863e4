//! Whether an account's email is verified (`users.email_verified`, a system
//! attribute). Only a verified email holds its address uniquely: from this
//! migration on, `user_attributes.unique_hash` is set for an `email` row
//! only when its user's email is verified. Emails stored before it were
//! never proven, so they start unverified and give up their unique hash.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("users").add_column(boolean("email_verified").default(false)).to_owned())
            .await?;
        let release = Query::update()
            .table("user_attributes")
            .value("unique_hash", Expr::value(Option::<String>::None))
            .and_where(Expr::col("name").eq("email"))
            .to_owned();
        manager.exec_stmt(release).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("users").drop_column("email_verified").to_owned()).await
    }
}
