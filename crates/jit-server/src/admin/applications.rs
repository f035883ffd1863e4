//! `/applications`: the OpenID Connect clients that send users to jit, and
//! their sign-in flow.
//!
//! A confidential client's secret is generated here, returned once (in the
//! answer that created it) and stored only as a hash. Every answer carries
//! the flow's warnings, such as MFA after a JIT-disabled connection.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use jit_domain::application::{Application, CustomScope, RedirectUri};
use jit_domain::connection::ConnectionName;
use jit_domain::console::{check_console_application, check_console_deletion};
use jit_domain::flow::{ConnectionFacts, FlowWarning, SignInFlow, StepOption};
use jit_domain::ports::{ApplicationStore, ConnectionStore};
use jit_primitives::secret::{random_token, stored_form};
use jit_script::ScriptRunner;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::API_PREFIX;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;

/// Longest conditional authentication script accepted, in bytes.
const MAX_SCRIPT_LEN: usize = 64 * 1024;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, delete))
        .routes(routes!(rotate_secret))
}

/// An application as sent to the API.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplicationRequest {
    /// Unique name.
    pub name: String,
    /// Redirect URIs, matched exactly: absolute, no fragment; `http` only
    /// for loopback hosts (`127.0.0.1`, `localhost`, `[::1]`), otherwise
    /// `https` or a native app's private scheme (`com.example.app:/cb`).
    pub redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required) rather than a
    /// confidential one.
    #[serde(default)]
    pub public: bool,
    /// How its users sign in (default: one step, `LOCAL`), with an
    /// optional conditional authentication script (JavaScript defining
    /// `onLoginRequest(context)`); a script that does not compile or does
    /// not define `onLoginRequest` is refused (400) with the engine's
    /// message.
    #[serde(default)]
    pub sign_in: SignInFlow,
    /// Scopes of its own that release declared attributes, e.g.
    /// `[{"scope": "employee", "claims": ["employee_id", "department"]}]`
    /// (declared attributes are released only through such a scope).
    #[serde(default)]
    pub scopes: Vec<CustomScope>,
}

/// An application as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationView {
    /// Unique name.
    pub name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret: only in the answer that generated it (creation of
    /// a confidential client, secret rotation, a switch from public to
    /// confidential), never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Whether the client is public.
    pub public: bool,
    /// How its users sign in.
    pub sign_in: SignInFlow,
    /// Its custom scopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<CustomScope>,
    /// What may surprise in the flow (it still runs).
    pub warnings: Vec<FlowWarning>,
    /// Why the stored flow cannot run any more (e.g. a connection it names
    /// is gone); absent when it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_error: Option<String>,
}

impl ApplicationView {
    fn new(application: Application, secret: Option<String>, warnings: Vec<FlowWarning>) -> Self {
        let Application { name, client_id, redirect_uris, public, sign_in, scopes, .. } = application;
        let redirect_uris = redirect_uris.into_iter().map(String::from).collect();
        let client_secret = secret;
        Self { name, client_id, client_secret, redirect_uris, public, sign_in, scopes, warnings, flow_error: None }
    }
}

/// Lists the applications, by name.
#[utoipa::path(
    get,
    path = "/applications",
    tag = "applications",
    responses(
        (status = 200, description = "The applications", body = Vec<ApplicationView>),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut views = Vec::new();
    for application in state.store.applications().await? {
        views.push(view_of_stored(&state, application).await?);
    }
    Ok(Json(views))
}

/// Registers an application. Answers with its `client_id`, its
/// `client_secret` (confidential clients; shown only this once) and the
/// flow's warnings.
#[utoipa::path(
    post,
    path = "/applications",
    tag = "applications",
    request_body = ApplicationRequest,
    responses(
        (status = 201, description = "Created", body = ApplicationView,
         headers(("Location" = String, description = "The new application's URL"))),
        (status = 400, description = "Invalid application or sign-in flow", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 409, description = "An application with this name exists", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ApplicationRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let view = register(&state, request).await?;
    let location = format!("{API_PREFIX}/applications/{}", view.client_id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view)))
}

