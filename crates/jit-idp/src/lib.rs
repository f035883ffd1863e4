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
//! ## A login, step by step
//!
//! Build one [`OidcRelyingParty`] per provider and keep it (clones share its
//! cache of the discovery document and key set). A login is two calls:
//! [`begin`](OidcRelyingParty::begin) gives the URL to send the browser to
//! and a [`PendingAuthorization`] to keep on the server;
//! [`finish`](OidcRelyingParty::finish) takes the provider's answer (the
//! query of the request to your redirect URI) and that pending state, and
//! returns a [`VerifiedLogin`] or an [`IdpError`] that says what went wrong.
//!
//! ```no_run
//! use std::time::SystemTime;
//!
//! use jit_idp::{CallbackParams, IdpError, OidcRelyingParty, PendingAuthorization, RelyingPartyConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Once, at start: who the provider is and who we are there. No network yet.
//! let mut config = RelyingPartyConfig::new(
//!     "https://login.example.com",             // the provider's issuer
//!     "my-app",                                // our client id there
//!     "https://app.example.org/oidc/callback", // our redirect URI, registered there
//! );
//! config.client_secret = Some("the client secret the provider gave us".into());
//! config.scopes = vec!["profile".into(), "email".into()]; // `openid` is always added
//! let rp = OidcRelyingParty::new(config)?;
//!
//! // 1. The user clicks "Sign in". `begin` reads the provider's discovery
//! //    document (first use only) and builds the authorization URL with a
//! //    fresh `state`, `nonce` and PKCE challenge; extra parameters such as
//! //    `prompt` or `login_hint` are passed along.
//! let start = rp.begin(&[("prompt", "login")]).await?;
//! // Keep `start.pending` on the server side of this browser's session (it
//! // holds the nonce and the PKCE verifier, so never in a readable cookie);
//! // it is `Serialize`/`Deserialize`.
//! let saved = serde_json::to_string(&start.pending)?;
//! // Then redirect the browser: `303 See Other`, `Location: <start.url>`.
//! println!("Location: {}", start.url);
//!
//! // 2. The provider sends the browser back to the redirect URI with
//! //    `?code=...&state=...` (or `?error=...`). `CallbackParams` is
//! //    `Deserialize`, so a web framework's query extractor fills it (axum:
//! //    `Query<CallbackParams>`); here it is filled by hand.
//! let back = reqwest::Url::parse("https://app.example.org/oidc/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj")?;
//! let mut callback = CallbackParams::default();
//! for (name, value) in back.query_pairs() {
//!     let value = Some(value.into_owned());
//!     match name.as_ref() {
//!         "code" => callback.code = value,
//!         "state" => callback.state = value,
//!         "error" => callback.error = value,
//!         "error_description" => callback.error_description = value,
//!         "iss" => callback.iss = value,
//!         _ => {}
//!     }
//! }
//!
//! // 3. `finish` checks `state` against the session's pending login,
//! //    exchanges the code (with the PKCE verifier), validates the ID token
//! //    at `now`, and fetches userinfo.
//! let pending: PendingAuthorization = serde_json::from_str(&saved)?;
//! match rp.finish(&callback, &pending, SystemTime::now()).await {
//!     Ok(login) => {
//!         // `subject` is stable per provider: key your accounts on (issuer, subject).
//!         println!("{} at {} signed in, email {:?}", login.subject, login.issuer, login.claims.get("email"));
//!     }
//!     // The user cancelled or the provider said no: show it, offer to retry.
//!     Err(IdpError::IdpRefused { error, description }) => {
//!         println!("the provider refused: {error} {}", description.unwrap_or_default());
//!     }
//!     // Anything else (a replayed or forged callback, an invalid ID token, an
//!     // unreachable provider...): every message says what to do.
//!     Err(other) => println!("sign-in failed: {other}"),
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod error;
mod http;
pub mod jwk;
mod oidc;

pub use client::IdpClient;
pub use config::{ClientAuthMethod, RelyingPartyConfig};
pub use error::{IdTokenError, IdpError};
pub use oidc::{AuthorizationStart, CallbackParams, OidcRelyingParty, PendingAuthorization, VerifiedLogin};
