//! The ports: traits that storage (`jit-store`) and, later, IdP clients
//! implement. The rules call them; they never know which database is behind.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use crate::application::Application;
use crate::attribute::{AttributeName, Attributes};
use crate::audit::{AuditEvent, AuditFilter};
use crate::connection::{Connection, ConnectionName};
use crate::error::ConfigError;
use crate::membership::{Grant, Membership, MembershipKind};
use crate::mfa::{Attempt, LockoutPolicy, TotpRecord, TotpSecret};
use crate::provisioning::{Decision, LookupKey, Lookups};
use crate::schema::{AttributeDefinition, AttributeSchema};
use crate::user::{FederatedIdentity, LocalUser, Subject, UserId, Username};

/// A storage failure, as the rules need to tell them apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write lost a race with a concurrent one (a unique constraint, a
    /// deadlock, a busy database). Deciding again on fresh data resolves it.
    #[error("concurrent update ({kind:?}): {message}")]
    Conflict {
        /// What collided.
        kind: ConflictKind,
        /// What the database or the store said.
        message: String,
    },
    /// A value that must be unique is already taken.
    #[error("{0} is already taken")]
    Taken(String),
    /// The record does not exist (any more).
    #[error("{0} not found")]
    NotFound(String),
    /// The record is still referred to (a connection an application's
    /// sign-in flow uses): the message says by whom.
    #[error("{0}")]
    InUse(String),
    /// An attribute cannot be made unique: users already share values.
    #[error(
        "attribute {attribute:?} cannot be made unique: {count} value(s) are held by more than one user (for example {})",
        examples.join(", ")
    )]
    Collisions {
        /// The attribute.
        attribute: String,
        /// How many values are shared.
        count: u64,
        /// A few of them.
        examples: Vec<String>,
    },
    /// Stored or given data breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The database failed or cannot be reached, or stored data cannot be
    /// read.
    #[error("storage failure: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The error underneath (the database driver's, the decoder's, ...).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// What kind of collision a [`StoreError::Conflict`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// A unique index fired: another write holds the value.
    Unique,
    /// A foreign key fired: a row referred to is gone, or a row still
    /// referred to was to be deleted.
    ForeignKey,
    /// The database rolled the transaction back (deadlock, serialization
    /// failure, busy): the same write may simply be tried again.
    Transient,
    /// What the write depended on changed since it was read.
    Changed,
}

impl StoreError {
    /// A backend failure described by `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend { message: message.into(), source: None }
    }

    /// A backend failure caused by `source`, described by `message`.
    pub fn backend_from(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend { message: message.into(), source: Some(Box::new(source)) }
    }

    /// A conflict of `kind`.
    pub fn conflict(kind: ConflictKind, message: impl Into<String>) -> Self {
        Self::Conflict { kind, message: message.into() }
    }

    /// Whether this is a conflict of `kind`.
    pub fn is_conflict(&self, kind: ConflictKind) -> bool {
        matches!(self, Self::Conflict { kind: k, .. } if *k == kind)
    }
}

/// Where an attribute's value came from, and when it last changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provenance {
    /// `admin` (the admin API) or `connection:<name>` (a sign-in).
    pub source: String,
    /// When the value last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub changed_at: OffsetDateTime,
}

/// A federated identity associated with a local user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FederatedLink {
    /// The connection.
    pub connection: ConnectionName,
    /// The IdP's subject.
    pub subject: Subject,
    /// First sign-in through it.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Latest sign-in through it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// What [`crate::provisioning::decide`] reads from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvisioningFacts {
    /// The user the identity is associated with, if any.
    pub associated: Option<LocalUser>,
    /// The users found for each lookup key.
    pub lookups: Lookups,
}

