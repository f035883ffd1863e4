//! # jit-testkit
//!
//! Test helpers for jit. [`TestIdp`] is an in-process OpenID provider on
//! `127.0.0.1:<random port>` that plays an external identity provider in
//! tests: discovery, JWKS, an authorization endpoint without UI (it redirects
//! straight back with a code for the configured user), a token endpoint
//! (client authentication, PKCE S256, single-use codes) and userinfo.
//!
//! Many distinct sign-ins without a [`TestIdp::set_user`] between them (load
//! tests, races): [`TestIdp::queue_users`] hands one queued user to each
//! authorization, in order, before falling back to the configured user.
//!
//! [`Misbehaviour`] knobs, settable while it runs, make it answer wrongly in one
//! specific way each, and [`Counters`] tell how often each endpoint was called.
//!
//! ```no_run
//! # async fn example() -> Result<(), jit_testkit::TestIdpError> {
//! use jit_testkit::{Misbehaviour, TestIdp, TestIdpConfig};
//!
//! let idp = TestIdp::start(TestIdpConfig {
//!     redirect_uri: "http://127.0.0.1:8080/federation/corp/callback".into(),
//!     ..TestIdpConfig::default()
//! })
//! .await?;
//! idp.set_user("alice", serde_json::json!({ "email": "alice@example.com", "email_verified": true }));
//! idp.set_misbehaviour(Misbehaviour::WrongAudience);
//! println!("issuer {}, discovery fetched {} times", idp.issuer(), idp.counters().discovery);
//! # Ok(())
//! # }
//! ```
//!
//! For tests only: keys live in memory, time is the system clock, nothing is persisted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinHandle;

pub mod authorize;
pub mod harness;
mod keys;
pub mod scratch;
mod server;

use keys::SigningKey;

/// How the test provider is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestIdpConfig {
    /// The only client id it knows.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// The only redirect URI it redirects to.
    pub redirect_uri: String,
    /// How the client must authenticate at the token endpoint.
    pub auth_method: ClientAuth,
    /// The algorithm of its signing keys.
    pub algorithm: KeyAlgorithm,
}

impl Default for TestIdpConfig {
    fn default() -> Self {
        Self {
            client_id: "jit-test-client".into(),
            client_secret: "jit-test-secret".into(),
            redirect_uri: "http://127.0.0.1/callback".into(),
            auth_method: ClientAuth::ClientSecretBasic,
            algorithm: KeyAlgorithm::Es256,
        }
    }
}

/// Token endpoint client authentication that the test provider requires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic, id and secret form-urlencoded first (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Algorithm of the test provider's signing keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256 (fast to generate).
    #[default]
    Es256,
    /// RSA 2048 PKCS#1 v1.5 with SHA-256.
    Rs256,
}

/// One way of answering wrongly. Applies to every login until changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Behave.
    #[default]
    None,
    /// `/authorize` redirects back with `error=access_denied` instead of a code.
    AuthorizeDenied,
    /// The ID token's `iss` is another issuer.
    WrongIssuer,
    /// The ID token's `aud` is another client.
    WrongAudience,
    /// The ID token expired ten minutes ago.
    Expired,
    /// The ID token's `nonce` is not the one of the authorization request.
    WrongNonce,
    /// The ID token is signed by a key that is not published, under the current key's `kid`.
    BadSignature,
    /// The ID token is unsigned (`alg: none`).
    AlgNone,
    /// The ID token is HS256-signed with the current public key as the HMAC secret.
    HmacWithPublicKey,
    /// The ID token's `aud` is `[client_id, "another-client"]`, without `azp`.
    MultipleAudiencesWithoutAzp,
    /// The ID token's `aud` is `[client_id, "another-client"]` with `azp` = client_id (valid).
    MultipleAudiencesWithAzp,
    /// The ID token's `azp` is another client.
    WrongAzp,
    /// The ID token's `at_hash` is not the hash of the access token sent with it.
    WrongAccessTokenHash,
    /// At the next token request the provider rotates: it creates a new key, publishes it in
    /// the JWKS and signs with it, so a relying party that cached the JWKS sees an unknown
    /// `kid` until it fetches the JWKS again.
    UnknownKidThenRotate,
    /// The ID token is signed by a key whose `kid` is never published.
    UnknownKid,
    /// `/userinfo` answers with another `sub`.
    UserinfoDifferentSub,
    /// `/token` answers `400 invalid_grant`.
    TokenEndpointError,
    /// Every endpoint waits this long before answering.
    Slow(Duration),
}

/// How many times each endpoint was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `GET /.well-known/openid-configuration`.
    pub discovery: u64,
    /// `GET /jwks`.
    pub jwks: u64,
    /// `GET /authorize`.
    pub authorize: u64,
    /// `POST /token`.
    pub token: u64,
    /// `GET /userinfo`.
    pub userinfo: u64,
}

/// Why the test provider could not start or sign.
#[derive(Debug, thiserror::Error)]
pub enum TestIdpError {
    /// Binding or reading the loopback socket failed.
    #[error("the test identity provider cannot listen on 127.0.0.1: {0}")]
    Io(#[from] std::io::Error),
    /// Key generation or signing failed.
    #[error("the test identity provider's keys failed: {0}")]
    Key(String),
}

/// The signed-in user at the test provider.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) subject: String,
    pub(crate) claims: Map<String, Value>,
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) user: User,
    pub(crate) nonce: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) redirect_uri: String,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) config: TestIdpConfig,
    pub(crate) issuer: String,
    pub(crate) state: Mutex<State>,
}

