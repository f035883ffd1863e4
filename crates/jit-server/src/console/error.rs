//! How console failures become responses: back to the sign-in page, or a
//! page that says what happened. Messages of the admin layer are shown as
//! they are; internal details are logged, never shown.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jit_domain::ports::StoreError;

use crate::admin::ApiError;
use crate::pages::render;
use crate::routes;

/// A console request that cannot be answered with its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No session (or an expired one): sign in first.
    SignIn,
    /// Signed in as someone who does not hold the `admin` role.
    NotAdministrator,
    /// A form without the session's CSRF token.
    Csrf,
    /// A failure with a status and a message for the administrator.
    Shown {
        /// The status.
        status: StatusCode,
        /// What to say.
        message: String,
    },
}

impl ConsoleError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Shown { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::Shown { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// 500: `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::internal(detail).into()
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::Shown { status: error.status(), message: error.message().to_owned() }
    }
}

impl From<jit_domain::error::ConfigError> for ConsoleError {
    fn from(error: jit_domain::error::ConfigError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<jit_primitives::PrimitiveError> for ConsoleError {
    fn from(error: jit_primitives::PrimitiveError) -> Self {
        ApiError::from(error).into()
    }
}

/// A page with one message, outside the console's navigation.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    /// Heading.
    pub title: String,
    /// What happened.
    pub message: String,
    /// Where to go next: (link, label).
    pub next: Option<(String, String)>,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message, next) = match self {
            Self::SignIn => return Redirect::to(routes::CONSOLE_LOGIN).into_response(),
            Self::NotAdministrator => (
                StatusCode::FORBIDDEN,
                "Not an administrator",
                "You are signed in as a user who does not hold the admin role, which the console needs. Sign in as \
                 an administrator."
                    .to_owned(),
                Some((routes::CONSOLE_LOGIN_START.to_owned(), "Sign in as someone else".to_owned())),
            ),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form does not belong to your console session (it expired, or it was sent from another site). \
                 Nothing was changed. Go back, reload the page and try again."
                    .to_owned(),
                Some((routes::CONSOLE.to_owned(), "Back to the console".to_owned())),
            ),
            Self::Shown { status, message } => (
                status,
                if status.is_server_error() { "Something went wrong" } else { "That did not work" },
                message,
                Some((routes::CONSOLE.to_owned(), "Back to the console".to_owned())),
            ),
        };
        render(status, &MessagePage { title: title.to_owned(), message, next })
    }
}
