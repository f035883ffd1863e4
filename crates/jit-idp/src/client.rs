//! The seam every federated protocol client fits: send the user to the IdP
//! ([`IdpClient::begin`]), check what comes back ([`IdpClient::finish`]).
//! OpenID Connect implements it today (SAML and OAuth2 profiles will); the
//! sign-in engine sees only this trait, so its rules can be driven in
//! process with a scripted IdP.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::IdpError;
use crate::oidc::{AuthorizationStart, CallbackParams, OidcRelyingParty, PendingAuthorization, VerifiedLogin};

/// A client of one external IdP.
#[async_trait]
pub trait IdpClient: Send + Sync {
    /// Where to send the browser, and what [`IdpClient::finish`] needs back
    /// (the caller keeps it, bound to the step that sent the user away).
    async fn begin(&self) -> Result<AuthorizationStart, IdpError>;

    /// Checks the IdP's answer against what `begin` kept; validated claims.
    async fn finish(
        &self,
        callback: &CallbackParams,
        pending: &PendingAuthorization,
        now: SystemTime,
    ) -> Result<VerifiedLogin, IdpError>;
}

#[async_trait]
impl IdpClient for OidcRelyingParty {
    async fn begin(&self) -> Result<AuthorizationStart, IdpError> {
        OidcRelyingParty::begin(self, &[]).await
    }

    async fn finish(
        &self,
        callback: &CallbackParams,
        pending: &PendingAuthorization,
        now: SystemTime,
    ) -> Result<VerifiedLogin, IdpError> {
        OidcRelyingParty::finish(self, callback, pending, now).await
    }
}
