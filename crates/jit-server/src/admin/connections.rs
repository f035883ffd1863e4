//! `/connections`: external IdPs and their Just-in-Time provisioning policy.
//!
//! Bodies are [`Connection`]'s serde form. Answers never hold the client
//! secret: `oidc.client_secret` is `null` and `oidc.client_secret_set` says
//! whether one is stored. A `PUT` whose `oidc.client_secret` is `null` or
//! absent keeps the stored secret; an empty string removes it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use jit_domain::attribute::AttributeName;
use jit_domain::connection::{ClaimFilter, Connection, ConnectionName, JitPolicy, OidcSettings, Protocol};
use jit_domain::membership::MembershipMapping;
use jit_domain::ports::ConnectionStore;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::API_PREFIX;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, delete))
        .routes(routes!(read_jit, replace_jit))
}

/// A connection as the API answers it: the stored connection without its
/// client secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Unique name (used in URLs: `fidp=`, the callback path).
    pub name: ConnectionName,
    /// Shown on the sign-in page.
    pub display_name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// OpenID Connect settings, without the client secret.
    pub oidc: OidcView,
    /// IdP claim → local attribute mappings added to the standard ones.
    pub claim_mappings: BTreeMap<String, AttributeName>,
    /// The Just-in-Time provisioning policy.
    pub jit: JitPolicy,
    /// Conditions every sign-in's claims must meet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claim_filters: Vec<ClaimFilter>,
    /// How the IdP's groups become memberships.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub groups: Option<MembershipMapping>,
    /// How the IdP's roles become memberships.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub roles: Option<MembershipMapping>,
}

/// OpenID Connect settings as the API answers them.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcView {
    /// The settings; `client_secret` is always `null`.
    #[serde(flatten)]
    pub settings: OidcSettings,
    /// Whether a client secret is stored.
    pub client_secret_set: bool,
}

impl From<Connection> for ConnectionView {
    fn from(connection: Connection) -> Self {
        let Connection { name, display_name, protocol, mut oidc, claim_mappings, jit, claim_filters, groups, roles } =
            connection;
        let client_secret_set = oidc.client_secret.take().is_some();
        let oidc = OidcView { settings: oidc, client_secret_set };
        Self { name, display_name, protocol, oidc, claim_mappings, jit, claim_filters, groups, roles }
    }
}

/// Lists the connections, by name.
#[utoipa::path(
    get,
    path = "/connections",
    tag = "connections",
    responses(
        (status = 200, description = "The connections", body = Vec<ConnectionView>),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let connections = state.store.connections().await?;
    Ok(Json(connections.into_iter().map(ConnectionView::from).collect::<Vec<_>>()))
}

/// Creates a connection. The JIT policy and claim mappings are validated
/// against the attribute schema (e.g. a linking rule must target a unique
/// attribute); an invalid connection is a 400 and nothing is stored.
#[utoipa::path(
    post,
    path = "/connections",
    tag = "connections",
    request_body = Connection,
    responses(
        (status = 201, description = "Created", body = ConnectionView,
         headers(("Location" = String, description = "The new connection's URL"))),
        (status = 400, description = "Invalid connection", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 409, description = "A connection with this name exists", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    ApiJson(mut connection): ApiJson<Connection>,
) -> Result<impl IntoResponse, ApiError> {
    normalize_secret(&mut connection);
    connection.validate(&*state.store.schema().await?)?;
    state.store.create_connection(&connection, state.clock.now()).await?;
    tracing::info!(event = "admin_connection_created", connection = %connection.name, "connection created");
    let location = format!("{API_PREFIX}/connections/{}", connection.name);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(ConnectionView::from(connection))))
}

/// Reads a connection.
#[utoipa::path(
    get,
    path = "/connections/{name}",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
async fn read(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let connection = load(&state, &name).await?;
    Ok(Json(ConnectionView::from(connection)))
}

