//! Our signing keys.

use async_trait::async_trait;
use jit_domain::ports::{SigningKey, SigningKeyStore, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::Store;
use crate::convert::{from_millis, millis};
use crate::entity::signing_keys;
use crate::error::{classify, taken_or};
use crate::secrets::signing_key_place;

#[async_trait]
impl SigningKeyStore for Store {
    async fn add_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        signing_keys::Entity::insert(signing_keys::ActiveModel {
            kid: Set(key.kid.clone()),
            algorithm: Set(key.algorithm.clone()),
            private_key: Set(self.seal(&key.private_key_der, &signing_key_place(&key.kid))?.into_bytes()),
            created_at: Set(millis(key.created_at)),
            active: Set(key.active),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| taken_or(e, &format!("key id {:?}", key.kid)))?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::CreatedAt)
            .order_by_asc(signing_keys::Column::Kid)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                let sealed = String::from_utf8(row.private_key)
                    .map_err(|_| StoreError::backend(format!("signing key {}: not sealed", row.kid)))?;
                Ok(SigningKey {
                    private_key_der: self.open(&sealed, &signing_key_place(&row.kid))?,
                    kid: row.kid,
                    algorithm: row.algorithm,
                    created_at: from_millis(row.created_at),
                    active: row.active,
                })
            })
            .collect()
    }

    async fn retire_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let exists = signing_keys::Entity::find_by_id(kid).one(&self.db).await.map_err(classify)?.is_some();
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::Active, Expr::value(false))
            .filter(signing_keys::Column::Kid.eq(kid))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(exists)
    }
}
