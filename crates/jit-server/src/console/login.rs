//! Signing in to the console through jit's own sign-in: the console is the
//! OpenID client [`CONSOLE_CLIENT_ID`] of this very jit. It sends the
//! browser to `/oauth2/authorize` with `state` and a PKCE challenge, and
//! exchanges the code it gets back (inside the process, through the same
//! provider calls as `/oauth2/token` and `/oauth2/userinfo`). Whatever the
//! console application's sign-in flow asks (a password, a connection, MFA,
//! a script) happens on jit's sign-in pages, like for any application.
//!
//! The `state` is bound to the browser that started the sign-in (a cookie)
//! and used once (a [`RecordKind::ConsoleLogin`] record that is taken).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jit_domain::console::{CONSOLE_CLIENT_ID, console_redirect_uri};
use jit_domain::ports::{ExpiringRecordStore, RecordKind, UserStore};
use jit_domain::user::UserId;
use jit_primitives::secret::{random_token, secrets_match, stored_form};
use jit_provider::{ClientCredentials, CodeExchange};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use time::Duration;

use super::error::ConsoleError;
use super::session::{self, Admin, AdminForm};
use crate::oidc::with_query;
use crate::pages::render;
use crate::{AppState, routes};

/// How long a console sign-in may take.
const LOGIN_LIFETIME: Duration = Duration::minutes(10);

/// A console sign-in on its way.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    verifier: String,
}

/// The console's sign-in page.
#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    notice: Option<String>,
}

/// `GET /console/login`: a signed-in administrator goes to the console;
/// anyone else gets the page with the "Sign in" button.
pub async fn page(admin: Result<Admin, ConsoleError>) -> Response {
    match admin {
        Ok(_) => Redirect::to(routes::CONSOLE).into_response(),
        Err(_) => render(axum::http::StatusCode::OK, &LoginPage { notice: None }),
    }
}

/// The page after the first administrator was created.
pub fn after_setup() -> Response {
    let notice = "The administrator was created. Sign in with the username and password you chose.".to_owned();
    render(axum::http::StatusCode::OK, &LoginPage { notice: Some(notice) })
}

/// `GET /console/login/start`: off to jit's sign-in as the console client.
pub async fn start(State(state): State<AppState>) -> Result<Response, ConsoleError> {
    let login_state = random_token()?;
    let verifier = random_token()?;
    let now = state.clock.now();
    let pending = serde_json::to_value(PendingLogin { verifier: verifier.clone() }).map_err(ConsoleError::internal)?;
    state
        .store
        .insert_record(RecordKind::ConsoleLogin, &stored_form(&login_state), &pending, now + LOGIN_LIFETIME)
        .await?;
    let redirect_uri = console_redirect_uri(&state.settings.public_url)?;
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let url = with_query(
        routes::AUTHORIZE,
        &[
            ("response_type", "code"),
            ("client_id", CONSOLE_CLIENT_ID),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", "openid"),
            ("state", &login_state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let cookie = session::cookie(&state, &state.settings.console_login_cookie_name, login_state, LOGIN_LIFETIME);
    Ok((CookieJar::new().add(cookie), Redirect::to(&url)).into_response())
}

/// What jit's sign-in sends back.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /console/callback`: the code of a finished sign-in becomes a
/// console session, if the user holds the `admin` role.
pub async fn callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, ConsoleError> {
    let now = state.clock.now();
    let started_here =
        || ConsoleError::bad_request("This sign-in was not started in this browser, or it expired. Sign in again.");
    let sent = query.state.as_deref().ok_or_else(started_here)?;
    let bound = jar.get(&state.settings.console_login_cookie_name).ok_or_else(started_here)?;
    if !secrets_match(&stored_form(sent), &stored_form(bound.value())) {
        return Err(started_here());
    }
    let pending =
        state.store.take_record(RecordKind::ConsoleLogin, &stored_form(sent), now).await?.ok_or_else(started_here)?;
    let pending: PendingLogin = serde_json::from_value(pending).map_err(ConsoleError::internal)?;
    if let Some(error) = &query.error {
        let why = query.error_description.as_deref().unwrap_or(error);
        return Err(ConsoleError::Shown {
            status: axum::http::StatusCode::FORBIDDEN,
            message: format!("The sign-in did not complete: {why}"),
        });
    }
    let code = query.code.ok_or_else(|| ConsoleError::bad_request("The sign-in came back without a code."))?;
    let redirect_uri = console_redirect_uri(&state.settings.public_url)?;
    let client = ClientCredentials { client_id: Some(CONSOLE_CLIENT_ID.to_owned()), secret: None };
    let exchange = CodeExchange {
        grant_type: Some("authorization_code".to_owned()),
        code: Some(code),
        redirect_uri: Some(redirect_uri.to_string()),
        code_verifier: Some(pending.verifier),
    };
    let refused = |error: jit_provider::OAuthError| {
        ConsoleError::bad_request(format!("The sign-in failed: {}", error.description))
    };
    let tokens = state.provider.exchange_code(&client, &exchange, now).await.map_err(refused)?;
    let claims = state.provider.userinfo(&tokens.access_token, now).await.map_err(refused)?;
    // A pass-through sign-in has no local account, so no role either.
    let user =
        claims.get("sub").and_then(|sub| sub.as_str()).and_then(|sub| uuid::Uuid::parse_str(sub).ok()).map(UserId);
    let Some(user) = user else { return Err(ConsoleError::NotAdministrator) };
    let Some(user) = state.store.user(user).await? else { return Err(ConsoleError::NotAdministrator) };
    if !session::is_administrator(&state, user.id).await? {
        tracing::warn!(event = "console_sign_in_refused", user = %user.id, "console sign-in without the admin role");
        return Err(ConsoleError::NotAdministrator);
    }
    let cookie = session::start(&state, user.id, now).await?;
    tracing::info!(event = "console_signed_in", user = %user.id, "administrator signed in to the console");
    let done = session::cookie(&state, &state.settings.console_login_cookie_name, String::new(), Duration::ZERO);
    Ok((CookieJar::new().add(cookie).add(done), Redirect::to(routes::CONSOLE)).into_response())
}

/// Only the CSRF token (a button).
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /console/logout`.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    _form: AdminForm<Empty>,
) -> Result<Response, ConsoleError> {
    let cleared = session::end(&state, &jar).await?;
    Ok((CookieJar::new().add(cleared), Redirect::to(routes::CONSOLE_LOGIN)).into_response())
}
