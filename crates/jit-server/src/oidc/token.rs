//! `POST /oauth2/token`: the authorization code grant.

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jit_domain::application::Application;
use jit_domain::ports::{ApplicationStore, FlowStateStore, UserStore};
use jit_flow::secret::{random_token, secrets_match, stored_form};
use jit_flow::state::{AuthorizationGrant, SignedInSubject};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::authorize::is_pkce_value;
use super::claims::{local_user_claims, pass_through_claims};
use super::{ACCESS_GRANT_PREFIX, ACCESS_TOKEN_TYPE, SPENT_CODE_PREFIX};
use crate::AppState;
use crate::error::OAuthError;
use crate::pages::no_store;

/// The form of a token request.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Exchanges an authorization code for an ID token and an access token.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, Form(request): Form<TokenRequest>) -> Response {
    match exchange(&state, &headers, request).await {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn exchange(state: &AppState, headers: &HeaderMap, request: TokenRequest) -> Result<Value, OAuthError> {
    if request.grant_type.as_deref() != Some("authorization_code") {
        return Err(OAuthError::unsupported_grant_type("only authorization_code is supported"));
    }
    let application = authenticate_client(state, headers, &request).await?;
    let code = request.code.as_deref().ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    // Redeeming deletes the code: a replayed code finds nothing. Codes are
    // kept per client, so another client's attempt leaves it to its owner.
    let redeemed = state.engine.redeem_code(&application.client_id, code).await;
    let Some(grant) = redeemed.map_err(OAuthError::server_error)? else {
        revoke_tokens_of_spent_code(state, &application, code).await?;
        return Err(OAuthError::invalid_grant("the code is invalid, expired or already used"));
    };
    check_grant(&application, &grant, &request)?;
    // Remember which access token this code gave, so that a second use of
    // the code revokes it (RFC 6749 §4.1.2), for as long as it is valid.
    let jti = random_token().map_err(OAuthError::server_error)?;
    let expires = state.clock.now() + state.settings.access_token_ttl;
    state
        .store
        .put_flow(&spent_code_key(&application.client_id, code), &json!({ "jti": jti }), expires)
        .await
        .map_err(OAuthError::server_error)?;
    issue_tokens(state, &application, &grant, &jti).await
}

/// Spent codes are stored under `spent:<hash of the client id and the code>`.
fn spent_code_key(client_id: &str, code: &str) -> String {
    format!("{SPENT_CODE_PREFIX}{}", stored_form(&format!("{client_id}\n{code}")))
}

/// A code that was already exchanged is presented again: whoever holds it
/// may be an attacker, so the access token it gave is revoked. (The ID
/// token cannot be recalled; it is short-lived.)
async fn revoke_tokens_of_spent_code(
    state: &AppState,
    application: &Application,
    code: &str,
) -> Result<(), OAuthError> {
    let now = state.clock.now();
    // Per client, like codes: only the code's owner presenting it again
    // revokes what it gave.
    let key = spent_code_key(&application.client_id, code);
    let spent = state.store.take_flow(&key, now).await.map_err(OAuthError::server_error)?;
    let Some(jti) = spent.as_ref().and_then(|s| s.get("jti")).and_then(Value::as_str) else { return Ok(()) };
    state.store.take_flow(&format!("{ACCESS_GRANT_PREFIX}{jti}"), now).await.map_err(OAuthError::server_error)?;
    tracing::warn!(
        event = "authorization_code_reused",
        client_id = %application.client_id,
        "an authorization code was used twice; the access token issued for it is revoked"
    );
    Ok(())
}

/// Client authentication: `client_secret_basic`, `client_secret_post`, or
/// none for public clients.
async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    request: &TokenRequest,
) -> Result<Application, OAuthError> {
    let (client_id, secret) = match basic_credentials(headers)? {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            request.client_id.clone().ok_or_else(|| OAuthError::invalid_client("client authentication is missing"))?,
            request.client_secret.clone(),
        ),
    };
    let unknown = || OAuthError::invalid_client("unknown client or wrong secret");
    let application =
        state.store.application(&client_id).await.map_err(OAuthError::server_error)?.ok_or_else(unknown)?;
    match (&application.client_secret_hash, secret) {
        (None, None) if application.public => Ok(application),
        (Some(expected), Some(secret)) if secrets_match(expected, &stored_form(&secret)) => Ok(application),
        _ => Err(unknown()),
    }
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

fn check_grant(
    application: &Application,
    grant: &AuthorizationGrant,
    request: &TokenRequest,
) -> Result<(), OAuthError> {
    let authorization = &grant.authorization;
    if authorization.client_id != application.client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if request.redirect_uri.as_deref() != Some(authorization.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&authorization.code_challenge, &request.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !is_pkce_value(verifier) || !secrets_match(&computed, challenge) {
                return Err(OAuthError::invalid_grant("PKCE verification failed (code_verifier does not match)"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        (None, Some(_)) => return Err(OAuthError::invalid_grant("no code_challenge was sent for this code")),
        (None, None) => {}
    }
    Ok(())
}

async fn issue_tokens(
    state: &AppState,
    application: &Application,
    grant: &AuthorizationGrant,
    jti: &str,
) -> Result<Value, OAuthError> {
    let scope = grant.authorization.scope.clone();
    let scopes: Vec<&str> = scope.split(' ').collect();
    let claims = match &grant.subject {
        SignedInSubject::Local { user } => {
            let user = state
                .store
                .user(*user)
                .await
                .map_err(OAuthError::server_error)?
                .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
            local_user_claims(&user, &scopes)
        }
        SignedInSubject::PassThrough { connection, subject, attributes, email_verified } => {
            pass_through_claims(connection, subject, attributes, *email_verified, &scopes)
        }
    };
    let now = state.clock.now();
    let issuer = &state.settings.public_url;
    let mut id_token = claims.clone();
    extend(
        &mut id_token,
        json!({
            "iss": issuer,
            "aud": application.client_id,
            "iat": now.unix_timestamp(),
            "exp": (now + state.settings.id_token_ttl).unix_timestamp(),
            "auth_time": grant.auth_time.unix_timestamp(),
            "amr": grant.methods,
        }),
    );
    if let Some(nonce) = &grant.authorization.nonce {
        id_token.insert("nonce".into(), Value::String(nonce.clone()));
    }
    let id_token = state.keys.sign(&id_token, None).await.map_err(OAuthError::server_error)?;

    let expires = now + state.settings.access_token_ttl;
    let access = json!({
        "iss": issuer,
        "sub": claims.get("sub"),
        "aud": application.client_id,
        "client_id": application.client_id,
        "scope": scope,
        "iat": now.unix_timestamp(),
        "exp": expires.unix_timestamp(),
        "jti": jti,
    });
    let access_token = state.keys.sign(&access, Some(ACCESS_TOKEN_TYPE)).await.map_err(OAuthError::server_error)?;
    state
        .store
        .put_flow(&format!("{ACCESS_GRANT_PREFIX}{jti}"), &Value::Object(claims), expires)
        .await
        .map_err(OAuthError::server_error)?;
    tracing::info!(event = "tokens_issued", client_id = %application.client_id, "tokens issued");
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.settings.access_token_ttl.whole_seconds(),
        "id_token": id_token,
        "scope": scope,
    }))
}

fn extend(map: &mut Map<String, Value>, more: Value) {
    if let Value::Object(more) = more {
        map.extend(more);
    }
}
