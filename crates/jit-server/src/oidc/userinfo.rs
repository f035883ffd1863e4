//! `GET|POST /oauth2/userinfo`: the claims behind an access token.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use jit_domain::ports::FlowStateStore;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;

use super::{ACCESS_GRANT_PREFIX, ACCESS_TOKEN_TYPE};
use crate::AppState;
use crate::error::OAuthError;
use crate::pages::no_store;

#[derive(Deserialize)]
struct AccessClaims {
    jti: String,
    sub: String,
}

/// Answers with the claims recorded when the token was issued.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match claims(&state, &headers).await {
        Ok(claims) => (no_store(), Json(claims)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn claims(state: &AppState, headers: &HeaderMap) -> Result<serde_json::Value, OAuthError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| OAuthError::invalid_token("a Bearer access token is required"))?
        .trim();
    let invalid = || OAuthError::invalid_token("the access token is invalid or expired");
    let header = decode_header(token).map_err(|_| invalid())?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return Err(invalid());
    }
    let kid = header.kid.ok_or_else(invalid)?;
    let (key, algorithm) =
        state.keys.decoding_key(&kid).await.map_err(OAuthError::server_error)?.ok_or_else(invalid)?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&state.settings.public_url]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let token = decode::<AccessClaims>(token, &key, &validation).map_err(|_| invalid())?;
    let claims = state
        .store
        .flow(&format!("{ACCESS_GRANT_PREFIX}{}", token.claims.jti), state.clock.now())
        .await
        .map_err(OAuthError::server_error)?
        .ok_or_else(invalid)?;
    if claims.get("sub").and_then(|s| s.as_str()) != Some(token.claims.sub.as_str()) {
        return Err(invalid());
    }
    Ok(claims)
}
