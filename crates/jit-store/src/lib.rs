//! # jit-store
//!
//! Storage for jit on SQLite (the embedded default), PostgreSQL and
//! MySQL/MariaDB, through SeaORM. It implements the ports of
//! [`jit_domain::ports`] and holds no business rules: it looks up what the
//! rules ask for and writes what they decided, atomically, with uniqueness
//! enforced by unique indexes.
//!
//! ```no_run
//! # async fn run() -> Result<(), jit_store::Error> {
//! use jit_domain::schema::AttributeSchema;
//! let store = jit_store::Store::connect("sqlite://jit.sqlite?mode=rwc", AttributeSchema::standard()).await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod applications;
mod attempts;
mod audit;
mod connections;
mod convert;
mod entity;
mod error;
mod flows;
mod keys;
mod mfa;
mod migration;
mod password_lockout;
mod provisioning;
mod users;

use std::time::Duration;

use jit_domain::schema::AttributeSchema;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

pub use error::Error;
pub use migration::Migrator;

/// SQLite connections in the pool. SQLite has one writer at a time; a few
/// connections let readers proceed while it writes (WAL mode).
const SQLITE_POOL: u32 = 4;

/// The store: a database connection pool and the attribute schema that says
/// which attributes are unique.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    schema: AttributeSchema,
}

impl Store {
    /// Connects to `url`: `sqlite://path?mode=rwc`, `postgres://…` or
    /// `mysql://…`. Does not migrate.
    pub async fn connect(url: &str, schema: AttributeSchema) -> Result<Self, Error> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        if url.starts_with("sqlite:") {
            options.max_connections(SQLITE_POOL);
        }
        let db = Database::connect(options).await.map_err(|e| Error::Connect(redact(url), e))?;
        Ok(Self { db, schema })
    }

    /// Wraps an existing connection.
    pub fn from_connection(db: DatabaseConnection, schema: AttributeSchema) -> Self {
        Self { db, schema }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), Error> {
        Migrator::up(&self.db, None).await.map_err(Error::Migrate)
    }

    /// Whether the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.map_err(Error::Database)
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// The attribute schema.
    pub fn schema(&self) -> &AttributeSchema {
        &self.schema
    }

    /// The connection pool (for tests and tools).
    pub fn database(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// `url` without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
