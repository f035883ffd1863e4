//! The admin console under `/console`: server-rendered pages (askama) over
//! the same domain rules and store ports as the admin API, working without
//! JavaScript.
//!
//! - [`login`]: administrators sign in through jit's own sign-in (the
//!   console is the OpenID client `jit-console` of this jit);
//!   [`session`]: the session, re-checked on every request, and the CSRF
//!   token every form carries ([`session::AdminForm`]);
//!   [`setup`]: the first administrator;
//! - [`connections`], [`applications`], [`directory`] (users, attributes,
//!   groups, roles, audit, keys): the pages.
//!
//! Every console response has a strict Content-Security-Policy (scripts and
//! styles from jit only, forms post to jit only, never framed) on top of
//! the headers every page of jit gets.

pub mod applications;
pub mod connections;
pub mod directory;
pub mod error;
pub mod login;
pub mod session;
pub mod setup;
pub mod trial;
pub mod view;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use setup::{CreateAdministratorError, create_administrator, ensure_console_application, offer_setup_link};

use crate::{AppState, routes};

/// The console's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLESHEET: &str = include_str!("../../assets/console.css");
const SCRIPT: &str = include_str!("../../assets/console.js");

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(routes::CONSOLE, get(|| async { Redirect::to("/console/connections") }))
        .route(routes::CONSOLE_LOGIN, get(login::page))
        .route(routes::CONSOLE_LOGIN_START, get(login::start))
        .route(routes::CONSOLE_CALLBACK, get(login::callback))
        .route(routes::CONSOLE_LOGOUT, post(login::logout))
        .route(routes::CONSOLE_SETUP, get(setup::page).post(setup::create))
        .route(routes::CONSOLE_ASSET, get(asset))
        .merge(connections::router())
        .merge(applications::router())
        .merge(directory::router())
        // Cross-site form posts are refused before any handler runs (the
        // session's CSRF token is checked too, by `AdminForm`).
        .layer(CsrfLayer::new())
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
}

/// The stylesheet and the script, from the binary.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}
