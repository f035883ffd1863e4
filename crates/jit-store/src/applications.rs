//! Applications, stored as the domain's JSON.

use async_trait::async_trait;
use jit_domain::application::Application;
use jit_domain::ports::{ApplicationStore, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{from_json, millis, to_json};
use crate::entity::applications;
use crate::error::{classify, taken_or};

#[async_trait]
impl ApplicationStore for Store {
    async fn create_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError> {
        applications::Entity::insert(applications::ActiveModel {
            client_id: Set(application.client_id.clone()),
            name: Set(application.name.clone()),
            config: Set(to_json(application)?),
            created_at: Set(millis(now)),
            updated_at: Set(millis(now)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| taken_or(e, "the application name or client id"))?;
        Ok(())
    }

    async fn update_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError> {
        applications::Entity::update_many()
            .col_expr(applications::Column::Name, Expr::value(application.name.clone()))
            .col_expr(applications::Column::Config, Expr::value(to_json(application)?))
            .col_expr(applications::Column::UpdatedAt, Expr::value(millis(now)))
            .filter(applications::Column::ClientId.eq(application.client_id.as_str()))
            .exec(&self.db)
            .await
            .map_err(|e| taken_or(e, "the application name"))?;
        match self.application(&application.client_id).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("application {:?}", application.client_id))),
        }
    }

    async fn application(&self, client_id: &str) -> Result<Option<Application>, StoreError> {
        let row = applications::Entity::find_by_id(client_id).one(&self.db).await.map_err(classify)?;
        row.map(|row| from_json(&row.config, "application")).transpose()
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        let rows = applications::Entity::find()
            .order_by_asc(applications::Column::Name)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.iter().map(|row| from_json(&row.config, "application")).collect()
    }

    async fn delete_application(&self, client_id: &str) -> Result<bool, StoreError> {
        let result = applications::Entity::delete_by_id(client_id).exec(&self.db).await.map_err(classify)?;
        Ok(result.rows_affected > 0)
    }
}
