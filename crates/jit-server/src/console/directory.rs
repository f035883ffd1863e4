//! Users, the attribute schema, local groups and roles, the provisioning
//! audit trail and the signing keys. Each action calls the admin layer's
//! own function or store port, so it is refused exactly where the API
//! refuses it, with the same message.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jit_domain::attribute::AttributeName;
use jit_domain::attribute::Normalization;
use jit_domain::audit::{AuditAction, AuditEvent, AuditFilter};
use jit_domain::connection::ConnectionName;
use jit_domain::membership::MembershipKind;
use jit_domain::ports::{
    AuditLog, Collection, ConnectionStore, MembershipStore, PasswordLockoutStore, SchemaStore, SigningKeyStore,
    TotpStore, UserStore,
};
use jit_domain::schema::{AttributeDefinition, USERNAME, is_standard, is_system};
use jit_domain::user::LocalUser;
use jit_provider::keys::SigningAlgorithm;
use serde::Deserialize;

use super::error::ConsoleError;
use super::login::Empty;
use super::session::{Admin, AdminForm};
use super::view::{Chrome, ConfirmPage, FieldErrors, Saved};
use crate::AppState;
use crate::admin::attributes::{declare_attribute, delete_attribute, redefine_attribute};
use crate::admin::groups::{
    CollectionRequest, DescriptionRequest, create as create_collection, delete as delete_collection, describe,
};
use crate::admin::users::{UserView, parse_id, view as user_view};
use crate::pages::render;

/// Users one search shows at most.
const SEARCH_LIMIT: u64 = 100;
/// Audit events one page shows at most.
const AUDIT_LIMIT: u64 = 200;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/users", get(users))
        .route("/console/users/{id}", get(user))
        .route("/console/users/{id}/totp-reset", post(reset_totp))
        .route("/console/users/{id}/unlock", post(unlock))
        .route("/console/users/{id}/delete", get(confirm_delete_user).post(delete_user))
        .route("/console/attributes", get(attributes).post(declare))
        .route("/console/attributes/{name}", get(attribute).post(redefine))
        .route("/console/attributes/{name}/delete", get(confirm_delete_attribute).post(delete_declared))
        .route("/console/groups", get(groups).post(create_group))
        .route("/console/roles", get(roles).post(create_role))
        .route("/console/{kind}/{name}/delete", get(confirm_delete_collection).post(delete_kind))
        .route("/console/{kind}/{name}/describe", post(describe_kind))
        .route("/console/audit", get(audit))
        .route("/console/keys", get(keys))
        .route("/console/keys/rotate", post(rotate))
}

// --- Users -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    chrome: Chrome,
    searchable: Vec<String>,
    attribute: String,
    value: String,
    found: Option<Vec<LocalUser>>,
    errors: FieldErrors,
}

/// A search: any attribute, any value.
#[derive(Debug, Default, Deserialize)]
pub struct UserSearch {
    #[serde(default)]
    attribute: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

async fn users(
    State(state): State<AppState>,
    admin: Admin,
    Query(search): Query<UserSearch>,
) -> Result<Response, ConsoleError> {
    let schema = state.store.schema().await?;
    let searchable: Vec<String> = std::iter::once(USERNAME.to_owned())
        .chain(schema.definitions().filter(|d| !is_system(d.name.as_str())).map(|d| d.name.to_string()))
        .collect();
    let attribute = search.attribute.unwrap_or_else(|| USERNAME.to_owned());
    let value = search.value.unwrap_or_default();
    let mut page = UsersPage {
        chrome: Chrome::new(&admin, "users"),
        searchable,
        attribute,
        value,
        found: None,
        errors: FieldErrors::none(),
    };
    if !page.value.trim().is_empty() {
        match AttributeName::new(&page.attribute) {
            Ok(name) if page.searchable.contains(&page.attribute) => {
                page.found = Some(state.store.find_users(&name, page.value.trim(), SEARCH_LIMIT).await?);
            }
            Ok(_) => page.errors = FieldErrors::one("attribute", format!("{:?} cannot be searched", page.attribute)),
            Err(error) => page.errors = FieldErrors::config(&error),
        }
    }
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    chrome: Chrome,
    user: UserView,
    attributes: Vec<AttributeRow>,
}

/// One attribute with where it came from.
struct AttributeRow {
    name: String,
    values: String,
    source: String,
    changed: String,
}

async fn load_user(state: &AppState, id: &str) -> Result<LocalUser, ConsoleError> {
    let user = parse_id(id)?;
    state.store.user(user).await?.ok_or_else(|| ConsoleError::not_found(format!("there is no user with id {id:?}")))
}

async fn user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    let user = user_view(&state, load_user(&state, &id).await?).await?;
    let attributes = user
        .attributes
        .iter()
        .map(|(name, value)| {
            let provenance = user.provenance.get(name.as_str());
            AttributeRow {
                name: name.to_string(),
                values: value.values().join(", "),
                source: provenance.map(|p| p.source.clone()).unwrap_or_else(|| "—".to_owned()),
                changed: provenance.map(|p| timestamp(&p.changed_at)).unwrap_or_default(),
            }
        })
        .collect();
    let page = UserPage { chrome: Chrome::new(&admin, "users").with_notice(saved.notice()), user, attributes };
    Ok(render(StatusCode::OK, &page))
}

