//! How failures become responses: an HTML page for the browser parts of a
//! sign-in, a JSON body for the OAuth and admin endpoints. Internal details
//! are logged, not shown.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jit_flow::FlowError;
use serde::Serialize;

use crate::pages::{ErrorPage, no_store, render};

/// A failure shown to the browser as a page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    code: &'static str,
}

impl PageError {
    /// A page with this status, heading, message and code.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>, code: &'static str) -> Self {
        Self { status, title, message: message.into(), code }
    }

    /// Something went wrong on our side: the details go to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The sign-in could not be completed because of an internal error. Try again later.",
            "internal_error",
        )
    }
}

impl From<FlowError> for PageError {
    fn from(error: FlowError) -> Self {
        use StatusCode as S;
        let (status, title, code) = match &error {
            FlowError::Expired => (S::BAD_REQUEST, "Sign-in expired", "expired"),
            FlowError::Csrf => (S::FORBIDDEN, "Sign-in interrupted", "csrf"),
            FlowError::NotOffered(_) | FlowError::UnknownConnection(_) => {
                (S::BAD_REQUEST, "Option not available", "not_offered")
            }
            FlowError::UnknownState => (S::BAD_REQUEST, "Sign-in interrupted", "unknown_state"),
            FlowError::StaleStep { .. } => (S::CONFLICT, "Sign-in interrupted", "stale_step"),
            FlowError::StepFailed { .. } => (S::FORBIDDEN, "Sign-in failed", "step_failed"),
            FlowError::Idp { .. } => (S::BAD_GATEWAY, "Identity provider error", "idp_error"),
            FlowError::Mapping(_) => (S::BAD_GATEWAY, "Identity provider error", "invalid_claims"),
            FlowError::InvalidSubject { .. } => (S::BAD_GATEWAY, "Identity provider error", "invalid_subject"),
            FlowError::Refused(_) => (S::FORBIDDEN, "Sign-in refused", "provisioning_refused"),
            FlowError::NeedsLocalAccount { .. } => (S::FORBIDDEN, "Sign-in cannot continue", "no_local_account"),
            FlowError::InvalidFlow(_) => (S::CONFLICT, "Sign-in misconfigured", "invalid_flow"),
            // The application's script threw, looped, ran out of memory or
            // named a step that does not exist: the sign-in fails closed.
            FlowError::Script(_) => (S::CONFLICT, "Sign-in misconfigured", "script_error"),
            // The script called fail(): its message (escaped) is shown.
            FlowError::ScriptFailed(_) => (S::FORBIDDEN, "Sign-in refused", "script_refused"),
            FlowError::Concurrent => (S::CONFLICT, "Sign-in interrupted", "concurrent_request"),
            FlowError::TooManyAttempts => (S::TOO_MANY_REQUESTS, "Too many attempts", "too_many_attempts"),
            FlowError::NoEmailAddress => (S::FORBIDDEN, "Sign-in cannot continue", "no_email_address"),
            FlowError::Mail(detail) => {
                // The SMTP server's answer is for the log, not the page.
                tracing::error!(event = "email_otp_not_sent", error = %detail, "an Email OTP code could not be sent");
                return Self::new(
                    S::BAD_GATEWAY,
                    "Could not send the code",
                    "The email with your code could not be sent. Try again in a moment; if it keeps failing, \
                     tell the administrator.",
                    "mail_failed",
                );
            }
            FlowError::Store(_) | FlowError::Provision(_) | FlowError::Internal(_) => {
                return Self::internal(&error);
            }
            _ => return Self::internal(&error),
        };
        tracing::warn!(event = "sign_in_failed", code, error = %error, "sign-in failed");
        Self::new(status, title, error.to_string(), code)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage { title: self.title.into(), message: self.message, code: self.code.into() };
        render(self.status, &page)
    }
}

/// An OAuth 2.0 error body (`error`, `error_description`).
#[derive(Debug, Serialize)]
pub struct OAuthError {
    #[serde(skip)]
    status: StatusCode,
    error: &'static str,
    error_description: String,
}

impl OAuthError {
    /// `invalid_request` (400).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "invalid_request", error_description: description.into() }
    }

    /// `invalid_client` (401).
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, error: "invalid_client", error_description: description.into() }
    }

    /// `invalid_grant` (400).
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "invalid_grant", error_description: description.into() }
    }

    /// `unsupported_grant_type` (400).
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "unsupported_grant_type", error_description: description.into() }
    }

    /// `invalid_token` (401), for userinfo.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, error: "invalid_token", error_description: description.into() }
    }

    /// `server_error` (500); the detail is logged, not sent.
    pub fn server_error(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            error_description: "internal error".into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, no_store(), Json(&self)).into_response();
        if self.error == "invalid_token" {
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.error_description.replace('"', "'")
            );
            if let Ok(value) = challenge.parse() {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        } else if self.error == "invalid_client" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"jit\""));
        }
        response
    }
}
