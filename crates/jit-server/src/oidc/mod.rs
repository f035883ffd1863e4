//! The OpenID provider endpoints: discovery, JWKS, authorization, token,
//! userinfo. Each parses the request, makes one call into
//! [`jit_provider::Provider`] (or the sign-in engine), and answers.

mod authorize;
mod token;
mod userinfo;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use jit_domain::ports::ApplicationStore;
use jit_provider::claims::{SUPPORTED_SCOPES, claims_supported};
use serde_json::json;

pub use authorize::authorize;
pub(crate) use authorize::{error_redirect, with_query};
pub use token::token;
pub use userinfo::userinfo;

use crate::AppState;
use crate::error::OAuthError;
use crate::routes;

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(state): State<AppState>) -> Response {
    let algorithms = match state.provider.keys().algorithms().await {
        Ok(algorithms) => algorithms,
        Err(error) => return OAuthError::from(jit_provider::OAuthError::server_error(error)).into_response(),
    };
    let applications = match state.store.applications().await {
        Ok(applications) => applications,
        Err(error) => return OAuthError::from(jit_provider::OAuthError::server_error(error)).into_response(),
    };
    // The applications' own scopes, and the declared attributes they release.
    let custom: Vec<&jit_domain::application::CustomScope> =
        applications.iter().flat_map(|application| &application.scopes).collect();
    let mut scopes: Vec<&str> = SUPPORTED_SCOPES.to_vec();
    let mut claims = claims_supported();
    for scope in &custom {
        scopes.push(&scope.scope);
        claims.extend(scope.claims.iter().map(|claim| claim.as_str()));
    }
    scopes.sort_unstable();
    scopes.dedup();
    claims.sort_unstable();
    claims.dedup();
    let issuer = &state.settings.public_url;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", routes::AUTHORIZE),
        "token_endpoint": format!("{issuer}{}", routes::TOKEN),
        "userinfo_endpoint": format!("{issuer}{}", routes::USERINFO),
        "jwks_uri": format!("{issuer}{}", routes::JWKS),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_supported": claims,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `GET /oauth2/jwks`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.provider.keys().jwks().await {
        Ok(jwks) => Json(jwks).into_response(),
        Err(error) => OAuthError::from(jit_provider::OAuthError::server_error(error)).into_response(),
    }
}
