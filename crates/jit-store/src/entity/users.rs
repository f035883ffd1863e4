//! Local accounts: identity and system attributes (profile attributes are in `user_attributes`).

use sea_orm::entity::prelude::*;

#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub username: String,
    pub username_normalized: String,
    pub password_hash: Option<String>,
    /// Milliseconds since the Unix epoch, like every `*_at` column.
    pub created_at: i64,
    pub updated_at: i64,
    /// Password attempts since the last right password (migration m0003).
    pub password_failures: i32,
    /// Until when password sign-in is refused, if locked (milliseconds).
    pub password_locked_until: Option<i64>,
    /// Whether the `email` attribute is verified (migration m0004).
    pub email_verified: bool,
    /// Email OTP codes sent since the last accepted one (migration m0006).
    pub email_otp_sends: i32,
    /// Until when no code is sent, if locked (milliseconds).
    pub email_otp_locked_until: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
