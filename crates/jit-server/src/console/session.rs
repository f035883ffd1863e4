//! Console sessions: who is signed in to the console, checked on every
//! request, and the CSRF token every form of the session carries.
//!
//! A session is a [`RecordKind::ConsoleSession`] record under the hash of
//! its cookie (a database read gives no usable cookie). It ends after
//! [`SESSION_IDLE`] without a request, and after [`SESSION_LIFETIME`]
//! however active. Each request re-reads the user and their roles: an
//! administrator whose `admin` role was revoked, or who was deleted, loses
//! the console at their next click.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use jit_domain::membership::{ADMIN_ROLE, MembershipKind};
use jit_domain::ports::{ExpiringRecordStore, MembershipStore, RecordKind, UserStore};
use jit_domain::user::{LocalUser, UserId};
use jit_primitives::secret::{random_token, secrets_match, stored_form};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::error::ConsoleError;
use crate::AppState;

/// How long a console session lasts, however active.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);
/// How long a console session lasts without a request.
pub const SESSION_IDLE: Duration = Duration::minutes(30);
/// A request pushes the idle expiry back only when it is older than this
/// (one write a minute at most, not one per click).
const IDLE_GRANULARITY: Duration = Duration::minutes(1);
/// Largest form body the console reads (a script is at most 64 KiB).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A session as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    user: UserId,
    csrf: String,
    /// When it began (the absolute lifetime counts from here).
    #[serde(with = "time::serde::rfc3339")]
    started: OffsetDateTime,
    /// When its idle expiry was last pushed back.
    #[serde(with = "time::serde::rfc3339")]
    seen: OffsetDateTime,
}

impl StoredSession {
    /// When it expires if nothing happens after `seen`.
    fn expiry(&self) -> OffsetDateTime {
        (self.seen + SESSION_IDLE).min(self.started + SESSION_LIFETIME)
    }
}

/// Starts a session for `user`: the cookie to set.
pub async fn start(state: &AppState, user: UserId, now: OffsetDateTime) -> Result<Cookie<'static>, ConsoleError> {
    let token = random_token()?;
    let session = StoredSession { user, csrf: random_token()?, started: now, seen: now };
    let value = serde_json::to_value(&session).map_err(ConsoleError::internal)?;
    state.store.insert_record(RecordKind::ConsoleSession, &stored_form(&token), &value, session.expiry()).await?;
    Ok(cookie(state, &state.settings.console_cookie_name, token, SESSION_LIFETIME))
}

/// Ends the session of the request's cookie, if any: the cookie to clear.
pub async fn end(state: &AppState, jar: &CookieJar) -> Result<Cookie<'static>, ConsoleError> {
    if let Some(token) = jar.get(&state.settings.console_cookie_name) {
        state.store.take_record(RecordKind::ConsoleSession, &stored_form(token.value()), state.clock.now()).await?;
    }
    Ok(cookie(state, &state.settings.console_cookie_name, String::new(), Duration::ZERO))
}

/// A console cookie: HttpOnly, SameSite=Lax (a sign-in through an external
/// IdP comes back on a cross-site redirect chain), Secure behind https,
/// for the whole host (the `__Host-` prefix needs `Path=/`).
pub fn cookie(state: &AppState, name: &str, value: String, lifetime: Duration) -> Cookie<'static> {
    let mut cookie = Cookie::new(name.to_owned(), value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(state.settings.secure_cookies());
    cookie.set_max_age(lifetime);
    cookie
}

/// Whether `user` holds the `admin` role (granted by an administrator or by
/// a connection's role mapping).
pub async fn is_administrator(state: &AppState, user: UserId) -> Result<bool, ConsoleError> {
    Ok(state.store.memberships(MembershipKind::Role, user).await?.iter().any(|m| m.name == ADMIN_ROLE))
}

/// The signed-in administrator of a console request. Without a session the
/// request goes to the sign-in page; without the `admin` role it is refused.
pub struct Admin {
    /// The administrator.
    pub user: LocalUser,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Self::of(state, &CookieJar::from_headers(&parts.headers)).await
    }
}

impl Admin {
    /// The administrator whose session cookie is in `jar`.
    pub async fn of(state: &AppState, jar: &CookieJar) -> Result<Self, ConsoleError> {
        let token = jar.get(&state.settings.console_cookie_name).ok_or(ConsoleError::SignIn)?;
        let key = stored_form(token.value());
        let now = state.clock.now();
        let record = state.store.record(RecordKind::ConsoleSession, &key, now).await?.ok_or(ConsoleError::SignIn)?;
        let mut session: StoredSession = serde_json::from_value(record.value).map_err(ConsoleError::internal)?;
        if now - session.seen >= IDLE_GRANULARITY {
            // Still in use: the idle expiry moves on, never past the
            // lifetime (of two requests doing it at once, one wins).
            session.seen = now;
            let value = serde_json::to_value(&session).map_err(ConsoleError::internal)?;
            let expiry = session.expiry();
            state.store.replace_record(RecordKind::ConsoleSession, &key, record.version, &value, expiry, now).await?;
        }
        let user = state.store.user(session.user).await?.ok_or(ConsoleError::SignIn)?;
        if !is_administrator(state, user.id).await? {
            return Err(ConsoleError::NotAdministrator);
        }
        Ok(Self { user, csrf: session.csrf })
    }
}

/// A console form of the signed-in administrator, read only if it carries
/// the session's CSRF token: every state-changing console request goes
/// through this extractor, so none can be forged from another site.
pub struct AdminForm<T> {
    /// Who sent it.
    pub admin: Admin,
    /// The form.
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for AdminForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ConsoleError::bad_request(format!("the form is larger than {MAX_FORM_BYTES} bytes")))?;
        let sent: CsrfField = serde_html_form::from_bytes(&bytes).map_err(|_| ConsoleError::Csrf)?;
        if !secrets_match(&stored_form(&sent.csrf), &stored_form(&admin.csrf)) {
            return Err(ConsoleError::Csrf);
        }
        let form = serde_html_form::from_bytes(&bytes)
            .map_err(|error| ConsoleError::bad_request(format!("the form could not be read: {error}")))?;
        Ok(Self { admin, form })
    }
}
