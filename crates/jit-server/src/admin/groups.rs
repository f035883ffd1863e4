//! `/groups` and `/roles`: local groups and roles, and their members. A
//! membership granted here is the administrator's: no connection's sign-in
//! ever removes it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use jit_domain::membership::{Grant, MembershipKind, valid_description, valid_name};
use jit_domain::ports::{Collection, MembershipStore};
use jit_domain::user::UserId;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::API_PREFIX;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(read_group, describe_group, delete_group))
        .routes(routes!(add_group_member, remove_group_member))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(read_role, describe_role, delete_role))
        .routes(routes!(add_role_member, remove_role_member))
}

/// A group or role to create.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "staff", "description": "Everyone employed"}))]
pub struct CollectionRequest {
    /// Its name (1 to 128 characters, no control characters, no
    /// surrounding white space).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// A description.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DescriptionRequest {
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

async fn list(state: &AppState, kind: MembershipKind) -> Result<Json<Vec<Collection>>, ApiError> {
    Ok(Json(state.store.collections(kind).await?))
}

pub async fn create(
    state: &AppState,
    kind: MembershipKind,
    request: CollectionRequest,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 1], Json<Collection>), ApiError> {
    if !valid_name(&request.name) {
        return Err(ApiError::bad_request(format!(
            "{:?} is not a {} name: 1 to 128 characters, no control characters or surrounding white space",
            request.name,
            kind.singular()
        )));
    }
    if !valid_description(&request.description) {
        return Err(ApiError::bad_request(
            "the description must be at most 500 characters, without control characters",
        ));
    }
    state.store.create_collection(kind, &request.name, &request.description, state.clock.now()).await?;
    tracing::info!(event = "admin_collection_created", kind = kind.singular(), name = %request.name, "created");
    let location = format!("{API_PREFIX}/{}/{}", kind.plural(), request.name);
    let created = Collection { name: request.name, description: request.description, members: 0 };
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(created)))
}

async fn read(state: &AppState, kind: MembershipKind, name: &str) -> Result<Json<Collection>, ApiError> {
    state.store.collection(kind, name).await?.map(Json).ok_or_else(|| not_found(kind, name))
}

pub async fn describe(
    state: &AppState,
    kind: MembershipKind,
    name: &str,
    request: DescriptionRequest,
) -> Result<Json<Collection>, ApiError> {
    if !valid_description(&request.description) {
        return Err(ApiError::bad_request(
            "the description must be at most 500 characters, without control characters",
        ));
    }
    if !state.store.describe_collection(kind, name, &request.description).await? {
        return Err(not_found(kind, name));
    }
    read(state, kind, name).await
}

