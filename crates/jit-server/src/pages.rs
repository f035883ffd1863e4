//! Server-rendered pages (askama templates in `templates/`, checked at
//! compile time, HTML-escaped).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use jit_flow::StepView;
use jit_flow::engine::{EmailOtpView, TotpView};

/// The only images the enrolment page shows: a PNG QR code inlined as a
/// `data:` URL (no request leaves the page, nothing else can be injected).
const QR_DATA_URL_PREFIX: &str = "data:image/png;base64,";

/// The sign-in page of a step. Every form carries the sign-in's CSRF token;
/// nothing needs JavaScript.
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
    notice: Option<String>,
    /// The TOTP code form (an enrolled user).
    totp_verify: bool,
    /// The TOTP enrolment (a user without a secret yet).
    totp_enrol: Option<TotpEnrolPage>,
    /// The Email OTP forms.
    email_otp: Option<EmailOtpPage>,
    /// Rules between the sections of the page.
    rule_before_connections: bool,
    rule_before_totp: bool,
    rule_before_email_otp: bool,
}

/// What the enrolment part of the page shows.
pub struct TotpEnrolPage {
    /// The `otpauth://` URI, as text (for copying into an app).
    otpauth_uri: String,
    /// The same URI as a QR code (`data:image/png;base64,...`), if it is one.
    qr_data_url: Option<String>,
}

/// What the Email OTP part of the page shows.
pub struct EmailOtpPage {
    /// Where the code goes, masked (`a***@example.com`).
    masked_address: String,
    /// Whether a code was sent (then the code form and a resend button).
    sent: bool,
}

impl From<StepView> for SignInPage {
    fn from(view: StepView) -> Self {
        let (totp_verify, totp_enrol) = match view.totp {
            None => (false, None),
            Some(TotpView::Verify) => (true, None),
            Some(TotpView::Enrol { otpauth_uri, qr_data_url }) => {
                let qr_data_url = qr_data_url.starts_with(QR_DATA_URL_PREFIX).then_some(qr_data_url);
                (false, Some(TotpEnrolPage { otpauth_uri, qr_data_url }))
            }
        };
        let email_otp =
            view.email_otp.map(|EmailOtpView { masked_address, sent, .. }| EmailOtpPage { masked_address, sent });
        let totp = totp_verify || totp_enrol.is_some();
        let above_connections = view.local;
        let above_totp = above_connections || !view.connections.is_empty();
        let above_email_otp = above_totp || totp;
        Self {
            rule_before_connections: above_connections && !view.connections.is_empty(),
            rule_before_totp: above_totp && totp,
            rule_before_email_otp: above_email_otp && email_otp.is_some(),
            application: view.application,
            step: view.step,
            steps: view.steps,
            local: view.local,
            connections: view.connections,
            csrf: view.csrf,
            error: view.error,
            notice: view.notice,
            totp_verify,
            totp_enrol,
            email_otp,
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
