//! The test provider's HTTP endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::keys::{self, SigningKey};
use crate::{ClientAuth, Counters, Grant, Misbehaviour, Shared, TestIdpError};

type Params = HashMap<String, String>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .with_state(shared)
}

/// Counts the call, then waits if the provider is set to be slow. Returns the misbehaviour in force.
async fn enter(shared: &Shared, count: fn(&mut Counters)) -> Misbehaviour {
    let misbehaviour = {
        let mut state = shared.lock();
        count(&mut state.counters);
        state.misbehaviour
    };
    if let Misbehaviour::Slow(delay) = misbehaviour {
        tokio::time::sleep(delay).await;
    }
    misbehaviour
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": description }))).into_response()
}

fn internal(error: TestIdpError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    enter(&shared, |c| c.discovery += 1).await;
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": [match shared.config.auth_method {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
        }],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": ["openid", "profile", "email"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    enter(&shared, |c| c.jwks += 1).await;
    let keys: Vec<Value> = shared.lock().published.iter().map(|k| k.jwk.clone()).collect();
    Json(json!({ "keys": keys })).into_response()
}

/// No UI: the next queued user, else the configured one, is signed in at once and sent back with a code.
async fn authorize(State(shared): State<Arc<Shared>>, Query(params): Query<Params>) -> Response {
    let misbehaviour = enter(&shared, |c| c.authorize += 1).await;
    let config = &shared.config;
    let param = |name: &str| params.get(name).map(String::as_str);
    // Never redirect to an unregistered redirect URI.
    if param("client_id") != Some(config.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    if param("redirect_uri") != Some(config.redirect_uri.as_str()) {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not registered").into_response();
    }
    let Ok(mut location) = url::Url::parse(&config.redirect_uri) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the configured redirect_uri is not a URL").into_response();
    };
    {
        let mut query = location.query_pairs_mut();
        let problem = if param("response_type") != Some("code") {
            Some(("unsupported_response_type", "only response_type=code is supported"))
        } else if !param("scope").unwrap_or_default().split(' ').any(|s| s == "openid") {
            Some(("invalid_scope", "the openid scope is required"))
        } else if param("code_challenge_method") != Some("S256") || param("code_challenge").is_none() {
            Some(("invalid_request", "PKCE with S256 is required"))
        } else if misbehaviour == Misbehaviour::AuthorizeDenied {
            Some(("access_denied", "the user declined the sign-in"))
        } else {
            None
        };
        match problem {
            Some((error, description)) => {
                query.append_pair("error", error).append_pair("error_description", description);
            }
            None => {
                let code = match keys::random_token() {
                    Ok(code) => code,
                    Err(e) => return internal(e),
                };
                let mut state = shared.lock();
                let user = match state.queued.pop_front() {
                    Some(user) => user,
                    None => state.user.clone(),
                };
                let grant = Grant {
                    user,
                    nonce: param("nonce").map(str::to_owned),
                    code_challenge: param("code_challenge").unwrap_or_default().to_owned(),
                    redirect_uri: config.redirect_uri.clone(),
                };
                state.codes.insert(code.clone(), grant);
                query.append_pair("code", &code);
            }
        }
        if let Some(state) = param("state") {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &shared.issuer);
    }
    Redirect::to(location.as_str()).into_response()
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(value.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default()
}

/// The client's credentials, taken the way `config.auth_method` says they come.
fn client_credentials(shared: &Shared, headers: &HeaderMap, form: &Params) -> Option<(String, String)> {
    match shared.config.auth_method {
        ClientAuth::ClientSecretBasic => {
            let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            let encoded = value.strip_prefix("Basic ")?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            Some((form_decode(id), form_decode(secret)))
        }
        ClientAuth::ClientSecretPost => Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone())),
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<Params>) -> Response {
    let misbehaviour = enter(&shared, |c| c.token += 1).await;
    let config = &shared.config;
    let authenticated = client_credentials(&shared, &headers, &form)
        .is_some_and(|(id, secret)| id == config.client_id && secret == config.client_secret);
    if !authenticated {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    if misbehaviour == Misbehaviour::TokenEndpointError {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the authorization code has expired");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    // Single use: the code is gone whatever happens next.
    let grant = form.get("code").and_then(|code| shared.lock().codes.remove(code));
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or already used code");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri differs from the authorization");
    }
    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or_default();
    if verifier.is_empty() || keys::s256(verifier) != grant.code_challenge {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
    }
    match issue_tokens(&shared, grant, misbehaviour) {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(e) => internal(e),
    }
}

