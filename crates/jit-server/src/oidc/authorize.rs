//! `GET /oauth2/authorize`: validate the application's request, start a
//! sign-in, and send the browser on.

use std::collections::BTreeMap;

use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use jit_domain::ports::ApplicationStore;
use jit_flow::state::AuthorizationContext;
use serde::Deserialize;

use super::claims::granted_scopes;
use crate::AppState;
use crate::error::PageError;
use crate::signin::{flow_cookie, next_response};

/// The parameters we read.
#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    fidp: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
    response_mode: Option<String>,
    max_age: Option<String>,
}

/// Longest authorization request query accepted, in bytes. Everything a
/// sign-in stores before anybody authenticated comes from it, so it bounds
/// what one unauthenticated request can make jit keep (see the README).
pub const MAX_AUTHORIZE_QUERY: usize = 4096;

/// Starts a sign-in. Errors about the client or redirect URI are shown as
/// a page (never redirected: the redirect URI is not trusted yet); the
/// others go back to the application as OAuth errors.
pub async fn authorize(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(params): Query<AuthorizeParams>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, PageError> {
    let bad = |message: &str| PageError::new(StatusCode::BAD_REQUEST, "Invalid request", message, "invalid_request");
    if raw_query.as_deref().is_some_and(|q| q.len() > MAX_AUTHORIZE_QUERY) {
        return Err(bad(&format!("The authorization request is longer than {MAX_AUTHORIZE_QUERY} bytes.")));
    }
    let client_id = params.client_id.as_deref().ok_or_else(|| bad("The request has no client_id."))?;
    let application = state
        .store
        .application(client_id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(|| bad("No application is registered with this client_id."))?;
    let redirect_uri = params.redirect_uri.clone().ok_or_else(|| bad("The request has no redirect_uri."))?;
    if !application.redirect_uris.contains(&redirect_uri) {
        return Err(bad("The redirect_uri is not registered for this application (it must match exactly)."));
    }

    let back = |error: &str, description: &str| {
        Ok(error_redirect(&redirect_uri, error, description, params.state.as_deref(), &state.settings.public_url))
    };
    if params.response_type.as_deref() != Some("code") {
        return back("unsupported_response_type", "only response_type=code is supported");
    }
    if params.request.is_some() {
        return back("request_not_supported", "request objects (the request parameter) are not supported");
    }
    if params.request_uri.is_some() {
        return back("request_uri_not_supported", "the request_uri parameter is not supported");
    }
    if params.response_mode.as_deref().is_some_and(|mode| mode != "query") {
        return back("invalid_request", "only response_mode=query is supported");
    }
    // Every sign-in authenticates the user afresh (there is no session to
    // reuse), so any max_age is met; auth_time is always in the ID token.
    if params.max_age.as_deref().is_some_and(|age| age.parse::<u64>().is_err()) {
        return back("invalid_request", "max_age must be a number of seconds");
    }
    let scope = granted_scopes(params.scope.as_deref().unwrap_or_default());
    if !scope.split(' ').any(|s| s == "openid") {
        return back("invalid_scope", "the openid scope is required");
    }
    match (&params.code_challenge, params.code_challenge_method.as_deref()) {
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => {}
        (Some(_), _) => {
            return back("invalid_request", "PKCE requires code_challenge_method=S256 and a valid challenge");
        }
        (None, _) if application.public => return back("invalid_request", "public clients must use PKCE (S256)"),
        (None, _) => {}
    }
    if params.prompt.as_deref().is_some_and(|p| p.split(' ').any(|p| p == "none")) {
        return back("login_required", "the user must sign in");
    }

    let context = AuthorizationContext {
        client_id: application.client_id.clone(),
        redirect_uri,
        state: params.state.clone(),
        nonce: params.nonce.clone(),
        scope,
        code_challenge: params.code_challenge.clone(),
        request_params: request_params(raw_query.as_deref()),
    };
    let (flow_id, next) = state.engine.start(&application, context, params.fidp.as_deref()).await?;
    let jar = jar.add(flow_cookie(&state, flow_id));
    Ok((jar, next_response(&state, next)).into_response())
}

/// Parameters scripts never see: credentials a misbehaving client put in
/// the URL, and the PKCE and anti-replay values (a script's `Log` could
/// otherwise write them to the log).
const HIDDEN_FROM_SCRIPTS: &[&str] =
    &["client_secret", "code_verifier", "password", "state", "nonce", "code_challenge"];

/// The authorization request's query parameters as received, the first
/// value of each name, less [`HIDDEN_FROM_SCRIPTS`]: what conditional
/// authentication scripts see as `context.request.params`.
fn request_params(query: Option<&str>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !HIDDEN_FROM_SCRIPTS.contains(&name.as_ref()) {
            params.entry(name.into_owned()).or_insert_with(|| value.into_owned());
        }
    }
    params
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

/// A PKCE challenge or verifier: 43 to 128 unreserved characters.
pub(crate) fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_params_keep_the_first_value_of_each_name() {
        let params = request_params(Some("client_id=app&scope=openid+email&x=1&x=2&acr_values=mfa%20strong&empty="));
        assert_eq!(params.get("scope").map(String::as_str), Some("openid email"));
        assert_eq!(params.get("x").map(String::as_str), Some("1"));
        assert_eq!(params.get("acr_values").map(String::as_str), Some("mfa strong"));
        assert_eq!(params.get("empty").map(String::as_str), Some(""));
        assert_eq!(params.len(), 5);
        assert!(request_params(None).is_empty());
        let hidden =
            request_params(Some("client_secret=s&code_verifier=v&state=st&nonce=n&code_challenge=c&prompt=login"));
        assert_eq!(hidden.keys().collect::<Vec<_>>(), ["prompt"]);
    }
}