/// A time as the console shows it (UTC, to the second).
pub fn timestamp(at: &time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

async fn reset_totp(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _form: AdminForm<Empty>,
) -> Result<Response, ConsoleError> {
    let user = load_user(&state, &id).await?;
    state.store.reset_totp(user.id).await?;
    tracing::info!(event = "admin_totp_reset", user = %user.id, via = "console", "TOTP enrolment reset");
    Ok(Redirect::to(&format!("/console/users/{id}?saved")).into_response())
}

async fn unlock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _form: AdminForm<Empty>,
) -> Result<Response, ConsoleError> {
    let user = load_user(&state, &id).await?;
    state.store.clear_password_failures(user.id).await?;
    tracing::info!(event = "admin_password_unlocked", user = %user.id, via = "console", "password sign-in unlocked");
    Ok(Redirect::to(&format!("/console/users/{id}?saved")).into_response())
}

async fn confirm_delete_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let user = load_user(&state, &id).await?;
    let yourself =
        if user.id == admin.user.id { " This is your own account: you will be signed out of the console." } else { "" };
    let page = ConfirmPage {
        chrome: Chrome::new(&admin, "users"),
        title: format!("Delete user {}", user.username),
        question: format!("Delete the user {}?", user.username),
        consequence: format!(
            "The account, its attributes, memberships and federated links are removed; a later federated sign-in may provision a new account.{yourself}"
        ),
        action: format!("/console/users/{id}/delete"),
        cancel: format!("/console/users/{id}"),
    };
    Ok(render(StatusCode::OK, &page))
}

async fn delete_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _form: AdminForm<Empty>,
) -> Result<Response, ConsoleError> {
    let user = load_user(&state, &id).await?;
    state.store.delete_user(user.id).await?;
    tracing::info!(event = "admin_user_deleted", user = %user.id, via = "console", "user deleted");
    Ok(Redirect::to("/console/users").into_response())
}

// --- Attributes --------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/attributes.html")]
struct AttributesPage {
    chrome: Chrome,
    rows: Vec<AttributeDefinition>,
    form: DeclareForm,
    errors: FieldErrors,
}

impl AttributesPage {
    fn standard(&self, name: &AttributeName) -> bool {
        is_standard(name.as_str()) || is_system(name.as_str())
    }
}

/// A new attribute.
#[derive(Debug, Default, Deserialize)]
pub struct DeclareForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    unique: Option<String>,
    #[serde(default)]
    multi_valued: Option<String>,
    #[serde(default)]
    case_insensitive: Option<String>,
    #[serde(default)]
    sensitive: Option<String>,
}

async fn attributes_page(
    state: &AppState,
    admin: &Admin,
    form: DeclareForm,
    errors: FieldErrors,
    saved: &Saved,
) -> Result<AttributesPage, ConsoleError> {
    let rows = state.store.attribute_schema().await?.definitions().cloned().collect();
    Ok(AttributesPage { chrome: Chrome::new(admin, "attributes").with_notice(saved.notice()), rows, form, errors })
}