/// Provisioning: read what [`crate::provisioning::decide`] needs, and apply
/// its decision atomically.
#[async_trait]
pub trait ProvisioningStore: Send + Sync {
    /// Everything a decision reads, from one consistent snapshot: the
    /// associated user and the users holding each looked-up value. (Reads
    /// from different moments could mix "before" and "after" a concurrent
    /// sign-in and refuse where a retry would have succeeded.)
    async fn facts(&self, identity: &FederatedIdentity, keys: &[LookupKey]) -> Result<ProvisioningFacts, StoreError>;

    /// Applies `decision` in one transaction together with its audit event,
    /// and returns the signed-in user (none for a refusal or pass-through).
    /// A write that loses a race fails with [`StoreError::Conflict`] and
    /// leaves nothing behind.
    async fn apply(
        &self,
        identity: &FederatedIdentity,
        decision: &Decision,
        now: OffsetDateTime,
    ) -> Result<Option<LocalUser>, StoreError>;
}

/// A local user to create through the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLocalUser {
    /// Login name.
    pub username: Username,
    /// Profile attributes.
    pub attributes: Attributes,
    /// The password's PHC-format hash, if the user may sign in locally.
    pub password_hash: Option<String>,
    /// Whether the administrator vouches for the email (see
    /// [`LocalUser::email_verified`]).
    pub email_verified: bool,
}

/// Local users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; [`StoreError::Taken`] if the username or a unique
    /// attribute value belongs to another user.
    async fn create_user(&self, user: NewLocalUser, now: OffsetDateTime) -> Result<LocalUser, StoreError>;
    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<LocalUser>, StoreError>;
    /// Where each of a user's attributes came from and when it last
    /// changed (attributes stored before this was recorded have none).
    async fn provenance(&self, id: UserId) -> Result<BTreeMap<String, Provenance>, StoreError>;
    /// Replaces a user's attributes (checked against the schema) and
    /// whether the email is verified: a value another user holds uniquely
    /// is [`StoreError::Taken`], and nothing changes.
    async fn set_attributes(
        &self,
        id: UserId,
        attributes: &Attributes,
        email_verified: bool,
        now: OffsetDateTime,
    ) -> Result<LocalUser, StoreError>;
    /// A user by username (case-insensitive).
    async fn user_by_username(&self, username: &str) -> Result<Option<LocalUser>, StoreError>;
    /// Users whose attribute `name` has `value` (normalised as the schema says).
    async fn find_users(&self, name: &AttributeName, value: &str, limit: u64) -> Result<Vec<LocalUser>, StoreError>;
    /// Marks the user's email verified, if it is still `address` (compared
    /// normalised): the user proved control of it (a completed Email OTP).
    /// False, and nothing changes, if the user is gone, the email changed,
    /// or another account holds the address verified already.
    async fn verify_email(&self, id: UserId, address: &str) -> Result<bool, StoreError>;
    /// Counts an Email OTP code about to be sent to the user, across all
    /// sign-ins, as [`LockoutPolicy::attempt`] says (a send is an attempt):
    /// not [`Attempt::allowed`] means do not send. A code accepted clears
    /// the count ([`UserStore::clear_email_otp_sends`]).
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn record_email_otp_send(
        &self,
        id: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError>;
    /// Clears the Email OTP send count (a code was accepted).
    async fn clear_email_otp_sends(&self, id: UserId) -> Result<(), StoreError>;
    /// The password hash of a user, if set.
    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError>;
    /// The federated identities associated with a user.
    async fn federated_links(&self, id: UserId) -> Result<Vec<FederatedLink>, StoreError>;
    /// Deletes a user with its attributes and associations; false if absent.
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;
}

