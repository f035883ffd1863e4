//! Authorization grants: what a code stands for, from the moment a sign-in
//! completes to its exchange at the token endpoint, and after it, until the
//! access token it gave expires (so that a reused code revokes it).
//!
//! A grant is stored under the hash of its client and its code
//! ([`RecordKind::AuthorizationGrant`]): the code itself is the client's
//! bearer secret and never lands in the database, and another client
//! presenting the code finds nothing.

use std::collections::BTreeMap;

use jit_domain::attribute::Attributes;
use jit_domain::connection::ConnectionName;
use jit_domain::ports::{ExpiringRecordStore, RecordKind, StoreError, Versioned};
use jit_domain::user::{Subject, UserId};
use jit_primitives::secret::{random_token, stored_form};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The application's validated authorization request, carried through the
/// sign-in and into the authorization code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationContext {
    /// The client.
    pub client_id: String,
    /// The redirect URI (already matched exactly against the registration).
    pub redirect_uri: String,
    /// The application's `state`, returned as is.
    pub state: Option<String>,
    /// The application's `nonce`, put in the ID token.
    pub nonce: Option<String>,
    /// Granted scopes (space-separated).
    pub scope: String,
    /// PKCE challenge (S256).
    pub code_challenge: Option<String>,
    /// The authorization request's query parameters as received (first
    /// value of each): what scripts see as `context.request.params`.
    #[serde(default)]
    pub request_params: BTreeMap<String, String>,
}

/// Who a sign-in identified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignedInSubject {
    /// A local account (signed in locally, or provisioned, linked or synced
    /// from a federated sign-in).
    Local {
        /// The account.
        user: UserId,
    },
    /// A federated user of a JIT-disabled connection: no local account; the
    /// mapped attributes go to the application as they are.
    PassThrough {
        /// The connection.
        connection: ConnectionName,
        /// The IdP's subject.
        subject: Subject,
        /// The mapped attributes.
        attributes: Attributes,
        /// Whether the IdP verified the mapped `email` (or the connection
        /// is trusted for email).
        #[serde(default)]
        email_verified: bool,
    },
}

/// What an authorization code stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationGrant {
    /// The application's request.
    pub authorization: AuthorizationContext,
    /// Who signed in.
    pub subject: SignedInSubject,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub auth_time: OffsetDateTime,
    /// The authenticators used (`amr`-like: `LOCAL`, connection names,
    /// `TOTP`, `EMAIL_OTP`).
    pub methods: Vec<String>,
}

/// A grant as stored: waiting for its exchange, or exchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub(crate) enum StoredGrant {
    /// Issued; the code has not been exchanged.
    Pending {
        /// The grant.
        grant: Box<AuthorizationGrant>,
    },
    /// Exchanged for the access token `jti`; any further use of the code
    /// revokes that token.
    Exchanged {
        /// The access token the exchange gave.
        jti: String,
    },
}

/// Where the grant of `client_id`'s `code` is stored.
pub(crate) fn grant_key(client_id: &str, code: &str) -> String {
    stored_form(&format!("{client_id}\n{code}"))
}

/// Issues a code for `grant`, valid until `expires_at`: the sign-in is over
/// and the browser takes the code to the application.
pub async fn issue_code<S: ExpiringRecordStore + ?Sized>(
    store: &S,
    grant: &AuthorizationGrant,
    expires_at: OffsetDateTime,
) -> Result<String, IssueError> {
    let code = random_token()?;
    let stored = serde_json::to_value(StoredGrant::Pending { grant: Box::new(grant.clone()) })
        .map_err(|e| IssueError::Store(StoreError::backend_from(format!("grant: {e}"), e)))?;
    let key = grant_key(&grant.authorization.client_id, &code);
    store.insert_record(RecordKind::AuthorizationGrant, &key, &stored, expires_at).await?;
    Ok(code)
}

/// Why a code could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No randomness.
    #[error(transparent)]
    Random(#[from] jit_primitives::PrimitiveError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The grant under `key`, if any, with its version.
pub(crate) async fn load<S: ExpiringRecordStore + ?Sized>(
    store: &S,
    key: &str,
    now: OffsetDateTime,
) -> Result<Option<Versioned<StoredGrant>>, StoreError> {
    let Some(record) = store.record(RecordKind::AuthorizationGrant, key, now).await? else { return Ok(None) };
    let value = serde_json::from_value(record.value).map_err(|e| StoreError::backend_from(format!("grant: {e}"), e))?;
    Ok(Some(Versioned { value, version: record.version }))
}
