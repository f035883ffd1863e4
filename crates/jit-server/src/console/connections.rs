//! Connections: the list, "New connection", and a connection's tabs —
//! General, Settings, Attributes, Groups & roles, Just-in-Time
//! Provisioning (laid out as the seeds describe it) and Test (the dry run).
//!
//! Every save runs the domain's `Connection::validate` against the stored
//! schema and goes through the same store port as the admin API; a refused
//! change shows the domain's message next to its field and stores nothing.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use jit_domain::attribute::AttributeName;
use jit_domain::connection::{
    Connection, ConnectionName, JitPolicy, LinkRule, LinkingPolicy, OidcSettings, SyncMethod,
};
use jit_domain::flow::ConnectionFacts;
use jit_domain::membership::{MembershipMapping, MembershipSync, Unmapped};
use jit_domain::ports::{ApplicationStore, ConnectionStore};
use jit_domain::schema::is_system;
use jit_flow::idps::{IdpRegistry, IdpSettings};
use serde::Deserialize;
use serde_json::json;

use super::error::ConsoleError;
use super::session::{Admin, AdminForm};
use super::view::{Chrome, ConfirmPage, DryRunShown, FieldErrors, Saved};
use crate::AppState;
use crate::admin::connections::{keep_or_replace_secret, normalize_secret};
use crate::admin::preview::{PreviewRequest, dry_run};
use crate::pages::render;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/connections", get(list))
        .route("/console/connections/new", get(new_form).post(create))
        .route("/console/connections/{name}", get(tab).post(save_general))
        .route("/console/connections/{name}/settings", get(tab).post(save_settings))
        .route("/console/connections/{name}/attributes", get(tab).post(save_attributes))
        .route("/console/connections/{name}/groups-and-roles", get(tab).post(save_memberships))
        .route("/console/connections/{name}/jit", get(tab).post(save_jit))
        .route("/console/connections/{name}/test", get(tab).post(run_test))
        .route("/console/connections/{name}/delete", get(confirm_delete).post(delete))
        .route("/console/connections/{name}/try", get(super::trial::start))
}

/// The tabs of a connection: (key, path under the connection, label).
pub const TABS: &[(&str, &str, &str)] = &[
    ("general", "", "General"),
    ("settings", "/settings", "Settings"),
    ("attributes", "/attributes", "Attributes"),
    ("memberships", "/groups-and-roles", "Groups & roles"),
    ("jit", "/jit", "Just-in-Time Provisioning"),
    ("test", "/test", "Test"),
];

// --- The list and "New connection" -------------------------------------------

#[derive(Template)]
#[template(path = "console/connections.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<ListRow>,
}

struct ListRow {
    name: String,
    display_name: String,
    protocol: &'static str,
    jit_enabled: bool,
    linked: u64,
}

async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, ConsoleError> {
    let linked = state.store.linked_users().await?;
    let rows = state
        .store
        .connections()
        .await?
        .into_iter()
        .map(|c| ListRow {
            linked: linked.get(&c.name).copied().unwrap_or(0),
            name: c.name.to_string(),
            display_name: c.display_name,
            protocol: "OpenID Connect",
            jit_enabled: c.jit.enabled,
        })
        .collect();
    Ok(render(StatusCode::OK, &ListPage { chrome: Chrome::new(&admin, "connections"), rows }))
}

#[derive(Template)]
#[template(path = "console/connection_new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    errors: FieldErrors,
}

/// The "New connection" form (OpenID Connect).
#[derive(Debug, Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default = "default_scopes")]
    scopes: String,
}

fn default_scopes() -> String {
    "openid profile email".to_owned()
}

async fn new_form(admin: Admin) -> Response {
    let form = NewForm { scopes: default_scopes(), ..NewForm::default() };
    render(StatusCode::OK, &NewPage { chrome: Chrome::new(&admin, "connections"), form, errors: FieldErrors::none() })
}