/// Connections.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Adds a connection; [`StoreError::Taken`] if the name exists.
    async fn create_connection(&self, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Replaces a connection; [`StoreError::NotFound`] if absent.
    async fn update_connection(&self, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError>;
    /// A connection by name.
    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError>;
    /// All connections, by name.
    async fn connections(&self) -> Result<Vec<Connection>, StoreError>;
    /// How many local users each connection is linked to (connections
    /// without any are absent).
    async fn linked_users(&self) -> Result<BTreeMap<ConnectionName, u64>, StoreError>;
    /// Deletes a connection and its associations; false if absent;
    /// [`StoreError::InUse`] while an application's sign-in flow uses it
    /// (refused by the database, so an application saved at the same
    /// moment cannot start using a deleted connection).
    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError>;
}

/// The attribute schema, kept in the store so that every instance sees the
/// same one.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// The schema now: the standard attributes and every declared one. A
    /// change made on another instance is seen within
    /// [`SCHEMA_REFRESH`](crate::schema::SCHEMA_REFRESH).
    async fn attribute_schema(&self) -> Result<std::sync::Arc<AttributeSchema>, StoreError>;
    /// Declares an attribute (true) or redefines a declared one (false).
    /// Making an attribute unique while two users share a value is
    /// refused ([`StoreError::Collisions`]); from then on the database's
    /// unique index holds it. A changed normalisation re-indexes the
    /// existing values.
    async fn put_attribute(&self, definition: &AttributeDefinition, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// Deletes a declared attribute and every value users hold of it; false
    /// if it was not declared.
    async fn delete_attribute(&self, name: &AttributeName) -> Result<bool, StoreError>;
}

/// A local group or role.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Collection {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// How many users are members.
    pub members: u64,
}

/// Local groups and roles, and who is a member by whose grant.
#[async_trait]
pub trait MembershipStore: Send + Sync {
    /// Creates a group or role; [`StoreError::Taken`] if it exists.
    async fn create_collection(
        &self,
        kind: MembershipKind,
        name: &str,
        description: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// All groups (or roles), by name.
    async fn collections(&self, kind: MembershipKind) -> Result<Vec<Collection>, StoreError>;
    /// One group or role.
    async fn collection(&self, kind: MembershipKind, name: &str) -> Result<Option<Collection>, StoreError>;
    /// Changes a description; false if absent.
    async fn describe_collection(
        &self,
        kind: MembershipKind,
        name: &str,
        description: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes a group or role and its memberships; false if absent.
    async fn delete_collection(&self, kind: MembershipKind, name: &str) -> Result<bool, StoreError>;
    /// Makes `user` a member by `grant` (true), or changes nothing if they
    /// are one already (false, the first grant kept);
    /// [`StoreError::NotFound`] if the group or the user does not exist.
    async fn grant_membership(
        &self,
        kind: MembershipKind,
        name: &str,
        user: UserId,
        grant: &Grant,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Ends a membership, whoever granted it; false if there was none.
    async fn revoke_membership(&self, kind: MembershipKind, name: &str, user: UserId) -> Result<bool, StoreError>;
    /// A user's memberships, by name.
    async fn memberships(&self, kind: MembershipKind, user: UserId) -> Result<Vec<Membership>, StoreError>;
    /// A user's groups and then roles, each by name (one query where the
    /// store can).
    async fn all_memberships(&self, user: UserId) -> Result<Vec<(MembershipKind, Membership)>, StoreError> {
        let mut all = Vec::new();
        for kind in [MembershipKind::Group, MembershipKind::Role] {
            all.extend(self.memberships(kind, user).await?.into_iter().map(|membership| (kind, membership)));
        }
        Ok(all)
    }
}

/// Applications.
#[async_trait]
pub trait ApplicationStore: Send + Sync {
    /// Adds an application; [`StoreError::Taken`] if the name or client id exists.
    async fn create_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Replaces an application (found by client id).
    async fn update_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError>;
    /// An application by client id.
    async fn application(&self, client_id: &str) -> Result<Option<Application>, StoreError>;
    /// All applications, by name.
    async fn applications(&self) -> Result<Vec<Application>, StoreError>;
    /// Deletes an application; false if absent.
    async fn delete_application(&self, client_id: &str) -> Result<bool, StoreError>;
}

/// The kinds of short-lived records that let any instance continue what
/// another started. Each kind is owned by one crate, which alone reads and
/// writes it: sign-ins and pending federations by `jit-flow`, authorization
/// grants and access tokens by `jit-provider`. Keys are the SHA-256 of a
/// bearer secret, never the secret itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A sign-in in progress, under the hash of its id.
    SignIn,
    /// A redirect to an external IdP waiting for its callback, under the
    /// hash of its `state`.
    PendingFederation,
    /// What an authorization code stands for, under the hash of its client
    /// and the code; kept after the exchange (marked exchanged) until the
    /// access token it gave expires, so that a reused code revokes it.
    AuthorizationGrant,
    /// The claims behind an access token, under its `jti`.
    AccessToken,
    /// A console sign-in on its way through jit's own sign-in, under the
    /// hash of its `state`.
    ConsoleLogin,
    /// A signed-in console administrator, under the hash of the session
    /// cookie.
    ConsoleSession,
    /// The one-time link that creates the first administrator, under the
    /// hash of its token.
    SetupLink,
    /// An administrator's trial sign-in through a connection (the
    /// console's Test tab), waiting for the IdP's callback, under the hash
    /// of its `state`.
    ConsoleTrial,
}

impl RecordKind {
    /// Every kind.
    pub const ALL: [RecordKind; 8] = [
        RecordKind::SignIn,
        RecordKind::PendingFederation,
        RecordKind::AuthorizationGrant,
        RecordKind::AccessToken,
        RecordKind::ConsoleLogin,
        RecordKind::ConsoleSession,
        RecordKind::SetupLink,
        RecordKind::ConsoleTrial,
    ];

    /// The name stored with each record.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::SignIn => "sign_in",
            RecordKind::PendingFederation => "pending_federation",
            RecordKind::AuthorizationGrant => "authorization_grant",
            RecordKind::AccessToken => "access_token",
            RecordKind::ConsoleLogin => "console_login",
            RecordKind::ConsoleSession => "console_session",
            RecordKind::SetupLink => "setup_link",
            RecordKind::ConsoleTrial => "console_trial",
        }
    }
}

