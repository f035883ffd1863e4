//! # jit-provider
//!
//! jit as an OpenID provider for applications, below HTTP: the rules of an
//! authorization request ([`request`]), the authorization grants that codes
//! stand for ([`grant`]: born when a sign-in completes, exchanged once),
//! client authentication and the token exchange ([`token`]), userinfo
//! ([`userinfo`]), the claims released per scope ([`claims`]) and our
//! signing keys ([`keys`]). `jit-server`'s handlers parse a request, make
//! one call here, and render the answer; the current time is a parameter.
//!
//! It owns two kinds of expiring records, [`RecordKind::AuthorizationGrant`]
//! and [`RecordKind::AccessToken`]. Refresh tokens, revocation and logout
//! will live here too, as more record kinds and calls of [`Provider`].
//!
//! [`RecordKind::AuthorizationGrant`]: jit_domain::ports::RecordKind::AuthorizationGrant
//! [`RecordKind::AccessToken`]: jit_domain::ports::RecordKind::AccessToken

pub mod claims;
pub mod error;
pub mod grant;
pub mod keys;
pub mod request;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use jit_domain::ports::{ApplicationStore, ExpiringRecordStore, MembershipStore, UserStore};
use time::Duration;

pub use error::{ErrorCode, OAuthError};
pub use grant::{AuthorizationContext, AuthorizationGrant, SignedInSubject, issue_code};
pub use keys::KeyRing;
pub use request::{AuthorizationRequest, AuthorizeError, ValidatedAuthorization};
pub use token::{ClientCredentials, CodeExchange, TokenResponse};

/// The access token type (RFC 9068), so an ID token can never pass as one.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Everything the provider needs from storage.
pub trait ProviderStore: ApplicationStore + ExpiringRecordStore + MembershipStore + UserStore {}
impl<T: ApplicationStore + ExpiringRecordStore + MembershipStore + UserStore + ?Sized> ProviderStore for T {}

/// Lifetimes and our name.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    /// Our issuer (the public URL, no trailing slash).
    pub issuer: String,
    /// ID token lifetime.
    pub id_token_ttl: Duration,
    /// Access token lifetime (and how long an exchanged code is remembered).
    pub access_token_ttl: Duration,
}

impl ProviderSettings {
    /// Defaults for `issuer`: 5-minute ID tokens, 10-minute access tokens.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            id_token_ttl: Duration::minutes(5),
            access_token_ttl: Duration::minutes(10),
        }
    }
}

/// The OpenID provider over a store and our keys.
pub struct Provider<S: ?Sized> {
    store: Arc<S>,
    keys: Arc<KeyRing>,
    settings: ProviderSettings,
}

impl<S: ProviderStore + ?Sized> Provider<S> {
    /// A provider.
    pub fn new(store: Arc<S>, keys: Arc<KeyRing>, settings: ProviderSettings) -> Self {
        Self { store, keys, settings }
    }

    /// Its settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// Our signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Parses and checks an authorization request (`/oauth2/authorize`'s
    /// query): the sign-in may start with the result.
    pub async fn authorization(&self, query: &str) -> Result<ValidatedAuthorization, AuthorizeError> {
        let request = AuthorizationRequest::parse(query)?;
        let client_id = request.client_id()?;
        let application = self.store.application(client_id).await.map_err(AuthorizeError::Store)?;
        request.validate(application)
    }
}