/// The mutable part, behind one mutex that is never held across an `.await`.
pub(crate) struct State {
    pub(crate) user: User,
    /// Users for the next authorizations, before `user`.
    pub(crate) queued: VecDeque<User>,
    pub(crate) misbehaviour: Misbehaviour,
    /// Keys in the JWKS, newest last.
    pub(crate) published: Vec<Arc<SigningKey>>,
    /// The key ID tokens are signed with.
    pub(crate) current: Arc<SigningKey>,
    /// A key never published, for bad signatures and unknown kids.
    pub(crate) rogue: Arc<SigningKey>,
    pub(crate) rotated: bool,
    pub(crate) codes: std::collections::HashMap<String, Grant>,
    pub(crate) access_tokens: std::collections::HashMap<String, User>,
    pub(crate) counters: Counters,
    /// Claims `/userinfo` answers differently from the ID token (`null`
    /// removes a claim there).
    pub(crate) userinfo_overrides: Map<String, Value>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running test OpenID provider. Stops when dropped.
pub struct TestIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestIdp {
    /// Generates keys and serves on `127.0.0.1:<random port>`, on the current tokio runtime.
    /// The initial user is `alice` with an email, `email_verified` and a name.
    pub async fn start(config: TestIdpConfig) -> Result<Self, TestIdpError> {
        let current = Arc::new(SigningKey::generate(config.algorithm)?);
        let rogue = Arc::new(SigningKey::generate(config.algorithm)?);
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let user = User {
            subject: "alice".into(),
            claims: object(serde_json::json!({
                "email": "alice@example.com",
                "email_verified": true,
                "name": "Alice Example",
            })),
        };
        let shared = Arc::new(Shared {
            config,
            issuer: format!("http://{addr}"),
            state: Mutex::new(State {
                user,
                queued: VecDeque::new(),
                misbehaviour: Misbehaviour::None,
                published: vec![current.clone()],
                current,
                rogue,
                rotated: false,
                codes: Default::default(),
                access_tokens: Default::default(),
                counters: Counters::default(),
                userinfo_overrides: Map::new(),
            }),
        });
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            // Ends when the listener fails or the task is aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, addr, task })
    }

    /// The issuer identifier, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The socket it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its configuration.
    pub fn config(&self) -> &TestIdpConfig {
        &self.shared.config
    }

    /// Who signs in at the next `/authorize`: `subject` with `claims` (a JSON object; anything
    /// else counts as no claims). `iss`, `sub`, `aud`, `exp`, `iat`, `nonce` in `claims` are
    /// overwritten in the ID token.
    pub fn set_user(&self, subject: impl Into<String>, claims: Value) {
        self.shared.lock().user = User { subject: subject.into(), claims: object(claims) };
    }

    /// Queues users, each `(subject, claims)` as in [`TestIdp::set_user`]: every `/authorize`
    /// that issues a code takes the first queued user (one each, in order, whatever the
    /// concurrency); when none is queued, the user of `set_user` signs in, as before. An
    /// authorization answered with an error takes none.
    pub fn queue_users<S: Into<String>>(&self, users: impl IntoIterator<Item = (S, Value)>) {
        let users = users.into_iter().map(|(subject, claims)| User { subject: subject.into(), claims: object(claims) });
        self.shared.lock().queued.extend(users);
    }

    /// Empties the queue of [`TestIdp::queue_users`]; returns how many users were still waiting.
    pub fn clear_queued_users(&self) -> usize {
        let mut state = self.shared.lock();
        let waiting = state.queued.len();
        state.queued.clear();
        waiting
    }

    /// Makes `/userinfo` answer `claims` (a JSON object) on top of the
    /// user's claims: an `email` other than the ID token's, a string
    /// `email_verified`, ... A `null` value removes the claim from userinfo.
    /// An empty object makes userinfo match the ID token again.
    pub fn set_userinfo_overrides(&self, claims: Value) {
        self.shared.lock().userinfo_overrides = object(claims);
    }

    /// Sets how it misbehaves from now on.
    pub fn set_misbehaviour(&self, misbehaviour: Misbehaviour) {
        self.shared.lock().misbehaviour = misbehaviour;
    }

    /// How many times each endpoint was called so far.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters
    }

    /// The `kid` ID tokens are currently signed with.
    pub fn current_kid(&self) -> String {
        self.shared.lock().current.kid.clone()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp").field("issuer", &self.shared.issuer).finish_non_exhaustive()
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Authorizes once and answers who got the code.
    async fn authorize(idp: &TestIdp, client: &reqwest::Client) -> String {
        let config = idp.config();
        let mut url = url::Url::parse(&format!("{}/authorize", idp.issuer())).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", &config.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
            .append_pair("code_challenge_method", "S256");
        let response = client.get(url).send().await.unwrap();
        let location = response.headers()[reqwest::header::LOCATION].to_str().unwrap();
        let location = url::Url::parse(location).unwrap();
        let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        idp.shared.lock().codes[&code].user.subject.clone()
    }

    #[tokio::test]
    async fn queued_users_sign_in_once_each_in_order_before_the_configured_user() {
        let idp = TestIdp::start(TestIdpConfig::default()).await.unwrap();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        idp.queue_users([("user-1", serde_json::json!({"email": "user-1@example.com"})), ("user-2", Value::Null)]);
        assert_eq!(authorize(&idp, &client).await, "user-1");
        assert_eq!(authorize(&idp, &client).await, "user-2");
        assert_eq!(authorize(&idp, &client).await, "alice", "then the configured user, as before");
        assert_eq!(idp.clear_queued_users(), 0);
        idp.queue_users([("user-3", Value::Null)]);
        assert_eq!(idp.clear_queued_users(), 1);
        assert_eq!(authorize(&idp, &client).await, "alice");
    }
}
