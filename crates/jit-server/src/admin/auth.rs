//! Bearer-token authentication of the admin API.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jit_flow::secret::{secrets_match, stored_form};

use super::error::ApiError;
use crate::AppState;

/// The challenge sent when no token came.
const CHALLENGE: &str = "Bearer realm=\"jit admin API\"";
/// The challenge sent when a token came and is wrong (RFC 6750 §3.1).
const CHALLENGE_INVALID: &str = "Bearer realm=\"jit admin API\", error=\"invalid_token\"";

/// Lets a request through only with `Authorization: Bearer <admin token>`;
/// marks every answer `Cache-Control: no-store` (admin answers can hold
/// secrets shown once).
pub async fn require_admin_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(error) = check(request.headers(), &state.admin_token) {
        tracing::warn!(event = "admin_unauthorized", path = %request.uri().path(), "admin API request refused");
        return error.into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn check(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "the admin API needs the header Authorization: Bearer <admin token>",
            CHALLENGE,
        ));
    };
    let wrong = || ApiError::unauthorized("the admin token is wrong", CHALLENGE_INVALID);
    let value = value.to_str().map_err(|_| wrong())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(wrong)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "the admin API takes a bearer token: Authorization: Bearer <admin token>",
            CHALLENGE,
        ));
    }
    let token = token.trim();
    // Compare fixed-length digests in constant time, so that neither the
    // content nor the length of the token leaks through timing. An empty
    // configured token opens nothing.
    if expected.is_empty() || token.is_empty() || !secrets_match(&stored_form(token), &stored_form(expected)) {
        return Err(wrong());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        assert!(check(&headers(Some("Bearer s3cret")), "s3cret").is_ok());
        assert!(check(&headers(Some("bearer s3cret")), "s3cret").is_ok());
        assert!(check(&headers(None), "s3cret").is_err());
        assert!(check(&headers(Some("Bearer s3cre")), "s3cret").is_err());
        assert!(check(&headers(Some("Basic s3cret")), "s3cret").is_err());
        assert!(check(&headers(Some("Bearer")), "s3cret").is_err());
        assert!(check(&headers(Some("Bearer ")), "").is_err());
    }
}
