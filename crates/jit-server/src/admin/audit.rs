//! `/audit`: the provisioning audit trail (created, linked, synced,
//! refused), newest first.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use jit_domain::audit::{AuditAction, AuditEvent, AuditFilter};
use jit_domain::connection::ConnectionName;
use jit_domain::ports::AuditLog;
use jit_domain::user::UserId;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use crate::AppState;

/// Events one call returns by default.
const DEFAULT_LIMIT: u64 = 100;
/// Most events one call returns.
const MAX_LIMIT: u64 = 1000;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list))
}

/// Which events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this user (id).
    pub user: Option<String>,
    /// Only events through this connection (name).
    pub connection: Option<String>,
    /// Only events of this action: created, linked, synced, refused or
    /// memberships.
    pub action: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// Lists provisioning events, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "The events, newest first", body = Vec<AuditEvent>),
        (status = 400, description = "Invalid user id or connection name", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let user = query
        .user
        .map(|id| {
            Uuid::parse_str(&id)
                .map(UserId)
                .map_err(|_| ApiError::bad_request(format!("user must be a user id (a UUID), got {id:?}")))
        })
        .transpose()?;
    let connection = query.connection.map(ConnectionName::new).transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let action = query.action;
    if let Some(action) = action.as_deref().filter(|a| !AuditAction::ACTIONS.contains(a)) {
        return Err(ApiError::bad_request(format!(
            "action must be one of {}, got {action:?}",
            AuditAction::ACTIONS.join(", ")
        )));
    }
    let events = state.store.audit_events(&AuditFilter { user, connection, action, limit }).await?;
    Ok(Json(events))
}
