//! Which IdP client serves a connection ([`IdpDirectory`]), and the one
//! jit runs with ([`IdpRegistry`]): one OpenID Connect client per
//! connection, built from its settings and kept (with its discovery and
//! JWKS caches) until the settings change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jit_domain::connection::{Connection, ConnectionName, OidcSettings, TokenAuthMethod};
use jit_idp::{ClientAuthMethod, IdpClient, OidcRelyingParty, RelyingPartyConfig};

use crate::error::SignInError;

/// Timeouts and cache lifetimes for outbound calls to IdPs.
#[derive(Clone, Copy, Debug)]
pub struct IdpSettings {
    /// Every call to an IdP.
    pub timeout: Duration,
    /// How long discovery metadata is trusted before refetching.
    pub metadata_ttl: Duration,
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), metadata_ttl: Duration::from_secs(3600) }
    }
}

/// The clients, by connection.
#[derive(Debug, Default)]
pub struct IdpRegistry {
    settings: IdpSettings,
    clients: Mutex<HashMap<ConnectionName, (OidcSettings, OidcRelyingParty)>>,
}

/// Gives the engine the client of a connection. [`IdpRegistry`] is the
/// real one; tests of the engine's rules plug in a scripted IdP.
pub trait IdpDirectory: Send + Sync {
    /// The client for `connection`, whose callback is under `public_url`.
    fn client(&self, connection: &Connection, public_url: &str) -> Result<Arc<dyn IdpClient>, SignInError>;
}

impl IdpDirectory for IdpRegistry {
    fn client(&self, connection: &Connection, public_url: &str) -> Result<Arc<dyn IdpClient>, SignInError> {
        Ok(Arc::new(self.oidc_client(connection, public_url)?))
    }
}

impl IdpRegistry {
    /// An empty registry.
    pub fn new(settings: IdpSettings) -> Self {
        Self { settings, clients: Mutex::default() }
    }

    /// The OpenID Connect client for `connection`, whose callback is under
    /// `public_url`.
    pub fn oidc_client(&self, connection: &Connection, public_url: &str) -> Result<OidcRelyingParty, SignInError> {
        let mut clients = self.clients.lock().map_err(|_| SignInError::Internal("IdP registry poisoned".into()))?;
        if let Some((settings, client)) = clients.get(&connection.name)
            && *settings == connection.oidc
        {
            return Ok(client.clone());
        }
        let config = RelyingPartyConfig {
            issuer: connection.oidc.issuer.clone(),
            client_id: connection.oidc.client_id.clone(),
            client_secret: connection.oidc.client_secret.clone(),
            auth_method: match connection.oidc.token_auth_method {
                TokenAuthMethod::ClientSecretBasic => ClientAuthMethod::ClientSecretBasic,
                TokenAuthMethod::ClientSecretPost => ClientAuthMethod::ClientSecretPost,
            },
            scopes: connection.oidc.scopes.clone(),
            redirect_uri: callback_url(public_url, &connection.name),
            allowed_algorithms: if connection.oidc.allowed_algorithms.is_empty() {
                RelyingPartyConfig::default_algorithms()
            } else {
                connection.oidc.allowed_algorithms.clone()
            },
            fetch_userinfo: connection.oidc.fetch_userinfo,
            timeout: self.settings.timeout,
            metadata_ttl: self.settings.metadata_ttl,
        };
        let client = OidcRelyingParty::new(config)
            .map_err(|source| SignInError::Idp { connection: connection.name.to_string(), source })?;
        clients.insert(connection.name.clone(), (connection.oidc.clone(), client.clone()));
        Ok(client)
    }
}

/// The route of an IdP's answer, with `{connection}` for the connection's
/// name: the router serves it, and [`callback_url`] is what we register at
/// IdPs.
pub const CALLBACK_ROUTE: &str = "/federation/{connection}/callback";

/// `<public_url>/federation/<connection>/callback`.
pub fn callback_url(public_url: &str, connection: &ConnectionName) -> String {
    let path = CALLBACK_ROUTE.replace("{connection}", connection.as_str());
    format!("{}{path}", public_url.trim_end_matches('/'))
}
