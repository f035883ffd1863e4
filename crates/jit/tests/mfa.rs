//! Multi-step sign-ins end to end over real HTTP against `jit serve`: TOTP
//! (enrolment, verification, replay, lockout, reset), Email OTP through a
//! real SMTP server (`interop/smtp.mjs`), the JIT-disabled + MFA failure
//! page and its admin warning, and conditional authentication scripts (the
//! seeds' script verbatim, and scripts that fail).
//!
//! The external IdP is `jit_testkit::TestIdp` (in-process; it signs in
//! `alice@example.com` without a login form); the application is played by
//! the test (hand-made authorization and token requests). TOTP codes are
//! computed from the secret in the enrolment page's `otpauth://` URI, with
//! jit's clock being this machine's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use jit_domain::flow::SKIP_MFA_FOR_FEDERATED_SCRIPT;
use jit_domain::mfa::{TotpSecret, totp_step};
use jit_flow::factors::totp::code_at;
use serde_json::{Value, json};
use support::*;
use time::OffsetDateTime;

const PASSWORD: &str = "a long enough password";

/// A local user `username` with a password and `email`; their id.
async fn local_user(rig: &Rig, username: &str, email: &str) -> String {
    let user = rig
        .admin
        .post("/users", json!({"username": username, "password": PASSWORD, "attributes": {"email": email}}))
        .await;
    user["id"].as_str().unwrap().to_owned()
}

fn steps(options: &[&[&str]]) -> Value {
    Value::Array(options.iter().map(|o| json!({"options": o})).collect())
}

/// The user as the admin API shows them.
async fn user(rig: &Rig, id: &str) -> Value {
    rig.admin.get(&format!("/users/{id}")).await
}

// ---------------------------------------------------------------------------
// An authenticator app

/// The test's authenticator app: the secret from an enrolment page, and the
/// last time step it gave a code for (jit accepts each step once, and only
/// the current step ±1).
struct Authenticator {
    secret: TotpSecret,
    last_step: i64,
}

impl Authenticator {
    /// Reads the secret from an enrolment page, checking the page shows the
    /// `otpauth://` URI as text and as a QR code image, and a confirm form.
    fn from_enrolment_page(page: &Page) -> Self {
        assert!(matches!(page.status, 200 | 401), "expected the enrolment page: {} {}", page.status, page.body);
        let body = &page.body;
        let start = body.find("otpauth://totp/").unwrap_or_else(|| panic!("no otpauth:// URI on the page: {body}"));
        let uri = unescape_html(&body[start..start + body[start..].find('<').unwrap()]);
        assert!(body.contains("<img src=\"data:image/png;base64,"), "no QR code image: {body}");
        assert!(form_action(body, "/signin/totp").is_some(), "no confirm form: {body}");
        let url = reqwest::Url::parse(&uri).unwrap();
        let secret = url.query_pairs().find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned()).unwrap();
        assert_eq!(url.query_pairs().find(|(k, _)| k == "issuer").map(|(_, v)| v.into_owned()).as_deref(), Some("jit"));
        Self { secret: TotpSecret::new(secret).unwrap(), last_step: i64::MIN }
    }

    /// A code jit will accept: of a time step later than the last one used
    /// and within the current step ±1, not within 3 s of a step change (so
    /// that it is still valid when jit checks it). Waits for the next step
    /// when needed.
    async fn next_code(&mut self) -> String {
        loop {
            let now = OffsetDateTime::now_utc();
            let into_step = now.unix_timestamp().rem_euclid(30);
            let current = totp_step(now);
            let step = self.last_step.saturating_add(1).max(current - 1);
            if into_step < 27 && step <= current + 1 {
                self.last_step = step;
                return self.code_of(step);
            }
            let wait_ms = u64::try_from((30 - into_step) * 1000).unwrap() + 300;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }

    /// A code of step `step` again (a replay).
    fn code_of(&self, step: i64) -> String {
        code_at(&self.secret, OffsetDateTime::from_unix_timestamp(step * 30).unwrap()).unwrap()
    }

    /// Six digits that are no code of any step near now.
    fn wrong_code(&self) -> String {
        let current = totp_step(OffsetDateTime::now_utc());
        let valid: Vec<String> = (current - 3..=current + 3).map(|step| self.code_of(step)).collect();
        ["000000", "123456", "999999", "424242"]
            .into_iter()
            .find(|candidate| !valid.iter().any(|v| v == candidate))
            .unwrap()
            .to_owned()
    }
}

