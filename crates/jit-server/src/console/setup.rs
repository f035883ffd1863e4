//! The first administrator. `jit admin create-user` makes one from the
//! command line; on a first start with no administrator, jit prints a
//! one-time setup link instead, valid for [`SETUP_LINK_LIFETIME`], whose
//! page creates one. The link's token is stored only as a hash
//! ([`RecordKind::SetupLink`]), is taken when used (once, across
//! instances), and creates nothing once an administrator exists.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use jit_domain::attribute::Attributes;
use jit_domain::console::{CONSOLE_CLIENT_ID, console_application, console_redirect_uri};
use jit_domain::membership::{ADMIN_ROLE, Grant, MembershipKind};
use jit_domain::ports::{
    ApplicationStore, ExpiringRecordStore, MembershipStore, NewLocalUser, RecordKind, StoreError, UserStore,
};
use jit_domain::user::{LocalUser, MAX_PASSWORD_LEN, Username};
use jit_primitives::password::hash_password_off_thread;
use jit_primitives::secret::{random_token, stored_form};
use jit_store::Store;
use serde::Deserialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::error::{ConsoleError, MessagePage};
use crate::pages::render;
use crate::{AppState, routes};

/// How long a setup link works.
pub const SETUP_LINK_LIFETIME: Duration = Duration::minutes(30);

/// Why an administrator could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateAdministratorError {
    /// The username is taken.
    #[error("a user with this username exists already")]
    UsernameTaken,
    /// The password is empty or too long.
    #[error("the password must be 1 to {MAX_PASSWORD_LEN} bytes")]
    InvalidPassword,
    /// Hashing failed.
    #[error(transparent)]
    Hashing(#[from] jit_primitives::PrimitiveError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a local user holding the `admin` role (and the role, if it does
/// not exist yet): `jit admin create-user` and the setup page.
pub async fn create_administrator(
    store: &Store,
    username: Username,
    password: String,
    now: OffsetDateTime,
) -> Result<LocalUser, CreateAdministratorError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(CreateAdministratorError::InvalidPassword);
    }
    let password_hash = Some(hash_password_off_thread(password).await?);
    let user = NewLocalUser { username, attributes: Attributes::new(), password_hash, email_verified: false };
    let user = match store.create_user(user, now).await {
        Ok(user) => user,
        Err(StoreError::Taken(_)) => return Err(CreateAdministratorError::UsernameTaken),
        Err(other) => return Err(other.into()),
    };
    match store.create_collection(MembershipKind::Role, ADMIN_ROLE, "Administrators of jit", now).await {
        Ok(()) | Err(StoreError::Taken(_)) => {}
        Err(other) => return Err(other.into()),
    }
    store.grant_membership(MembershipKind::Role, ADMIN_ROLE, user.id, &Grant::Admin, now).await?;
    tracing::info!(event = "admin_user_created", user = %user.id, "administrator created");
    Ok(user)
}

/// Registers the console's own application at start-up, or, when jit's
/// public URL changed, adds the console's new callback to its redirect
/// URIs. A public URL that cannot be a redirect URI (plain http off
/// loopback) leaves the console unavailable, and says why.
pub async fn ensure_console_application(
    store: &Store,
    public_url: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let callback = match console_redirect_uri(public_url) {
        Ok(callback) => callback,
        Err(error) => {
            tracing::warn!(error = %error, "the console is unavailable");
            return Ok(());
        }
    };
    match store.application(CONSOLE_CLIENT_ID).await? {
        None => match console_application(public_url) {
            Ok(application) => match store.create_application(&application, now).await {
                Ok(()) | Err(StoreError::Taken(_)) => Ok(()),
                Err(other) => Err(other),
            },
            Err(error) => {
                tracing::warn!(error = %error, "the console is unavailable");
                Ok(())
            }
        },
        Some(mut application) if !application.redirect_uris.contains(&callback) => {
            tracing::info!(callback = %callback, "the public URL changed: the console's application gets its new callback");
            application.redirect_uris.push(callback);
            store.update_application(&application, now).await
        }
        Some(_) => Ok(()),
    }
}