async fn attributes(
    State(state): State<AppState>,
    admin: Admin,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    let page = attributes_page(&state, &admin, DeclareForm::default(), FieldErrors::none(), &saved).await?;
    Ok(render(StatusCode::OK, &page))
}

async fn declare(
    State(state): State<AppState>,
    AdminForm { admin, form }: AdminForm<DeclareForm>,
) -> Result<Response, ConsoleError> {
    let refused = |form, errors| async {
        Ok::<_, ConsoleError>(render(
            StatusCode::BAD_REQUEST,
            &attributes_page(&state, &admin, form, errors, &Saved::default()).await?,
        ))
    };
    let name = match AttributeName::new(form.name.trim()) {
        Ok(name) => name,
        Err(error) => return refused(form, FieldErrors::config(&error)).await,
    };
    let definition = definition_of(name, &form);
    match declare_attribute(&state, &definition).await {
        Ok(()) => Ok(Redirect::to("/console/attributes?saved").into_response()),
        Err(error) if error.status().is_client_error() => {
            let message = error.message().to_owned();
            refused(form, FieldErrors::one("name", message)).await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "console/attribute.html")]
struct AttributePage {
    chrome: Chrome,
    name: String,
    form: DeclareForm,
    errors: FieldErrors,
}

fn definition_of(name: AttributeName, form: &DeclareForm) -> AttributeDefinition {
    AttributeDefinition {
        name,
        unique: form.unique.is_some(),
        multi_valued: form.multi_valued.is_some(),
        normalization: if form.case_insensitive.is_some() {
            Normalization::CaseInsensitive
        } else {
            Normalization::Exact
        },
        description: form.description.trim().to_owned(),
        sensitive: form.sensitive.is_some(),
    }
}

async fn attribute(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    let schema = state.store.attribute_schema().await?;
    let definition = schema
        .get(&name)
        .filter(|d| !is_standard(d.name.as_str()) && !is_system(d.name.as_str()))
        .ok_or_else(|| ConsoleError::not_found(format!("no declared attribute named {name:?}")))?;
    let on = |yes: bool| yes.then(|| "on".to_owned());
    let form = DeclareForm {
        name: name.clone(),
        description: definition.description.clone(),
        unique: on(definition.unique),
        multi_valued: on(definition.multi_valued),
        case_insensitive: on(definition.normalization != Normalization::Exact),
        sensitive: on(definition.sensitive),
    };
    Ok(render(
        StatusCode::OK,
        &AttributePage { chrome: Chrome::new(&admin, "attributes"), name, form, errors: FieldErrors::none() },
    ))
}

async fn redefine(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<DeclareForm>,
) -> Result<Response, ConsoleError> {
    let parsed =
        AttributeName::new(&name).map_err(|_| ConsoleError::not_found(format!("no attribute named {name:?}")))?;
    match redefine_attribute(&state, &definition_of(parsed, &form)).await {
        Ok(()) => Ok(Redirect::to("/console/attributes?saved").into_response()),
        Err(error) if error.status().is_client_error() => {
            let errors = FieldErrors::one("form", error.message());
            Ok(render(
                StatusCode::BAD_REQUEST,
                &AttributePage { chrome: Chrome::new(&admin, "attributes"), name, form, errors },
            ))
        }
        Err(error) => Err(error.into()),
    }
}

async fn confirm_delete_attribute(admin: Admin, Path(name): Path<String>) -> Response {
    let page = ConfirmPage {
        chrome: Chrome::new(&admin, "attributes"),
        title: format!("Delete attribute {name}"),
        question: format!("Delete the attribute {name} from the schema?"),
        consequence: "Users' values of it are no longer read or released. A connection that maps a claim onto it, or links on it, must be changed first.".to_owned(),
        action: format!("/console/attributes/{name}/delete"),
        cancel: "/console/attributes".to_owned(),
    };
    render(StatusCode::OK, &page)
}

async fn delete_declared(
    State(state): State<AppState>,
    Path(name): Path<String>,
    _form: AdminForm<Empty>,
) -> Result<Response, ConsoleError> {
    delete_attribute(&state, &name).await?;
    Ok(Redirect::to("/console/attributes?saved").into_response())
}

// --- Groups and roles --------------------------------------------------------

#[derive(Template)]
#[template(path = "console/collections.html")]
struct CollectionsPage {
    chrome: Chrome,
    kind: &'static str,
    title: &'static str,
    rows: Vec<Collection>,
    name: String,
    description: String,
    errors: FieldErrors,
}

/// A new group or role.
#[derive(Debug, Default, Deserialize)]
pub struct CollectionForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

fn kind_of(plural: &str) -> Result<MembershipKind, ConsoleError> {
    match plural {
        "groups" => Ok(MembershipKind::Group),
        "roles" => Ok(MembershipKind::Role),
        _ => Err(ConsoleError::not_found("no such page")),
    }
}

async fn collections_page(
    state: &AppState,
    admin: &Admin,
    kind: MembershipKind,
    form: CollectionForm,
    errors: FieldErrors,
    saved: &Saved,
) -> Result<Response, ConsoleError> {
    let (section, title) = match kind {
        MembershipKind::Group => ("groups", "Groups"),
        MembershipKind::Role => ("roles", "Roles"),
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let page = CollectionsPage {
        chrome: Chrome::new(admin, section).with_notice(saved.notice()),
        kind: kind.plural(),
        title,
        rows: state.store.collections(kind).await?,
        name: form.name,
        description: form.description,
        errors,
    };
    Ok(render(status, &page))
}

async fn groups(
    State(state): State<AppState>,
    admin: Admin,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    collections_page(&state, &admin, MembershipKind::Group, CollectionForm::default(), FieldErrors::none(), &saved)
        .await
}

async fn roles(
    State(state): State<AppState>,
    admin: Admin,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    collections_page(&state, &admin, MembershipKind::Role, CollectionForm::default(), FieldErrors::none(), &saved).await
}

async fn create_kind(
    state: &AppState,
    admin: &Admin,
    kind: MembershipKind,
    form: CollectionForm,
) -> Result<Response, ConsoleError> {
    let request =
        CollectionRequest { name: form.name.trim().to_owned(), description: form.description.trim().to_owned() };
    match create_collection(state, kind, request).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/{}?saved", kind.plural())).into_response()),
        Err(error) if error.status().is_client_error() => {
            let errors = FieldErrors::one("name", error.message());
            collections_page(state, admin, kind, form, errors, &Saved::default()).await
        }
        Err(error) => Err(error.into()),
    }
}

async fn create_group(
    State(state): State<AppState>,
    AdminForm { admin, form }: AdminForm<CollectionForm>,
) -> Result<Response, ConsoleError> {
    create_kind(&state, &admin, MembershipKind::Group, form).await
}

async fn create_role(
    State(state): State<AppState>,
    AdminForm { admin, form }: AdminForm<CollectionForm>,
) -> Result<Response, ConsoleError> {
    create_kind(&state, &admin, MembershipKind::Role, form).await
}

async fn confirm_delete_collection(
    admin: Admin,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let kind = kind_of(&plural)?;
    let admin_role = kind == MembershipKind::Role && name == jit_domain::membership::ADMIN_ROLE;
    let page = ConfirmPage {
        chrome: Chrome::new(&admin, kind.plural()),
        title: format!("Delete {} {name}", kind.singular()),
        question: format!("Delete the {} {name}?", kind.singular()),
        consequence: if admin_role {
            "This is the role that opens the console: deleting it takes the console from every administrator, you included.".to_owned()
        } else {
            format!(
                "Every membership of it ends. A connection that maps IdP values onto it will create it again only if it creates unmapped {}.",
                kind.plural()
            )
        },
        action: format!("/console/{}/{name}/delete", kind.plural()),
        cancel: format!("/console/{}", kind.plural()),
    };
    Ok(render(StatusCode::OK, &page))
}

/// A new description.
#[derive(Debug, Deserialize)]
pub struct DescribeForm {
    #[serde(default)]
    description: String,
}

async fn describe_kind(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    AdminForm { admin, form }: AdminForm<DescribeForm>,
) -> Result<Response, ConsoleError> {
    let kind = kind_of(&plural)?;
    let request = DescriptionRequest { description: form.description.trim().to_owned() };
    match describe(&state, kind, &name, request).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/{}?saved", kind.plural())).into_response()),
        Err(error) if error.status().is_client_error() => {
            let errors = FieldErrors::one("describe", format!("{name}: {}", error.message()));
            collections_page(&state, &admin, kind, CollectionForm::default(), errors, &Saved::default()).await
        }
        Err(error) => Err(error.into()),
    }
}

