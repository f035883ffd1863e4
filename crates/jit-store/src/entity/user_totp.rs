//! A user's TOTP enrolment (the secret is a protected system attribute).

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)] // Debug: by hand, below
#[sea_orm(table_name = "user_totp")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Base32, never logged: `Debug` redacts it.
    pub secret: String,
    /// Milliseconds since the Unix epoch.
    pub enrolled_at: i64,
    /// RFC 6238 time step of the last accepted code.
    pub last_used_step: i64,
    /// Wrong codes since the last accepted one.
    pub failures: i32,
    /// Milliseconds since the Unix epoch; NULL when not locked.
    pub locked_until: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("user_id", &self.user_id)
            .field("secret", &"[redacted]")
            .field("enrolled_at", &self.enrolled_at)
            .field("last_used_step", &self.last_used_step)
            .field("failures", &self.failures)
            .field("locked_until", &self.locked_until)
            .finish()
    }
}
