//! What the store asks of the database, counted as `metrics` counters so
//! that `GET /metrics` (and the benchmark, which reads it) can say how
//! many statements and commits a sign-in costs:
//!
//! - `jit_db_statements_total{kind="read"|"write"}`: every statement;
//! - `jit_db_commits_total`: every commit that writes — a write statement
//!   outside a transaction is its own commit, a transaction that wrote is
//!   one commit, a transaction that only read is none.
//!
//! Transactions run inside [`transaction`], which counts their writes on
//! the task that runs them.

use std::cell::Cell;
use std::future::Future;

use jit_domain::ports::StoreError;

tokio::task_local! {
    /// Writes of the transaction the current task is in.
    static TRANSACTION_WRITES: Cell<u32>;
}

/// The statement counter.
pub const STATEMENTS: &str = "jit_db_statements_total";
/// The commit counter.
pub const COMMITS: &str = "jit_db_commits_total";

/// Counts one statement (sea-orm's metric callback).
pub(crate) fn observe(info: &sea_orm::metric::Info<'_>) {
    let write = is_write(&info.statement.sql);
    // The SQL text only (values are bound apart): what a request costs,
    // statement by statement, with RUST_LOG=jit_store::metrics=trace.
    tracing::trace!(sql = %info.statement.sql, elapsed_us = info.elapsed.as_micros() as u64, "statement");
    metrics::counter!(STATEMENTS, "kind" => if write { "write" } else { "read" }).increment(1);
    if write && TRANSACTION_WRITES.try_with(|writes| writes.set(writes.get() + 1)).is_err() {
        metrics::counter!(COMMITS).increment(1);
    }
}

/// Runs `body`, a transaction that commits on success, counting it as one
/// commit if it wrote.
pub(crate) async fn transaction<T>(body: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    TRANSACTION_WRITES
        .scope(Cell::new(0), async {
            let result = body.await;
            let wrote = TRANSACTION_WRITES.with(Cell::get) > 0;
            if result.is_ok() && wrote {
                metrics::counter!(COMMITS).increment(1);
            }
            result
        })
        .await
}

/// Whether `sql` changes data.
fn is_write(sql: &str) -> bool {
    let head = sql.trim_start();
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|keyword| head.get(..keyword.len()).is_some_and(|start| start.eq_ignore_ascii_case(keyword)))
}

#[cfg(test)]
mod tests {
    use super::is_write;

    #[test]
    fn writes_are_told_from_reads() {
        assert!(is_write("INSERT INTO users VALUES (1)"));
        assert!(is_write("  update users SET x = 1"));
        assert!(is_write("DELETE FROM expiring_records"));
        assert!(!is_write("SELECT * FROM users"));
        assert!(!is_write("WITH x AS (SELECT 1) SELECT * FROM x"));
        assert!(!is_write(""));
    }
}