/// Builds and signs the ID token (misbehaving as told) and records the access token.
fn issue_tokens(shared: &Shared, grant: Grant, misbehaviour: Misbehaviour) -> Result<Value, TestIdpError> {
    let config = &shared.config;
    let access_token = keys::random_token()?;
    let now = now_secs();
    let mut claims = grant.user.claims.clone();
    let mut set = |name: &str, value: Value| {
        claims.insert(name.to_owned(), value);
    };
    set("iss", json!(shared.issuer));
    set("sub", json!(grant.user.subject));
    set("aud", json!(config.client_id));
    set("iat", json!(now));
    set("exp", json!(now + 300));
    set("at_hash", json!(keys::at_hash(&access_token)));
    if let Some(nonce) = &grant.nonce {
        set("nonce", json!(nonce));
    }
    match misbehaviour {
        Misbehaviour::WrongIssuer => set("iss", json!("https://evil.example")),
        Misbehaviour::WrongAudience => set("aud", json!("another-client")),
        Misbehaviour::Expired => {
            set("iat", json!(now - 1200));
            set("exp", json!(now - 600));
        }
        Misbehaviour::WrongNonce => set("nonce", json!("not-the-nonce-that-was-sent")),
        Misbehaviour::MultipleAudiencesWithoutAzp => set("aud", json!([config.client_id, "another-client"])),
        Misbehaviour::MultipleAudiencesWithAzp => {
            set("aud", json!([config.client_id, "another-client"]));
            set("azp", json!(config.client_id));
        }
        Misbehaviour::WrongAzp => set("azp", json!("another-client")),
        Misbehaviour::WrongAccessTokenHash => set("at_hash", json!(keys::at_hash("another access token"))),
        _ => {}
    }
    let claims = Value::Object(claims);

    let id_token = {
        let mut state = shared.lock();
        if misbehaviour == Misbehaviour::UnknownKidThenRotate && !state.rotated {
            let key = Arc::new(SigningKey::generate(config.algorithm)?);
            state.published.push(key.clone());
            state.current = key;
            state.rotated = true;
        }
        match misbehaviour {
            Misbehaviour::BadSignature => state.rogue.sign_as(&state.current.kid, &claims)?,
            Misbehaviour::UnknownKid => state.rogue.sign_as("never-published", &claims)?,
            Misbehaviour::AlgNone => keys::unsigned(&claims),
            Misbehaviour::HmacWithPublicKey => {
                keys::sign_hs256(&state.current.public_bytes, &state.current.kid, &claims)?
            }
            _ => state.current.sign(&claims)?,
        }
    };
    shared.lock().access_tokens.insert(access_token.clone(), grant.user);
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let misbehaviour = enter(&shared, |c| c.userinfo += 1).await;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let user = token.and_then(|t| shared.lock().access_tokens.get(&t).cloned());
    let Some(user) = user else {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")])
            .into_response();
    };
    let mut claims = user.claims;
    for (name, value) in shared.lock().userinfo_overrides.clone() {
        match value {
            Value::Null => claims.remove(&name),
            value => claims.insert(name, value),
        };
    }
    let subject = if misbehaviour == Misbehaviour::UserinfoDifferentSub { "mallory".to_owned() } else { user.subject };
    claims.insert("sub".into(), json!(subject));
    Json(Value::Object(claims)).into_response()
}
