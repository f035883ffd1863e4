//! The attribute schema ([`SchemaStore`]): the standard attributes (and
//! those the code declares) plus the operator's, read from
//! `attribute_definitions` and cached per instance for
//! [`SCHEMA_REFRESH`].

use std::sync::{Arc, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use jit_domain::attribute::{AttributeName, Normalization};
use jit_domain::ports::{SchemaStore, StoreError};
use jit_domain::schema::{AttributeDefinition, AttributeSchema, SCHEMA_REFRESH, check_declaration};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use time::OffsetDateTime;

use crate::Store;
use crate::convert::{lookup_hash, millis};
use crate::entity::{attribute_definitions, user_attributes};
use crate::error::{classify, retry_transient};

/// How many shared values a refused unique declaration names.
const COLLISION_EXAMPLES: usize = 3;

/// The schema as last read, and when.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache(RwLock<Option<(Instant, Arc<AttributeSchema>)>>);

impl SchemaCache {
    fn fresh(&self) -> Option<Arc<AttributeSchema>> {
        let cached = self.0.read().ok()?;
        cached.as_ref().filter(|(at, _)| at.elapsed() < SCHEMA_REFRESH).map(|(_, schema)| schema.clone())
    }

    fn set(&self, schema: Option<Arc<AttributeSchema>>) {
        if let Ok(mut cached) = self.0.write() {
            *cached = schema.map(|schema| (Instant::now(), schema));
        }
    }
}

fn normalization_name(normalization: Normalization) -> &'static str {
    match normalization {
        Normalization::Exact => "exact",
        Normalization::CaseInsensitive => "case_insensitive",
        Normalization::Email => "email",
    }
}

fn definition_of(row: attribute_definitions::Model) -> Result<AttributeDefinition, StoreError> {
    let normalization = match row.normalization.as_str() {
        "exact" => Normalization::Exact,
        "case_insensitive" => Normalization::CaseInsensitive,
        "email" => Normalization::Email,
        other => return Err(StoreError::backend(format!("attribute {:?}: unknown normalization {other:?}", row.name))),
    };
    let name = AttributeName::new(&row.name)
        .map_err(|e| StoreError::backend(format!("stored attribute name {:?}: {e}", row.name)))?;
    Ok(AttributeDefinition {
        name,
        unique: row.is_unique,
        multi_valued: row.multi_valued,
        normalization,
        description: row.description,
        sensitive: row.is_sensitive,
    })
}

/// `schema` with the definitions of `rows` as stored (a write's view of
/// the attributes it writes, read under lock).
pub(crate) fn with_rows(
    schema: &AttributeSchema,
    rows: Vec<attribute_definitions::Model>,
) -> Result<AttributeSchema, StoreError> {
    let mut schema = schema.clone();
    for row in rows {
        schema = schema.declare(definition_of(row)?)?;
    }
    Ok(schema)
}

impl Store {
    /// The schema now (see [`SchemaStore::attribute_schema`]).
    pub async fn schema(&self) -> Result<Arc<AttributeSchema>, StoreError> {
        if let Some(schema) = self.schema_cache.fresh() {
            return Ok(schema);
        }
        let schema = Arc::new(self.read_schema(&self.db).await?);
        self.schema_cache.set(Some(schema.clone()));
        Ok(schema)
    }

    /// The base schema with the declared attributes read from `db`.
    async fn read_schema<C: ConnectionTrait>(&self, db: &C) -> Result<AttributeSchema, StoreError> {
        let rows = attribute_definitions::Entity::find()
            .order_by_asc(attribute_definitions::Column::Name)
            .all(db)
            .await
            .map_err(classify)?;
        let mut schema = (*self.base_schema).clone();
        for row in rows {
            schema = schema.declare(definition_of(row)?)?;
        }
        Ok(schema)
    }

