//! Local users and their attributes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use jit_domain::attribute::{AttributeName, AttributeValue, Attributes};
use jit_domain::mfa::{Attempt, LockoutPolicy};
use jit_domain::ports::{ConflictKind, FederatedLink, NewLocalUser, Provenance, StoreError, UserStore};
use jit_domain::schema::{AttributeSchema, EMAIL, USERNAME, is_standard};
use jit_domain::user::{LocalUser, UserId, Username};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::convert::{from_millis, lookup_hash, millis};
use crate::entity::{attribute_definitions, federated_identities, user_attributes, users};
use crate::error::{classify, retry_transient, taken_or};

/// Loads users with their attributes, in the order of `ids` (missing ones
/// are skipped).
pub(crate) async fn load_users<C: ConnectionTrait>(
    db: &C,
    schema: &AttributeSchema,
    ids: &[Uuid],
) -> Result<Vec<LocalUser>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = users::Entity::find().filter(users::Column::Id.is_in(ids.to_vec())).all(db).await.map_err(classify)?;
    let values = user_attributes::Entity::find()
        .filter(user_attributes::Column::UserId.is_in(ids.to_vec()))
        .order_by_asc(user_attributes::Column::Name)
        .order_by_asc(user_attributes::Column::Position)
        .all(db)
        .await
        .map_err(classify)?;
    let mut attributes: BTreeMap<Uuid, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for value in values {
        attributes.entry(value.user_id).or_default().entry(value.name).or_default().push(value.value);
    }
    let mut by_id: BTreeMap<Uuid, LocalUser> = BTreeMap::new();
    for row in rows {
        let stored = attributes.remove(&row.id).unwrap_or_default();
        by_id.insert(row.id, to_local_user(schema, row, stored)?);
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn to_local_user(
    schema: &AttributeSchema,
    row: users::Model,
    stored: BTreeMap<String, Vec<String>>,
) -> Result<LocalUser, StoreError> {
    let mut attributes = Attributes::new();
    for (name, mut values) in stored {
        let multi = schema.get(&name).map_or(values.len() > 1, |d| d.multi_valued);
        let value = match (multi, values.pop()) {
            (false, Some(single)) if values.is_empty() => AttributeValue::Single(single),
            (_, Some(last)) => {
                values.push(last);
                AttributeValue::Multi(values)
            }
            (_, None) => continue,
        };
        attributes.insert(AttributeName::new(name)?, value);
    }
    Ok(LocalUser {
        id: UserId(row.id),
        username: Username::new(row.username)?,
        attributes,
        email_verified: row.email_verified,
    })
}

/// Ids of users whose attribute `name` normalises to `normalized`; the one
/// holding it uniquely (a verified email), if any, first, so that a limit
/// never hides it behind accounts with the same unverified address.
pub(crate) async fn user_ids_by_value<C: ConnectionTrait>(
    db: &C,
    name: &str,
    normalized: &str,
    limit: u64,
) -> Result<Vec<Uuid>, StoreError> {
    if name == USERNAME {
        let rows = users::Entity::find()
            .filter(users::Column::UsernameNormalized.eq(normalized))
            .limit(limit)
            .all(db)
            .await
            .map_err(classify)?;
        return Ok(rows.into_iter().map(|row| row.id).collect());
    }
    // No DISTINCT (PostgreSQL refuses it beside an ORDER BY expression
    // outside the select list): a user with the value twice in a
    // multi-valued attribute is listed once, here.
    let rows = user_attributes::Entity::find()
        .select_only()
        .column(user_attributes::Column::UserId)
        .filter(user_attributes::Column::Name.eq(name))
        .filter(user_attributes::Column::LookupHash.eq(lookup_hash(normalized)))
        .order_by_asc(Expr::col(user_attributes::Column::UniqueHash).is_null())
        .limit(limit)
        .into_tuple::<Uuid>()
        .all(db)
        .await
        .map_err(classify)?;
    let mut seen = std::collections::BTreeSet::new();
    Ok(rows.into_iter().filter(|id| seen.insert(*id)).collect())
}

/// An attribute as stored: its values and their provenance.
struct StoredAttribute {
    values: Vec<String>,
    source: Option<String>,
    changed_at: Option<i64>,
}

/// The source of what the admin API writes.
pub(crate) const ADMIN: &str = "admin";

/// Who writes attributes, and when: an attribute whose values change is
/// recorded as `source`'s at `at`; one that stays keeps its provenance.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Writer<'a> {
    /// `admin` or `connection:<name>`.
    pub source: &'a str,
    /// Now.
    pub at: OffsetDateTime,
}

