//! Attempt counters (TOTP codes, passwords): a failure count and a lock on
//! one row, counted before the attempt is checked with read +
//! compare-and-swap, so that concurrent attempts on any number of server
//! instances all count. The rule itself is the domain's
//! [`LockoutPolicy::attempt`].

use jit_domain::mfa::{Attempt, Lock, LockoutPolicy};
use jit_domain::ports::{ConflictKind, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert::{from_millis, millis};
use crate::error::{classify, retry_transient};

/// Rounds of read + compare-and-swap of a counter. A round is lost only to
/// another request that changed the counter meanwhile (and so made
/// progress), so running out means a flood of requests for one account.
const COUNTER_ROUNDS: usize = 32;

/// Where a counter lives: the table's key column and its failure-count
/// (`INT`) and lock (`BIGINT NULL`, ms) columns.
pub(crate) struct AttemptCounter<E: EntityTrait> {
    /// The key column.
    pub key: E::Column,
    /// The failure count.
    pub failures: E::Column,
    /// When the lock ends.
    pub locked_until: E::Column,
    /// What the counter counts, for messages ("the TOTP enrolment").
    pub what: &'static str,
}

impl<E: EntityTrait> AttemptCounter<E> {
    /// Counts one attempt for the row `key`: [`StoreError::NotFound`] if
    /// there is no such row.
    pub(crate) async fn record(
        &self,
        db: &DatabaseConnection,
        key: Uuid,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        for _ in 0..COUNTER_ROUNDS {
            if let Some(attempt) = retry_transient(|| self.count_once(db, key, now, policy)).await? {
                return Ok(attempt);
            }
        }
        Err(StoreError::conflict(
            ConflictKind::Changed,
            format!("the failure counter of {} {key} keeps changing", self.what),
        ))
    }

    /// One round: `None` if another request changed the counter between
    /// the read and the write.
    async fn count_once(
        &self,
        db: &DatabaseConnection,
        key: Uuid,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<Attempt>, StoreError> {
        let (failures, locked_until): (i32, Option<i64>) = E::find()
            .select_only()
            .column(self.failures)
            .column(self.locked_until)
            .filter(self.key.eq(key))
            .into_tuple()
            .one(db)
            .await
            .map_err(classify)?
            .ok_or_else(|| StoreError::NotFound(format!("{} {key}", self.what)))?;
        let before =
            Lock { failures: u32::try_from(failures).unwrap_or(0), locked_until: locked_until.map(from_millis) };
        let attempt = policy.attempt(before, now);
        if attempt.lock == before {
            // Refused while locked: nothing to count.
            return Ok(Some(attempt));
        }
        let lock = attempt.lock;
        let result = E::update_many()
            .col_expr(self.failures, Expr::value(i32::try_from(lock.failures).unwrap_or(i32::MAX)))
            .col_expr(self.locked_until, Expr::value(lock.locked_until.map(millis)))
            .filter(self.key.eq(key))
            .filter(self.failures.eq(failures))
            .exec(db)
            .await
            .map_err(classify)?;
        Ok((result.rows_affected == 1).then_some(attempt))
    }
}
