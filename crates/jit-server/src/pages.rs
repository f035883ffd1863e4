//! Server-rendered pages (askama templates in `templates/`, checked at
//! compile time, HTML-escaped).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use jit_flow::StepView;

/// The sign-in page of a step.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    application: String,
    step: usize,
    steps: usize,
    local: bool,
    connections: Vec<(String, String)>,
    csrf: String,
    error: Option<String>,
}

impl From<StepView> for SignInPage {
    fn from(view: StepView) -> Self {
        Self {
            application: view.application,
            step: view.step,
            steps: view.steps,
            local: view.local,
            connections: view.connections,
            csrf: view.csrf,
            error: view.error,
        }
    }
}

/// A page that says why the sign-in cannot go on.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Heading.
    pub title: String,
    /// What happened.
    pub message: String,
    /// A short machine-readable code (also in logs).
    pub code: String,
}

/// Renders a template, or a plain 500 if rendering itself fails.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, no_store(), Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Pages carry per-sign-in tokens: never cache them.
pub fn no_store() -> [(axum::http::HeaderName, &'static str); 2] {
    [(axum::http::header::CACHE_CONTROL, "no-store"), (axum::http::header::PRAGMA, "no-cache")]
}