/// Replaces a user's attributes with `attributes`, and records whether the
/// email is verified. Values the account holds uniquely (see
/// [`AttributeSchema::holds_uniquely`]) collide in the unique index,
/// failing the transaction.
pub(crate) async fn write_attributes<C: ConnectionTrait>(
    db: &C,
    schema: &AttributeSchema,
    user: Uuid,
    attributes: &Attributes,
    email_verified: bool,
    writer: Writer<'_>,
) -> Result<(), StoreError> {
    // The provenance of each attribute as stored: kept where the values
    // stay the same.
    let before = user_attributes::Entity::find()
        .filter(user_attributes::Column::UserId.eq(user))
        .order_by_asc(user_attributes::Column::Position)
        .all(db)
        .await
        .map_err(classify)?;
    let mut previous: BTreeMap<String, StoredAttribute> = BTreeMap::new();
    for row in before {
        let entry = previous.entry(row.name).or_insert_with(|| StoredAttribute {
            values: Vec::new(),
            source: row.source.clone(),
            changed_at: row.changed_at,
        });
        entry.values.push(row.value);
    }
    let provenance = |name: &str| -> (Option<String>, Option<i64>) {
        let values = attributes.get(name).map(|v| v.values().to_vec()).unwrap_or_default();
        match previous.get(name) {
            Some(stored) if stored.values == values => (stored.source.clone(), stored.changed_at),
            _ => (Some(writer.source.to_owned()), Some(millis(writer.at))),
        }
    };
    // Declared attributes are indexed by their definitions as stored now,
    // read under a shared lock: a redefinition (which locks its row) waits
    // for this write and sees it, or this write waits for it and follows
    // it. Either way a value never escapes a uniqueness declared meanwhile.
    let declared: Vec<&str> = attributes.names().map(AttributeName::as_str).filter(|name| !is_standard(name)).collect();
    let locked;
    let schema = if declared.is_empty() {
        schema
    } else {
        let rows = attribute_definitions::Entity::find()
            .filter(attribute_definitions::Column::Name.is_in(declared.iter().copied()))
            .lock_shared()
            .all(db)
            .await
            .map_err(classify)?;
        locked = crate::schema::with_rows(schema, rows)?;
        &locked
    };
    users::Entity::update_many()
        .col_expr(users::Column::EmailVerified, Expr::value(email_verified))
        .filter(users::Column::Id.eq(user))
        .exec(db)
        .await
        .map_err(classify)?;
    user_attributes::Entity::delete_many()
        .filter(user_attributes::Column::UserId.eq(user))
        .exec(db)
        .await
        .map_err(classify)?;
    let rows: Vec<user_attributes::ActiveModel> = schema
        .index(attributes, email_verified)
        .into_iter()
        .map(|entry| {
            let hash = lookup_hash(&entry.normalized);
            let (source, changed_at) = provenance(entry.name.as_str());
            user_attributes::ActiveModel {
                user_id: Set(user),
                name: Set(entry.name.as_str().to_owned()),
                position: Set(i32::try_from(entry.position).unwrap_or(i32::MAX)),
                value: Set(entry.value),
                unique_hash: Set(entry.unique.then(|| hash.clone())),
                lookup_hash: Set(hash),
                source: Set(source),
                changed_at: Set(changed_at),
                ..Default::default()
            }
        })
        .collect();
    if !rows.is_empty() {
        user_attributes::Entity::insert_many(rows).exec(db).await.map_err(classify)?;
    }
    Ok(())
}

/// Inserts a user row and its attributes.
pub(crate) async fn insert_user<C: ConnectionTrait>(
    db: &C,
    schema: &AttributeSchema,
    username: &Username,
    attributes: &Attributes,
    email_verified: bool,
    password_hash: Option<String>,
    writer: Writer<'_>,
) -> Result<LocalUser, StoreError> {
    let now = writer.at;
    let id = Uuid::now_v7();
    users::Entity::insert(users::ActiveModel {
        id: Set(id),
        username: Set(username.as_str().to_owned()),
        username_normalized: Set(username.normalized()),
        password_hash: Set(password_hash),
        created_at: Set(millis(now)),
        updated_at: Set(millis(now)),
        password_failures: Set(0),
        password_locked_until: Set(None),
        email_verified: Set(email_verified),
        email_otp_sends: Set(0),
        email_otp_locked_until: Set(None),
    })
    .exec_without_returning(db)
    .await
    .map_err(classify)?;
    write_attributes(db, schema, id, attributes, email_verified, writer).await?;
    Ok(LocalUser { id: UserId(id), username: username.clone(), attributes: attributes.clone(), email_verified })
}