async fn delete_kind(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    _form: AdminForm<Empty>,
) -> Result<Response, ConsoleError> {
    let kind = kind_of(&plural)?;
    delete_collection(&state, kind, &name).await?;
    Ok(Redirect::to(&format!("/console/{}?saved", kind.plural())).into_response())
}

// --- Audit -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    connections: Vec<String>,
    actions: &'static [&'static str],
    filter: AuditQuery,
    events: Vec<EventRow>,
    errors: FieldErrors,
}

/// One event as shown.
struct EventRow {
    at: String,
    connection: String,
    subject: String,
    user: Option<String>,
    action: String,
    detail: String,
}

impl From<AuditEvent> for EventRow {
    fn from(event: AuditEvent) -> Self {
        let detail = serde_json::to_value(&event.action).ok();
        let action = detail.as_ref().and_then(|d| d["action"].as_str()).unwrap_or_default().to_owned();
        let detail = detail
            .and_then(|mut d| {
                d.as_object_mut()?.remove("action");
                serde_json::to_string_pretty(&d).ok()
            })
            .unwrap_or_default();
        Self {
            at: timestamp(&event.at),
            connection: event.connection.to_string(),
            subject: event.subject.to_string(),
            user: event.user.map(|u| u.to_string()),
            action,
            detail,
        }
    }
}

