//! Settings of one OpenID Connect relying party (one connection).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: HTTP Basic authentication (the OpenID Connect default).
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Settings of one relying party: who the provider is, who we are, and how
/// strictly its answers are checked.
#[derive(Clone, PartialEq, Eq)]
pub struct RelyingPartyConfig {
    /// The provider's issuer identifier, e.g. `https://login.example.com`. Discovery reads
    /// `<issuer>/.well-known/openid-configuration`, and its `issuer` must be exactly this.
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint.
    pub auth_method: ClientAuthMethod,
    /// Scopes to request; `openid` is always added.
    pub scopes: Vec<String>,
    /// Our callback URL, registered at the provider.
    pub redirect_uri: String,
    /// JWS algorithms accepted for ID tokens (see [`RelyingPartyConfig::default_algorithms`]).
    /// `none` is always rejected; `HS256`/`HS384`/`HS512` are accepted only when listed here
    /// and a client secret is set (the secret is the MAC key).
    pub allowed_algorithms: Vec<String>,
    /// Whether to call the userinfo endpoint after the token exchange and merge its claims.
    pub fetch_userinfo: bool,
    /// Timeout of every outbound call (discovery, JWKS, token, userinfo).
    pub timeout: Duration,
    /// How long discovery metadata and the key set are reused before being fetched again.
    pub metadata_ttl: Duration,
}

impl RelyingPartyConfig {
    /// A configuration with the defaults: `client_secret_basic`, scopes `profile email`, the
    /// default algorithms, userinfo fetched, a 10 s timeout and a one hour metadata cache.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            auth_method: ClientAuthMethod::default(),
            scopes: vec!["profile".into(), "email".into()],
            redirect_uri: redirect_uri.into(),
            allowed_algorithms: Self::default_algorithms(),
            fetch_userinfo: true,
            timeout: Duration::from_secs(10),
            metadata_ttl: Duration::from_secs(3600),
        }
    }

    /// The algorithms accepted when none are configured: `RS256`, `ES256`, `PS256`, `EdDSA`.
    pub fn default_algorithms() -> Vec<String> {
        ["RS256", "ES256", "PS256", "EdDSA"].into_iter().map(String::from).collect()
    }
}

impl std::fmt::Debug for RelyingPartyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingPartyConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("auth_method", &self.auth_method)
            .field("scopes", &self.scopes)
            .field("redirect_uri", &self.redirect_uri)
            .field("allowed_algorithms", &self.allowed_algorithms)
            .field("fetch_userinfo", &self.fetch_userinfo)
            .field("timeout", &self.timeout)
            .field("metadata_ttl", &self.metadata_ttl)
            .finish()
    }
}
