//! `/keys`: our token signing keys.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;
use jit_provider::keys::SigningAlgorithm;

/// Largest rotation request body read.
const MAX_BODY: usize = 16 * 1024;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(rotate))
}

/// What to rotate to. The body is optional: no body (or `{}`) means ES256.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"algorithm": "RS256"}))]
pub struct RotateKeyRequest {
    /// The new key's algorithm: `ES256` (ECDSA P-256, the default) or
    /// `RS256` (RSA 2048).
    #[serde(default)]
    pub algorithm: Option<SigningAlgorithm>,
}

/// The outcome of a key rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The id (`kid`) of the new signing key: its RFC 7638 thumbprint.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: SigningAlgorithm,
}

/// Makes a new key the signing key: ES256 unless the body asks for RS256.
/// The new key is published at `/oauth2/jwks` and signs from now on; the
/// previous keys are retired but stay published, so tokens they signed still
/// verify. Other instances publish the new key at once and sign with it
/// within a minute.
#[utoipa::path(
    post,
    path = "/keys/rotate",
    tag = "keys",
    request_body(
        content = Option<RotateKeyRequest>,
        content_type = "application/json",
        description = "Optional; without a body the new key is ES256",
    ),
    responses(
        (status = 200, description = "The new signing key", body = RotatedKey),
        (status = 400, description = "Unknown algorithm or malformed body", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 415, description = "A body that is not JSON", body = ErrorBody),
    )
)]
async fn rotate(State(state): State<AppState>, request: Request) -> Result<impl IntoResponse, ApiError> {
    let algorithm = requested_algorithm(request, &state).await?;
    let kid = state.provider.keys().rotate(state.clock.now(), algorithm).await?;
    tracing::info!(event = "admin_signing_key_rotated", kid = %kid, algorithm = %algorithm, "signing key rotated");
    Ok(Json(RotatedKey { kid, algorithm }))
}

/// The algorithm the optional body asks for: an empty body is the default;
/// anything else must be a JSON [`RotateKeyRequest`].
async fn requested_algorithm(request: Request, state: &AppState) -> Result<SigningAlgorithm, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(SigningAlgorithm::default());
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let ApiJson(body) = ApiJson::<RotateKeyRequest>::from_request(request, state).await?;
    Ok(body.algorithm.unwrap_or_default())
}