/// The audit filters (empty: any).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    connection: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
}

async fn audit(
    State(state): State<AppState>,
    admin: Admin,
    Query(filter): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    let mut errors = FieldErrors::none();
    let connection = match filter.connection.as_str() {
        "" => None,
        name => ConnectionName::new(name).ok(),
    };
    let user = match filter.user.trim() {
        "" => None,
        id => match parse_id(id) {
            Ok(user) => Some(user),
            Err(_) => {
                errors = FieldErrors::one("user", "a user id is a UUID, as on the user's page");
                None
            }
        },
    };
    let action = Some(filter.action.clone()).filter(|a| AuditAction::ACTIONS.contains(&a.as_str()));
    let events = if errors.is_empty() {
        state.store.audit_events(&AuditFilter { user, connection, action, limit: AUDIT_LIMIT }).await?
    } else {
        Vec::new()
    };
    let connections = state.store.connections().await?.into_iter().map(|c| c.name.to_string()).collect();
    let page = AuditPage {
        chrome: Chrome::new(&admin, "audit"),
        connections,
        actions: &AuditAction::ACTIONS,
        filter,
        events: events.into_iter().map(EventRow::from).collect(),
        errors,
    };
    Ok(render(StatusCode::OK, &page))
}

// --- Keys --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
}

struct KeyRow {
    kid: String,
    algorithm: String,
    created: String,
    active: bool,
}

async fn keys(
    State(state): State<AppState>,
    admin: Admin,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    let keys = state
        .store
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| KeyRow { kid: k.kid, algorithm: k.algorithm, created: timestamp(&k.created_at), active: k.active })
        .collect();
    Ok(render(StatusCode::OK, &KeysPage { chrome: Chrome::new(&admin, "keys").with_notice(saved.notice()), keys }))
}

/// The algorithm of the new key.
#[derive(Debug, Deserialize)]
pub struct RotateForm {
    algorithm: String,
}

async fn rotate(
    State(state): State<AppState>,
    AdminForm { admin, form }: AdminForm<RotateForm>,
) -> Result<Response, ConsoleError> {
    let algorithm = match form.algorithm.as_str() {
        "RS256" => SigningAlgorithm::Rs256,
        _ => SigningAlgorithm::Es256,
    };
    let kid = state.provider.keys().rotate(state.clock.now(), algorithm).await.map_err(ConsoleError::internal)?;
    tracing::info!(event = "admin_signing_key_rotated", kid = %kid, algorithm = %algorithm, via = "console", by = %admin.user.id, "signing key rotated");
    Ok(Redirect::to("/console/keys?saved").into_response())
}
