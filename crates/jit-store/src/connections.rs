//! Connections, stored as the domain's JSON.

use std::collections::BTreeMap;

use async_trait::async_trait;
use jit_domain::connection::{Connection, ConnectionName};
use jit_domain::ports::{ConflictKind, ConnectionStore, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{from_json, millis, to_json};
use crate::entity::{application_connections, connections, federated_identities};
use crate::error::{classify, taken_or};
use crate::secrets::connection_place;

impl Store {
    /// A connection's settings (its client secret among them), sealed.
    fn seal_connection(&self, connection: &Connection) -> Result<String, StoreError> {
        self.seal(to_json(connection)?.as_bytes(), &connection_place(connection.name.as_str()))
    }

    fn open_connection(&self, row: &connections::Model) -> Result<Connection, StoreError> {
        let clear = self.open(&row.config, &connection_place(&row.name))?;
        from_json(&String::from_utf8_lossy(&clear), "connection")
    }
}

#[async_trait]
impl ConnectionStore for Store {
    async fn create_connection(&self, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError> {
        connections::Entity::insert(connections::ActiveModel {
            name: Set(connection.name.as_str().to_owned()),
            config: Set(self.seal_connection(connection)?),
            created_at: Set(millis(now)),
            updated_at: Set(millis(now)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| taken_or(e, &format!("connection name {:?}", connection.name.as_str())))?;
        Ok(())
    }

    async fn update_connection(&self, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError> {
        let name = connection.name.as_str();
        connections::Entity::update_many()
            .col_expr(connections::Column::Config, Expr::value(self.seal_connection(connection)?))
            .col_expr(connections::Column::UpdatedAt, Expr::value(millis(now)))
            .filter(connections::Column::Name.eq(name))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        // MySQL reports rows changed, not rows matched: check existence apart.
        match self.connection(&connection.name).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("connection {name:?}"))),
        }
    }

    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError> {
        let row = connections::Entity::find_by_id(name.as_str()).one(&self.db).await.map_err(classify)?;
        row.map(|row| self.open_connection(&row)).transpose()
    }

    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let rows = connections::Entity::find()
            .order_by_asc(connections::Column::Name)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.iter().map(|row| self.open_connection(row)).collect()
    }

    async fn linked_users(&self) -> Result<BTreeMap<ConnectionName, u64>, StoreError> {
        let counts: Vec<(String, i64)> = federated_identities::Entity::find()
            .select_only()
            .column(federated_identities::Column::Connection)
            .column_as(federated_identities::Column::UserId.count(), "users")
            .group_by(federated_identities::Column::Connection)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(classify)?;
        Ok(counts
            .into_iter()
            .filter_map(|(name, users)| Some((ConnectionName::new(&name).ok()?, u64::try_from(users).ok()?)))
            .collect())
    }

    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError> {
        match connections::Entity::delete_by_id(name.as_str()).exec(&self.db).await.map_err(classify) {
            Ok(result) => Ok(result.rows_affected > 0),
            // application_connections restricts the delete: say who uses it.
            Err(error) if error.is_conflict(ConflictKind::ForeignKey) => {
                let users = application_connections::Entity::find()
                    .filter(application_connections::Column::Connection.eq(name.as_str()))
                    .order_by_asc(application_connections::Column::ClientId)
                    .all(&self.db)
                    .await
                    .map_err(classify)?;
                let users: Vec<String> = users.into_iter().map(|row| row.client_id).collect();
                Err(StoreError::InUse(format!(
                    "connection {:?} is used by the sign-in flow of application(s) {}: remove it from those flows first",
                    name.as_str(),
                    users.join(", ")
                )))
            }
            Err(other) => Err(other),
        }
    }
}
