//! A fresh, empty database for each benchmarked backend: a SQLite file in a
//! temporary directory, or a new database on the PostgreSQL server, dropped
//! afterwards.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sea_orm::{ConnectOptions, ConnectionTrait, Database as SeaDatabase};
use url::Url;

/// How long connecting to the PostgreSQL server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The variables naming the PostgreSQL server, in the order they are read.
pub const POSTGRES_URL_VARS: [&str; 2] = ["JIT_BENCH_POSTGRES_URL", "JIT_TEST_POSTGRES_URL"];

/// A database jit can be benchmarked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server.
    #[value(alias = "postgresql", alias = "pg")]
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// The PostgreSQL server URL from the environment, with the variable it came from.
pub fn postgres_url_from_env() -> Option<(&'static str, String)> {
    POSTGRES_URL_VARS
        .iter()
        .find_map(|&name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()).map(|value| (name, value)))
}

/// An empty database for one run; call [`Scratch::remove`] when done with it.
pub enum Scratch {
    /// A SQLite file in a temporary directory (deleted on drop).
    Sqlite {
        /// The directory holding the file.
        dir: tempfile::TempDir,
        /// `sqlite://<dir>/jit.sqlite?mode=rwc`.
        url: String,
    },
    /// A database created on a PostgreSQL server.
    Postgres {
        /// The URL the server was named by (where `CREATE`/`DROP DATABASE` run).
        server_url: String,
        /// The created database's name.
        name: String,
        /// Its URL.
        url: String,
    },
}

impl Scratch {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("jit-bench-").tempdir().context("creating a temporary directory")?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
        Ok(Self::Sqlite { dir, url })
    }

    /// Creates database `jit_b_<random>` on the server `server_url` names (connecting to
    /// the database in that URL to run `CREATE DATABASE`).
    pub async fn postgres(server_url: &str) -> Result<Self> {
        let name = format!("jit_b_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(server_url, &name)?;
        execute(server_url, &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(Self::Postgres { server_url: server_url.to_owned(), name, url })
    }

    /// The URL jit gets.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    /// Where it is, without any password, for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { dir, .. } => format!("SQLite file in {}", dir.path().display()),
            Self::Postgres { url, .. } => format!("PostgreSQL database {}", redact(url)),
        }
    }

    /// What the command lines of a separate database server's processes serving this
    /// database contain: PostgreSQL backends are titled
    /// `postgres: <cluster>: <user> <database> <client> <state>`. None for SQLite, which
    /// runs inside jit.
    pub fn server_processes(&self) -> Option<String> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres { name, .. } => Some(format!(" {name} ")),
        }
    }

    /// Deletes it (jit must have stopped).
    pub async fn remove(self) -> Result<()> {
        match self {
            Self::Sqlite { dir, .. } => dir.close().context("removing the SQLite directory"),
            Self::Postgres { server_url, name, .. } => {
                execute(&server_url, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await
            }
        }
    }
}

/// Runs one statement on the database `url` names.
async fn execute(url: &str, sql: &str) -> Result<()> {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).connect_timeout(CONNECT_TIMEOUT).acquire_timeout(CONNECT_TIMEOUT).sqlx_logging(false);
    let connection =
        SeaDatabase::connect(options).await.with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
    let result = connection.execute_unprepared(sql).await.with_context(|| format!("{sql} at {}", redact(url)));
    let _ = connection.close().await;
    result.map(drop)
}

/// `url` naming database `name` instead, query kept.
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let mut parsed = Url::parse(url).with_context(|| format!("{} is not a URL", redact(url)))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        bail!("{} is not a postgres:// URL", redact(url));
    }
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_another_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/jit_ci?sslmode=disable", "jit_b_1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/jit_b_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x").unwrap(), "postgres://u@h/x");
        assert!(with_database("mysql://root@h/db", "x").is_err());
        assert!(with_database("not a url", "x").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("::"), "<not a URL>");
    }

    #[test]
    fn sqlite_scratch_files_live_in_a_temporary_directory() {
        let scratch = Scratch::sqlite().unwrap();
        assert!(scratch.url().starts_with("sqlite://") && scratch.url().ends_with("/jit.sqlite?mode=rwc"));
        let dir = match &scratch {
            Scratch::Sqlite { dir, .. } => dir.path().to_owned(),
            Scratch::Postgres { .. } => unreachable!(),
        };
        assert!(dir.is_dir());
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(scratch.remove()).unwrap();
        assert!(!dir.exists());
    }
}
