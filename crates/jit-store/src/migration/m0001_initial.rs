//! The initial schema. Uniqueness that the rules rely on lives here, in
//! unique indexes, never in an `if` before an insert.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Longest indexed strings. MySQL/MariaDB limits an index key to 3072 bytes
/// (768 utf8mb4 characters), which every index below stays under.
const NAME_LEN: u32 = 64;
const SUBJECT_LEN: u32 = 255;
const USERNAME_LEN: u32 = 320;
const HASH_LEN: u32 = 64;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(pk_uuid("id"))
                    .col(string_len("username", USERNAME_LEN))
                    .col(string_len_uniq("username_normalized", USERNAME_LEN))
                    .col(text_null("password_hash"))
                    .col(text_null("totp_secret"))
                    .col(boolean("locked").default(false))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("user_attributes")
                    .col(big_pk_auto("id"))
                    .col(uuid("user_id"))
                    .col(string_len("name", NAME_LEN))
                    .col(integer("position"))
                    .col(text("value"))
                    .col(string_len("lookup_hash", HASH_LEN))
                    .col(string_len_null("unique_hash", HASH_LEN))
                    .foreign_key(&mut cascade("fk_user_attributes_user", "user_attributes", "user_id", "users", "id"))
                    .to_owned(),
            )
            .await?;
        index(manager, "ux_user_attributes_unique", "user_attributes", &["name", "unique_hash"], true).await?;
        index(manager, "ix_user_attributes_lookup", "user_attributes", &["name", "lookup_hash"], false).await?;
        index(manager, "ix_user_attributes_user", "user_attributes", &["user_id"], false).await?;

        manager
            .create_table(
                Table::create()
                    .table("connections")
                    .col(string_len("name", NAME_LEN).primary_key())
                    .col(text("config"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("federated_identities")
                    .col(big_pk_auto("id"))
                    .col(string_len("connection", NAME_LEN))
                    .col(string_len("subject", SUBJECT_LEN))
                    .col(uuid("user_id"))
                    .col(big_integer("first_seen"))
                    .col(big_integer("last_seen"))
                    .foreign_key(&mut cascade("fk_federated_user", "federated_identities", "user_id", "users", "id"))
                    .foreign_key(&mut cascade(
                        "fk_federated_connection",
                        "federated_identities",
                        "connection",
                        "connections",
                        "name",
                    ))
                    .to_owned(),
            )
            .await?;
        index(manager, "ux_federated_identities", "federated_identities", &["connection", "subject"], true).await?;
        index(manager, "ix_federated_identities_user", "federated_identities", &["user_id"], false).await?;

        manager
            .create_table(
                Table::create()
                    .table("applications")
                    .col(string_len("client_id", NAME_LEN).primary_key())
                    .col(string_len_uniq("name", 128))
                    .col(text("config"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("flow_states")
                    .col(string_len("id", 128).primary_key())
                    .col(text("state"))
                    .col(big_integer("expires_at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "ix_flow_states_expiry", "flow_states", &["expires_at"], false).await?;

        manager
            .create_table(
                Table::create()
                    .table("signing_keys")
                    .col(string_len("kid", 128).primary_key())
                    .col(string_len("algorithm", 16))
                    .col(blob("private_key"))
                    .col(big_integer("created_at"))
                    .col(boolean("active"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(big_pk_auto("id"))
                    .col(big_integer("at"))
                    .col(string_len("connection", NAME_LEN))
                    .col(string_len("subject", SUBJECT_LEN))
                    .col(uuid_null("user_id"))
                    .col(string_len("action", 16))
                    .col(text("detail"))
                    .to_owned(),
            )
            .await?;
        index(manager, "ix_audit_events_user", "audit_events", &["user_id"], false).await?;
        index(manager, "ix_audit_events_connection", "audit_events", &["connection"], false).await?;
        Ok(())
    }
}

fn cascade(
    name: &str,
    from_table: &'static str,
    from_column: &'static str,
    to_table: &'static str,
    to_column: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from_table, from_column)
        .to(to_table, to_column)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: &'static str,
    columns: &[&'static str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut statement = Index::create();
    statement.name(name).table(table);
    for column in columns {
        statement.col(*column);
    }
    if unique {
        statement.unique();
    }
    manager.create_index(statement.to_owned()).await
}
