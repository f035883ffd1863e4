//! "Try a real sign-in": an administrator signs in through a connection in
//! a new tab, and sees the raw claims the IdP sent, the attributes they map
//! to and the decision JIT provisioning would take — without provisioning
//! anything and without completing into any application.
//!
//! The IdP calls back to the connection's usual callback; a `state` that
//! names a [`RecordKind::ConsoleTrial`] record (taken once) is a trial,
//! bound to the administrator who started it, and never reaches the
//! sign-in engine.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use jit_domain::connection::Connection;
use jit_domain::ports::{ExpiringRecordStore, RecordKind, StoreError};
use jit_domain::user::UserId;
use jit_idp::{CallbackParams, IdpClient, PendingAuthorization};
use jit_primitives::secret::stored_form;
use serde::{Deserialize, Serialize};
use time::Duration;

use super::connections::load;
use super::error::ConsoleError;
use super::session::Admin;
use super::view::{Chrome, DryRunShown};
use crate::AppState;
use crate::admin::preview::dry_run_documents;
use crate::pages::render;

/// How long a trial may wait for the IdP.
const TRIAL_LIFETIME: Duration = Duration::minutes(10);

/// A trial as stored.
#[derive(Serialize, Deserialize)]
struct StoredTrial {
    connection: String,
    admin: UserId,
    pending: PendingAuthorization,
}

fn client(state: &AppState, connection: &Connection) -> Result<std::sync::Arc<dyn IdpClient>, ConsoleError> {
    state
        .engine
        .idp_client(connection)
        .map_err(|error| ConsoleError::Shown { status: StatusCode::BAD_GATEWAY, message: error.to_string() })
}

/// `GET /console/connections/{name}/try`: off to the IdP.
pub async fn start(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    let connection = load(&state, &name).await?;
    let start = client(&state, &connection)?
        .begin()
        .await
        .map_err(|error| ConsoleError::Shown { status: StatusCode::BAD_GATEWAY, message: error.to_string() })?;
    let trial = StoredTrial { connection: connection.name.to_string(), admin: admin.user.id, pending: start.pending };
    let value = serde_json::to_value(&trial).map_err(ConsoleError::internal)?;
    let expires = state.clock.now() + TRIAL_LIFETIME;
    state.store.insert_record(RecordKind::ConsoleTrial, &stored_form(&trial.pending.state), &value, expires).await?;
    tracing::info!(event = "console_trial_started", connection = %connection.name, by = %admin.user.id, "trial sign-in started");
    Ok(Redirect::to(&start.url).into_response())
}

/// The trial `params` answer, if their `state` is a trial's (taken: a
/// callback is used once); `None` for an ordinary sign-in. Only a browser
/// with a console session can have started a trial: the callbacks of all
/// other browsers cost no lookup.
pub async fn claim(
    state: &AppState,
    jar: &CookieJar,
    params: &CallbackParams,
) -> Result<Option<serde_json::Value>, StoreError> {
    if jar.get(&state.settings.console_cookie_name).is_none() {
        return Ok(None);
    }
    let Some(sent) = params.state.as_deref() else { return Ok(None) };
    state.store.take_record(RecordKind::ConsoleTrial, &stored_form(sent), state.clock.now()).await
}

/// The callback of a trial: the page, or why there is none.
pub async fn callback(
    state: &AppState,
    jar: &CookieJar,
    name: &str,
    trial: serde_json::Value,
    params: &CallbackParams,
) -> Response {
    let shown = async { finish(state, Admin::of(state, jar).await?, name, trial, params).await };
    shown.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Template)]
#[template(path = "console/trial.html")]
struct TrialPage {
    chrome: Chrome,
    connection: String,
    id_token_claims: String,
    userinfo_claims: Option<String>,
    shown: DryRunShown,
}

/// The IdP's answer to a trial: validated like a real sign-in, shown, and
/// dropped.
async fn finish(
    state: &AppState,
    admin: Admin,
    name: &str,
    trial: serde_json::Value,
    params: &CallbackParams,
) -> Result<Response, ConsoleError> {
    let trial: StoredTrial = serde_json::from_value(trial).map_err(ConsoleError::internal)?;
    if trial.admin != admin.user.id || trial.connection != name {
        return Err(ConsoleError::bad_request(
            "This trial sign-in was started by another administrator or for another connection.",
        ));
    }
    let connection = load(state, name).await?;
    let login = client(state, &connection)?.finish(params, &trial.pending, state.clock.now().into()).await.map_err(
        |error| ConsoleError::Shown {
            status: StatusCode::BAD_GATEWAY,
            message: format!("The IdP's answer was refused: {error}"),
        },
    )?;
    let answer = dry_run_documents(state, &connection, &login.subject, &login.documents(), None).await?;
    let pretty =
        |value: &serde_json::Map<String, serde_json::Value>| serde_json::to_string_pretty(value).unwrap_or_default();
    let page = TrialPage {
        chrome: Chrome::new(&admin, "connections"),
        connection: connection.name.to_string(),
        id_token_claims: pretty(&login.id_token_claims),
        userinfo_claims: login.userinfo_claims.as_ref().map(pretty),
        shown: DryRunShown::of(&answer),
    };
    tracing::info!(event = "console_trial_finished", connection = %connection.name, by = %admin.user.id, "trial sign-in shown");
    Ok(render(StatusCode::OK, &page))
}
