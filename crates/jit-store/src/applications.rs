//! Applications, stored as the domain's JSON.

use async_trait::async_trait;
use jit_domain::application::Application;
use jit_domain::flow::StepOption;
use jit_domain::ports::{ApplicationStore, ConflictKind, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{from_json, millis, to_json};
use crate::entity::{application_connections, applications};
use crate::error::{classify, retry_transient, taken_or};

#[async_trait]
impl ApplicationStore for Store {
    async fn create_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError> {
        let config = to_json(application)?;
        retry_transient(|| {
            crate::metrics::transaction(async {
                let tx = self.db.begin().await.map_err(classify)?;
                applications::Entity::insert(applications::ActiveModel {
                    client_id: Set(application.client_id.clone()),
                    name: Set(application.name.clone()),
                    config: Set(config.clone()),
                    created_at: Set(millis(now)),
                    updated_at: Set(millis(now)),
                })
                .exec_without_returning(&tx)
                .await
                .map_err(|e| taken_or(e, "the application name or client id"))?;
                link_connections(&tx, application).await?;
                tx.commit().await.map_err(classify)
            })
        })
        .await
    }

    async fn update_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError> {
        let config = to_json(application)?;
        retry_transient(|| {
            crate::metrics::transaction(async {
                let tx = self.db.begin().await.map_err(classify)?;
                let updated = applications::Entity::update_many()
                    .col_expr(applications::Column::Name, Expr::value(application.name.clone()))
                    .col_expr(applications::Column::Config, Expr::value(config.clone()))
                    .col_expr(applications::Column::UpdatedAt, Expr::value(millis(now)))
                    .filter(applications::Column::ClientId.eq(application.client_id.as_str()))
                    .exec(&tx)
                    .await
                    .map_err(|e| taken_or(e, "the application name"))?;
                if updated.rows_affected == 0
                    && applications::Entity::find_by_id(application.client_id.as_str())
                        .one(&tx)
                        .await
                        .map_err(classify)?
                        .is_none()
                {
                    return Err(StoreError::NotFound(format!("application {:?}", application.client_id)));
                }
                application_connections::Entity::delete_many()
                    .filter(application_connections::Column::ClientId.eq(application.client_id.as_str()))
                    .exec(&tx)
                    .await
                    .map_err(classify)?;
                link_connections(&tx, application).await?;
                tx.commit().await.map_err(classify)
            })
        })
        .await
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

/// Records which connections `application`'s sign-in flow uses, inside the
/// transaction that saves it. A connection that does not exist (deleted
/// meanwhile) fails the foreign key: the save is rolled back.
async fn link_connections(tx: &DatabaseTransaction, application: &Application) -> Result<(), StoreError> {
    let mut names: Vec<&str> = application
        .sign_in
        .steps
        .iter()
        .flat_map(|step| &step.options)
        .filter_map(|option| match option {
            StepOption::Connection(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        application_connections::Entity::insert(application_connections::ActiveModel {
            client_id: Set(application.client_id.clone()),
            connection: Set(name.to_owned()),
        })
        .exec_without_returning(tx)
        .await
        .map_err(|error| match classify(error) {
            e if e.is_conflict(ConflictKind::ForeignKey) => StoreError::NotFound(format!("connection {name:?}")),
            other => other,
        })?;
    }
    Ok(())
}