async fn create(
    State(state): State<AppState>,
    AdminForm { admin, form }: AdminForm<NewForm>,
) -> Result<Response, ConsoleError> {
    let refuse = |form: NewForm, errors: FieldErrors| {
        Ok(render(StatusCode::BAD_REQUEST, &NewPage { chrome: Chrome::new(&admin, "connections"), form, errors }))
    };
    let name = match ConnectionName::new(form.name.trim()) {
        Ok(name) => name,
        Err(error) => return refuse(form, FieldErrors::config(&error)),
    };
    let mut connection = Connection {
        display_name: if form.display_name.trim().is_empty() {
            name.to_string()
        } else {
            form.display_name.trim().to_owned()
        },
        name,
        protocol: Default::default(),
        oidc: OidcSettings {
            issuer: form.issuer.trim().to_owned(),
            client_id: form.client_id.trim().to_owned(),
            client_secret: Some(form.client_secret.clone()),
            scopes: split_scopes(&form.scopes),
            ..OidcSettings::default()
        },
        claim_mappings: BTreeMap::new(),
        jit: JitPolicy::default(),
        claim_filters: Vec::new(),
        groups: None,
        roles: None,
    };
    normalize_secret(&mut connection);
    if let Err(error) = connection.validate(&*state.store.schema().await?) {
        return refuse(form, FieldErrors::config(&error));
    }
    if let Err(message) = check_discovery(&state, &connection).await {
        return refuse(form, FieldErrors::one("issuer", message));
    }
    if let Err(error) = state.store.create_connection(&connection, state.clock.now()).await {
        return match error {
            jit_domain::ports::StoreError::Taken(_) => {
                refuse(form, FieldErrors::one("name", "a connection with this name exists already"))
            }
            other => Err(other.into()),
        };
    }
    tracing::info!(event = "admin_connection_created", connection = %connection.name, via = "console", "connection created");
    Ok(Redirect::to(&format!("/console/connections/{}?saved", connection.name)).into_response())
}