    async fn put_attribute_once(
        &self,
        definition: &AttributeDefinition,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::metrics::transaction(async {
            let tx = self.db.begin().await.map_err(classify)?;
            // The row's exclusive lock first: writes of this attribute in
            // flight finish before the values are checked and re-indexed, and
            // later ones read the new definition (see `write_attributes`).
            let existing = attribute_definitions::Entity::find_by_id(definition.name.as_str())
                .lock_exclusive()
                .one(&tx)
                .await
                .map_err(classify)?;
            let before = self.read_schema(&tx).await?;
            let previous = before.get(definition.name.as_str()).cloned();
            // Values are re-indexed when they compare or must be kept unique
            // differently from now on.
            let reindex = previous
                .as_ref()
                .is_none_or(|p| p.normalization != definition.normalization || p.unique != definition.unique);
            if reindex {
                reindex_values(&tx, definition).await?;
            }
            let row = attribute_definitions::ActiveModel {
                name: Set(definition.name.as_str().to_owned()),
                is_unique: Set(definition.unique),
                multi_valued: Set(definition.multi_valued),
                normalization: Set(normalization_name(definition.normalization).to_owned()),
                description: Set(definition.description.clone()),
                is_sensitive: Set(definition.sensitive),
                created_at: Set(existing.as_ref().map_or(millis(now), |row| row.created_at)),
                updated_at: Set(millis(now)),
            };
            let created = existing.is_none();
            if created {
                attribute_definitions::Entity::insert(row).exec_without_returning(&tx).await.map_err(classify)?;
            } else {
                attribute_definitions::Entity::update(row).exec(&tx).await.map_err(classify)?;
            }
            tx.commit().await.map_err(classify)?;
            self.schema_cache.set(None);
            Ok(created)
        })
        .await
    }
}

/// Recomputes the lookup hashes of every value of `definition`'s attribute
/// under its normalisation, and its unique hashes if it is unique: refused
/// with [`StoreError::Collisions`] when two users share a value.
async fn reindex_values(tx: &DatabaseTransaction, definition: &AttributeDefinition) -> Result<(), StoreError> {
    let name = definition.name.as_str();
    let rows = user_attributes::Entity::find()
        .filter(user_attributes::Column::Name.eq(name))
        .order_by_asc(user_attributes::Column::Id)
        .all(tx)
        .await
        .map_err(classify)?;
    if definition.unique {
        let mut holders: std::collections::BTreeMap<String, (String, std::collections::BTreeSet<uuid::Uuid>)> =
            Default::default();
        for row in &rows {
            let normalized = definition.normalization.apply(&row.value);
            holders.entry(normalized).or_insert_with(|| (row.value.clone(), Default::default())).1.insert(row.user_id);
        }
        let shared: Vec<&String> =
            holders.values().filter(|(_, users)| users.len() > 1).map(|(value, _)| value).collect();
        if !shared.is_empty() {
            return Err(StoreError::Collisions {
                attribute: name.to_owned(),
                count: shared.len() as u64,
                examples: shared.iter().take(COLLISION_EXAMPLES).map(|v| format!("{v:?}")).collect(),
            });
        }
    }
    // Clear first, so that no row meets another's old unique hash.
    user_attributes::Entity::update_many()
        .col_expr(user_attributes::Column::UniqueHash, Expr::value(Option::<String>::None))
        .filter(user_attributes::Column::Name.eq(name))
        .exec(tx)
        .await
        .map_err(classify)?;
    for row in rows {
        let hash = lookup_hash(&definition.normalization.apply(&row.value));
        user_attributes::Entity::update_many()
            .col_expr(user_attributes::Column::LookupHash, Expr::value(hash.clone()))
            .col_expr(user_attributes::Column::UniqueHash, Expr::value(definition.unique.then_some(hash)))
            .filter(user_attributes::Column::Id.eq(row.id))
            .exec(tx)
            .await
            .map_err(classify)?;
    }
    Ok(())
}

#[async_trait]
impl SchemaStore for Store {
    async fn attribute_schema(&self) -> Result<Arc<AttributeSchema>, StoreError> {
        self.schema().await
    }

    async fn put_attribute(&self, definition: &AttributeDefinition, now: OffsetDateTime) -> Result<bool, StoreError> {
        check_declaration(definition)?;
        retry_transient(|| self.put_attribute_once(definition, now)).await
    }

    async fn delete_attribute(&self, name: &AttributeName) -> Result<bool, StoreError> {
        let deleted = retry_transient(|| {
            crate::metrics::transaction(async {
                let tx = self.db.begin().await.map_err(classify)?;
                let deleted =
                    attribute_definitions::Entity::delete_by_id(name.as_str()).exec(&tx).await.map_err(classify)?;
                if deleted.rows_affected == 0 {
                    return Ok(false);
                }
                user_attributes::Entity::delete_many()
                    .filter(user_attributes::Column::Name.eq(name.as_str()))
                    .exec(&tx)
                    .await
                    .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                Ok(true)
            })
        })
        .await?;
        self.schema_cache.set(None);
        Ok(deleted)
    }
}
