//! A fresh, empty database for each benchmarked backend: a SQLite file in a
//! temporary directory, or a new database on the PostgreSQL server, dropped
//! afterwards.

use std::fmt;

use anyhow::{Result, bail};
use jit_testkit::scratch::ScratchDatabase;
use url::Url;

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

/// An empty database for one run (`jit_testkit::scratch`); call
/// [`Scratch::remove`] when done with it.
pub struct Scratch(ScratchDatabase);

impl Scratch {
    /// A SQLite file in a new temporary directory.
    pub async fn sqlite() -> Result<Self> {
        ScratchDatabase::create(None, "jit_b_").await.map(Self).map_err(anyhow::Error::msg)
    }

    /// Creates database `jit_b_<random>` on the server `server_url` names (connecting to
    /// the database in that URL to run `CREATE DATABASE`).
    pub async fn postgres(server_url: &str) -> Result<Self> {
        if !server_url.starts_with("postgres://") && !server_url.starts_with("postgresql://") {
            bail!("{} is not a postgres:// URL", redact(server_url));
        }
        ScratchDatabase::create(Some(server_url), "jit_b_")
            .await
            .map(Self)
            .map_err(|e| anyhow::anyhow!("at {}: {e}", redact(server_url)))
    }

    /// The URL jit gets.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Where it is, without any password, for the report.
    pub fn describe(&self) -> String {
        match self.0.dir() {
            Some(dir) => format!("SQLite file in {}", dir.display()),
            None => format!("PostgreSQL database {}", redact(&self.0.url)),
        }
    }

    /// What the command lines of a separate database server's processes serving this
    /// database contain: PostgreSQL backends are titled
    /// `postgres: <cluster>: <user> <database> <client> <state>`. None for SQLite, which
    /// runs inside jit.
    pub fn server_processes(&self) -> Option<String> {
        self.0.name().map(|name| format!(" {name} "))
    }

    /// Deletes it (jit must have stopped).
    pub async fn remove(self) -> Result<()> {
        self.0.remove().await.map_err(anyhow::Error::msg)
    }
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
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("::"), "<not a URL>");
    }

    #[tokio::test]
    async fn sqlite_scratch_files_live_in_a_temporary_directory() {
        let scratch = Scratch::sqlite().await.unwrap();
        assert!(scratch.url().starts_with("sqlite://") && scratch.url().ends_with("/jit.sqlite?mode=rwc"));
        let dir = scratch.0.dir().unwrap().to_owned();
        assert!(dir.is_dir());
        scratch.remove().await.unwrap();
        assert!(!dir.exists());
    }
}