/// Asserts that `page` is step `step`'s page asking for a TOTP code (not an
/// enrolment).
fn assert_asks_for_a_totp_code(case: &str, page: &Page) {
    assert_eq!(page.status, 200, "{case}: {}", page.body);
    assert!(form_action(&page.body, "/signin/totp").is_some(), "{case}: no TOTP form: {}", page.body);
    assert!(!page.body.contains("otpauth://"), "{case}: enrolment shown again: {}", page.body);
    assert!(page.body.contains("name=\"code\""), "{case}: {}", page.body);
}

/// Asserts that a code was refused on the step page: 401, the form again,
/// and `phrase` in the message.
fn assert_code_refused(case: &str, trail: &Trail, phrase: &str) {
    let page = trail.page();
    assert_eq!(page.status, 401, "{case}: {} {}", page.url, page.body);
    assert!(page.body.contains("role=\"alert\""), "{case}: no message: {}", page.body);
    assert!(unescape_html(&page.body).contains(phrase), "{case}: the page does not say {phrase:?}: {}", page.body);
    assert!(page.body.contains("name=\"code\""), "{case}: the form is not shown again: {}", page.body);
}

// ---------------------------------------------------------------------------
// TOTP

#[tokio::test(flavor = "multi_thread")]
async fn a_local_user_enrols_totp_at_the_first_sign_in_and_is_asked_for_a_code_at_the_next() {
    let mut rig = Rig::start().await;
    rig.set_flow(steps(&[&["LOCAL"], &["TOTP"]]), None).await;
    let id = local_user(&rig, "carol", "carol@example.com").await;
    assert_eq!(user(&rig, &id).await["totp_enrolled"], false);

    let (request, trail) = rig.password_sign_in("carol", PASSWORD).await;
    let page = trail.page();
    assert!(page.body.contains("Step 2 of 2"), "{}", page.body);
    let mut app = Authenticator::from_enrolment_page(page);
    assert!(page.body.contains("otpauth://totp/jit:carol?"), "the account is the username: {}", page.body);

    // The page can be reloaded: same secret.
    let again = rig.browser.get(&format!("{}/signin", rig.jit_url)).await;
    assert_eq!(Authenticator::from_enrolment_page(&again).secret, app.secret);

    // A wrong first code does not enrol; the page says so and stays.
    let wrong = rig.submit(page, "/signin/totp", &[("code", &app.wrong_code())]).await;
    assert_code_refused("wrong enrolment code", &wrong, "That code is not right");
    assert_eq!(Authenticator::from_enrolment_page(wrong.page()).secret, app.secret);
    assert_eq!(user(&rig, &id).await["totp_enrolled"], false);

    let code = app.next_code().await;
    let trail = rig.submit(wrong.page(), "/signin/totp", &[("code", &code)]).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["amr"], json!(["LOCAL", "TOTP"]), "{claims}");
    let shown = user(&rig, &id).await;
    assert_eq!(shown["totp_enrolled"], true, "{shown}");
    assert!(!shown.to_string().contains(app.secret.expose()), "the API shows the secret: {shown}");

    // Next sign-in: a code, not an enrolment.
    rig.new_browser();
    let (request, trail) = rig.password_sign_in("carol", PASSWORD).await;
    assert_asks_for_a_totp_code("second sign-in", trail.page());
    let code = app.next_code().await;
    let trail = rig.submit(trail.page(), "/signin/totp", &[("code", &code)]).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["amr"], json!(["LOCAL", "TOTP"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_totp_codes_lock_the_user_out_until_an_administrator_resets_totp() {
    let mut rig = Rig::start().await;
    rig.set_flow(steps(&[&["LOCAL"], &["TOTP"]]), None).await;
    let id = local_user(&rig, "erin", "erin@example.com").await;
    let (_, trail) = rig.password_sign_in("erin", PASSWORD).await;
    let mut app = Authenticator::from_enrolment_page(trail.page());
    let code = app.next_code().await;
    rig.submit(trail.page(), "/signin/totp", &[("code", &code)]).await.stopped_at();

    rig.new_browser();
    let (_, trail) = rig.password_sign_in("erin", PASSWORD).await;
    let mut page = trail.page().clone();
    // Five wrong codes in a row cost nothing but the message ...
    for attempt in 1..=5 {
        let trail = rig.submit(&page, "/signin/totp", &[("code", &app.wrong_code())]).await;
        assert_code_refused(&format!("wrong code {attempt}"), &trail, "That code is not right");
        page = trail.page().clone();
    }
    // ... the sixth locks TOTP for the account.
    let trail = rig.submit(&page, "/signin/totp", &[("code", &app.wrong_code())]).await;
    assert_code_refused("the sixth wrong code", &trail, "Too many wrong codes");
    assert!(trail.page().body.contains("refused until"), "{}", trail.page().body);

    // While locked, even the right code is refused: in this sign-in ...
    let right = app.next_code().await;
    let locked = rig.submit(trail.page(), "/signin/totp", &[("code", &right)]).await;
    assert_code_refused("the right code while locked", &locked, "Too many wrong codes");
    // ... and in a new one.
    rig.new_browser();
    let (request, trail) = rig.password_sign_in("erin", PASSWORD).await;
    let locked = rig.submit(trail.page(), "/signin/totp", &[("code", &right)]).await;
    assert_code_refused("the right code in a new sign-in while locked", &locked, "Too many wrong codes");

    // An administrator resets TOTP: the sign-in in progress says so and
    // enrols again, with a new secret, and that works.
    let (status, body) = rig.admin.call(reqwest::Method::DELETE, &format!("/users/{id}/totp"), None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(user(&rig, &id).await["totp_enrolled"], false);
    let reset = rig.submit(locked.page(), "/signin/totp", &[("code", &right)]).await;
    assert!(reset.page().body.contains("Your authenticator was reset"), "{}", reset.page().body);
    let mut fresh = Authenticator::from_enrolment_page(reset.page());
    assert_ne!(fresh.secret, app.secret, "a reset gives a new secret");
    let code = fresh.next_code().await;
    let trail = rig.submit(reset.page(), "/signin/totp", &[("code", &code)]).await;
    rig.tokens(&request, &trail).await;
    assert_eq!(user(&rig, &id).await["totp_enrolled"], true);
    let (status, _) = rig.admin.call(reqwest::Method::DELETE, "/users/not-a-user/totp", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_provisioned_just_in_time_enrols_totp_in_the_same_first_sign_in() {
    let mut rig = Rig::start().await;
    let answer = rig.set_flow(steps(&[&["corp"], &["TOTP"]]), None).await;
    assert_eq!(answer["warnings"], json!([]), "JIT is on: no warning");
    assert!(rig.users_with_email("alice@example.com").await.is_empty());

    let (request, trail) = rig.federated_sign_in().await;
    let page = trail.page();
    let mut app = Authenticator::from_enrolment_page(page);
    // The account exists as soon as the federated step is done.
    let users = rig.users_with_email("alice@example.com").await;
    assert_eq!(users.len(), 1, "{users:?}");
    let id = users[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(users[0]["totp_enrolled"], false);

    let code = app.next_code().await;
    let trail = rig.submit(page, "/signin/totp", &[("code", &code)]).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["amr"], json!(["corp", "TOTP"]), "{claims}");
    assert_eq!(user(&rig, &id).await["totp_enrolled"], true, "the enrolment was saved");
    let audit = rig.audit().await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["action"], "created");

    // The next sign-in asks for a code, not for an enrolment.
    rig.new_browser();
    let (request, trail) = rig.federated_sign_in().await;
    assert_asks_for_a_totp_code("returning federated user", trail.page());
    let code = app.next_code().await;
    let trail = rig.submit(trail.page(), "/signin/totp", &[("code", &code)]).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["sub"], id.as_str());
}

// ---------------------------------------------------------------------------
// Email OTP

/// A rig whose jit sends mail to `smtp`, with extra environment `env`.
async fn rig_with_smtp(smtp: &SmtpListener, env: &[(&str, &str)]) -> Rig {
    let url = smtp.url();
    let mut all = vec![("JIT_SMTP_URL", url.as_str()), ("JIT_SMTP_FROM", "jit e2e <no-reply@jit.test>")];
    all.extend_from_slice(env);
    Rig::start_with_env(&all).await
}

/// The code in a mail, checking it went to `to` from the configured sender.
fn code_of_mail(mail: &Value, to: &str) -> String {
    assert_eq!(mail["mail_from"], "no-reply@jit.test", "{mail}");
    assert_eq!(mail["rcpt_to"], json!([to]), "{mail}");
    let (headers, body) = mail_parts(mail);
    assert!(headers.contains("Subject: Your jit sign-in code"), "{headers}");
    assert!(body.contains("sign in to demo"), "{body}");
    code_in(&body, 6).unwrap_or_else(|| panic!("no 6-digit code in {body}"))
}

/// Signs in with a password and asks for a code: the page with the code
/// form.
async fn send_code(rig: &Rig, smtp: &SmtpListener, username: &str) -> (AuthorizationRequest, Page) {
    let (request, trail) = rig.password_sign_in(username, PASSWORD).await;
    let page = trail.page();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(form_action(&page.body, "/signin/email-otp/send").is_some(), "no send button: {}", page.body);
    assert!(form_action(&page.body, "/signin/email-otp").is_none(), "a code form before any code: {}", page.body);
    assert!(smtp.try_next_mail(Duration::from_millis(200)).is_none(), "a mail was sent before it was asked for");
    let sent = rig.submit(page, "/signin/email-otp/send", &[]).await;
    let page = sent.page();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(form_action(&page.body, "/signin/email-otp").is_some(), "no code form: {}", page.body);
    (request, page.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn email_otp_codes_arrive_through_a_real_smtp_server_and_sign_the_user_in() {
    let smtp = SmtpListener::start();
    let rig = rig_with_smtp(&smtp, &[]).await;
    rig.set_flow(steps(&[&["LOCAL"], &["EMAIL_OTP"]]), None).await;
    let id = local_user(&rig, "frank", "Frank@Example.com").await;

    let (request, trail) = rig.password_sign_in("frank", PASSWORD).await;
    let page = trail.page();
    assert!(page.body.contains("Send a code to F***@Example.com"), "{}", page.body);
    let sent = rig.submit(page, "/signin/email-otp/send", &[]).await;
    let page = sent.page();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("We sent a code to F***@Example.com"), "the notice: {}", page.body);
    let code = code_of_mail(&smtp.next_mail(), "Frank@Example.com");
    assert!(!page.body.contains(&code), "the page shows the code");

    // Asking again at once is refused (and sends nothing); the code stays good.
    let again = rig.submit(page, "/signin/email-otp/send", &[]).await;
    assert_eq!(again.page().status, 429, "{}", again.page().body);
    assert!(again.page().body.contains("A code was sent moments ago"), "{}", again.page().body);
    assert!(smtp.try_next_mail(Duration::from_millis(300)).is_none(), "a second mail was sent too soon");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let trail = rig.submit(again.page(), "/signin/email-otp", &[("code", wrong)]).await;
    assert_code_refused("a wrong email code", &trail, "That code is not right. 4 attempt(s) left");

    let trail = rig.submit(trail.page(), "/signin/email-otp", &[("code", &code)]).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["amr"], json!(["LOCAL", "EMAIL_OTP"]), "{claims}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_email_codes_use_the_code_up() {
    let smtp = SmtpListener::start();
    let rig = rig_with_smtp(&smtp, &[]).await;
    rig.set_flow(steps(&[&["LOCAL"], &["EMAIL_OTP"]]), None).await;
    local_user(&rig, "gina", "gina@example.com").await;

    let (_, mut page) = send_code(&rig, &smtp, "gina").await;
    let code = code_of_mail(&smtp.next_mail(), "gina@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in (1..=4).rev() {
        let trail = rig.submit(&page, "/signin/email-otp", &[("code", wrong)]).await;
        assert_code_refused("a wrong email code", &trail, &format!("{remaining} attempt(s) left"));
        page = trail.page().clone();
    }
    let trail = rig.submit(&page, "/signin/email-otp", &[("code", wrong)]).await;
    assert_code_refused("the fifth wrong code", &trail, "Too many wrong codes. Ask for a new code.");
    // The right code is refused now too.
    let trail = rig.submit(trail.page(), "/signin/email-otp", &[("code", &code)]).await;
    assert_code_refused("the right code after too many wrong ones", &trail, "Too many wrong codes");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_wrong_email_codes_count_against_the_attempt_limit() {
    let smtp = SmtpListener::start();
    let rig = rig_with_smtp(&smtp, &[]).await;
    rig.set_flow(steps(&[&["LOCAL"], &["EMAIL_OTP"]]), None).await;
    local_user(&rig, "lena", "lena@example.com").await;
    let (_, page) = send_code(&rig, &smtp, "lena").await;
    let code = code_of_mail(&smtp.next_mail(), "lena@example.com");
    let csrf = hidden_value(&page.body, "csrf").unwrap();
    let url = format!("{}/signin/email-otp", rig.jit_url);
    let guesses: Vec<_> = (1..=30u32)
        .map(|i| {
            let (client, url, csrf) = (rig.browser.client.clone(), url.clone(), csrf.clone());
            let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + i) % 1_000_000);
            tokio::spawn(async move { client.post(&url).form(&[("csrf", csrf), ("code", wrong)]).send().await })
        })
        .collect();
    // Each guess is either counted (a "wrong code" answer with the tries
    // left, or "too many") or refused unchecked because a parallel request
    // changed the sign-in first (409). Never is one try counted twice.
    let mut tries_left = Vec::new();
    let mut exhausted = false;
    for guess in guesses {
        let response = guess.await.unwrap().unwrap();
        let status = response.status().as_u16();
        let body = unescape_html(&response.text().await.unwrap());
        match status {
            401 if body.contains("Too many wrong codes") => exhausted = true,
            401 => {
                let at =
                    body.find(" attempt(s) left").unwrap_or_else(|| panic!("a 401 without the tries left: {body}"));
                tries_left.push(body[at - 1..at].parse::<u32>().unwrap());
            }
            409 => assert!(body.contains("changed by another request"), "{body}"),
            429 => exhausted = true,
            other => panic!("a guess got {other}: {body}"),
        }
    }
    let mut distinct = tries_left.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), tries_left.len(), "a try was counted twice (lost update): {tries_left:?}");
    assert!(tries_left.len() <= 4, "more wrong codes were checked than allowed: {tries_left:?}");

    let trail = rig.submit(&page, "/signin/email-otp", &[("code", &code)]).await;
    if exhausted {
        assert!(
            matches!(trail.end, End::Page(_)),
            "the right code was accepted after the tries ran out: {:?}",
            trail.end
        );
    } else {
        assert!(!matches!(trail.end, End::Page(_)), "the right code was refused with tries left: {tries_left:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_offering_totp_and_email_otp_keeps_the_enrolment_when_a_code_is_sent() {
    let smtp = SmtpListener::start();
    let rig = rig_with_smtp(&smtp, &[]).await;
    rig.set_flow(steps(&[&["LOCAL"], &["TOTP", "EMAIL_OTP"]]), None).await;
    local_user(&rig, "max", "max@example.com").await;
    let (_, trail) = rig.password_sign_in("max", PASSWORD).await;
    let app = Authenticator::from_enrolment_page(trail.page());
    assert!(trail.page().body.contains("Send a code to m***@example.com"), "{}", trail.page().body);
    let sent = rig.submit(trail.page(), "/signin/email-otp/send", &[]).await;
    smtp.next_mail();
    let page = sent.page();
    assert!(!page.body.contains("Code from your authenticator app"), "a TOTP code is asked of a user without TOTP");
    assert_eq!(Authenticator::from_enrolment_page(page).secret, app.secret, "the enrolment is still offered");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_smtp_server_is_a_clear_page_without_its_details() {
    // Nobody listens on a port that was just freed.
    let url = format!("smtp://jit:s3cr3t-pw@127.0.0.1:{}", free_port());
    let rig = Rig::start_with_env(&[("JIT_SMTP_URL", url.as_str())]).await;
    rig.set_flow(steps(&[&["LOCAL"], &["EMAIL_OTP"]]), None).await;
    local_user(&rig, "nora", "nora@example.com").await;
    let (_, trail) = rig.password_sign_in("nora", PASSWORD).await;
    let failed = rig.submit(trail.page(), "/signin/email-otp/send", &[]).await;
    assert_error_page("SMTP down", failed.page(), 502, "could not be sent", &["s3cr3t-pw", "127.0.0.1"]);
    assert!(failed.page().body.contains("mail_failed"), "{}", failed.page().body);
}

#[tokio::test(flavor = "multi_thread")]
async fn email_otp_for_a_user_without_an_email_address_is_a_clear_page() {
    let rig = Rig::start().await;
    rig.set_flow(steps(&[&["LOCAL"], &["EMAIL_OTP"]]), None).await;
    rig.admin.post("/users", json!({"username": "olga", "password": PASSWORD, "attributes": {}})).await;
    let (_, trail) = rig.password_sign_in("olga", PASSWORD).await;
    assert_error_page("no email address", trail.page(), 403, "no email address", &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_ends_after_too_many_wrong_codes() {
    let rig = Rig::start().await;
    rig.set_flow(steps(&[&["LOCAL"], &["TOTP"]]), None).await;
    local_user(&rig, "paul", "paul@example.com").await;
    let (_, trail) = rig.password_sign_in("paul", PASSWORD).await;
    let app = Authenticator::from_enrolment_page(trail.page());
    let mut page = trail.page().clone();
    for attempt in 1..=10 {
        let trail = rig.submit(&page, "/signin/totp", &[("code", &app.wrong_code())]).await;
        assert_code_refused(&format!("wrong code {attempt}"), &trail, "That code is not right");
        page = trail.page().clone();
    }
    let trail = rig.submit(&page, "/signin/totp", &[("code", &app.wrong_code())]).await;
    assert_error_page("the eleventh wrong code", trail.page(), 429, "too many failed attempts", &[]);
    // The sign-in is over.
    let gone = rig.browser.get(&format!("{}/signin", rig.jit_url)).await;
    assert_error_page("after the end", &gone, 400, "expired", &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smtp_server_is_logged_without_its_password() {
    let smtp = SmtpListener::start();
    let url = format!("smtp://jit:s3cr3t-pw@127.0.0.1:{}", smtp.port());
    let with_smtp = startup_log(&[("JIT_SMTP_URL", url.as_str())]);
    let line = with_smtp.iter().find(|l| l.contains("Email OTP codes are sent by SMTP")).unwrap_or_else(|| {
        panic!("no line says SMTP is used: {with_smtp:#?}");
    });
    assert!(line.contains(&format!("smtp://jit:***@127.0.0.1:{}", smtp.port())), "{line}");
    assert!(!with_smtp.iter().any(|l| l.contains("s3cr3t-pw")), "the password is logged: {with_smtp:#?}");

    let without = startup_log(&[]);
    assert!(
        without.iter().any(|l| l.contains("DEVELOPMENT FALLBACK") && l.contains("JIT_SMTP_URL")),
        "no line says codes go to the log: {without:#?}"
    );

    // A URL that cannot work stops jit at start, saying why, without the password.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(jit_binary())
        .arg("serve")
        .env("JIT_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("JIT_DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display()))
        .env("JIT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("JIT_SMTP_URL", "smtp://jit:s3cr3t-pw@mail.example.com")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(all.contains("refusing to send SMTP credentials unencrypted"), "{all}");
    assert!(!all.contains("s3cr3t-pw"), "{all}");
}

/// What `jit serve` logs until it listens (then it is stopped).
fn startup_log(env: &[(&str, &str)]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(jit_binary())
        .arg("serve")
        .env("JIT_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("JIT_DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display()))
        .env("JIT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("JIT_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("JIT_SMTP_URL")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.contains("jit is listening");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains("jit is listening")), "jit did not start: {lines:#?}");
    lines
}

// ---------------------------------------------------------------------------
// MFA needs a local account

#[tokio::test(flavor = "multi_thread")]
async fn mfa_after_a_jit_disabled_connection_fails_with_a_page_and_the_admin_api_warns() {
    let mut rig = Rig::start().await;
    rig.set_jit(json!({"enabled": false})).await;
    for option in ["TOTP", "EMAIL_OTP"] {
        let answer = rig.set_flow(steps(&[&["corp"], &[option]]), None).await;
        let warnings = answer["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{answer}");
        assert_eq!(warnings[0]["kind"], "mfa_with_jit_disabled_connection");
        assert_eq!(warnings[0]["connection"], "corp");
        assert_eq!(warnings[0]["option"], option);
        assert!(warnings[0]["message"].as_str().unwrap().contains("conditional authentication script"), "{answer}");
        assert_eq!(warnings[0]["suggested_script"], SKIP_MFA_FOR_FEDERATED_SCRIPT);
        let read = rig.admin.get(&format!("/applications/{}", rig.client_id)).await;
        assert_eq!(read["warnings"], answer["warnings"]);

        rig.new_browser();
        let (_, trail) = rig.federated_sign_in().await;
        let page = trail.page();
        assert_error_page(option, page, 403, "needs a local account", &[]);
        assert!(page.body.contains("Just-in-Time provisioning is disabled"), "{}", page.body);
        assert!(page.body.contains("no_local_account"), "{}", page.body);
        rig.assert_nothing_written(option).await;
    }
}

// ---------------------------------------------------------------------------
// Conditional authentication scripts

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_script_gives_local_users_mfa_and_lets_federated_users_skip_it() {
    let mut rig = Rig::start().await;
    rig.set_jit(json!({"enabled": false})).await;
    let answer = rig.set_flow(steps(&[&["LOCAL", "corp"], &["TOTP"]]), Some(SKIP_MFA_FOR_FEDERATED_SCRIPT)).await;
    assert_eq!(answer["sign_in"]["script"], SKIP_MFA_FOR_FEDERATED_SCRIPT, "stored byte for byte");
    assert_eq!(answer["warnings"], json!([]), "the script takes over the warning");

    // A local user: step 1 with a password (after one wrong try), then MFA.
    let id = local_user(&rig, "ivy", "ivy@example.com").await;
    let request = rig.authorization(None);
    let trail = rig.walk(&request.url).await;
    let wrong = rig.submit(trail.page(), "/signin/password", &[("username", "ivy"), ("password", "nope")]).await;
    assert_eq!(wrong.page().status, 401, "{}", wrong.page().body);
    let trail = rig.submit(wrong.page(), "/signin/password", &[("username", "ivy"), ("password", PASSWORD)]).await;
    let page = trail.page();
    assert!(page.body.contains("Step 2 of 2"), "{}", page.body);
    let mut app = Authenticator::from_enrolment_page(page);
    let code = app.next_code().await;
    let trail = rig.submit(page, "/signin/totp", &[("code", &code)]).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["amr"], json!(["LOCAL", "TOTP"]), "{claims}");

    // A federated user of the JIT-disabled connection skips step 2 and the
    // application gets tokens and userinfo.
    rig.new_browser();
    let (request, trail) = rig.federated_sign_in().await;
    let (tokens, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["amr"], json!(["corp"]), "{claims}");
    let (status, userinfo) = rig.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{userinfo}");
    assert_eq!(userinfo["sub"], claims["sub"]);
    rig.assert_nothing_written("a JIT-disabled federated user").await;

    // The same through the sign-in page's button rather than fidp.
    rig.new_browser();
    let request = rig.authorization(None);
    let trail = rig.walk(&request.url).await;
    let idp = rig.submit(trail.page(), "/signin/federated", &[("connection", "corp")]).await;
    rig.tokens(&request, &idp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_see_the_authorization_request_parameters() {
    let mut rig = Rig::start().await;
    let script = "var onLoginRequest = function (context) {
    executeStep(1, {
        onSuccess: function (context) {
            Log.info('acr_values=' + context.request.params.acr_values + ' user=' + context.steps[1].subject.username);
            if (context.request.params.acr_values == 'mfa' && context.steps[1].subject.username == 'jack') {
                executeStep(2);
            }
        }
    });
};";
    rig.set_flow(steps(&[&["LOCAL"], &["TOTP"]]), Some(script)).await;
    local_user(&rig, "jack", "jack@example.com").await;

    let mut request = rig.authorization(None);
    request.url.push_str("&acr_values=mfa");
    let trail = rig.walk(&request.url).await;
    let trail = rig.submit(trail.page(), "/signin/password", &[("username", "jack"), ("password", PASSWORD)]).await;
    Authenticator::from_enrolment_page(trail.page());

    rig.new_browser();
    let (request, trail) = rig.password_sign_in("jack", PASSWORD).await;
    let (_, claims) = rig.tokens(&request, &trail).await;
    assert_eq!(claims["amr"], json!(["LOCAL"]), "no acr_values=mfa, no step 2: {claims}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_scripts_end_the_sign_in_with_a_clear_page_quickly() {
    let mut rig = Rig::start().await;
    local_user(&rig, "kim", "kim@example.com").await;
    let flow = steps(&[&["LOCAL", "corp"], &["TOTP"]]);

    // A syntax error is refused when the application is saved.
    let body = json!({"name": "demo", "redirect_uris": [rig.redirect_uri], "public": false,
                      "sign_in": {"steps": flow, "script": "var onLoginRequest = function (context) {\n  executeStep(1;\n};"}});
    let (status, answer) =
        rig.admin.call(reqwest::Method::PUT, &format!("/applications/{}", rig.client_id), Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("syntax error"), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("line 2"), "{answer}");

    // Valid syntax, failing when a sign-in runs it: saved, and every
    // sign-in ends on a page saying what is wrong (never a 500, never a hang).
    let at_start = [
        ("an endless loop", "var onLoginRequest = function (context) { while (true) {} };", 409, "time budget"),
        (
            "a throw",
            "var onLoginRequest = function (context) { throw new Error('no rules for ' + 'this app'); };",
            409,
            "no rules for this app",
        ),
        ("an unknown step", "var onLoginRequest = function (context) { executeStep(7); };", 409, "asked for step 7"),
        (
            "fail()",
            "var onLoginRequest = function (context) { fail('Contractors <b>may not</b> sign in here'); };",
            403,
            "Contractors <b>may not</b> sign in here",
        ),
    ];
    for (case, script, status, phrase) in at_start {
        rig.set_flow(flow.clone(), Some(script)).await;
        rig.new_browser();
        let started = Instant::now();
        let request = rig.authorization(None);
        let trail = rig.walk(&request.url).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{case}: took {:?}", started.elapsed());
        assert_error_page(case, trail.page(), status, phrase, &[]);
        assert!(!trail.page().body.contains("<b>"), "{case}: the message is not escaped: {}", trail.page().body);
    }

    // A script that fails after step 1 ends the sign-in there, with a page.
    let after_step_1 = [
        (
            "an endless loop in onSuccess",
            "var onLoginRequest = function (context) {
                executeStep(1, { onSuccess: function (context) { for (;;) {} } });
            };",
            "time budget",
        ),
        (
            "an unknown step in onSuccess",
            "var onLoginRequest = function (context) {
                executeStep(1, { onSuccess: function (context) { executeStep(3); } });
            };",
            "asked for step 3",
        ),
        (
            "a throw reading a missing step",
            "var onLoginRequest = function (context) {
                executeStep(1, { onSuccess: function (context) { if (context.steps[2].idp == 'LOCAL') {} } });
            };",
            "failed",
        ),
    ];
    for (case, script, phrase) in after_step_1 {
        rig.set_flow(flow.clone(), Some(script)).await;
        rig.new_browser();
        let started = Instant::now();
        let (_, trail) = rig.password_sign_in("kim", PASSWORD).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{case}: took {:?}", started.elapsed());
        assert_error_page(case, trail.page(), 409, phrase, &[PASSWORD]);
        assert!(trail.page().body.contains("Sign-in misconfigured"), "{case}: {}", trail.page().body);
    }
    rig.assert_nothing_written("bad scripts").await;
}