/// Registers an application (the API's `POST` and the console's
/// "New application"): its view holds the secret, this once.
pub async fn register(state: &AppState, request: ApplicationRequest) -> Result<ApplicationView, ApiError> {
    let request = check_request(request)?;
    let warnings = check_flow(state, &request.sign_in).await?;
    let client_id = random_token()?;
    let secret = if request.public { None } else { Some(random_token()?) };
    let application = Application {
        name: request.name,
        client_id,
        client_secret_hash: secret.as_deref().map(stored_form),
        redirect_uris: request.redirect_uris,
        public: request.public,
        sign_in: request.sign_in,
        scopes: request.scopes,
    };
    application.validate_scopes(&*state.store.schema().await?)?;
    state.store.create_application(&application, state.clock.now()).await?;
    tracing::info!(
        event = "admin_application_created",
        application = %application.name,
        client_id = %application.client_id,
        "application created"
    );
    Ok(ApplicationView::new(application, secret, warnings))
}

/// Reads an application (never its secret).
#[utoipa::path(
    get,
    path = "/applications/{client_id}",
    tag = "applications",
    params(("client_id" = String, Path, description = "The application's client id")),
    responses(
        (status = 200, description = "The application", body = ApplicationView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
    )
)]
async fn read(State(state): State<AppState>, Path(client_id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let application = load(&state, &client_id).await?;
    Ok(Json(view_of_stored(&state, application).await?))
}

/// Replaces an application's name, redirect URIs, client type and sign-in
/// flow; the client id stays. A change to the console's own application
/// that would let nobody sign in to the console is refused (400). A confidential client keeps its secret; one
/// that becomes public loses it; one that becomes confidential gets a new
/// secret, returned in this answer only.
#[utoipa::path(
    put,
    path = "/applications/{client_id}",
    tag = "applications",
    params(("client_id" = String, Path, description = "The application's client id")),
    request_body = ApplicationRequest,
    responses(
        (status = 200, description = "The application as stored", body = ApplicationView),
        (status = 400, description = "Invalid application or sign-in flow", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
        (status = 409, description = "Another application has this name", body = ErrorBody),
    )
)]
async fn replace(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    ApiJson(request): ApiJson<ApplicationRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let stored = load(&state, &client_id).await?;
    Ok(Json(replace_application(&state, stored, request).await?))
}

/// Replaces `stored` as `request` says (the API's `PUT` and the console's
/// application page).
pub async fn replace_application(
    state: &AppState,
    stored: Application,
    request: ApplicationRequest,
) -> Result<ApplicationView, ApiError> {
    let request = check_request(request)?;
    let warnings = check_flow(state, &request.sign_in).await?;
    let (secret, client_secret_hash) = match (request.public, stored.client_secret_hash) {
        (true, _) => (None, None),
        (false, Some(hash)) => (None, Some(hash)),
        (false, None) => {
            let secret = random_token()?;
            let hash = stored_form(&secret);
            (Some(secret), Some(hash))
        }
    };
    let application = Application {
        name: request.name,
        client_id: stored.client_id,
        client_secret_hash,
        redirect_uris: request.redirect_uris,
        public: request.public,
        sign_in: request.sign_in,
        scopes: request.scopes,
    };
    application.validate_scopes(&*state.store.schema().await?)?;
    check_console_application(&application, &state.settings.public_url)?;
    state.store.update_application(&application, state.clock.now()).await?;
    tracing::info!(event = "admin_application_updated", client_id = %application.client_id, "application updated");
    Ok(ApplicationView::new(application, secret, warnings))
}

