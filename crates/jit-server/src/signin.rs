//! The browser side of a sign-in: the step page, its forms, and the
//! federated callback. Each handler asks the engine and turns its answer
//! into a page or a redirect.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use jit_flow::Next;
use jit_idp::CallbackParams;
use serde::Deserialize;

use crate::error::PageError;
use crate::oidc::{error_redirect, with_query};
use crate::pages::{SignInPage, render};
use crate::{AppState, routes};

/// The sign-in cookie: HttpOnly, SameSite=Lax (it must come back on the
/// IdP's top-level redirect), Secure behind https.
pub(crate) fn flow_cookie(state: &AppState, flow_id: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(state.settings.flow_cookie_name.clone(), flow_id);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(state.settings.secure_cookies());
    cookie
}

fn flow_id(state: &AppState, jar: &CookieJar) -> Result<String, PageError> {
    jar.get(&state.settings.flow_cookie_name)
        .map(|c| c.value().to_owned())
        .ok_or_else(|| jit_flow::SignInError::Expired.into())
}

/// Turns the engine's answer into a response.
pub(crate) fn next_response(state: &AppState, next: Next) -> Response {
    match next {
        // A sign-in that has just started or advanced: show its page at a
        // stable URL, so reloading does not resubmit anything. When the step
        // just done identified the user, the sign-in has a new id.
        Next::Continue { new_flow_id, .. } => match new_flow_id {
            Some(flow_id) => {
                (CookieJar::new().add(flow_cookie(state, flow_id)), Redirect::to(routes::SIGN_IN)).into_response()
            }
            None => Redirect::to(routes::SIGN_IN).into_response(),
        },
        // A page with something to say: the answer itself.
        Next::Show(view) => render(StatusCode::OK, &SignInPage::from(view)),
        Next::RedirectToIdp(url) => Redirect::to(&url).into_response(),
        Next::Complete(issued) => {
            let mut pairs = vec![("code", issued.code.as_str())];
            if let Some(app_state) = issued.state.as_deref() {
                pairs.push(("state", app_state));
            }
            pairs.push(("iss", state.settings.public_url.as_str()));
            Redirect::to(&with_query(&issued.redirect_uri, &pairs)).into_response()
        }
        Next::Declined(declined) => error_redirect(
            &declined.redirect_uri,
            "access_denied",
            &format!("the user declined the sign-in at {}", declined.connection),
            declined.state.as_deref(),
            &state.settings.public_url,
        ),
    }
}

/// `GET /signin`: the current step.
pub async fn show(State(state): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    let view = state.engine.view(&flow_id(&state, &jar)?).await?;
    Ok(render(StatusCode::OK, &SignInPage::from(view)))
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    username: String,
    password: String,
}

/// `POST /signin/password`.
pub async fn password(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let next = state.engine.password(&flow_id(&state, &jar)?, &form.csrf, &form.username, &form.password).await?;
    Ok(match next {
        // A failed attempt: show the page with its message, status 401.
        Next::Show(view) if view.error.is_some() => render(StatusCode::UNAUTHORIZED, &SignInPage::from(view)),
        next => next_response(&state, next),
    })
}

/// The "continue with" form.
#[derive(Debug, Deserialize)]
pub struct FederatedForm {
    csrf: String,
    connection: String,
}

/// `POST /signin/federated`.
pub async fn federated(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<FederatedForm>,
) -> Result<Response, PageError> {
    let next = state.engine.federate(&flow_id(&state, &jar)?, &form.csrf, &form.connection).await?;
    Ok(next_response(&state, next))
}

/// `GET /federation/{connection}/callback`.
pub async fn callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(connection): Path<String>,
    Query(params): Query<CallbackParams>,
) -> Result<Response, PageError> {
    // An administrator's trial sign-in (the console's Test tab) never
    // reaches the engine.
    if let Some(trial) = crate::console::trial::claim(&state, &jar, &params).await.map_err(PageError::internal)? {
        return Ok(crate::console::trial::callback(&state, &jar, &connection, trial, &params).await);
    }
    let cookie = jar.get(&state.settings.flow_cookie_name).map(|c| c.value().to_owned());
    let next = state.engine.callback(cookie.as_deref(), &connection, &params).await?;
    Ok(next_response(&state, next))
}

/// A one-time code form (TOTP or Email OTP).
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

/// Only the CSRF token (a button).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// After a code was checked: a refused code shows the page again with its
/// message (401); a page with a notice (e.g. "set up your app again") is
/// shown directly, so that the notice is not lost; anything else goes on
/// as usual.
fn code_response(state: &AppState, next: Next) -> Response {
    match next {
        Next::Show(view) if view.error.is_some() => render(StatusCode::UNAUTHORIZED, &SignInPage::from(view)),
        Next::Show(view) if view.notice.is_some() => render(StatusCode::OK, &SignInPage::from(view)),
        next => next_response(state, next),
    }
}

/// `POST /signin/totp`: a code from the authenticator app, to verify it or
/// to confirm an enrolment.
pub async fn totp(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    let next = state.engine.totp(&flow_id(&state, &jar)?, &form.csrf, &form.code).await?;
    Ok(code_response(&state, next))
}

/// `POST /signin/email-otp/send`: sends a code (or a new one) to the user's
/// email address.
pub async fn send_email_otp(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let next = state.engine.send_email_otp(&flow_id(&state, &jar)?, &form.csrf).await?;
    Ok(match next {
        // Asked again too soon, or no more codes: say so (429).
        Next::Show(view) if view.error.is_some() => render(StatusCode::TOO_MANY_REQUESTS, &SignInPage::from(view)),
        // Sent: the page with its notice and the code form. Shown directly,
        // not through a redirect, so that the notice is not lost; reloading
        // asks before resending, and resending is rate-limited.
        Next::Show(view) => render(StatusCode::OK, &SignInPage::from(view)),
        next => next_response(&state, next),
    })
}

/// `POST /signin/email-otp`: the code from the email.
pub async fn email_otp(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    let next = state.engine.email_otp(&flow_id(&state, &jar)?, &form.csrf, &form.code).await?;
    Ok(code_response(&state, next))
}
