//! The per-account lockout of local password sign-in: the failure counter
//! and lock on `users` (see `attempts`).

use async_trait::async_trait;
use jit_domain::mfa::{Attempt, LockoutPolicy};
use jit_domain::ports::{PasswordLockoutStore, StoreError};
use jit_domain::user::UserId;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;

use crate::Store;
use crate::attempts::AttemptCounter;
use crate::convert::from_millis;
use crate::entity::users;
use crate::error::{classify, retry_transient};

/// The password failure counter: on the user's row.
const PASSWORD_ATTEMPTS: AttemptCounter<users::Entity> = AttemptCounter {
    key: users::Column::Id,
    failures: users::Column::PasswordFailures,
    locked_until: users::Column::PasswordLockedUntil,
    what: "user",
};

/// The Email OTP send counter: on the user's row too.
pub(crate) const EMAIL_OTP_SENDS: AttemptCounter<users::Entity> = AttemptCounter {
    key: users::Column::Id,
    failures: users::Column::EmailOtpSends,
    locked_until: users::Column::EmailOtpLockedUntil,
    what: "user",
};

#[async_trait]
impl PasswordLockoutStore for Store {
    async fn record_password_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        PASSWORD_ATTEMPTS.record(&self.db, user.0, now, policy).await
    }

    async fn password_locked_until(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = users::Entity::find_by_id(user.0).one(&self.db).await.map_err(classify)?;
        Ok(row.and_then(|row| row.password_locked_until).map(from_millis).filter(|until| *until > now))
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