/// Whether someone holds the `admin` role.
pub async fn administrator_exists(store: &Store) -> Result<bool, StoreError> {
    Ok(store.collection(MembershipKind::Role, ADMIN_ROLE).await?.is_some_and(|role| role.members > 0))
}

/// On a start with no administrator: a new one-time setup link under
/// `public_url`, valid for [`SETUP_LINK_LIFETIME`]; `None` when an
/// administrator exists.
pub async fn offer_setup_link(
    store: &Store,
    public_url: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, StoreError> {
    if administrator_exists(store).await? {
        return Ok(None);
    }
    let token = random_token().map_err(|e| StoreError::backend(e.to_string()))?;
    store.insert_record(RecordKind::SetupLink, &stored_form(&token), &json!({}), now + SETUP_LINK_LIFETIME).await?;
    Ok(Some(format!("{}{}?token={token}", public_url.trim_end_matches('/'), routes::CONSOLE_SETUP)))
}

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    token: String,
    username: String,
    username_error: Option<String>,
    password_error: Option<String>,
}

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn spent() -> Response {
    render(
        StatusCode::NOT_FOUND,
        &MessagePage {
            title: "Setup link not valid".to_owned(),
            message:
                "This setup link was used already, has expired, or is wrong. While no administrator exists, every \
                      start of jit prints a new one; or create one with jit admin create-user --username NAME \
                      --password-stdin."
                    .to_owned(),
            next: Some((routes::CONSOLE_LOGIN.to_owned(), "Go to the console".to_owned())),
        },
    )
}

/// `GET /console/setup?token=…`: the form, if the link is valid.
pub async fn page(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Result<Response, ConsoleError> {
    let valid = !query.token.is_empty()
        && state.store.record(RecordKind::SetupLink, &stored_form(&query.token), state.clock.now()).await?.is_some();
    if !valid || administrator_exists(&state.store).await? {
        return Ok(spent());
    }
    let page = SetupPage { token: query.token, username: String::new(), username_error: None, password_error: None };
    Ok(render(StatusCode::OK, &page))
}

/// The setup form (no session yet: the link's token is what makes it
/// unforgeable).
#[derive(Debug, Deserialize)]
pub struct SetupForm {
    token: String,
    username: String,
    password: String,
    confirm: String,
}

/// `POST /console/setup`: creates the administrator and spends the link.
pub async fn create(State(state): State<AppState>, Form(form): Form<SetupForm>) -> Result<Response, ConsoleError> {
    let again = |username_error: Option<String>, password_error: Option<String>| {
        let page =
            SetupPage { token: form.token.clone(), username: form.username.clone(), username_error, password_error };
        Ok(render(StatusCode::BAD_REQUEST, &page))
    };
    let username = match Username::new(&form.username) {
        Ok(username) => username,
        Err(error) => return again(Some(error.to_string()), None),
    };
    if form.password != form.confirm {
        return again(None, Some("the two passwords differ".to_owned()));
    }
    if form.password.is_empty() || form.password.len() > MAX_PASSWORD_LEN {
        return again(None, Some(CreateAdministratorError::InvalidPassword.to_string()));
    }
    let now = state.clock.now();
    // Checked before the link is spent, so that a taken name can be changed.
    if state.store.user_by_username(username.as_str()).await?.is_some() {
        return again(Some(CreateAdministratorError::UsernameTaken.to_string()), None);
    }
    if state.store.take_record(RecordKind::SetupLink, &stored_form(&form.token), now).await?.is_none()
        || administrator_exists(&state.store).await?
    {
        return Ok(spent());
    }
    match create_administrator(&state.store, username, form.password, now).await {
        Ok(_) => Ok(super::login::after_setup()),
        Err(CreateAdministratorError::UsernameTaken) => Ok(spent()),
        Err(error) => Err(ConsoleError::internal(error)),
    }
}
