//! Applications: the list, "New application" (the client secret shown
//! once), and an application's page: its name and redirect URIs, its
//! **Sign-in method** (steps and their options: add, remove, reorder), the
//! seeds' warning when a step needing a local account follows a connection
//! with JIT disabled, and the conditional authentication script.
//!
//! Saving goes through the admin API's own `register` and
//! `replace_application`, so the console and the API accept and refuse
//! the same applications, with the same messages.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use jit_domain::application::Application;
use jit_domain::connection::ConnectionName;
use jit_domain::console::{check_console_deletion, is_console};
use jit_domain::flow::{SKIP_MFA_FOR_FEDERATED_SCRIPT, SignInFlow, Step, StepOption};
use jit_domain::ports::{ApplicationStore, ConnectionStore};
use serde::Deserialize;

use super::error::ConsoleError;
use super::session::{Admin, AdminForm};
use super::view::{Chrome, ConfirmPage, FieldErrors, Saved};
use crate::AppState;
use crate::admin::applications::{
    ApplicationRequest, check_script, connection_facts, load, register, replace_application,
};
use crate::pages::render;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/applications", get(list))
        .route("/console/applications/new", get(new_form).post(create))
        .route("/console/applications/{client_id}", get(page).post(save))
        .route("/console/applications/{client_id}/delete", get(confirm_delete).post(delete))
}

#[derive(Template)]
#[template(path = "console/applications.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<ListRow>,
}

struct ListRow {
    name: String,
    client_id: String,
    public: bool,
    steps: usize,
    console: bool,
}

async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, ConsoleError> {
    let rows = state
        .store
        .applications()
        .await?
        .into_iter()
        .map(|a| ListRow {
            console: is_console(&a.client_id),
            steps: a.sign_in.steps.len(),
            public: a.public,
            name: a.name,
            client_id: a.client_id,
        })
        .collect();
    Ok(render(StatusCode::OK, &ListPage { chrome: Chrome::new(&admin, "applications"), rows }))
}

#[derive(Template)]
#[template(path = "console/application_new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    errors: FieldErrors,
    /// After creation: (client id, secret shown once).
    created: Option<(String, Option<String>)>,
}

/// The "New application" form.
#[derive(Debug, Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    public: Option<String>,
}

