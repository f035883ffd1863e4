//! The admin API's one error type: every failure is a JSON body
//! `{"error": "<code>", "message": "<what to do>"}` with a fitting status.
//! Internal details (database errors, lost races) are logged, never sent.

use std::fmt::Display;

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, WWW_AUTHENTICATE};
use axum::response::{IntoResponse, Response};
use jit_domain::error::{ConfigError, MappingError};
use jit_domain::flow::SignInFlowError;
use jit_domain::ports::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use jit_provider::keys::KeyError;

/// The JSON body of every admin API error.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_request", "message": "oidc.issuer must be an absolute http(s) URL"}))]
pub struct ErrorBody {
    /// A stable, machine-readable code: `invalid_request`, `unauthorized`,
    /// `not_found`, `conflict`, `in_use`, `protected`, `unsupported_media_type`,
    /// `payload_too_large` or `internal_error`.
    pub error: String,
    /// What happened and what to do about it, for a person.
    pub message: String,
}

/// A failed admin request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    challenge: Option<&'static str>,
    retry_after: Option<i64>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), challenge: None, retry_after: None }
    }

    /// 429 `too_many_requests`, with `Retry-After`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i64) -> Self {
        Self {
            retry_after: Some(retry_after_seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
        }
    }

    /// 400 `invalid_request`: the input breaks a rule; nothing was written.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 with `code` (`conflict`, `in_use`, `protected`).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 401 `unauthorized`, with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>, challenge: &'static str) -> Self {
        Self { challenge: Some(challenge), ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message) }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What to tell the person (the console shows it next to the form).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 500 `internal_error`: `detail` goes to the log only.
    pub fn internal(detail: impl Display) -> Self {
        tracing::error!(error = %detail, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request failed because of an internal error; try again later, and see the server log for details",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Taken(_) => {
                Self::conflict("conflict", format!("{error}: choose another value or change the existing record"))
            }
            StoreError::NotFound(_) => Self::not_found(error.to_string()),
            StoreError::InUse(message) => Self::conflict("in_use", message),
            StoreError::Collisions { .. } => Self::conflict("collisions", error.to_string()),
            StoreError::Invalid(config) => config.into(),
            // Lost races and database failures: the detail is for the log.
            other => Self::internal(other),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<SignInFlowError> for ApiError {
    fn from(error: SignInFlowError) -> Self {
        Self::bad_request(format!("invalid sign-in flow: {error}"))
    }
}

impl From<MappingError> for ApiError {
    fn from(error: MappingError) -> Self {
        Self::bad_request(format!("the claims cannot be mapped: {error}"))
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        Self::internal(error)
    }
}

impl From<jit_primitives::PrimitiveError> for ApiError {
    fn from(error: jit_primitives::PrimitiveError) -> Self {
        // Randomness and password hashing: the environment failed.
        Self::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.to_owned(), message: self.message };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
