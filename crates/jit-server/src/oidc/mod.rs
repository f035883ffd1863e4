//! The OpenID provider endpoints: discovery, JWKS, authorization, token,
//! userinfo.

mod authorize;
pub mod claims;
mod token;
mod userinfo;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use authorize::authorize;
pub(crate) use authorize::{error_redirect, with_query};
pub use token::token;
pub use userinfo::userinfo;

use crate::AppState;
use crate::error::OAuthError;

/// The access token type (RFC 9068), so an ID token can never pass as one.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Stored access grants are keyed `at:<jti>`.
pub(crate) const ACCESS_GRANT_PREFIX: &str = "at:";
/// Exchanged authorization codes are keyed `spent:<hash of the client id and the code>`.
pub(crate) const SPENT_CODE_PREFIX: &str = "spent:";

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(state): State<AppState>) -> Response {
    let algorithms = match state.keys.algorithms().await {
        Ok(algorithms) => algorithms,
        Err(error) => return OAuthError::server_error(error).into_response(),
    };
    let issuer = &state.settings.public_url;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": claims::SUPPORTED_SCOPES,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "given_name", "family_name",
            "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "gender",
            "birthdate", "zoneinfo", "locale", "email", "email_verified", "phone_number", "groups", "roles"
        ],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `GET /oauth2/jwks`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.keys.jwks().await {
        Ok(jwks) => Json(jwks).into_response(),
        Err(error) => OAuthError::server_error(error).into_response(),
    }
}
