//! `/attributes`: the local attribute schema. The standard attributes are
//! listed and cannot be changed; operators declare, redefine and delete
//! their own. The schema lives in the database: every instance sees a
//! change within a second ([`jit_domain::schema::SCHEMA_REFRESH`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use jit_domain::attribute::{AttributeName, Normalization};
use jit_domain::ports::{ConnectionStore, SchemaStore};
use jit_domain::schema::{AttributeDefinition, check_operator_attribute, is_standard};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::API_PREFIX;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list, declare)).routes(routes!(read, redefine, delete))
}

/// An attribute as sent to the API.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "employee_id", "description": "The HR system's id", "unique": true}))]
pub struct AttributeRequest {
    /// The name (letters, digits, `_`, `-`, `.`; at most 64 characters).
    pub name: AttributeName,
    /// What it holds, for administrators (at most 500 characters).
    #[serde(default)]
    pub description: String,
    /// At most one user may hold a value (then single-valued). Refused
    /// (409) while users share a value.
    #[serde(default)]
    pub unique: bool,
    /// Holds several values.
    #[serde(default)]
    pub multi_valued: bool,
    /// How values compare: `exact` (the default), `case_insensitive`, or
    /// `email` (case-insensitive, and values must look like addresses).
    #[serde(default)]
    pub normalization: Normalization,
    /// Its values never appear in the audit trail (shown as
    /// `[redacted]`).
    #[serde(default)]
    pub sensitive: bool,
}

impl From<AttributeRequest> for AttributeDefinition {
    fn from(request: AttributeRequest) -> Self {
        Self {
            name: request.name,
            unique: request.unique,
            multi_valued: request.multi_valued,
            normalization: request.normalization,
            description: request.description,
            sensitive: request.sensitive,
        }
    }
}

/// An attribute as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttributeView {
    /// The name.
    pub name: AttributeName,
    /// What it holds.
    pub description: String,
    /// At most one user holds a value.
    pub unique: bool,
    /// Holds several values.
    pub multi_valued: bool,
    /// How values compare.
    pub normalization: Normalization,
    /// Values redacted in the audit trail.
    pub sensitive: bool,
    /// A standard attribute (always there; cannot be changed or deleted).
    pub standard: bool,
}

impl From<&AttributeDefinition> for AttributeView {
    fn from(definition: &AttributeDefinition) -> Self {
        Self {
            name: definition.name.clone(),
            description: definition.description.clone(),
            unique: definition.unique,
            multi_valued: definition.multi_valued,
            normalization: definition.normalization,
            sensitive: definition.sensitive,
            standard: is_standard(definition.name.as_str()),
        }
    }
}

/// Lists every attribute the local store knows, standard ones included.
#[utoipa::path(
    get,
    path = "/attributes",
    tag = "attributes",
    responses(
        (status = 200, description = "The attributes, by name", body = [AttributeView]),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let schema = state.store.attribute_schema().await?;
    Ok(Json(schema.definitions().map(AttributeView::from).collect::<Vec<_>>()))
}

/// Declares an attribute. Standard and system attributes cannot be
/// declared (400).
#[utoipa::path(
    post,
    path = "/attributes",
    tag = "attributes",
    request_body = AttributeRequest,
    responses(
        (status = 201, description = "Declared", body = AttributeView,
         headers(("Location" = String, description = "The attribute's URL"))),
        (status = 400, description = "Invalid declaration", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 409, description = "Already declared", body = ErrorBody),
    )
)]
async fn declare(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AttributeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = AttributeDefinition::from(request);
    declare_attribute(&state, &definition).await?;
    let location = format!("{API_PREFIX}/attributes/{}", definition.name);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(AttributeView::from(&definition))))
}