/// Sets `updated_at` and returns the user's row; fails with
/// [`StoreError::Conflict`] if the user is gone.
pub(crate) async fn touch_user<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    now: OffsetDateTime,
) -> Result<users::Model, StoreError> {
    users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Expr::value(millis(now)))
        .filter(users::Column::Id.eq(user))
        .exec(db)
        .await
        .map_err(classify)?;
    let row = users::Entity::find_by_id(user).one(db).await.map_err(classify)?;
    row.ok_or_else(|| StoreError::conflict(ConflictKind::Changed, format!("user {user} was deleted")))
}

impl Store {
    /// Creates `count` local users named `<prefix><n>`, each with a
    /// verified, unique email `<prefix><n>@seed.example` and a
    /// `given_name`, a thousand per transaction: for benchmarks that
    /// measure provisioning with many existing users (faster than
    /// provisioning them through sign-ins, and the same rows).
    pub async fn seed_users(&self, prefix: &str, count: usize, now: OffsetDateTime) -> Result<(), StoreError> {
        const BATCH: usize = 1000;
        let schema = self.schema().await?;
        let given_name = AttributeName::new("given_name").map_err(StoreError::Invalid)?;
        let email = AttributeName::new("email").map_err(StoreError::Invalid)?;
        for start in (0..count).step_by(BATCH) {
            let tx = self.db.begin().await.map_err(classify)?;
            for n in start..(start + BATCH).min(count) {
                let username = Username::new(format!("{prefix}{n}")).map_err(StoreError::Invalid)?;
                let mut attributes = Attributes::new();
                attributes.insert(email.clone(), AttributeValue::Single(format!("{prefix}{n}@seed.example")));
                attributes.insert(given_name.clone(), AttributeValue::Single("Seed".to_owned()));
                insert_user(&tx, &schema, &username, &attributes, true, None, Writer { source: ADMIN, at: now })
                    .await?;
            }
            tx.commit().await.map_err(classify)?;
        }
        Ok(())
    }

    /// One attempt at creating an administrator's user.
    async fn insert_local_user(&self, user: &NewLocalUser, now: OffsetDateTime) -> Result<LocalUser, StoreError> {
        crate::metrics::transaction(async {
            let schema = self.schema().await?;
            const TAKEN: &str = "the username or a unique attribute value";
            let tx = self.db.begin().await.map_err(classify)?;
            let created = insert_user(
                &tx,
                &schema,
                &user.username,
                &user.attributes,
                user.email_verified,
                user.password_hash.clone(),
                Writer { source: ADMIN, at: now },
            )
            .await
            .map_err(|e| match e {
                e if e.is_conflict(ConflictKind::Unique) => StoreError::Taken(TAKEN.to_owned()),
                other => other,
            })?;
            tx.commit().await.map_err(|e| taken_or(e, TAKEN))?;
            Ok(created)
        })
        .await
    }
}

#[async_trait]
impl UserStore for Store {
    async fn create_user(&self, user: NewLocalUser, now: OffsetDateTime) -> Result<LocalUser, StoreError> {
        let schema = self.schema().await?;
        schema.check(&user.attributes)?;
        retry_transient(|| self.insert_local_user(&user, now)).await
    }

    async fn user(&self, id: UserId) -> Result<Option<LocalUser>, StoreError> {
        let schema = self.schema().await?;
        Ok(load_users(&self.db, &schema, &[id.0]).await?.pop())
    }

    async fn set_attributes(
        &self,
        id: UserId,
        attributes: &Attributes,
        email_verified: bool,
        now: OffsetDateTime,
    ) -> Result<LocalUser, StoreError> {
        let schema = self.schema().await?;
        schema.check(attributes)?;
        const TAKEN: &str = "a unique attribute value (another user holds it)";
        retry_transient(|| {
            crate::metrics::transaction(async {
                let tx = self.db.begin().await.map_err(classify)?;
                touch_user(&tx, id.0, now).await.map_err(|e| match e {
                    e if e.is_conflict(ConflictKind::Changed) => StoreError::NotFound(format!("user {id}")),
                    other => other,
                })?;
                let writer = Writer { source: ADMIN, at: now };
                write_attributes(&tx, &schema, id.0, attributes, email_verified, writer).await.map_err(
                    |e| match e {
                        e if e.is_conflict(ConflictKind::Unique) => StoreError::Taken(TAKEN.to_owned()),
                        other => other,
                    },
                )?;
                let user = load_users(&tx, &schema, &[id.0]).await?.pop();
                tx.commit().await.map_err(|e| taken_or(e, TAKEN))?;
                user.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
            })
        })
        .await
    }