/// Replaces a connection. The name in the body must be the name in the URL
/// (connections cannot be renamed). A `null` or absent `oidc.client_secret`
/// keeps the stored secret; an empty string removes it.
#[utoipa::path(
    put,
    path = "/connections/{name}",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    request_body = Connection,
    responses(
        (status = 200, description = "The connection as stored", body = ConnectionView),
        (status = 400, description = "Invalid connection", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
async fn replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(mut connection): ApiJson<Connection>,
) -> Result<impl IntoResponse, ApiError> {
    let stored = load(&state, &name).await?;
    if connection.name != stored.name {
        return Err(ApiError::bad_request(format!(
            "the body names connection {:?} but the URL names {:?}: connections cannot be renamed; create a new one \
             instead",
            connection.name.as_str(),
            stored.name.as_str()
        )));
    }
    keep_or_replace_secret(&stored, &mut connection)?;
    connection.validate(&*state.store.schema().await?)?;
    state.store.update_connection(&connection, state.clock.now()).await?;
    tracing::info!(event = "admin_connection_updated", connection = %connection.name, "connection updated");
    Ok(Json(ConnectionView::from(connection)))
}

/// Deletes a connection and the federated identities associated through
/// it. A connection still offered by an application's sign-in flow cannot
/// be deleted (409): remove it from those flows first.
#[utoipa::path(
    delete,
    path = "/connections/{name}",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "An application's sign-in flow uses the connection", body = ErrorBody),
    )
)]
async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let name = parse_name(&name)?;
    // The store refuses (409 in_use) while an application's flow uses it:
    // one statement, no check-then-delete race.
    if !state.store.delete_connection(&name).await? {
        return Err(not_found(name.as_str()));
    }
    tracing::info!(event = "admin_connection_deleted", connection = %name, "connection deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Reads a connection's Just-in-Time provisioning policy (the seeds'
/// "Just-in-Time Provisioning" tab as a resource).
#[utoipa::path(
    get,
    path = "/connections/{name}/jit",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    responses(
        (status = 200, description = "The policy", body = JitPolicy),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
async fn read_jit(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(load(&state, &name).await?.jit))
}

/// Replaces only a connection's JIT policy, with the same validation as
/// the whole connection (400, nothing stored, when it fails).
#[utoipa::path(
    put,
    path = "/connections/{name}/jit",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    request_body = JitPolicy,
    responses(
        (status = 200, description = "The policy, replaced", body = JitPolicy),
        (status = 400, description = "Invalid policy", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
async fn replace_jit(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(jit): ApiJson<JitPolicy>,
) -> Result<impl IntoResponse, ApiError> {
    let connection = Connection { jit, ..load(&state, &name).await? };
    connection.validate(&*state.store.schema().await?)?;
    state.store.update_connection(&connection, state.clock.now()).await?;
    tracing::info!(event = "admin_connection_jit_updated", connection = %connection.name, "JIT policy updated");
    Ok(Json(connection.jit))
}

/// The connection named `name`, or 404.
pub async fn load(state: &AppState, name: &str) -> Result<Connection, ApiError> {
    let parsed = parse_name(name)?;
    state.store.connection(&parsed).await?.ok_or_else(|| not_found(name))
}

/// A name from a URL: one that cannot be valid cannot exist either.
fn parse_name(name: &str) -> Result<ConnectionName, ApiError> {
    ConnectionName::new(name).map_err(|_| not_found(name))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("there is no connection named {name:?}"))
}

/// The client secret of a replaced connection: `None` keeps the stored one
/// (unless the issuer changes: the stored secret is only ever sent to the
/// issuer it was given for), an empty one removes it.
pub fn keep_or_replace_secret(stored: &Connection, connection: &mut Connection) -> Result<(), ApiError> {
    match connection.oidc.client_secret.as_deref() {
        None if connection.oidc.issuer != stored.oidc.issuer && stored.oidc.client_secret.is_some() => {
            Err(ApiError::bad_request(format!(
                "oidc.issuer changes from {:?} to {:?}: give oidc.client_secret again (the stored secret is never sent \
                 to another issuer), or an empty string for none",
                stored.oidc.issuer, connection.oidc.issuer
            )))
        }
        None => {
            connection.oidc.client_secret.clone_from(&stored.oidc.client_secret);
            Ok(())
        }
        Some(_) => {
            normalize_secret(connection);
            Ok(())
        }
    }
}

/// An empty secret means "no secret".
pub fn normalize_secret(connection: &mut Connection) {
    if connection.oidc.client_secret.as_deref().is_some_and(str::is_empty) {
        connection.oidc.client_secret = None;
    }
}
