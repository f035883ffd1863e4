//! `application_connections`: which connections each application's sign-in
//! flow uses, kept in the same transaction as the application. A foreign
//! key that restricts deletes makes "is this connection still used?" the
//! database's answer, atomically: a connection an application uses cannot
//! be deleted, however the delete races an application being saved.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

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
                    .table("application_connections")
                    .col(string_len("client_id", NAME_LEN))
                    .col(string_len("connection", NAME_LEN))
                    .primary_key(Index::create().col("client_id").col("connection"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_application_connections_application")
                            .from("application_connections", "client_id")
                            .to("applications", "client_id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_application_connections_connection")
                            .from("application_connections", "connection")
                            .to("connections", "name")
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_application_connections_connection")
                    .table("application_connections")
                    .col("connection")
                    .to_owned(),
            )
            .await?;
        // The applications saved so far: their steps' connection options.
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let rows =
            db.query_all_raw(Statement::from_string(backend, "SELECT client_id, config FROM applications")).await?;
        let connections = db.query_all_raw(Statement::from_string(backend, "SELECT name FROM connections")).await?;
        let known: Vec<String> = connections.iter().filter_map(|row| row.try_get::<String>("", "name").ok()).collect();
        for row in rows {
            let client_id: String = row.try_get("", "client_id")?;
            let config: String = row.try_get("", "config")?;
            for connection in used_connections(&config).into_iter().filter(|name| known.contains(name)) {
                let mut insert = Query::insert();
                insert
                    .into_table("application_connections")
                    .columns(["client_id", "connection"])
                    .values([client_id.clone().into(), connection.into()])
                    .map_err(|e| DbErr::Migration(e.to_string()))?;
                manager.exec_stmt(insert).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("application_connections").to_owned()).await
    }
}

/// The connection names among an application's step options (stored as the
/// domain's JSON: `LOCAL`, `TOTP`, `EMAIL_OTP` or a connection's name).
fn used_connections(config: &str) -> Vec<String> {
    let Ok(config) = serde_json::from_str::<serde_json::Value>(config) else { return Vec::new() };
    let steps = config.pointer("/sign_in/steps").and_then(|s| s.as_array()).cloned().unwrap_or_default();
    let mut names: Vec<String> = steps
        .iter()
        .filter_map(|step| step.get("options").and_then(|o| o.as_array()))
        .flatten()
        .filter_map(|option| option.as_str())
        .filter(|option| !matches!(*option, "LOCAL" | "TOTP" | "EMAIL_OTP"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}