    async fn provenance(&self, id: UserId) -> Result<BTreeMap<String, Provenance>, StoreError> {
        let rows = user_attributes::Entity::find()
            .filter(user_attributes::Column::UserId.eq(id.0))
            .all(&self.db)
            .await
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let (source, at) = (row.source?, row.changed_at?);
                Some((row.name, Provenance { source, changed_at: from_millis(at) }))
            })
            .collect())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<LocalUser>, StoreError> {
        let schema = self.schema().await?;
        let ids = user_ids_by_value(&self.db, USERNAME, &schema.normalize(USERNAME, username), 1).await?;
        Ok(load_users(&self.db, &schema, &ids).await?.pop())
    }

    async fn find_users(&self, name: &AttributeName, value: &str, limit: u64) -> Result<Vec<LocalUser>, StoreError> {
        let schema = self.schema().await?;
        let normalized = schema.normalize(name.as_str(), value);
        let ids = user_ids_by_value(&self.db, name.as_str(), &normalized, limit).await?;
        let users = load_users(&self.db, &schema, &ids).await?;
        // The hash index finds candidates; the comparison decides.
        Ok(users
            .into_iter()
            .filter(|u| {
                name.as_str() == USERNAME && u.username.normalized() == normalized
                    || u.attributes
                        .get(name.as_str())
                        .is_some_and(|v| v.values().iter().any(|v| schema.normalize(name.as_str(), v) == normalized))
            })
            .collect())
    }

    async fn verify_email(&self, id: UserId, address: &str) -> Result<bool, StoreError> {
        let schema = self.schema().await?;
        let outcome = retry_transient(|| {
            crate::metrics::transaction(async {
                let tx = self.db.begin().await.map_err(classify)?;
                let Some(user) = load_users(&tx, &schema, &[id.0]).await?.pop() else { return Ok(false) };
                let normalized = |v: &str| schema.normalize(EMAIL, v);
                let current = user.attributes.get(EMAIL).and_then(|v| v.single()).map(normalized);
                if current != Some(normalized(address)) {
                    return Ok(false);
                }
                if !user.email_verified {
                    // The values stay: their provenance does too.
                    let writer = Writer { source: ADMIN, at: OffsetDateTime::UNIX_EPOCH };
                    write_attributes(&tx, &schema, id.0, &user.attributes, true, writer).await?;
                }
                tx.commit().await.map_err(classify)?;
                Ok(true)
            })
        })
        .await;
        match outcome {
            // Another account holds the address verified.
            Err(e) if e.is_conflict(ConflictKind::Unique) => Ok(false),
            other => other,
        }
    }

    async fn record_email_otp_send(
        &self,
        id: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        crate::password_lockout::EMAIL_OTP_SENDS.record(&self.db, id.0, now, policy).await
    }

    async fn clear_email_otp_sends(&self, id: UserId) -> Result<(), StoreError> {
        retry_transient(|| async {
            users::Entity::update_many()
                .col_expr(users::Column::EmailOtpSends, Expr::value(0))
                .col_expr(users::Column::EmailOtpLockedUntil, Expr::value(Option::<i64>::None))
                .filter(users::Column::Id.eq(id.0))
                .exec(&self.db)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        let row = users::Entity::find_by_id(id.0).one(&self.db).await.map_err(classify)?;
        Ok(row.and_then(|row| row.password_hash))
    }

    async fn federated_links(&self, id: UserId) -> Result<Vec<FederatedLink>, StoreError> {
        let rows = federated_identities::Entity::find()
            .filter(federated_identities::Column::UserId.eq(id.0))
            .order_by_asc(federated_identities::Column::Connection)
            .order_by_asc(federated_identities::Column::Subject)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                Ok(FederatedLink {
                    connection: row.connection.try_into()?,
                    subject: row.subject.try_into()?,
                    first_seen: from_millis(row.first_seen),
                    last_seen: from_millis(row.last_seen),
                })
            })
            .collect()
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        retry_transient(|| async {
            let result = users::Entity::delete_by_id(id.0).exec(&self.db).await.map_err(classify)?;
            Ok(result.rows_affected > 0)
        })
        .await
    }
}
