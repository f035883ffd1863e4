//! Errors: this crate's own (connecting, migrating) and the translation of
//! database errors into the domain's [`StoreError`].

use jit_domain::ports::{ConflictKind, StoreError};
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Errors of setting up the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database cannot be reached.
    #[error("cannot connect to database {0}: {1}")]
    Connect(String, #[source] DbErr),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] DbErr),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] DbErr),
    /// The SQLite file cannot be created.
    #[error("cannot create the database file {0}: {1}")]
    CreateFile(String, #[source] std::io::Error),
    /// The database's secrets are sealed with a key this instance lacks.
    #[error(
        "the secrets in this database are sealed with secret key {0}, which this instance was not given: start it with the same JIT_SECRET_KEY (or --secret-key-file) as the instance that created the database"
    )]
    WrongKey(String),
    /// Sealing the existing secrets again failed.
    #[error("sealing the database's secrets failed: {0}")]
    Reseal(#[source] StoreError),
    /// A secret cannot be sealed or opened.
    #[error("sealing secrets failed: {0}")]
    Sealing(#[from] crate::sealing::SealingError),
}

/// Translates a database error: constraint violations and lost races become
/// [`StoreError::Conflict`] (decide again), everything else
/// [`StoreError::Backend`].
pub(crate) fn classify(error: DbErr) -> StoreError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(m)) => StoreError::conflict(ConflictKind::Unique, m),
        Some(SqlErr::ForeignKeyConstraintViolation(m)) => StoreError::conflict(ConflictKind::ForeignKey, m),
        // SQLite reports a RESTRICT action's refusal with its own code,
        // which sea-orm does not classify.
        _ if database_code(&error).as_deref() == Some(SQLITE_CONSTRAINT_TRIGGER) => {
            StoreError::conflict(ConflictKind::ForeignKey, error.to_string())
        }
        _ if is_transient(&error) => StoreError::conflict(ConflictKind::Transient, error.to_string()),
        _ => StoreError::backend_from(error.to_string(), error),
    }
}

/// How often a write the caller did not decide on (an administrator's) is
/// retried after the database rolled it back.
const TRANSIENT_ATTEMPTS: usize = 5;

/// Runs a self-contained write again while the database rolls it back for
/// reasons that are not the caller's (deadlock, serialization failure, busy).
/// Provisioning does not use this: it decides again on fresh data instead.
pub(crate) async fn retry_transient<T, F, Fut>(mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(e) if e.is_conflict(ConflictKind::Transient) && attempt < TRANSIENT_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// SQLite's extended result code for a foreign key refused by a RESTRICT
/// action (`SQLITE_CONSTRAINT_TRIGGER`, 1811).
const SQLITE_CONSTRAINT_TRIGGER: &str = "1811";

/// The database's own error code, if the error came from it.
fn database_code(error: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error else {
        return None;
    };
    e.as_database_error().and_then(|database| database.code()).map(|code| code.into_owned())
}

/// Deadlocks, serialization failures and busy databases: the transaction
/// was rolled back and may simply be retried.
fn is_transient(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    let Some(database) = e.as_database_error() else { return false };
    let code = database.code().unwrap_or_default();
    let message = database.message();
    // PostgreSQL and MySQL: SQLSTATE 40001 (serialization failure / MySQL
    // deadlock) and 40P01 (deadlock); MySQL lock wait timeout (HY000, 1205).
    // SQLite: primary result codes 5 (BUSY) and 6 (LOCKED), possibly extended.
    let sqlite_busy = code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    matches!(code.as_ref(), "40001" | "40P01") || sqlite_busy || message.contains("Lock wait timeout")
}

/// Unique violations as [`StoreError::Taken`] (for admin writes, where a
/// taken value is the caller's mistake rather than a race).
pub(crate) fn taken_or(error: DbErr, what: &str) -> StoreError {
    match classify(error) {
        e if e.is_conflict(ConflictKind::Unique) => StoreError::Taken(what.to_owned()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_keep_the_database_error_as_their_source() {
        let error = classify(DbErr::Custom("disk on fire".into()));
        assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
        let source = std::error::Error::source(&error).expect("the database error is kept");
        assert!(source.to_string().contains("disk on fire"), "{source}");
    }
}
