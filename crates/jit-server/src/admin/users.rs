//! `/users`: local accounts — create, read, search by attribute, delete,
//! and reset their TOTP enrolment.
//!
//! Passwords are hashed (Argon2id) before they reach the store and are
//! never returned or logged; a TOTP secret is never returned either (only
//! whether the user is enrolled).

use std::fmt;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use jit_domain::attribute::{AttributeName, Attributes};
use jit_domain::membership::{Membership, MembershipKind};
use jit_domain::ports::{FederatedLink, NewLocalUser, PasswordLockoutStore, TotpStore, UserStore};
use jit_domain::ports::{MembershipStore, Provenance};
use jit_domain::schema::{EMAIL, USERNAME, is_system};
use jit_domain::user::{LocalUser, UserId, Username};
use jit_primitives::password::hash_password_off_thread;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::API_PREFIX;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use crate::AppState;

/// Most users one search returns by default.
const DEFAULT_SEARCH_LIMIT: u64 = 100;
/// Most users one search may return.
const MAX_SEARCH_LIMIT: u64 = 1000;
/// Longest password accepted, in bytes (hashing is deliberately slow).
use jit_domain::user::MAX_PASSWORD_LEN;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(search, create))
        .routes(routes!(read, patch, delete))
        .routes(routes!(reset_totp))
        .routes(routes!(unlock))
}

/// A user as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Stable identifier (the `sub` of the ID tokens jit issues).
    pub id: UserId,
    /// Login name.
    pub username: Username,
    /// Profile attributes.
    pub attributes: Attributes,
    /// Where each attribute came from (`admin`, `connection:<name>`) and
    /// when it last changed.
    pub provenance: std::collections::BTreeMap<String, Provenance>,
    /// Whether the email is verified (by an IdP that verified that very
    /// address, an administrator, or a completed Email OTP).
    pub email_verified: bool,
    /// The federated identities associated with the account.
    pub federated_identities: Vec<FederatedLink>,
    /// Whether the user has set up TOTP (an authenticator app). The secret
    /// itself is never returned.
    pub totp_enrolled: bool,
    /// The groups the user is a member of, and who granted each.
    pub groups: Vec<Membership>,
    /// The roles the user holds, and who granted each.
    pub roles: Vec<Membership>,
    /// Until when password sign-in is locked after too many wrong
    /// passwords; absent when it is not.
    #[serde(skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub locked_until: Option<time::OffsetDateTime>,
}

/// A local user to create.
#[derive(Deserialize, ToSchema)]
pub struct NewUserRequest {
    /// Login name (unique, case-insensitively).
    pub username: Username,
    /// A password for local sign-in; without one the user can sign in only
    /// through a connection.
    #[serde(default)]
    #[schema(write_only)]
    pub password: Option<String>,
    /// Profile attributes, as the attribute schema defines them (`email`
    /// is unique, case-insensitively, once verified).
    #[serde(default)]
    pub attributes: Attributes,
    /// Whether you vouch for the email address: only a verified email holds
    /// the address uniquely and lets a connection's linking rules find the
    /// account. Defaults to false (an Email OTP sign-in step verifies it).
    #[serde(default)]
    pub email_verified: bool,
}

impl fmt::Debug for NewUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUserRequest")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("attributes", &self.attributes)
            .finish()
    }
}

/// A search by attribute.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// The attribute to search (`username` included), e.g. `email`.
    pub attribute: Option<String>,
    /// The value it must have; compared as the schema says (emails and
    /// usernames ignore case and surrounding white space).
    pub value: Option<String>,
    /// At most this many users (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// Finds the users whose attribute has a value, e.g.
/// `GET /users?attribute=email&value=a@b.c`.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(UserSearch),
    responses(
        (status = 200, description = "The users found (possibly none)", body = Vec<UserView>),
        (status = 400, description = "Missing or unknown attribute", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn search(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UserSearch>,
) -> Result<impl IntoResponse, ApiError> {
    let (Some(attribute), Some(value)) = (query.attribute, query.value) else {
        return Err(ApiError::bad_request(
            "give the attribute and the value to search for, e.g. /users?attribute=email&value=a@example.com",
        ));
    };
    let name = AttributeName::new(attribute)?;
    if is_system(name.as_str()) {
        return Err(ApiError::bad_request(format!("{name:?} is a system attribute and cannot be searched")));
    }
    if name.as_str() != USERNAME {
        state.store.schema().await?.require(&name)?;
    }
    let limit = query.limit.unwrap_or(DEFAULT_SEARCH_LIMIT).clamp(1, MAX_SEARCH_LIMIT);
    let mut views = Vec::new();
    for user in state.store.find_users(&name, &value, limit).await? {
        views.push(view(&state, user).await?);
    }
    Ok(Json(views))
}

/// Creates a local user. A username or unique attribute value (such as an
/// email, compared case-insensitively) that another user has is a 409.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = UserView,
         headers(("Location" = String, description = "The new user's URL"))),
        (status = 400, description = "Invalid username, password or attributes", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 409, description = "The username or a unique value is taken", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<NewUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let NewUserRequest { username, password, attributes, email_verified } = request;
    if let Some(name) = attributes.names().find(|n| n.as_str() == USERNAME || is_system(n.as_str())) {
        return Err(ApiError::bad_request(format!(
            "attribute {name:?} cannot be set here: the username is its own field, and system attributes are \
             managed by jit"
        )));
    }
    state.store.schema().await?.check(&attributes)?;
    let password_hash = match password {
        None => None,
        Some(password) if password.is_empty() || password.len() > MAX_PASSWORD_LEN => {
            return Err(ApiError::bad_request(format!(
                "password must be 1 to {MAX_PASSWORD_LEN} bytes; leave it out for a user who signs in only \
                 through a connection"
            )));
        }
        Some(password) => Some(hash_password_off_thread(password).await?),
    };
    let new = NewLocalUser { username, attributes, password_hash, email_verified };
    let user = state.store.create_user(new, state.clock.now()).await?;
    tracing::info!(event = "admin_user_created", user = %user.id, "user created");
    let location = format!("{API_PREFIX}/users/{}", user.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view(&state, user).await?)))
}

