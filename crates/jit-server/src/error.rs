//! How failures become responses: an HTML page for the browser parts of a
//! sign-in, a JSON body for the OAuth and admin endpoints. Internal details
//! are logged, not shown.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jit_flow::SignInError;
use jit_provider::ErrorCode;
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

impl From<SignInError> for PageError {
    fn from(error: SignInError) -> Self {
        use StatusCode as S;
        let (status, title, code) = match &error {
            SignInError::Expired => (S::BAD_REQUEST, "Sign-in expired", "expired"),
            SignInError::Csrf => (S::FORBIDDEN, "Sign-in interrupted", "csrf"),
            SignInError::NotOffered(_) | SignInError::UnknownConnection(_) => {
                (S::BAD_REQUEST, "Option not available", "not_offered")
            }
            SignInError::UnknownState => (S::BAD_REQUEST, "Sign-in interrupted", "unknown_state"),
            SignInError::StaleStep { .. } => (S::CONFLICT, "Sign-in interrupted", "stale_step"),
            SignInError::StepFailed { .. } => (S::FORBIDDEN, "Sign-in failed", "step_failed"),
            SignInError::Idp { .. } => (S::BAD_GATEWAY, "Identity provider error", "idp_error"),
            SignInError::Mapping(_) => (S::BAD_GATEWAY, "Identity provider error", "invalid_claims"),
            SignInError::InvalidSubject { .. } => (S::BAD_GATEWAY, "Identity provider error", "invalid_subject"),
            SignInError::Refused(_) => (S::FORBIDDEN, "Sign-in refused", "provisioning_refused"),
            SignInError::NeedsLocalAccount { .. } => (S::FORBIDDEN, "Sign-in cannot continue", "no_local_account"),
            SignInError::InvalidFlow(_) => (S::CONFLICT, "Sign-in misconfigured", "invalid_flow"),
            // The application's script threw, looped, ran out of memory or
            // named a step that does not exist: the sign-in fails closed.
            SignInError::Script(_) => (S::CONFLICT, "Sign-in misconfigured", "script_error"),
            // The script called fail(): its message (escaped) is shown.
            SignInError::ScriptFailed(_) => (S::FORBIDDEN, "Sign-in refused", "script_refused"),
            SignInError::Concurrent => (S::CONFLICT, "Sign-in interrupted", "concurrent_request"),
            SignInError::TooManyAttempts => (S::TOO_MANY_REQUESTS, "Too many attempts", "too_many_attempts"),
            SignInError::NoEmailAddress => (S::FORBIDDEN, "Sign-in cannot continue", "no_email_address"),
            SignInError::Mail(detail) => {
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
            SignInError::Store(_) | SignInError::Provision(_) | SignInError::Internal(_) => {
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

/// An OAuth 2.0 error as a response: the JSON body (`error`,
/// `error_description`), its status, and `WWW-Authenticate` where the
/// protocol asks for one.
#[derive(Debug)]
pub struct OAuthError(pub jit_provider::OAuthError);

impl From<jit_provider::OAuthError> for OAuthError {
    fn from(error: jit_provider::OAuthError) -> Self {
        Self(error)
    }
}

impl OAuthError {
    /// `invalid_client` (401).
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self(jit_provider::OAuthError::new(ErrorCode::InvalidClient, description))
    }

    /// `invalid_token` (401), for userinfo.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self(jit_provider::OAuthError::new(ErrorCode::InvalidToken, description))
    }

    fn status(&self) -> StatusCode {
        match self.0.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Serialize)]
struct OAuthBody<'a> {
    error: &'static str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthBody { error: self.0.code.as_str(), error_description: &self.0.description };
        let mut response = (self.status(), no_store(), Json(&body)).into_response();
        match self.0.code {
            ErrorCode::InvalidToken => {
                let challenge = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.0.description.replace('"', "'")
                );
                if let Ok(value) = challenge.parse() {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ErrorCode::InvalidClient => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"jit\""));
            }
            _ => {}
        }
        response
    }
}
