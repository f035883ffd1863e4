//! Schema migrations (sea-orm-migration). Migrations are append-only: a
//! released migration is never edited; changes come as new ones.

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_totp;
mod m0003_password_lockout;
mod m0004_email_verified;
mod m0005_sealed_secrets;
mod m0006_email_otp_sends;
mod m0007_drop_unused_columns;
mod m0008_expiring_records;
mod m0009_application_connections;
mod m0010_attribute_definitions;
mod m0011_memberships;
mod m0012_sensitive_attributes;
mod m0013_attribute_provenance;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_totp::Migration),
            Box::new(m0003_password_lockout::Migration),
            Box::new(m0004_email_verified::Migration),
            Box::new(m0005_sealed_secrets::Migration),
            Box::new(m0006_email_otp_sends::Migration),
            Box::new(m0007_drop_unused_columns::Migration),
            Box::new(m0008_expiring_records::Migration),
            Box::new(m0009_application_connections::Migration),
            Box::new(m0010_attribute_definitions::Migration),
            Box::new(m0011_memberships::Migration),
            Box::new(m0012_sensitive_attributes::Migration),
            Box::new(m0013_attribute_provenance::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "jit_migrations".into_iden()
    }
}
