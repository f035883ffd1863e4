//! # jit-server
//!
//! HTTP for jit (axum): the OpenID provider endpoints (`oidc`), the sign-in
//! pages (`signin`), the admin REST API (`admin`), the admin console
//! (`console`, pages over the same calls as the API), health probes. Handlers
//! parse and answer HTTP; the rules live in `jit-domain`, the sign-in state
//! machine in `jit-flow`, storage in `jit-store`.

mod admin;
pub mod console;
mod error;
mod health;
pub mod metrics;
pub mod oidc;
mod pages;
pub mod routes;
pub mod serve;
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use jit_flow::SignInEngine;
use jit_primitives::clock::Clock;
use jit_provider::Provider;
use jit_store::Store;
use sha2::Digest;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use admin::FailureLimiter;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Our issuer and public base URL, without a trailing slash.
    pub public_url: String,
    /// Name of the cookie holding a sign-in's id: `jit_flow_` and a short
    /// hash of the public URL, so that two jit instances on one host name
    /// (a broker and an IdP on two ports, or two paths behind one domain)
    /// do not overwrite each other's sign-ins; browsers key cookies by host,
    /// not by port.
    pub flow_cookie_name: String,
    /// Name of the console's session cookie (same scheme).
    pub console_cookie_name: String,
    /// Name of the cookie that binds a console sign-in to the browser that
    /// started it (same scheme).
    pub console_login_cookie_name: String,
}

impl ServerSettings {
    /// Settings for `public_url`.
    pub fn new(public_url: impl Into<String>) -> Self {
        let public_url = public_url.into().trim_end_matches('/').to_owned();
        let digest = sha2::Sha256::digest(public_url.as_bytes());
        // Behind https the cookie is `__Host-`: Secure, path /, no Domain,
        // so no sibling host can plant or overwrite it.
        let prefix = if public_url.starts_with("https://") { "__Host-" } else { "" };
        let suffix = hex_prefix(&digest, 4);
        Self {
            flow_cookie_name: format!("{prefix}jit_flow_{suffix}"),
            console_cookie_name: format!("{prefix}jit_console_{suffix}"),
            console_login_cookie_name: format!("{prefix}jit_console_login_{suffix}"),
            public_url,
        }
    }

    /// Whether cookies must be `Secure` (public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// The first `bytes` bytes of `digest` in lowercase hex.
fn hex_prefix(digest: &[u8], bytes: usize) -> String {
    digest.iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<Store>,
    /// The sign-in state machine.
    pub engine: Arc<SignInEngine<Store>>,
    /// The OpenID provider: authorization requests, codes, tokens,
    /// userinfo, our signing keys.
    pub provider: Arc<Provider<Store>>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: Arc<ServerSettings>,
    /// The admin API's bearer token.
    pub admin_token: Arc<String>,
    /// Failed admin authentications per client address.
    pub admin_failures: Arc<FailureLimiter>,
    /// What `GET /metrics` renders (`None`: nothing is recorded).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    // Forms of the sign-in pages are the only cookie-authenticated POSTs:
    // refuse cross-site ones (Sec-Fetch-Site / Origin). The token endpoint
    // and the admin API are called cross-origin by design and authenticate
    // otherwise.
    let pages = Router::new()
        .route(routes::SIGN_IN, get(signin::show))
        .route(routes::SIGN_IN_PASSWORD, post(signin::password))
        .route(routes::SIGN_IN_FEDERATED, post(signin::federated))
        .route(routes::SIGN_IN_TOTP, post(signin::totp))
        .route(routes::SIGN_IN_EMAIL_OTP_SEND, post(signin::send_email_otp))
        .route(routes::SIGN_IN_EMAIL_OTP, post(signin::email_otp))
        .layer(CsrfLayer::new());
    Router::new()
        .route(routes::DISCOVERY, get(oidc::discovery))
        .route(routes::JWKS, get(oidc::jwks))
        .route(routes::AUTHORIZE, get(oidc::authorize))
        .route(routes::TOKEN, post(oidc::token))
        .route(routes::USERINFO, get(oidc::userinfo).post(oidc::userinfo))
        .route(routes::FEDERATION_CALLBACK, get(signin::callback))
        .route(routes::HEALTH_LIVE, get(health::live))
        .route(routes::HEALTH_READY, get(health::ready))
        .merge(pages)
        .merge(admin::router(&state))
        .merge(console::router())
        .merge(metrics_router(&state))
        // Headers on every response (a handler may set its own first):
        // pages are never framed (clickjacking), never sniffed into another
        // type, never cached, and leak no URL through `Referer`; token and
        // API answers are never cached either (RFC 6749 §5.1).
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /metrics`, behind the admin token.
fn metrics_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(routes::METRICS, get(metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::require_admin_token))
}

/// Sets `name: value` on responses that do not have it.
fn header(name: header::HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}
