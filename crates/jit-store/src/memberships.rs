//! Local groups and roles and their memberships ([`MembershipStore`]).

use async_trait::async_trait;
use jit_domain::membership::{Grant, Membership, MembershipKind};
use jit_domain::ports::{Collection, ConflictKind, MembershipStore, StoreError};
use jit_domain::user::UserId;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::millis;
use crate::entity::{collections, memberships};
use crate::error::{classify, taken_or};

impl Store {
    async fn member_count(&self, kind: MembershipKind, name: &str) -> Result<u64, StoreError> {
        memberships::Entity::find()
            .filter(memberships::Column::Kind.eq(kind.singular()))
            .filter(memberships::Column::Name.eq(name))
            .count(&self.db)
            .await
            .map_err(classify)
    }

    async fn view(&self, kind: MembershipKind, row: collections::Model) -> Result<Collection, StoreError> {
        let members = self.member_count(kind, &row.name).await?;
        Ok(Collection { name: row.name, description: row.description, members })
    }
}

#[async_trait]
impl MembershipStore for Store {
    async fn create_collection(
        &self,
        kind: MembershipKind,
        name: &str,
        description: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        collections::Entity::insert(collections::ActiveModel {
            kind: Set(kind.singular().to_owned()),
            name: Set(name.to_owned()),
            description: Set(description.to_owned()),
            created_at: Set(millis(now)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| taken_or(e, &format!("the {} name {name:?}", kind.singular())))?;
        Ok(())
    }

    async fn collections(&self, kind: MembershipKind) -> Result<Vec<Collection>, StoreError> {
        let rows = collections::Entity::find()
            .filter(collections::Column::Kind.eq(kind.singular()))
            .order_by_asc(collections::Column::Name)
            .all(&self.db)
            .await
            .map_err(classify)?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.view(kind, row).await?);
        }
        Ok(views)
    }

    async fn collection(&self, kind: MembershipKind, name: &str) -> Result<Option<Collection>, StoreError> {
        let row = collections::Entity::find_by_id((kind.singular().to_owned(), name.to_owned()))
            .one(&self.db)
            .await
            .map_err(classify)?;
        match row {
            Some(row) => Ok(Some(self.view(kind, row).await?)),
            None => Ok(None),
        }
    }

    async fn describe_collection(
        &self,
        kind: MembershipKind,
        name: &str,
        description: &str,
    ) -> Result<bool, StoreError> {
        let updated = collections::Entity::update_many()
            .col_expr(collections::Column::Description, Expr::value(description.to_owned()))
            .filter(collections::Column::Kind.eq(kind.singular()))
            .filter(collections::Column::Name.eq(name))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(updated.rows_affected > 0 || self.collection(kind, name).await?.is_some())
    }

    async fn delete_collection(&self, kind: MembershipKind, name: &str) -> Result<bool, StoreError> {
        let deleted = collections::Entity::delete_by_id((kind.singular().to_owned(), name.to_owned()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected > 0)
    }

    async fn grant_membership(
        &self,
        kind: MembershipKind,
        name: &str,
        user: UserId,
        grant: &Grant,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let inserted = memberships::Entity::insert(memberships::ActiveModel {
            kind: Set(kind.singular().to_owned()),
            name: Set(name.to_owned()),
            user_id: Set(user.0),
            granted_by: Set(String::from(grant.clone())),
            granted_at: Set(millis(now)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(classify);
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict(ConflictKind::Unique) => Ok(false),
            Err(e) if e.is_conflict(ConflictKind::ForeignKey) => {
                Err(StoreError::NotFound(format!("the {} {name:?} or user {user}", kind.singular())))
            }
            Err(other) => Err(other),
        }
    }

    async fn revoke_membership(&self, kind: MembershipKind, name: &str, user: UserId) -> Result<bool, StoreError> {
        let deleted = memberships::Entity::delete_by_id((kind.singular().to_owned(), name.to_owned(), user.0))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected > 0)
    }

    async fn all_memberships(&self, user: UserId) -> Result<Vec<(MembershipKind, Membership)>, StoreError> {
        let rows = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(user.0))
            .order_by_asc(memberships::Column::Kind)
            .order_by_asc(memberships::Column::Name)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                let kind = match row.kind.as_str() {
                    "group" => MembershipKind::Group,
                    "role" => MembershipKind::Role,
                    other => return Err(StoreError::backend(format!("membership kind {other:?}"))),
                };
                let granted_by = Grant::try_from(row.granted_by)
                    .map_err(|e| StoreError::backend(format!("membership of {:?}: {e}", row.name)))?;
                Ok((kind, Membership { name: row.name, granted_by }))
            })
            .collect()
    }

    async fn memberships(&self, kind: MembershipKind, user: UserId) -> Result<Vec<Membership>, StoreError> {
        let rows = memberships::Entity::find()
            .filter(memberships::Column::Kind.eq(kind.singular()))
            .filter(memberships::Column::UserId.eq(user.0))
            .order_by_asc(memberships::Column::Name)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                let granted_by = Grant::try_from(row.granted_by)
                    .map_err(|e| StoreError::backend(format!("membership of {:?}: {e}", row.name)))?;
                Ok(Membership { name: row.name, granted_by })
            })
            .collect()
    }
}
