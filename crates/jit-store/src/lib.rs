//! # jit-store
//!
//! Storage for jit on SQLite (the embedded default), PostgreSQL and
//! MySQL/MariaDB, through SeaORM. It implements the ports of
//! [`jit_domain::ports`] and holds no business rules: it looks up what the
//! rules ask for and writes what they decided, atomically, with uniqueness
//! enforced by unique indexes.
//!
//! Secrets (TOTP secrets, connections' client secrets, signing keys, sign-in
//! state) are sealed with the [`SealingKeys`] the store is opened with; see
//! [`sealing`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jit_domain::schema::AttributeSchema;
//! use jit_store::{SealingKeys, Store};
//! // Keep the key somewhere safe: without it the secrets cannot be read.
//! let keys = SealingKeys::from_encoded(&[std::env::var("JIT_SECRET_KEY")?])?;
//! let store = Store::connect("sqlite://jit.sqlite?mode=rwc", AttributeSchema::standard(), keys).await?;
//! store.migrate().await?;
//! store.prepare_secrets().await?;
//! # Ok(()) }
//! ```

mod applications;
mod attempts;
mod audit;
mod connections;
mod convert;
mod entity;
mod error;
mod keys;
mod memberships;
pub mod metrics;
mod migration;
mod password_lockout;
mod provisioning;
mod records;
mod schema;
pub mod sealing;
mod secrets;
mod totp;
mod users;

use std::sync::Arc;
use std::time::Duration;

use jit_domain::schema::AttributeSchema;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

pub use error::Error;
pub use migration::Migrator;
pub use sealing::{SealingError, SealingKeys};

/// SQLite connections in the pool. SQLite has one writer at a time; a few
/// connections let readers proceed while it writes (WAL mode).
const SQLITE_POOL: u32 = 4;

/// The store: a database connection pool, the attribute schema that says
/// which attributes are unique, and the keys that seal secrets.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// The standard attributes and those the code declares; the operator's
    /// declarations are read from the database on top (`schema`).
    base_schema: Arc<AttributeSchema>,
    schema_cache: Arc<schema::SchemaCache>,
    sealing: Arc<SealingKeys>,
}

impl Store {
    /// Connects to `url`: `sqlite://path?mode=rwc`, `postgres://…` or
    /// `mysql://…`. Does not migrate. A SQLite file that does not exist yet
    /// is created readable by its owner only (0600).
    pub async fn connect(url: &str, schema: AttributeSchema, sealing: SealingKeys) -> Result<Self, Error> {
        if let Some(path) = sqlite_path(url) {
            create_private_file(path).map_err(|e| Error::CreateFile(path.to_owned(), e))?;
        }
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
        let mut db = Database::connect(options).await.map_err(|e| Error::Connect(redact(url), e))?;
        db.set_metric_callback(metrics::observe);
        Ok(Self::from_connection(db, schema, sealing))
    }

    /// Wraps an existing connection.
    pub fn from_connection(db: DatabaseConnection, schema: AttributeSchema, sealing: SealingKeys) -> Self {
        Self { db, base_schema: Arc::new(schema), schema_cache: Arc::default(), sealing: Arc::new(sealing) }
    }

    /// The keys that seal secrets.
    pub fn sealing(&self) -> &SealingKeys {
        &self.sealing
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

    /// The connection pool (for tests and tools).
    pub fn database(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// The file of a `sqlite://` URL (`None` for in-memory databases and
/// other backends).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory")).then_some(path)
}

/// Creates `path` empty with mode 0600 if it does not exist (SQLite then
/// gives its `-wal` and `-shm` files the same mode); an existing file is
/// left as it is.
fn create_private_file(path: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
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
    fn sqlite_paths() {
        assert_eq!(super::sqlite_path("sqlite://jit.sqlite?mode=rwc"), Some("jit.sqlite"));
        assert_eq!(super::sqlite_path("sqlite:///tmp/a.db?mode=rwc"), Some("/tmp/a.db"));
        assert_eq!(super::sqlite_path("sqlite::memory:"), None);
        assert_eq!(super::sqlite_path("postgres://u@h/db"), None);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
