//! Sealing the secrets of the tables, and the start-up check that this
//! instance holds the key the database's secrets were sealed with.

use jit_domain::ports::{RecordKind, StoreError};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::Store;
use crate::entity::{connections, expiring_records, jit_meta, signing_keys, user_totp};
use crate::error::{Error, classify};
use crate::sealing::SealingError;

/// The `jit_meta` row holding a value sealed with the database's key.
const KEY_CHECK: &str = "sealing_check";

/// Where each kind of secret lives: the associated data it is sealed with.
pub(crate) fn totp_place(user: uuid::Uuid) -> String {
    format!("user_totp:{user}")
}
pub(crate) fn connection_place(name: &str) -> String {
    format!("connection:{name}")
}
pub(crate) fn signing_key_place(kid: &str) -> String {
    format!("signing_key:{kid}")
}
pub(crate) fn record_place(kind: RecordKind, key: &str) -> String {
    format!("{}:{key}", kind.as_str())
}

impl Store {
    /// Seals `plaintext` for `place`.
    pub(crate) fn seal(&self, plaintext: &[u8], place: &str) -> Result<String, StoreError> {
        self.sealing.seal(plaintext, place).map_err(|e| StoreError::backend_from(e.to_string(), e))
    }

    /// Opens a value sealed for `place`.
    pub(crate) fn open(&self, sealed: &str, place: &str) -> Result<Vec<u8>, StoreError> {
        self.sealing.open(sealed, place).map_err(|e| StoreError::backend_from(format!("{place}: {e}"), e))
    }

    /// Run once at start, after [`Store::migrate`]: checks that this
    /// instance's keys open the database's secrets ([`Error::WrongKey`]
    /// otherwise, before anything is served), and seals again with the
    /// current key whatever an older key (or, before migration m0005,
    /// nobody) sealed. Safe to run on several instances at once.
    pub async fn prepare_secrets(&self) -> Result<(), Error> {
        let check = jit_meta::Entity::find_by_id(KEY_CHECK).one(&self.db).await.map_err(Error::Database)?;
        if let Some(check) = &check {
            match self.sealing.open(&check.value, KEY_CHECK) {
                Ok(_) if self.sealing.is_current(&check.value) => return Ok(()),
                Ok(_) => {
                    tracing::info!(key = self.sealing.current_id(), "sealing the database's secrets with the new key")
                }
                Err(SealingError::UnknownKey(id)) => return Err(Error::WrongKey(id)),
                Err(other) => return Err(Error::Sealing(other)),
            }
        }
        self.reseal().await.map_err(Error::Reseal)?;
        let value = self.sealing.seal(b"jit", KEY_CHECK)?;
        jit_meta::Entity::insert(jit_meta::ActiveModel { name: Set(KEY_CHECK.to_owned()), value: Set(value) })
            .on_conflict(OnConflict::column(jit_meta::Column::Name).update_column(jit_meta::Column::Value).to_owned())
            .exec_without_returning(&self.db)
            .await
            .map_err(Error::Database)?;
        Ok(())
    }

    /// Seals with the current key every secret that is in clear (written
    /// before migration m0005) or sealed with another configured key.
    /// Sign-ins still in clear are dropped: they are minutes old at most.
    async fn reseal(&self) -> Result<u64, StoreError> {
        let mut resealed = 0;
        for row in user_totp::Entity::find().all(&self.db).await.map_err(classify)? {
            if self.sealing.is_current(&row.secret) {
                continue;
            }
            let place = totp_place(row.user_id);
            let clear = self.clear_text(&row.secret, &place)?;
            user_totp::Entity::update_many()
                .col_expr(user_totp::Column::Secret, Expr::value(self.seal(clear.as_bytes(), &place)?))
                .filter(user_totp::Column::UserId.eq(row.user_id))
                .exec(&self.db)
                .await
                .map_err(classify)?;
            resealed += 1;
        }
        for row in connections::Entity::find().all(&self.db).await.map_err(classify)? {
            if self.sealing.is_current(&row.config) {
                continue;
            }
            let place = connection_place(&row.name);
            let clear = self.clear_text(&row.config, &place)?;
            connections::Entity::update_many()
                .col_expr(connections::Column::Config, Expr::value(self.seal(clear.as_bytes(), &place)?))
                .filter(connections::Column::Name.eq(row.name.as_str()))
                .exec(&self.db)
                .await
                .map_err(classify)?;
            resealed += 1;
        }
        for row in signing_keys::Entity::find().all(&self.db).await.map_err(classify)? {
            let place = signing_key_place(&row.kid);
            let clear = match std::str::from_utf8(&row.private_key) {
                Ok(text) if self.sealing.is_current(text) => continue,
                Ok(text) if text.starts_with("v1.") => self.open(text, &place)?,
                _ => row.private_key.clone(),
            };
            signing_keys::Entity::update_many()
                .col_expr(signing_keys::Column::PrivateKey, Expr::value(self.seal(&clear, &place)?.into_bytes()))
                .filter(signing_keys::Column::Kid.eq(row.kid.as_str()))
                .exec(&self.db)
                .await
                .map_err(classify)?;
            resealed += 1;
        }
        for row in expiring_records::Entity::find().all(&self.db).await.map_err(classify)? {
            if self.sealing.is_current(&row.value) {
                continue;
            }
            let condition = Condition::all()
                .add(expiring_records::Column::Kind.eq(row.kind.as_str()))
                .add(expiring_records::Column::RecordKey.eq(row.record_key.as_str()));
            let place = RecordKind::ALL
                .into_iter()
                .find(|kind| kind.as_str() == row.kind)
                .map(|kind| record_place(kind, &row.record_key));
            match place.map(|place| self.open(&row.value, &place).map(|clear| (place, clear))) {
                Some(Ok((place, clear))) => {
                    expiring_records::Entity::update_many()
                        .col_expr(expiring_records::Column::Value, Expr::value(self.seal(&clear, &place)?))
                        .filter(condition)
                        .exec(&self.db)
                        .await
                        .map_err(classify)?;
                }
                // A kind this version does not know, or a value that does
                // not open: short-lived either way, so it goes.
                _ => {
                    expiring_records::Entity::delete_many().filter(condition).exec(&self.db).await.map_err(classify)?;
                }
            }
            resealed += 1;
        }
        if resealed > 0 {
            tracing::info!(resealed, key = self.sealing.current_id(), "secrets sealed with the current key");
        }
        Ok(resealed)
    }

    /// A stored value in clear: opened if sealed, as it is if written
    /// before secrets were sealed.
    fn clear_text(&self, stored: &str, place: &str) -> Result<String, StoreError> {
        if !stored.starts_with("v1.") {
            return Ok(stored.to_owned());
        }
        String::from_utf8(self.open(stored, place)?).map_err(|_| StoreError::backend(format!("{place}: not UTF-8")))
    }
}