/// A record as it was read, with its version: a compare-and-swap names the
/// version it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// 1 when it was inserted, one more at each replacement.
    pub version: i64,
}

/// Short-lived records ([`RecordKind`]), sealed at rest, that survive
/// across requests and server instances. An expired record is absent for
/// every call, whether or not it was purged yet.
#[async_trait]
pub trait ExpiringRecordStore: Send + Sync {
    /// Stores a new record, at version 1, until `expires_at`;
    /// [`StoreError::Conflict`] if one exists under that kind and key.
    async fn insert_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: &Value,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The record, unless absent or expired at `now`.
    async fn record(
        &self,
        kind: RecordKind,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned<Value>>, StoreError>;
    /// Replaces the record with `value` (its version goes up by one) only
    /// if it is still at `version` and not expired at `now`: true if it was
    /// replaced. Of concurrent replacements of one version, on any number
    /// of instances, one wins; this is what keeps attempt counters from
    /// being outrun by parallel requests.
    async fn replace_record(
        &self,
        kind: RecordKind,
        key: &str,
        version: i64,
        value: &Value,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Removes and returns the record (once only: a concurrent second take
    /// gets `None`), unless absent or expired.
    async fn take_record(&self, kind: RecordKind, key: &str, now: OffsetDateTime) -> Result<Option<Value>, StoreError>;
    /// Deletes the record only if it is still at `version` and not expired
    /// at `now`: true if it was deleted. Ending a sign-in is a
    /// compare-and-delete, so that it cannot overtake an attempt counted
    /// meanwhile by another request.
    async fn delete_record_if(
        &self,
        kind: RecordKind,
        key: &str,
        version: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Deletes the records of every kind expired at `now`; returns how many.
    async fn purge_expired_records(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// A signing key of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// Key id (`kid`).
    pub kid: String,
    /// JOSE algorithm (`ES256`, `RS256`, ...).
    pub algorithm: String,
    /// The private key, PKCS#8 DER.
    pub private_key_der: Vec<u8>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Whether new tokens are signed with it (retired keys stay published
    /// until tokens signed with them expire).
    pub active: bool,
}

/// Our token signing keys.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Adds a key.
    async fn add_signing_key(&self, key: &SigningKey) -> Result<(), StoreError>;
    /// All keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
    /// Marks a key as retired; false if absent.
    async fn retire_signing_key(&self, kid: &str) -> Result<bool, StoreError>;
}

/// The provisioning audit trail (written by [`ProvisioningStore::apply`]).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Events matching `filter`, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Users' TOTP enrolments. The secret is a protected system attribute:
/// it lives beside the user (deleted with it), no sync touches it, and
/// nothing here returns it except [`TotpStore::totp`], for verification.
///
/// Verifying a code, in this order: count the attempt with
/// [`TotpStore::record_totp_attempt`] and refuse without looking at the
/// code unless it is `allowed` (so a burst of guesses cannot outrun the
/// lock); compute which step the code matches (current step ±1); on a
/// match call [`TotpStore::accept_totp_step`] and sign in only if it
/// returns `true` (`false`: that step or a later one was already used —
/// treat it as a wrong code).
#[async_trait]
pub trait TotpStore: Send + Sync {
    /// The user's enrolment, if any.
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError>;

    /// Saves a confirmed enrolment: `used_step` is the step of the code
    /// that confirmed it, which is thereby used. Fails with
    /// [`StoreError::Taken`] if the user is already enrolled (the existing
    /// enrolment is kept) and [`StoreError::NotFound`] if the user does not
    /// exist.
    async fn enrol_totp(
        &self,
        user: UserId,
        secret: &TotpSecret,
        used_step: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Accepts a code of time step `step`, atomically: true (and the
    /// failure count and lock cleared) only if `step` is later than every
    /// step accepted before (the lock was applied by
    /// [`TotpStore::record_totp_attempt`] before the code was checked). Of
    /// concurrent calls with the same step, on any number of server
    /// instances, exactly one gets true: a code is never accepted twice.
    /// False also when the user has no enrolment.
    async fn accept_totp_step(&self, user: UserId, step: i64, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Counts one attempt before its code is checked, atomically
    /// (concurrent attempts all count), as [`LockoutPolicy::attempt`] says:
    /// refused unchecked while locked, locked with backoff past the free
    /// failures, one checked attempt after each lock. A right code clears
    /// the count ([`TotpStore::accept_totp_step`]).
    /// [`StoreError::NotFound`] if the user has no enrolment.
    async fn record_totp_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError>;

    /// Removes the user's enrolment (an administrator's reset: the user
    /// enrols again at the next sign-in that asks for TOTP); false if there
    /// was none.
    async fn reset_totp(&self, user: UserId) -> Result<bool, StoreError>;
}

/// The per-account lockout of local password sign-in: a failure counter
/// beside the user (deleted with it) that limits guessing across sign-ins,
/// however many an attacker starts.
///
/// Checking a password, in this order: call
/// [`PasswordLockoutStore::record_password_attempt`] *before* verifying
/// (every attempt counts, so a burst of guesses cannot outrun the lock); if
/// the attempt is not [`Attempt::allowed`], refuse whatever the password;
/// otherwise verify, and on success call
/// [`PasswordLockoutStore::clear_password_failures`].
#[async_trait]
pub trait PasswordLockoutStore: Send + Sync {
    /// Counts a password attempt for `user` as [`LockoutPolicy::attempt`]
    /// says, atomically: concurrent attempts all count, and of a burst no
    /// more are allowed than the policy allows one by one. While the
    /// account is locked at `now` nothing is counted.
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn record_password_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError>;

    /// Clears the count and the lock (after a right password, or an
    /// administrator's unlock). Nothing happens if the user does not exist.
    async fn clear_password_failures(&self, user: UserId) -> Result<(), StoreError>;

    /// Until when the user's password sign-in is locked, if it is at `now`.
    async fn password_locked_until(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError>;
}