/// A change to a user: a JSON merge patch (RFC 7396) of the attributes,
/// and whether the email is verified.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"attributes": {"department": "Sales", "nickname": null}}))]
pub struct UserPatch {
    /// Attributes to set (a string, or an array of strings for a
    /// multi-valued attribute) or to remove (`null`); the others stay.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Whether the administrator vouches for the email. Left out: a changed
    /// email is unverified, an unchanged one keeps its state.
    pub email_verified: Option<bool>,
}

/// Changes a user's attributes (a JSON merge patch). The schema's rules
/// hold (declared names, single or multi-valued, normalisation); a value
/// another user holds uniquely is a 409 and nothing changes.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    request_body(content = UserPatch, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The user, changed", body = UserView),
        (status = 400, description = "Invalid attributes", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "A unique value another user holds", body = ErrorBody),
    )
)]
async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state.store.user(parse_id(&id)?).await?.ok_or_else(|| not_found(&id))?;
    if let Some(name) = patch.attributes.keys().find(|n| n.as_str() == USERNAME || is_system(n)) {
        return Err(ApiError::bad_request(format!(
            "attribute {name:?} cannot be set here: the username is not an attribute, and system attributes are \
             managed by jit"
        )));
    }
    let attributes = user.attributes.merged(&patch.attributes)?;
    let email = |attributes: &jit_domain::attribute::Attributes| attributes.get(EMAIL).cloned();
    let email_verified =
        patch.email_verified.unwrap_or(user.email_verified && email(&attributes) == email(&user.attributes));
    let changed = state.store.set_attributes(user.id, &attributes, email_verified, state.clock.now()).await?;
    tracing::info!(event = "admin_user_changed", user = %user.id, "user attributes changed");
    Ok(Json(view(&state, changed).await?))
}

/// Reads a user with their federated identities.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
async fn read(State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let user = state.store.user(parse_id(&id)?).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(view(&state, user).await?))
}

/// Deletes a user with their attributes and federated identities (their
/// next federated sign-in is a first login again).
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let user = parse_id(&id)?;
    if !state.store.delete_user(user).await? {
        return Err(not_found(&id));
    }
    tracing::info!(event = "admin_user_deleted", user = %user, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Resets a user's TOTP: the enrolment (secret, used codes, failure count
/// and lock) is removed, and the user sets up an authenticator app again at
/// the next sign-in that asks for TOTP.
#[utoipa::path(
    delete,
    path = "/users/{id}/totp",
    tag = "users",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 204, description = "The enrolment was removed"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user, or the user has no TOTP enrolment", body = ErrorBody),
    )
)]
async fn reset_totp(State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let user = parse_id(&id)?;
    if !state.store.reset_totp(user).await? {
        if state.store.user(user).await?.is_none() {
            return Err(not_found(&id));
        }
        return Err(ApiError::not_found(format!("user {id:?} has no TOTP enrolment to reset")));
    }
    tracing::info!(event = "admin_totp_reset", user = %user, "TOTP enrolment reset");
    Ok(StatusCode::NO_CONTENT)
}

/// Unlocks a user's password sign-in (locked after too many wrong
/// passwords): the failure count starts again at zero.
#[utoipa::path(
    post,
    path = "/users/{id}/unlock",
    tag = "users",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 204, description = "Unlocked (or was not locked)"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
async fn unlock(State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let user = parse_id(&id)?;
    if state.store.user(user).await?.is_none() {
        return Err(not_found(&id));
    }
    state.store.clear_password_failures(user).await?;
    tracing::info!(event = "admin_password_unlocked", user = %user, "password sign-in unlocked");
    Ok(StatusCode::NO_CONTENT)
}

/// A user with their federated identities and whether they use TOTP.
pub async fn view(state: &AppState, user: LocalUser) -> Result<UserView, ApiError> {
    let federated_identities = state.store.federated_links(user.id).await?;
    let totp_enrolled = state.store.totp(user.id).await?.is_some();
    let (groups, roles): (Vec<_>, Vec<_>) =
        state.store.all_memberships(user.id).await?.into_iter().partition(|(kind, _)| *kind == MembershipKind::Group);
    let groups = groups.into_iter().map(|(_, membership)| membership).collect();
    let roles = roles.into_iter().map(|(_, membership)| membership).collect();
    let provenance = state.store.provenance(user.id).await?;
    let locked_until = state.store.password_locked_until(user.id, state.clock.now()).await?;
    Ok(UserView {
        id: user.id,
        username: user.username,
        attributes: user.attributes,
        provenance,
        email_verified: user.email_verified,
        federated_identities,
        totp_enrolled,
        groups,
        roles,
        locked_until,
    })
}

/// An id from a URL: one that is not a UUID cannot exist.
pub fn parse_id(id: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(id).map(UserId).map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("there is no user with id {id:?}"))
}
