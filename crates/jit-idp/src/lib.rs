//! # jit-idp
//!
//! Federated protocol clients for jit. Today: an OpenID Connect relying party
//! ([`OidcRelyingParty`]) doing discovery, the authorization code flow with
//! PKCE, ID token validation and userinfo, built on the `openidconnect` crate
//! with our own `reqwest` client. There is room for OAuth2-userinfo and SAML 2.0
//! connectors. It returns plain data ([`VerifiedLogin`]) and knows nothing about
//! local users.
//!
//! What is checked on every login: `state` (constant time), the provider's
//! error answer, the RFC 9207 `iss` callback parameter when sent, PKCE (S256),
//! the ID token's signature against the provider's JWKS (fetched again once
//! when the token names an unknown key), its `alg` against an allow-list
//! (`none` never; `HS*` only when listed and keyed with the client secret),
//! `iss`, `aud`, `azp` (required with several audiences), `exp` and `iat` with
//! 60 seconds of clock skew, `nonce`, `at_hash`, and that userinfo's `sub` is
//! the ID token's.
//!
//! Time is a parameter: [`OidcRelyingParty::finish`] takes `now`.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use jit_idp::{CallbackParams, OidcRelyingParty, RelyingPartyConfig};
//!
//! # async fn example() -> Result<(), jit_idp::IdpError> {
//! let mut config = RelyingPartyConfig::new(
//!     "https://login.example.com",
//!     "jit",
//!     "https://jit.example.org/federation/corp/callback",
//! );
//! config.client_secret = Some("client secret".into());
//! let rp = OidcRelyingParty::new(config)?;
//!
//! // 1. Send the browser to the provider; keep `start.pending` in the flow state.
//! let start = rp.begin(&[("prompt", "login")]).await?;
//! println!("redirect to {}", start.url);
//!
//! // 2. The provider redirects back with `?code=...&state=...`.
//! let callback = CallbackParams {
//!     code: Some("code from the query".into()),
//!     state: Some(start.pending.state.clone()),
//!     ..CallbackParams::default()
//! };
//! let login = rp.finish(&callback, &start.pending, SystemTime::now()).await?;
//! println!("{} at {} with {:?}", login.subject, login.issuer, login.claims.get("email"));
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod http;
mod oidc;

pub use config::{ClientAuthMethod, RelyingPartyConfig};
pub use error::{IdTokenError, IdpError};
pub use oidc::{AuthorizationStart, CallbackParams, OidcRelyingParty, PendingAuthorization, VerifiedLogin};
