//! `GET /oauth2/authorize`: the provider checks the application's request,
//! the engine starts a sign-in, and the browser is sent on.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use jit_provider::AuthorizeError;

use crate::AppState;
use crate::error::PageError;
use crate::signin::{flow_cookie, next_response};

/// Starts a sign-in. Errors about the client or redirect URI are shown as
/// a page (never redirected: the redirect URI is not trusted yet); the
/// others go back to the application as OAuth errors.
pub async fn authorize(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let validated = match state.provider.authorization(query.as_deref().unwrap_or_default()).await {
        Ok(validated) => validated,
        Err(AuthorizeError::Page(message)) => {
            return Err(PageError::new(StatusCode::BAD_REQUEST, "Invalid request", message, "invalid_request"));
        }
        Err(AuthorizeError::Redirect { redirect_uri, state: app_state, error }) => {
            let issuer = &state.settings.public_url;
            let (code, description) = (error.code.as_str(), error.description.as_str());
            return Ok(error_redirect(&redirect_uri, code, description, app_state.as_deref(), issuer));
        }
        Err(AuthorizeError::Store(error)) => return Err(PageError::internal(error)),
    };
    let (flow_id, next) = state.engine.start(validated).await?;
    let jar = jar.add(flow_cookie(&state, flow_id));
    Ok((jar, next_response(&state, next)).into_response())
}

/// `redirect_uri?error=…&error_description=…&state=…&iss=…`.
pub(crate) fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Response {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    Redirect::to(&with_query(redirect_uri, &pairs)).into_response()
}

/// Appends query parameters to a URL that may already have some.
pub(crate) fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}
