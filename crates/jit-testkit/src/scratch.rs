//! Scratch databases for tests and the benchmark, made one way: a SQLite
//! file in a temporary directory, or a fresh database on the PostgreSQL or
//! MySQL/MariaDB server a URL names (created and dropped through SeaORM).

// Test support: a failure here is a broken test set-up, reported by panicking.
#![allow(clippy::panic)]

use sea_orm::{ConnectionTrait, Database, DbBackend};

/// An empty database; [`ScratchDatabase::remove`] drops it (a database
/// server's is also dropped, best effort, when the value is dropped).
pub struct ScratchDatabase {
    /// What jit connects to.
    pub url: String,
    /// The server URL and the name of a database created there.
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl ScratchDatabase {
    /// A database named `<prefix><random>` on the server `server_url` names
    /// (`postgres://` or `mysql://`, connecting to the database in the URL
    /// to run `CREATE DATABASE`), or a SQLite file without a server.
    pub async fn create(server_url: Option<&str>, prefix: &str) -> Result<Self, String> {
        let Some(server) = server_url.filter(|url| !url.trim().is_empty()) else {
            let dir =
                tempfile::Builder::new().prefix("jit-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
            return Ok(Self { url, server: None, _dir: Some(dir) });
        };
        let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        execute(server, &format!("CREATE DATABASE {name}")).await?;
        let mut url = url::Url::parse(server).map_err(|e| format!("{server:?} is not a URL: {e}"))?;
        url.set_path(&format!("/{name}"));
        Ok(Self { url: url.to_string(), server: Some((server.to_owned(), name)), _dir: None })
    }

    /// The database in `JIT_STORE_TEST_URL`'s server, or SQLite when unset:
    /// how the test suites pick their backend.
    pub async fn for_tests() -> Self {
        let server = std::env::var("JIT_STORE_TEST_URL").ok();
        Self::create(server.as_deref(), "jit_t_").await.unwrap_or_else(|e| panic!("scratch database: {e}"))
    }

    /// The database's name on its server (none for SQLite).
    pub fn name(&self) -> Option<&str> {
        self.server.as_ref().map(|(_, name)| name.as_str())
    }

    /// The directory of a SQLite file (none for a server's database).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(tempfile::TempDir::path)
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn backend(&self) -> &'static str {
        match DbBackend::from_url(&self.url) {
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
            _ => "sqlite",
        }
    }

    /// Drops it (a SQLite file's directory is deleted).
    pub async fn remove(mut self) -> Result<(), String> {
        if let Some(dir) = self._dir.take() {
            dir.close().map_err(|e| format!("removing the SQLite directory: {e}"))?;
        }
        match self.server.take() {
            Some((server, name)) => drop_database(&server, &name).await,
            None => Ok(()),
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.server.take() else { return };
        // No async in Drop: a thread of its own, with its own runtime, so
        // this works inside and outside one.
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(drop_database(&server, &name))
        })
        .join();
        if let Ok(Err(error)) | Err(error) = dropped.map_err(|_| "the cleanup thread panicked".to_owned()) {
            eprintln!("could not drop a scratch database: {error}");
        }
    }
}

async fn drop_database(server: &str, name: &str) -> Result<(), String> {
    let force = if DbBackend::from_url(server) == DbBackend::Postgres { " WITH (FORCE)" } else { "" };
    execute(server, &format!("DROP DATABASE IF EXISTS {name}{force}")).await
}

/// Runs one statement on the database `url` names.
async fn execute(url: &str, sql: &str) -> Result<(), String> {
    let connection = Database::connect(url).await.map_err(|e| format!("connecting to the database server: {e}"))?;
    let result = connection.execute_unprepared(sql).await.map(drop).map_err(|e| format!("{sql}: {e}"));
    let _ = connection.close().await;
    result
}

trait FromUrl {
    fn from_url(url: &str) -> DbBackend;
}

impl FromUrl for DbBackend {
    fn from_url(url: &str) -> DbBackend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbBackend::Postgres
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            DbBackend::MySql
        } else {
            DbBackend::Sqlite
        }
    }
}