/// Whether the issuer answers as an OpenID provider (its discovery
/// document), before the connection is saved.
async fn check_discovery(state: &AppState, connection: &Connection) -> Result<(), String> {
    let registry = IdpRegistry::new(IdpSettings::default());
    let client = registry.oidc_client(connection, &state.settings.public_url).map_err(|e| e.to_string())?;
    client.check_discovery().await.map_err(|error| {
        format!(
            "{error}. jit reads {}/.well-known/openid-configuration when it saves a connection: check the issuer",
            connection.oidc.issuer.trim_end_matches('/')
        )
    })
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

// --- A connection's tabs -----------------------------------------------------

#[derive(Template)]
#[template(path = "console/connection.html")]
struct ConnectionPage {
    chrome: Chrome,
    tab: &'static str,
    connection: Connection,
    errors: FieldErrors,
    linked: u64,
    /// Unique attributes (the local side of a linking rule).
    unique_attributes: Vec<String>,
    /// Attributes claims may map onto.
    mappable_attributes: Vec<String>,
    /// The linking rule rows shown (at least one).
    rules: Vec<LinkRule>,
    /// The claim mapping rows shown (one blank at the end).
    mappings: Vec<(String, String)>,
    /// The group and role mapping forms.
    groups: MembershipRows,
    roles: MembershipRows,
    /// Applications whose flow asks for TOTP or Email OTP after this
    /// connection.
    mfa_applications: Vec<String>,
    /// The Test tab.
    sample_claims: String,
    preview: Option<DryRunShown>,
    public_url: String,
}

/// A group or role mapping as a form.
struct MembershipRows {
    enabled: bool,
    claim: String,
    rows: Vec<(String, String)>,
    create_unmapped: bool,
    merge: bool,
}

impl MembershipRows {
    fn of(mapping: Option<&MembershipMapping>) -> Self {
        let mut rows: Vec<(String, String)> =
            mapping.map(|m| m.mappings.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        rows.push((String::new(), String::new()));
        Self {
            enabled: mapping.is_some(),
            claim: mapping.and_then(|m| m.claim.clone()).unwrap_or_default(),
            rows,
            create_unmapped: mapping.is_some_and(|m| m.unmapped == Unmapped::Create),
            merge: mapping.is_some_and(|m| m.sync_method == MembershipSync::MergeWithExisting),
        }
    }
}

impl ConnectionPage {
    async fn new(
        state: &AppState,
        admin: &Admin,
        tab: &'static str,
        connection: Connection,
    ) -> Result<Self, ConsoleError> {
        let schema = state.store.schema().await?;
        let unique_attributes = schema.definitions().filter(|d| d.unique).map(|d| d.name.to_string()).collect();
        let mappable_attributes =
            schema.definitions().filter(|d| !is_system(d.name.as_str())).map(|d| d.name.to_string()).collect();
        let linked = state.store.linked_users().await?.get(&connection.name).copied().unwrap_or(0);
        let mut mfa_applications = Vec::new();
        for application in state.store.applications().await? {
            let named = application
                .sign_in
                .jit_disabled_before_mfa(|name| Some(ConnectionFacts { jit_enabled: *name != connection.name }));
            if !named.is_empty() {
                mfa_applications.push(application.name);
            }
        }
        let mut rules = connection.jit.linking.rules.clone();
        if rules.is_empty() {
            rules = connection.jit.linking.effective_rules();
        }
        let mut mappings: Vec<(String, String)> =
            connection.claim_mappings.iter().map(|(claim, attribute)| (claim.clone(), attribute.to_string())).collect();
        mappings.push((String::new(), String::new()));
        Ok(Self {
            chrome: Chrome::new(admin, "connections"),
            tab,
            groups: MembershipRows::of(connection.groups.as_ref()),
            roles: MembershipRows::of(connection.roles.as_ref()),
            errors: FieldErrors::none(),
            linked,
            unique_attributes,
            mappable_attributes,
            rules,
            mappings,
            mfa_applications,
            sample_claims: serde_json::to_string_pretty(&json!({
                "sub": "sample-subject",
                "email": "someone@example.com",
                "email_verified": true,
                "preferred_username": "someone",
                "given_name": "Some",
                "family_name": "One"
            }))
            .unwrap_or_default(),
            preview: None,
            public_url: state.settings.public_url.clone(),
            connection,
        })
    }

    fn with_notice(mut self, saved: &Saved) -> Self {
        self.chrome = self.chrome.with_notice(saved.notice());
        self
    }

    fn with_errors(mut self, errors: FieldErrors) -> Self {
        self.errors = errors;
        self
    }

    /// The link of `tab` (a key of [`TABS`]).
    fn tab_href(&self, path: &str) -> String {
        format!("/console/connections/{}{path}", self.connection.name)
    }

    /// The Groups & roles tab's two sections: (field prefix, title, form).
    fn membership_sections(&self) -> [(&'static str, &'static str, &MembershipRows); 2] {
        [("g", "Groups", &self.groups), ("r", "Roles", &self.roles)]
    }

    /// Where the IdP sends its answers.
    fn callback_url(&self) -> String {
        jit_flow::idps::callback_url(&self.public_url, &self.connection.name)
    }

    fn is_sync(&self, method: &str) -> bool {
        sync_key(self.connection.jit.sync_method) == method
    }
}

fn sync_key(method: SyncMethod) -> &'static str {
    match method {
        SyncMethod::OverrideAll => "override_all",
        SyncMethod::PreserveLocal => "preserve_local",
        SyncMethod::None => "none",
    }
}

pub(crate) async fn load(state: &AppState, name: &str) -> Result<Connection, ConsoleError> {
    let missing = || ConsoleError::not_found(format!("there is no connection named {name:?}"));
    let parsed = ConnectionName::new(name).map_err(|_| missing())?;
    state.store.connection(&parsed).await?.ok_or_else(missing)
}

/// `GET` of any tab: which one is the route's last segment ([`TABS`]).
async fn tab(
    State(state): State<AppState>,
    admin: Admin,
    route: MatchedPath,
    Path(name): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    let suffix = route.as_str().trim_start_matches("/console/connections/{name}");
    let tab = TABS.iter().find(|(_, path, _)| *path == suffix).map_or("general", |(key, _, _)| *key);
    let connection = load(&state, &name).await?;
    let page = ConnectionPage::new(&state, &admin, tab, connection).await?.with_notice(&saved);
    Ok(render(StatusCode::OK, &page))
}

/// Validates and stores `changed` (a change of the stored connection), or
/// shows `tab` again with the domain's message; `edited` puts the refused
/// form's values back on the page.
async fn save(
    state: &AppState,
    admin: &Admin,
    tab: &'static str,
    changed: Connection,
    edited: impl FnOnce(&mut ConnectionPage),
) -> Result<Response, ConsoleError> {
    let refused = |errors: FieldErrors, changed: Connection| async move {
        let mut page = ConnectionPage::new(state, admin, tab, changed).await?.with_errors(errors);
        edited(&mut page);
        Ok::<_, ConsoleError>(render(StatusCode::BAD_REQUEST, &page))
    };
    if let Err(error) = changed.validate(&*state.store.schema().await?) {
        return refused(FieldErrors::config(&error), changed).await;
    }
    state.store.update_connection(&changed, state.clock.now()).await?;
    tracing::info!(event = "admin_connection_updated", connection = %changed.name, via = "console", tab, "connection updated");
    let path = TABS.iter().find(|(key, _, _)| *key == tab).map_or("", |(_, path, _)| *path);
    Ok(Redirect::to(&format!("/console/connections/{}{path}?saved", changed.name)).into_response())
}

/// `tab` again, showing `shown` (not stored) with `errors`.
async fn refused(
    state: &AppState,
    admin: &Admin,
    tab: &'static str,
    shown: Connection,
    errors: FieldErrors,
) -> Result<Response, ConsoleError> {
    let page = ConnectionPage::new(state, admin, tab, shown).await?.with_errors(errors);
    Ok(render(StatusCode::BAD_REQUEST, &page))
}

fn checked(value: &Option<String>) -> bool {
    value.is_some()
}

// General

/// The General tab's form.
#[derive(Debug, Deserialize)]
pub struct GeneralForm {
    display_name: String,
}

async fn save_general(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<GeneralForm>,
) -> Result<Response, ConsoleError> {
    let stored = load(&state, &name).await?;
    let changed = Connection { display_name: form.display_name.trim().to_owned(), ..stored };
    save(&state, &admin, "general", changed, |_| {}).await
}

// Settings

/// The Settings tab's form: a blank secret keeps the stored one.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    remove_secret: Option<String>,
    scopes: String,
    #[serde(default)]
    fetch_userinfo: Option<String>,
}