pub async fn delete(state: &AppState, kind: MembershipKind, name: &str) -> Result<StatusCode, ApiError> {
    if !state.store.delete_collection(kind, name).await? {
        return Err(not_found(kind, name));
    }
    tracing::info!(event = "admin_collection_deleted", kind = kind.singular(), name = %name, "deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn add_member(state: &AppState, kind: MembershipKind, name: &str, user: &str) -> Result<StatusCode, ApiError> {
    let user = parse_user(user)?;
    let added = state.store.grant_membership(kind, name, user, &Grant::Admin, state.clock.now()).await?;
    tracing::info!(event = "admin_membership_granted", kind = kind.singular(), name = %name, user = %user, added, "granted");
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(state: &AppState, kind: MembershipKind, name: &str, user: &str) -> Result<StatusCode, ApiError> {
    let user = parse_user(user)?;
    if !state.store.revoke_membership(kind, name, user).await? {
        return Err(ApiError::not_found(format!("user {user} is not a member of the {} {name:?}", kind.singular())));
    }
    tracing::info!(event = "admin_membership_revoked", kind = kind.singular(), name = %name, user = %user, "revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn parse_user(id: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(id).map(UserId).map_err(|_| ApiError::not_found(format!("there is no user with id {id:?}")))
}

fn not_found(kind: MembershipKind, name: &str) -> ApiError {
    ApiError::not_found(format!("there is no {} named {name:?}", kind.singular()))
}

/// The handlers of one kind: the same rules, under `/groups` or `/roles`.
macro_rules! collection_handlers {
    ($kind:expr, $tag:literal, $list:ident, $create:ident, $read:ident, $describe:ident, $delete:ident,
     $add:ident, $remove:ident, $base:literal, $one:literal, $member:literal) => {
        #[doc = concat!("Lists the ", $tag, ", by name, with their member counts.")]
        #[utoipa::path(get, path = $base, tag = $tag, responses(
            (status = 200, description = "By name", body = [Collection]),
            (status = 401, description = "No or wrong admin token", body = ErrorBody),
        ))]
        async fn $list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
            list(&state, $kind).await
        }

        #[doc = concat!("Creates one of the ", $tag, ".")]
        #[utoipa::path(post, path = $base, tag = $tag, request_body = CollectionRequest, responses(
            (status = 201, description = "Created", body = Collection),
            (status = 400, description = "Invalid name", body = ErrorBody),
            (status = 401, description = "No or wrong admin token", body = ErrorBody),
            (status = 409, description = "The name exists", body = ErrorBody),
        ))]
        async fn $create(
            State(state): State<AppState>,
            ApiJson(request): ApiJson<CollectionRequest>,
        ) -> Result<impl IntoResponse, ApiError> {
            create(&state, $kind, request).await
        }

        #[doc = concat!("Reads one of the ", $tag, ".")]
        #[utoipa::path(get, path = $one, tag = $tag, params(("name" = String, Path, description = "Its name")),
            responses(
                (status = 200, description = "It", body = Collection),
                (status = 401, description = "No or wrong admin token", body = ErrorBody),
                (status = 404, description = "No such name", body = ErrorBody),
            ))]
        async fn $read(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
            read(&state, $kind, &name).await
        }

        #[doc = concat!("Changes the description of one of the ", $tag, ".")]
        #[utoipa::path(put, path = $one, tag = $tag, params(("name" = String, Path, description = "Its name")),
            request_body = DescriptionRequest,
            responses(
                (status = 200, description = "Changed", body = Collection),
                (status = 401, description = "No or wrong admin token", body = ErrorBody),
                (status = 404, description = "No such name", body = ErrorBody),
            ))]
        async fn $describe(
            State(state): State<AppState>,
            Path(name): Path<String>,
            ApiJson(request): ApiJson<DescriptionRequest>,
        ) -> Result<impl IntoResponse, ApiError> {
            describe(&state, $kind, &name, request).await
        }

        #[doc = concat!("Deletes one of the ", $tag, " and its memberships.")]
        #[utoipa::path(delete, path = $one, tag = $tag, params(("name" = String, Path, description = "Its name")),
            responses(
                (status = 204, description = "Deleted"),
                (status = 401, description = "No or wrong admin token", body = ErrorBody),
                (status = 404, description = "No such name", body = ErrorBody),
            ))]
        async fn $delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
            delete(&state, $kind, &name).await
        }

        #[doc = concat!("Makes a user a member (a manual grant: no sign-in removes it; a user who is a member already keeps the first grant).")]
        #[utoipa::path(put, path = $member, tag = $tag,
            params(("name" = String, Path, description = "Its name"), ("user_id" = String, Path, description = "The user's id")),
            responses(
                (status = 204, description = "A member"),
                (status = 401, description = "No or wrong admin token", body = ErrorBody),
                (status = 404, description = "No such name or user", body = ErrorBody),
            ))]
        async fn $add(
            State(state): State<AppState>,
            Path((name, user)): Path<(String, String)>,
        ) -> Result<impl IntoResponse, ApiError> {
            add_member(&state, $kind, &name, &user).await
        }

        #[doc = concat!("Ends a membership, whoever granted it.")]
        #[utoipa::path(delete, path = $member, tag = $tag,
            params(("name" = String, Path, description = "Its name"), ("user_id" = String, Path, description = "The user's id")),
            responses(
                (status = 204, description = "No longer a member"),
                (status = 401, description = "No or wrong admin token", body = ErrorBody),
                (status = 404, description = "Not a member", body = ErrorBody),
            ))]
        async fn $remove(
            State(state): State<AppState>,
            Path((name, user)): Path<(String, String)>,
        ) -> Result<impl IntoResponse, ApiError> {
            remove_member(&state, $kind, &name, &user).await
        }
    };
}

collection_handlers!(
    MembershipKind::Group,
    "groups",
    list_groups,
    create_group,
    read_group,
    describe_group,
    delete_group,
    add_group_member,
    remove_group_member,
    "/groups",
    "/groups/{name}",
    "/groups/{name}/members/{user_id}"
);
collection_handlers!(
    MembershipKind::Role,
    "roles",
    list_roles,
    create_role,
    read_role,
    describe_role,
    delete_role,
    add_role_member,
    remove_role_member,
    "/roles",
    "/roles/{name}",
    "/roles/{name}/members/{user_id}"
);
