//! TOTP enrolments: the secret, the last accepted time step and the
//! failure counter, each change one atomic statement so that the rules hold
//! across concurrent requests and server instances.

use async_trait::async_trait;
use jit_domain::mfa::{Attempt, LockoutPolicy, TotpRecord, TotpSecret};
use jit_domain::ports::{ConflictKind, StoreError, TotpStore};
use jit_domain::user::UserId;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;

use crate::Store;
use crate::attempts::AttemptCounter;
use crate::convert::{from_millis, millis};
use crate::entity::user_totp;
use crate::error::{classify, retry_transient};
use crate::secrets::totp_place;

/// The TOTP failure counter: on the enrolment's row.
const TOTP_ATTEMPTS: AttemptCounter<user_totp::Entity> = AttemptCounter {
    key: user_totp::Column::UserId,
    failures: user_totp::Column::Failures,
    locked_until: user_totp::Column::LockedUntil,
    what: "the TOTP enrolment of user",
};

fn to_record(store: &Store, row: user_totp::Model) -> Result<TotpRecord, StoreError> {
    let unreadable = || StoreError::backend(format!("the stored TOTP secret of user {} is unreadable", row.user_id));
    let clear = store.open(&row.secret, &totp_place(row.user_id))?;
    let secret = TotpSecret::new(String::from_utf8(clear).map_err(|_| unreadable())?).map_err(|_| unreadable())?;
    Ok(TotpRecord {
        secret,
        enrolled_at: from_millis(row.enrolled_at),
        last_used_step: row.last_used_step,
        failures: u32::try_from(row.failures).unwrap_or(0),
        locked_until: row.locked_until.map(from_millis),
    })
}

#[async_trait]
impl TotpStore for Store {
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError> {
        let row = user_totp::Entity::find_by_id(user.0).one(&self.db).await.map_err(classify)?;
        row.map(|row| to_record(self, row)).transpose()
    }

    async fn enrol_totp(
        &self,
        user: UserId,
        secret: &TotpSecret,
        used_step: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        retry_transient(|| async {
            user_totp::Entity::insert(user_totp::ActiveModel {
                user_id: Set(user.0),
                secret: Set(self.seal(secret.expose().as_bytes(), &totp_place(user.0))?),
                enrolled_at: Set(millis(now)),
                last_used_step: Set(used_step),
                failures: Set(0),
                locked_until: Set(None),
            })
            .exec_without_returning(&self.db)
            .await
            .map_err(|e| match classify(e) {
                e if e.is_conflict(ConflictKind::Unique) => {
                    StoreError::Taken(format!("a TOTP enrolment for user {user}"))
                }
                e if e.is_conflict(ConflictKind::ForeignKey) => StoreError::NotFound(format!("user {user}")),
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    async fn accept_totp_step(&self, user: UserId, step: i64, _now: OffsetDateTime) -> Result<bool, StoreError> {
        // One conditional UPDATE: the database serialises concurrent ones on
        // the row, and only the first sees `last_used_step < step`. The
        // lockout was applied before the code was checked
        // (`record_totp_attempt`).
        retry_transient(|| async {
            let result = user_totp::Entity::update_many()
                .col_expr(user_totp::Column::LastUsedStep, Expr::value(step))
                .col_expr(user_totp::Column::Failures, Expr::value(0))
                .col_expr(user_totp::Column::LockedUntil, Expr::value(Option::<i64>::None))
                .filter(user_totp::Column::UserId.eq(user.0))
                .filter(user_totp::Column::LastUsedStep.lt(step))
                .exec(&self.db)
                .await
                .map_err(classify)?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    async fn record_totp_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        TOTP_ATTEMPTS.record(&self.db, user.0, now, policy).await
    }

    async fn reset_totp(&self, user: UserId) -> Result<bool, StoreError> {
        retry_transient(|| async {
            let result = user_totp::Entity::delete_by_id(user.0).exec(&self.db).await.map_err(classify)?;
            Ok(result.rows_affected > 0)
        })
        .await
    }
}