async fn save_settings(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<SettingsForm>,
) -> Result<Response, ConsoleError> {
    let stored = load(&state, &name).await?;
    let mut changed = stored.clone();
    changed.oidc.issuer = form.issuer.trim().to_owned();
    changed.oidc.client_id = form.client_id.trim().to_owned();
    changed.oidc.scopes = split_scopes(&form.scopes);
    changed.oidc.fetch_userinfo = checked(&form.fetch_userinfo);
    changed.oidc.client_secret = match (checked(&form.remove_secret), form.client_secret.is_empty()) {
        (true, _) => Some(String::new()),
        (false, true) => None,
        (false, false) => Some(form.client_secret.clone()),
    };
    if let Err(error) = keep_or_replace_secret(&stored, &mut changed) {
        let errors = FieldErrors::one("client_secret", error.message());
        return refused(&state, &admin, "settings", changed, errors).await;
    }
    if changed.oidc.issuer != stored.oidc.issuer
        && let Err(message) = check_discovery(&state, &changed).await
    {
        return refused(&state, &admin, "settings", changed, FieldErrors::one("issuer", message)).await;
    }
    save(&state, &admin, "settings", changed, |_| {}).await
}

// Attributes

/// The Attributes tab's form: claim → attribute rows.
#[derive(Debug, Deserialize)]
pub struct AttributesForm {
    #[serde(default)]
    claim: Vec<String>,
    #[serde(default)]
    attribute: Vec<String>,
    #[serde(default)]
    action: Option<String>,
}

