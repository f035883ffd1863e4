//! `POST /oauth2/token`: the authorization code grant.

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jit_provider::{ClientCredentials, CodeExchange};
use serde::Deserialize;

use crate::AppState;
use crate::error::OAuthError;
use crate::pages::no_store;

/// The form of a token request.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Exchanges an authorization code for an ID token and an access token.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<TokenForm>) -> Response {
    let client = match client_credentials(&headers, &form) {
        Ok(client) => client,
        Err(error) => return error.into_response(),
    };
    let exchange = CodeExchange {
        grant_type: form.grant_type,
        code: form.code,
        redirect_uri: form.redirect_uri,
        code_verifier: form.code_verifier,
    };
    match state.provider.exchange_code(&client, &exchange, state.clock.now()).await {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(error) => OAuthError::from(error).into_response(),
    }
}

/// `client_secret_basic` (the `Authorization` header) or
/// `client_secret_post` / a public client (the form).
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Result<ClientCredentials, OAuthError> {
    if let Some((client_id, secret)) = basic_credentials(headers)? {
        return Ok(ClientCredentials { client_id: Some(client_id), secret: Some(secret) });
    }
    Ok(ClientCredentials { client_id: form.client_id.clone(), secret: form.client_secret.clone() })
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    let malformed = || OAuthError::invalid_client("malformed Basic authorization header");
    let value = value.to_str().map_err(|_| malformed())?;
    let Some(encoded) = value.strip_prefix("Basic ") else { return Ok(None) };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded.
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes()).map(|(_, v)| v.into_owned()).next().unwrap_or_default()
}