/// Deletes an application. The console's own application cannot be
/// deleted (409 `protected`).
#[utoipa::path(
    delete,
    path = "/applications/{client_id}",
    tag = "applications",
    params(("client_id" = String, Path, description = "The application's client id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
        (status = 409, description = "The console's own application, which cannot be deleted", body = ErrorBody),
    )
)]
async fn delete(State(state): State<AppState>, Path(client_id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    check_console_deletion(&client_id).map_err(|refused| ApiError::conflict("protected", refused.to_string()))?;
    if !state.store.delete_application(&client_id).await? {
        return Err(not_found(&client_id));
    }
    tracing::info!(event = "admin_application_deleted", client_id = %client_id, "application deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a confidential client a new secret, returned in this answer only;
/// the old secret stops working at once.
#[utoipa::path(
    post,
    path = "/applications/{client_id}/secret",
    tag = "applications",
    params(("client_id" = String, Path, description = "The application's client id")),
    responses(
        (status = 200, description = "The application with its new client_secret", body = ApplicationView),
        (status = 400, description = "The application is a public client", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let mut application = load(&state, &client_id).await?;
    if application.public {
        return Err(ApiError::bad_request(
            "this application is a public client and has no secret; make it confidential (PUT with \"public\": false) \
             to get one",
        ));
    }
    let secret = random_token()?;
    application.client_secret_hash = Some(stored_form(&secret));
    state.store.update_application(&application, state.clock.now()).await?;
    tracing::info!(event = "admin_client_secret_rotated", client_id = %application.client_id, "client secret rotated");
    let mut view = view_of_stored(&state, application).await?;
    view.client_secret = Some(secret);
    Ok(Json(view))
}

pub async fn load(state: &AppState, client_id: &str) -> Result<Application, ApiError> {
    state.store.application(client_id).await?.ok_or_else(|| not_found(client_id))
}

fn not_found(client_id: &str) -> ApiError {
    ApiError::not_found(format!("there is no application with client id {client_id:?}"))
}

/// A stored application with its flow checked against today's connections.
pub async fn view_of_stored(state: &AppState, application: Application) -> Result<ApplicationView, ApiError> {
    let facts = connection_facts(state, &application.sign_in).await?;
    let (warnings, flow_error) = match application.sign_in.validate(|name| facts.get(name).copied()) {
        Ok(warnings) => (warnings, None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    Ok(ApplicationView { flow_error, ..ApplicationView::new(application, None, warnings) })
}

/// The flow's warnings, or why it cannot be stored.
async fn check_flow(state: &AppState, flow: &SignInFlow) -> Result<Vec<FlowWarning>, ApiError> {
    let facts = connection_facts(state, flow).await?;
    let warnings = flow.validate(|name| facts.get(name).copied())?;
    if let Some(script) = &flow.script {
        check_script(script).await?;
    }
    Ok(warnings)
}

/// A conditional authentication script must compile, run its top level
/// within the engine's limits and define `onLoginRequest`; the engine's
/// message says what is wrong.
pub async fn check_script(script: &str) -> Result<(), ApiError> {
    if script.len() > MAX_SCRIPT_LEN {
        return Err(ApiError::bad_request(format!(
            "sign_in.script is longer than {MAX_SCRIPT_LEN} bytes; conditional authentication scripts should be short"
        )));
    }
    let source = script.to_owned();
    // The engine runs synchronously for up to its time budget: off the
    // async workers.
    tokio::task::spawn_blocking(move || ScriptRunner::default().validate(&source))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| ApiError::bad_request(format!("invalid sign_in.script: {error}")))
}

/// What validation needs to know about each connection the flow names
/// (absent ones are left out, so validation reports them).
pub async fn connection_facts(
    state: &AppState,
    flow: &SignInFlow,
) -> Result<BTreeMap<ConnectionName, ConnectionFacts>, ApiError> {
    let mut facts = BTreeMap::new();
    for step in &flow.steps {
        for option in &step.options {
            if let StepOption::Connection(name) = option {
                if facts.contains_key(name) {
                    continue;
                }
                if let Some(connection) = state.store.connection(name).await? {
                    facts.insert(name.clone(), ConnectionFacts { jit_enabled: connection.jit.enabled });
                }
            }
        }
    }
    Ok(facts)
}

/// An [`ApplicationRequest`] whose name and redirect URIs passed the
/// domain's rules (repeated URIs dropped).
struct CheckedRequest {
    name: String,
    redirect_uris: Vec<RedirectUri>,
    public: bool,
    sign_in: SignInFlow,
    scopes: Vec<CustomScope>,
}

/// Checks name and redirect URIs (the domain's rules).
fn check_request(request: ApplicationRequest) -> Result<CheckedRequest, ApiError> {
    Ok(CheckedRequest {
        name: Application::checked_name(&request.name)?,
        redirect_uris: Application::checked_redirect_uris(request.redirect_uris)?,
        public: request.public,
        sign_in: request.sign_in,
        scopes: request.scopes,
    })
}
