//! `/keys`: our token signing keys.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(rotate))
}

/// The outcome of a key rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The id (`kid`) of the new signing key.
    pub kid: String,
}

/// Makes a new key the signing key. The previous keys are retired but stay
/// published at `/oauth2/jwks`, so tokens they signed still verify. Other
/// instances pick the new key up within a minute.
#[utoipa::path(
    post,
    path = "/keys/rotate",
    tag = "keys",
    responses(
        (status = 200, description = "The new signing key", body = RotatedKey),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn rotate(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let kid = state.keys.rotate(state.clock.now()).await?;
    tracing::info!(event = "admin_signing_key_rotated", kid = %kid, "signing key rotated");
    Ok(Json(RotatedKey { kid }))
}