async fn save_attributes(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<AttributesForm>,
) -> Result<Response, ConsoleError> {
    let stored = load(&state, &name).await?;
    let rows: Vec<(String, String)> = form
        .claim
        .iter()
        .zip(form.attribute.iter())
        .map(|(c, a)| (c.trim().to_owned(), a.trim().to_owned()))
        .filter(|(c, _)| !c.is_empty())
        .collect();
    let edited_rows = rows.clone();
    let shown = move |page: &mut ConnectionPage| {
        page.mappings = edited_rows;
        page.mappings.push((String::new(), String::new()));
    };
    if form.action.as_deref() == Some("add") {
        let mut page = ConnectionPage::new(&state, &admin, "attributes", stored).await?;
        shown(&mut page);
        return Ok(render(StatusCode::OK, &page));
    }
    let mut mappings = BTreeMap::new();
    for (claim, attribute) in rows {
        match AttributeName::new(&attribute) {
            Ok(attribute) => {
                mappings.insert(claim, attribute);
            }
            Err(error) => {
                let mut page = ConnectionPage::new(&state, &admin, "attributes", stored)
                    .await?
                    .with_errors(FieldErrors::config(&error));
                shown(&mut page);
                return Ok(render(StatusCode::BAD_REQUEST, &page));
            }
        }
    }
    let changed = Connection { claim_mappings: mappings, ..stored };
    save(&state, &admin, "attributes", changed, shown).await
}

// Groups & roles

/// The Groups & roles tab's form: `g_` fields for groups, `r_` for roles.
#[derive(Debug, Deserialize)]
pub struct MembershipsForm {
    #[serde(default)]
    g_enabled: Option<String>,
    #[serde(default)]
    g_claim: String,
    #[serde(default)]
    g_from: Vec<String>,
    #[serde(default)]
    g_to: Vec<String>,
    #[serde(default)]
    g_create: Option<String>,
    #[serde(default)]
    g_merge: Option<String>,
    #[serde(default)]
    r_enabled: Option<String>,
    #[serde(default)]
    r_claim: String,
    #[serde(default)]
    r_from: Vec<String>,
    #[serde(default)]
    r_to: Vec<String>,
    #[serde(default)]
    r_create: Option<String>,
    #[serde(default)]
    r_merge: Option<String>,
}

fn mapping_of(
    enabled: bool,
    claim: &str,
    from: &[String],
    to: &[String],
    create: bool,
    merge: bool,
) -> Option<MembershipMapping> {
    enabled.then(|| MembershipMapping {
        claim: Some(claim.trim().to_owned()).filter(|c| !c.is_empty()),
        mappings: from
            .iter()
            .zip(to)
            .map(|(f, t)| (f.trim().to_owned(), t.trim().to_owned()))
            .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            .collect(),
        unmapped: if create { Unmapped::Create } else { Unmapped::Ignore },
        sync_method: if merge { MembershipSync::MergeWithExisting } else { MembershipSync::OverrideAll },
    })
}

async fn save_memberships(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<MembershipsForm>,
) -> Result<Response, ConsoleError> {
    let stored = load(&state, &name).await?;
    let f = &form;
    let groups =
        mapping_of(checked(&f.g_enabled), &f.g_claim, &f.g_from, &f.g_to, checked(&f.g_create), checked(&f.g_merge));
    let roles =
        mapping_of(checked(&f.r_enabled), &f.r_claim, &f.r_from, &f.r_to, checked(&f.r_create), checked(&f.r_merge));
    let changed = Connection { groups, roles, ..stored };
    save(&state, &admin, "memberships", changed, |_| {}).await
}

// Just-in-Time Provisioning

/// The Just-in-Time Provisioning tab's form. Unchecked boxes are absent;
/// `rule_trusted` holds the row numbers of trusted rules; `action=or` adds
/// a rule row without saving.
#[derive(Debug, Deserialize)]
pub struct JitForm {
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    sync_method: String,
    #[serde(default)]
    linking_enabled: Option<String>,
    #[serde(default)]
    skip_provisioning: Option<String>,
    #[serde(default)]
    trust_email: Option<String>,
    #[serde(default)]
    rule_federated: Vec<String>,
    #[serde(default)]
    rule_local: Vec<String>,
    #[serde(default)]
    rule_trusted: Vec<String>,
    #[serde(default)]
    action: Option<String>,
}