/// Declares a new attribute (the API's `POST` and the console).
pub async fn declare_attribute(state: &AppState, definition: &AttributeDefinition) -> Result<(), ApiError> {
    if state.store.attribute_schema().await?.get(definition.name.as_str()).is_some() {
        refuse_standard(&definition.name)?;
        return Err(ApiError::conflict(
            "conflict",
            format!("attribute {:?} is already declared: PUT /attributes/{0} redefines it", definition.name.as_str()),
        ));
    }
    state.store.put_attribute(definition, state.clock.now()).await?;
    tracing::info!(event = "admin_attribute_declared", attribute = %definition.name, "attribute declared");
    Ok(())
}

/// Reads an attribute.
#[utoipa::path(
    get,
    path = "/attributes/{name}",
    tag = "attributes",
    params(("name" = String, Path, description = "The attribute's name")),
    responses(
        (status = 200, description = "The attribute", body = AttributeView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such attribute", body = ErrorBody),
    )
)]
async fn read(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let schema = state.store.attribute_schema().await?;
    let definition = schema.get(&name).ok_or_else(|| not_found(&name))?;
    Ok(Json(AttributeView::from(definition)))
}

/// Redefines a declared attribute (the name in the body must be the one in
/// the URL). Making it unique while users share a value is refused (409,
/// with how many values and a few of them); a new normalisation re-indexes
/// the stored values.
#[utoipa::path(
    put,
    path = "/attributes/{name}",
    tag = "attributes",
    params(("name" = String, Path, description = "The attribute's name")),
    request_body = AttributeRequest,
    responses(
        (status = 200, description = "Redefined", body = AttributeView),
        (status = 400, description = "Invalid, or a standard attribute", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "Not declared", body = ErrorBody),
        (status = 409, description = "Users share values of it", body = ErrorBody),
    )
)]
async fn redefine(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AttributeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if request.name.as_str() != name {
        return Err(ApiError::bad_request(format!(
            "the body names attribute {:?} but the URL {name:?}: attributes cannot be renamed",
            request.name.as_str()
        )));
    }
    let definition = AttributeDefinition::from(request);
    redefine_attribute(&state, &definition).await?;
    Ok(Json(AttributeView::from(&definition)))
}

/// Redefines a declared attribute (the API's `PUT` and the console).
pub async fn redefine_attribute(state: &AppState, definition: &AttributeDefinition) -> Result<(), ApiError> {
    refuse_standard(&definition.name)?;
    if state.store.attribute_schema().await?.get(definition.name.as_str()).is_none() {
        return Err(not_found(definition.name.as_str()));
    }
    state.store.put_attribute(definition, state.clock.now()).await?;
    tracing::info!(event = "admin_attribute_redefined", attribute = %definition.name, "attribute redefined");
    Ok(())
}

/// Deletes a declared attribute and every value users hold of it. Refused
/// (409, naming who) while a connection maps a claim onto it or links on
/// it.
#[utoipa::path(
    delete,
    path = "/attributes/{name}",
    tag = "attributes",
    params(("name" = String, Path, description = "The attribute's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A standard attribute", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "Not declared", body = ErrorBody),
        (status = 409, description = "A connection uses it", body = ErrorBody),
    )
)]
async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    delete_attribute(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a declared attribute that no connection uses (the API's
/// `DELETE` and the console).
pub async fn delete_attribute(state: &AppState, name: &str) -> Result<(), ApiError> {
    let name = AttributeName::new(name).map_err(|_| not_found(name))?;
    refuse_standard(&name)?;
    let uses: Vec<String> =
        state.store.connections().await?.iter().flat_map(|connection| connection.uses_of(name.as_str())).collect();
    if !uses.is_empty() {
        return Err(ApiError::conflict(
            "in_use",
            format!("attribute {:?} is in use: {}; change those first", name.as_str(), uses.join("; ")),
        ));
    }
    if !state.store.delete_attribute(&name).await? {
        return Err(not_found(name.as_str()));
    }
    tracing::info!(event = "admin_attribute_deleted", attribute = %name, "attribute deleted");
    Ok(())
}

/// Standard and system attributes are not the operator's to change.
fn refuse_standard(name: &AttributeName) -> Result<(), ApiError> {
    Ok(check_operator_attribute(name)?)
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no attribute named {name:?} (GET /attributes lists them)"))
}
