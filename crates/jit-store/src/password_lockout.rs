//! The per-account lockout of local password sign-in: the failure counter
//! and lock on `users`, counted with the same read + compare-and-swap as
//! TOTP failures, so that concurrent attempts on any number of server
//! instances all count.

use async_trait::async_trait;
use jit_domain::mfa::{Attempt, Lock, LockoutPolicy};
use jit_domain::ports::{PasswordLockoutStore, StoreError};
use jit_domain::user::UserId;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{from_millis, millis};
use crate::entity::users;
use crate::error::{classify, retry_transient};
use crate::mfa::COUNTER_ROUNDS;

impl Store {
    /// One round of counting an attempt: `None` if another request changed
    /// the counter between the read and the write.
    async fn count_password_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<Attempt>, StoreError> {
        let row = users::Entity::find_by_id(user.0)
            .one(&self.db)
            .await
            .map_err(classify)?
            .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
        let before = Lock {
            failures: u32::try_from(row.password_failures).unwrap_or(0),
            locked_until: row.password_locked_until.map(from_millis),
        };
        let attempt = policy.attempt(before, now);
        if attempt.lock == before {
            // Refused while locked: nothing to count.
            return Ok(Some(attempt));
        }
        let lock = attempt.lock;
        let result = users::Entity::update_many()
            .col_expr(users::Column::PasswordFailures, Expr::value(i32::try_from(lock.failures).unwrap_or(i32::MAX)))
            .col_expr(users::Column::PasswordLockedUntil, Expr::value(lock.locked_until.map(millis)))
            .filter(users::Column::Id.eq(user.0))
            .filter(users::Column::PasswordFailures.eq(row.password_failures))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok((result.rows_affected == 1).then_some(attempt))
    }
}

#[async_trait]
impl PasswordLockoutStore for Store {
    async fn record_password_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        for _ in 0..COUNTER_ROUNDS {
            if let Some(attempt) = retry_transient(|| self.count_password_attempt(user, now, policy)).await? {
                return Ok(attempt);
            }
        }
        Err(StoreError::Conflict(format!("the password failure counter of user {user} keeps changing")))
    }

    async fn clear_password_failures(&self, user: UserId) -> Result<(), StoreError> {
        retry_transient(|| async {
            users::Entity::update_many()
                .col_expr(users::Column::PasswordFailures, Expr::value(0))
                .col_expr(users::Column::PasswordLockedUntil, Expr::value(Option::<i64>::None))
                .filter(users::Column::Id.eq(user.0))
                .exec(&self.db)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }
}