async fn save_jit(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<JitForm>,
) -> Result<Response, ConsoleError> {
    let stored = load(&state, &name).await?;
    let sync_method = match form.sync_method.as_str() {
        "override_all" => SyncMethod::OverrideAll,
        "preserve_local" => SyncMethod::PreserveLocal,
        "none" => SyncMethod::None,
        _ => stored.jit.sync_method,
    };
    // Rows as sent (for showing them again), then the rules they make.
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    for (index, (federated, local)) in form.rule_federated.iter().zip(form.rule_local.iter()).enumerate() {
        let trusted = form.rule_trusted.iter().any(|t| t == &index.to_string());
        rows.push((federated.trim().to_owned(), local.trim().to_owned(), trusted));
    }
    let mut rules = Vec::new();
    let mut bad_rule = None;
    for (federated, local, trusted) in rows.iter().filter(|(f, _, _)| !f.is_empty()) {
        match AttributeName::new(local) {
            Ok(local) => rules.push(LinkRule { federated: federated.clone(), local, trusted: *trusted }),
            Err(error) => bad_rule = Some(error),
        }
    }
    let jit = JitPolicy {
        enabled: checked(&form.enabled),
        sync_method,
        trust_email: checked(&form.trust_email),
        linking: LinkingPolicy {
            enabled: checked(&form.linking_enabled),
            rules,
            skip_provisioning_without_match: checked(&form.skip_provisioning),
        },
        username_template: stored.jit.username_template.clone(),
    };
    let changed = Connection { jit, ..stored };
    let shown_rows: Vec<LinkRule> = rows
        .iter()
        .filter_map(|(federated, local, trusted)| {
            Some(LinkRule { federated: federated.clone(), local: AttributeName::new(local).ok()?, trusted: *trusted })
        })
        .collect();
    let or = form.action.as_deref() == Some("or");
    if or || bad_rule.is_some() {
        let mut page = ConnectionPage::new(&state, &admin, "jit", changed).await?;
        page.rules = shown_rows;
        if or {
            page.rules.push(LinkRule { federated: String::new(), ..LinkRule::default_email() });
        }
        let status = match bad_rule {
            Some(error) => {
                page.errors = FieldErrors::config(&error);
                StatusCode::BAD_REQUEST
            }
            None => StatusCode::OK,
        };
        return Ok(render(status, &page));
    }
    save(&state, &admin, "jit", changed, move |page| {
        if !shown_rows.is_empty() {
            page.rules = shown_rows;
        }
    })
    .await
}

// Test

/// The Test tab's form.
#[derive(Debug, Deserialize)]
pub struct TestForm {
    claims: String,
}

async fn run_test(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin, form }: AdminForm<TestForm>,
) -> Result<Response, ConsoleError> {
    let connection = load(&state, &name).await?;
    let mut page = ConnectionPage::new(&state, &admin, "test", connection.clone()).await?;
    page.sample_claims = form.claims.clone();
    let claims = match serde_json::from_str(&form.claims) {
        Ok(claims) => claims,
        Err(error) => {
            page.errors = FieldErrors::one("claims", format!("the claims are not JSON: {error}"));
            return Ok(render(StatusCode::BAD_REQUEST, &page));
        }
    };
    match dry_run(&state, &connection, PreviewRequest { claims, email_verified: None }).await {
        Ok(answer) => {
            page.preview = Some(DryRunShown::of(&answer));
            Ok(render(StatusCode::OK, &page))
        }
        Err(error) => {
            page.errors = FieldErrors::one("claims", error.message());
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
    }
}

// Delete

async fn confirm_delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    let connection = load(&state, &name).await?;
    let linked = state.store.linked_users().await?.get(&connection.name).copied().unwrap_or(0);
    let page = ConfirmPage {
        chrome: Chrome::new(&admin, "connections"),
        title: format!("Delete connection {}", connection.name),
        question: format!("Delete the connection {}?", connection.display_name),
        consequence: format!(
            "Its link to {linked} local user(s) is removed (the accounts stay). Applications whose sign-in flow offers it must be changed first."
        ),
        action: format!("/console/connections/{}/delete", connection.name),
        cancel: format!("/console/connections/{}", connection.name),
    };
    Ok(render(StatusCode::OK, &page))
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm { admin: _, form: _ }: AdminForm<super::login::Empty>,
) -> Result<Response, ConsoleError> {
    let connection = load(&state, &name).await?;
    state.store.delete_connection(&connection.name).await?;
    tracing::info!(event = "admin_connection_deleted", connection = %connection.name, via = "console", "connection deleted");
    Ok(Redirect::to("/console/connections").into_response())
}