async fn new_form(admin: Admin) -> Response {
    let page = NewPage {
        chrome: Chrome::new(&admin, "applications"),
        form: NewForm::default(),
        errors: FieldErrors::none(),
        created: None,
    };
    render(StatusCode::OK, &page)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

async fn create(
    State(state): State<AppState>,
    AdminForm { admin, form }: AdminForm<NewForm>,
) -> Result<Response, ConsoleError> {
    let request = ApplicationRequest {
        name: form.name.clone(),
        redirect_uris: lines(&form.redirect_uris),
        public: form.public.is_some(),
        sign_in: SignInFlow::default(),
        scopes: Vec::new(),
    };
    let chrome = Chrome::new(&admin, "applications");
    match register(&state, request).await {
        Ok(view) => {
            tracing::info!(event = "admin_application_created", client_id = %view.client_id, via = "console", "application created");
            let created = Some((view.client_id, view.client_secret));
            Ok(render(StatusCode::CREATED, &NewPage { chrome, form, errors: FieldErrors::none(), created }))
        }
        Err(error) if error.status().is_client_error() => {
            let field = if error.message().contains("redirect") { "redirect_uris" } else { "name" };
            let errors = FieldErrors::one(field, error.message());
            Ok(render(StatusCode::BAD_REQUEST, &NewPage { chrome, form, errors, created: None }))
        }
        Err(error) => Err(error.into()),
    }
}

// --- An application's page ---------------------------------------------------

#[derive(Template)]
#[template(path = "console/application.html")]
struct ApplicationPage {
    chrome: Chrome,
    client_id: String,
    console: bool,
    name: String,
    redirect_uris: String,
    public: bool,
    steps: Vec<StepRow>,
    script: String,
    /// Connections with JIT disabled followed by a step needing a local
    /// account (the seeds' warning, or the note that a script decides).
    jit_disabled: Vec<String>,
    scripted: bool,
    errors: FieldErrors,
}

/// A step as shown: every option with whether the step offers it.
struct StepRow {
    options: Vec<(String, String, bool)>,
}

impl ApplicationPage {
    async fn new(
        state: &AppState,
        admin: &Admin,
        application: &Application,
        flow: &SignInFlow,
        name: String,
        redirect_uris: String,
    ) -> Result<Self, ConsoleError> {
        let connections = state.store.connections().await?;
        let all: Vec<(String, String)> =
            [("LOCAL", "Username & password"), ("TOTP", "TOTP"), ("EMAIL_OTP", "Email OTP")]
                .iter()
                .map(|(value, label)| ((*value).to_owned(), (*label).to_owned()))
                .chain(connections.iter().map(|c| (c.name.to_string(), c.display_name.clone())))
                .collect();
        let steps = flow
            .steps
            .iter()
            .map(|step| StepRow {
                options: all
                    .iter()
                    .map(|(value, label)| {
                        (value.clone(), label.clone(), step.options.iter().any(|o| o.to_string() == *value))
                    })
                    .collect(),
            })
            .collect();
        let facts = connection_facts(state, flow).await?;
        let jit_disabled =
            flow.jit_disabled_before_mfa(|n| facts.get(n).copied()).into_iter().map(|n| n.to_string()).collect();
        Ok(Self {
            chrome: Chrome::new(admin, "applications"),
            client_id: application.client_id.clone(),
            console: is_console(&application.client_id),
            name,
            redirect_uris,
            public: application.public,
            steps,
            script: flow.script.clone().unwrap_or_default(),
            jit_disabled,
            scripted: flow.script.is_some(),
            errors: FieldErrors::none(),
        })
    }

    /// The seeds' sentence names one connection, or lists several.
    fn one_connection(&self) -> Option<&String> {
        match self.jit_disabled.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Response, ConsoleError> {
    let application = load(&state, &client_id).await?;
    let uris = application.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>().join("\n");
    let mut page =
        ApplicationPage::new(&state, &admin, &application, &application.sign_in, application.name.clone(), uris)
            .await?;
    page.chrome = page.chrome.with_notice(saved.notice());
    Ok(render(StatusCode::OK, &page))
}

/// The application form, read from its pairs: `step_<n>` holds the options
/// of step n (0-based); `action` is `save`, `add_step`, `remove_<n>`,
/// `up_<n>`, `down_<n>` or `template`.
struct EditedApplication {
    name: String,
    redirect_uris: String,
    flow: SignInFlow,
    action: String,
    unknown_option: Option<String>,
}

fn read_form(pairs: Vec<(String, String)>) -> EditedApplication {
    let mut edited = EditedApplication {
        name: String::new(),
        redirect_uris: String::new(),
        flow: SignInFlow { steps: Vec::new(), script: None },
        action: "save".to_owned(),
        unknown_option: None,
    };
    let mut steps: Vec<(usize, Vec<StepOption>)> = Vec::new();
    let mut step_count = 0;
    for (key, value) in pairs {
        match key.as_str() {
            "name" => edited.name = value,
            "redirect_uris" => edited.redirect_uris = value,
            "script" => edited.flow.script = Some(value.replace("\r\n", "\n")).filter(|s| !s.trim().is_empty()),
            "action" => edited.action = value,
            "steps" => step_count = value.parse().unwrap_or(0).min(jit_domain::flow::MAX_STEPS + 1),
            _ => {
                if let Some(index) = key.strip_prefix("step_").and_then(|n| n.parse::<usize>().ok()) {
                    match StepOption::try_from(value.clone()) {
                        Ok(option) => match steps.iter_mut().find(|(i, _)| *i == index) {
                            Some((_, options)) => options.push(option),
                            None => steps.push((index, vec![option])),
                        },
                        Err(_) => edited.unknown_option = Some(value),
                    }
                }
            }
        }
    }
    edited.flow.steps = (0..step_count)
        .map(|index| Step {
            options: steps.iter().find(|(i, _)| *i == index).map(|(_, o)| o.clone()).unwrap_or_default(),
        })
        .collect();
    edited
}

async fn save(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    AdminForm { admin, form }: AdminForm<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let stored = load(&state, &client_id).await?;
    let mut edited = read_form(form);
    let steps = &mut edited.flow.steps;
    let action = edited.action.clone();
    let index_of = |prefix: &str| action.strip_prefix(prefix).and_then(|n| n.parse::<usize>().ok());
    let mut editing = true;
    if action == "add_step" {
        steps.push(Step { options: Vec::new() });
    } else if action == "template" {
        edited.flow.script = Some(SKIP_MFA_FOR_FEDERATED_SCRIPT.to_owned());
    } else if let Some(n) = index_of("remove_").filter(|n| *n < steps.len()) {
        steps.remove(n);
    } else if let Some(n) = index_of("up_").filter(|n| *n > 0 && *n < steps.len()) {
        steps.swap(n - 1, n);
    } else if let Some(n) = index_of("down_").filter(|n| n + 1 < steps.len()) {
        steps.swap(n, n + 1);
    } else {
        editing = false;
    }
    let mut page =
        ApplicationPage::new(&state, &admin, &stored, &edited.flow, edited.name.clone(), edited.redirect_uris.clone())
            .await?;
    if editing {
        // Not saved yet: the page with the change, to go on editing.
        return Ok(render(StatusCode::OK, &page));
    }
    if let Some(option) = edited.unknown_option {
        page.errors = FieldErrors::one("steps", format!("{option:?} is not a sign-in option"));
        return Ok(render(StatusCode::BAD_REQUEST, &page));
    }
    // The flow and the script first, so that their messages go next to them.
    let facts = connection_facts(&state, &edited.flow).await?;
    if let Err(error) = edited.flow.validate(|name: &ConnectionName| facts.get(name).copied()) {
        page.errors = FieldErrors::one("steps", format!("invalid sign-in flow: {error}"));
        return Ok(render(StatusCode::BAD_REQUEST, &page));
    }
    if let Some(script) = &edited.flow.script
        && let Err(error) = check_script(script).await
    {
        page.errors = FieldErrors::one("script", error.message());
        return Ok(render(StatusCode::BAD_REQUEST, &page));
    }
    let request = ApplicationRequest {
        name: edited.name,
        redirect_uris: lines(&edited.redirect_uris),
        public: stored.public,
        sign_in: edited.flow,
        scopes: stored.scopes.clone(),
    };
    match replace_application(&state, stored, request).await {
        Ok(view) => {
            tracing::info!(event = "admin_application_updated", client_id = %view.client_id, via = "console", "application updated");
            Ok(Redirect::to(&format!("/console/applications/{client_id}?saved")).into_response())
        }
        Err(error) if error.status().is_client_error() => {
            let message = error.message();
            let field = if message.contains("redirect") {
                "redirect_uris"
            } else if message.starts_with("name") {
                "name"
            } else {
                "steps"
            };
            page.errors = FieldErrors::one(field, message);
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(error) => Err(error.into()),
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let application = load(&state, &client_id).await?;
    check_console_deletion(&client_id)
        .map_err(|refused| ConsoleError::Shown { status: StatusCode::CONFLICT, message: refused.to_string() })?;
    let page = ConfirmPage {
        chrome: Chrome::new(&admin, "applications"),
        title: format!("Delete application {}", application.name),
        question: format!("Delete the application {}?", application.name),
        consequence: "Its client id and secret stop working at once; users signed in to it keep their accounts."
            .to_owned(),
        action: format!("/console/applications/{client_id}/delete"),
        cancel: format!("/console/applications/{client_id}"),
    };
    Ok(render(StatusCode::OK, &page))
}

async fn delete(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    _form: AdminForm<super::login::Empty>,
) -> Result<Response, ConsoleError> {
    check_console_deletion(&client_id)
        .map_err(|refused| ConsoleError::Shown { status: StatusCode::CONFLICT, message: refused.to_string() })?;
    if !state.store.delete_application(&client_id).await? {
        return Err(ConsoleError::not_found(format!("there is no application with client id {client_id:?}")));
    }
    tracing::info!(event = "admin_application_deleted", client_id = %client_id, via = "console", "application deleted");
    Ok(Redirect::to("/console/applications").into_response())
}
