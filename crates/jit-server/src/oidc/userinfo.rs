//! `GET|POST /oauth2/userinfo`: the claims behind an access token.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::OAuthError;
use crate::pages::no_store;

/// Answers with the claims recorded when the token was issued.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token =
        headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    let Some(token) = token else {
        return OAuthError::invalid_token("a Bearer access token is required").into_response();
    };
    match state.provider.userinfo(token, state.clock.now()).await {
        Ok(claims) => (no_store(), Json(claims)).into_response(),
        Err(error) => OAuthError::from(error).into_response(),
    }
}
