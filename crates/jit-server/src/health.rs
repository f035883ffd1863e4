//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// `GET /healthz`: the process answers.
pub async fn live() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}
