//! The admin REST API under `/api/v1`: JSON, bearer-token authenticated
//! (the `admin_token` of [`AppState`]), documented as OpenAPI 3.1 at
//! `GET /api/v1/openapi.json` (served without authentication).
//!
//! One module per resource: [`connections`] (and their JIT [`preview`]),
//! [`applications`], [`users`], [`audit`], [`keys`]. Handlers parse and
//! answer HTTP; the rules are `jit-domain`'s, storage is `jit-store`'s.
//! Every failure is an [`error::ApiError`]; bad input is refused before
//! anything is written.

pub(crate) mod applications;
pub(crate) mod attributes;
pub(crate) mod audit;
mod auth;
pub(crate) mod connections;
pub(crate) mod error;
mod extract;
pub(crate) mod groups;
pub(crate) mod keys;
pub(crate) mod preview;
pub(crate) mod users;

use std::sync::Arc;

use axum::extract::Extension;
use axum::response::IntoResponse;
use axum::{Json, Router, middleware};
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub use auth::FailureLimiter;
pub(crate) use auth::require_admin_token;
pub(crate) use error::ApiError;

pub use crate::routes::API as API_PREFIX;

/// The name of the bearer security scheme in the document (also spelled out
/// in `ApiDoc`'s `security`).
const SECURITY_SCHEME: &str = "admin_token";

/// The document's fixed parts; paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jit admin API",
        description = "Manage jit, an identity broker with Just-in-Time provisioning: connections to external \
                       identity providers and their JIT policy, applications (OpenID Connect clients) and their \
                       sign-in flow, local users, the provisioning audit trail and signing keys. Every operation \
                       but this document needs `Authorization: Bearer <admin token>`."
    ),
    modifiers(&BearerScheme),
    security(("admin_token" = [])),
    tags(
        (name = "connections", description = "External identity providers, their JIT policy, and JIT dry runs"),
        (name = "applications", description = "OpenID Connect clients and their sign-in flow"),
        (name = "users", description = "Local accounts"),
        (name = "audit", description = "The provisioning audit trail"),
        (name = "keys", description = "Token signing keys"),
        (name = "groups", description = "Local groups and their members"),
        (name = "roles", description = "Local roles and who holds them"),
        (name = "attributes", description = "The local attribute schema: standard attributes and those the operator declares"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// Declares the bearer security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token jit was started with (JIT_ADMIN_TOKEN)."))
                    .build(),
            ),
        );
    }
}

/// The admin API's routes, ready to merge into the server's router. Every
/// route but the document's is authenticated.
pub fn router(state: &AppState) -> Router<AppState> {
    let authenticate = middleware::from_fn_with_state(state.clone(), auth::require_admin_token);
    let resources = OpenApiRouter::default()
        .merge(attributes::router())
        .merge(connections::router())
        .merge(groups::router())
        .merge(preview::router())
        .merge(applications::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(keys::router())
        .route_layer(authenticate);
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(API_PREFIX, resources.routes(routes!(openapi_json)))
        .split_for_parts();
    router.layer(Extension(Arc::new(document)))
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
async fn openapi_json(Extension(document): Extension<Arc<OpenApiDocument>>) -> impl IntoResponse {
    Json(document)
}
