//! The sign-in engine's rules as scenarios: a flow, a list of what the user
//! and the IdP do, and the engine's answers as a transcript compared with
//! an expected snapshot. Everything runs in process: a real SQLite store,
//! the IdP scripted ([`bench::scripted_idp`]), and a clock that only moves
//! when a scenario says `Wait` — expiry and TOTP time steps without
//! sleeping.
//!
//! When a rule changes on purpose, `UPDATE_EXPECT=1 cargo test -p jit-flow
//! --test scenarios` rewrites the snapshots; review the diff like code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench;

use std::fmt::Write as _;

use bench::{Bench, PASSWORD, describe, id_after, step};
use expect_test::{Expect, expect};
use jit_domain::connection::ConnectionName;
use jit_domain::mfa::TotpSecret;
use jit_domain::ports::{AuditLog, ConnectionStore, TotpStore};
use jit_flow::factors::totp;
use jit_flow::{EngineSettings, Next, SignInError, TotpView};
use time::Duration;

/// What happens next in a scenario.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// The application sends a (new) browser to sign in.
    Start,
    /// The password form: username, and whether the password is right.
    Password(&'static str, bool),
    /// "Continue with" a connection.
    Federate(&'static str),
    /// The IdP signs `subject` in with these claims (JSON) and sends the
    /// browser back for redirect `n` of this scenario (1-based; 0: the
    /// latest).
    IdpSignsIn(usize, &'static str, &'static str),
    /// The user declines at the IdP (the latest redirect).
    IdpDeclines,
    /// A TOTP code.
    Totp(Code),
    /// "Send me a code".
    SendEmail,
    /// The email code.
    EmailCode(Code),
    /// Time passes.
    Wait(Duration),
    /// The newest audit event, as the admin API would list it.
    Audit,
}

#[derive(Clone, Copy, Debug)]
enum Code {
    /// The code of now (TOTP), or the last one mailed (email).
    Right,
    /// The TOTP code that was accepted last.
    Replay,
    /// A code that is not right.
    Wrong,
}

/// Who exists before the scenario starts.
struct Setup {
    steps: &'static [&'static [&'static str]],
    script: Option<&'static str>,
    /// Local users (username, email), password [`PASSWORD`].
    users: &'static [(&'static str, &'static str)],
    /// Users among them with TOTP enrolled.
    totp: &'static [&'static str],
    /// Whether `corp` provisions just in time.
    jit: bool,
    /// `corp`'s claim filters (JSON), if any.
    claim_filters: &'static str,
    settings: fn() -> EngineSettings,
}

const SETUP: Setup = Setup {
    steps: &[],
    script: None,
    users: &[],
    totp: &[],
    jit: true,
    claim_filters: "",
    settings: EngineSettings::default,
};

/// Runs `acts` and compares the transcript with `expected`.
async fn check(setup: Setup, acts: &[Act], expected: Expect) {
    expected.assert_eq(&transcript(setup, acts).await);
}

/// Runs `acts`: the engine's answers, one line per act.
async fn transcript(setup: Setup, acts: &[Act]) -> String {
    let steps = setup.steps.iter().map(|options| step(options)).collect();
    let bench = Bench::scripted(steps, setup.script, (setup.settings)()).await;
    let mut secrets = std::collections::HashMap::new();
    for (username, email) in setup.users {
        let user = bench.local_user(username, serde_json::json!({"email": email})).await;
        if setup.totp.contains(username) {
            let secret = totp::generate_secret().unwrap();
            bench.store.inner.enrol_totp(user, &secret, 0, bench.now()).await.unwrap();
            secrets.insert(*username, secret);
        }
    }
    if !setup.jit || !setup.claim_filters.is_empty() {
        let name = ConnectionName::new(bench::CONNECTION).unwrap();
        let mut corp = bench.store.connection(&name).await.unwrap().unwrap();
        corp.jit.enabled = setup.jit;
        if !setup.claim_filters.is_empty() {
            corp.claim_filters = serde_json::from_str(setup.claim_filters).unwrap();
        }
        bench.store.update_connection(&corp, bench.now()).await.unwrap();
    }
    let mut run = Run { bench: &bench, flow: None, user: None, secrets, accepted: None, redirects: Vec::new() };
    let mut transcript = String::new();
    for act in acts {
        let answer = run.act(*act).await;
        writeln!(transcript, "> {}", show(act)).unwrap();
        if let Some(answer) = answer {
            writeln!(transcript, "< {answer}").unwrap();
        }
    }
    transcript
}

fn show(act: &Act) -> String {
    match act {
        Act::Start => "start".into(),
        Act::Password(user, right) => format!("password {user} {}", if *right { "right" } else { "wrong" }),
        Act::Federate(connection) => format!("continue with {connection}"),
        Act::IdpSignsIn(0, subject, _) => format!("the IdP signs in {subject}"),
        Act::IdpSignsIn(n, subject, _) => format!("the IdP signs in {subject}, answering redirect {n}"),
        Act::IdpDeclines => "the user declines at the IdP".into(),
        Act::Totp(code) => format!("TOTP {code:?}"),
        Act::SendEmail => "send an email code".into(),
        Act::EmailCode(code) => format!("email code {code:?}"),
        Act::Wait(by) => format!("wait {by}"),
        Act::Audit => "the audit trail".into(),
    }
}

/// A scenario in progress.
struct Run<'a> {
    bench: &'a Bench,
    /// The sign-in of the current browser.
    flow: Option<String>,
    /// The user the last password was for (whose TOTP codes are used).
    user: Option<&'static str>,
    secrets: std::collections::HashMap<&'static str, TotpSecret>,
    accepted: Option<String>,
    redirects: Vec<String>,
}

impl Run<'_> {
    /// Does `act`: the engine's answer, described (none for `Wait`).
    async fn act(&mut self, act: Act) -> Option<String> {
        let engine = &self.bench.engine;
        let answer = match act {
            Act::Start => {
                let (flow, next) = self.bench.start().await;
                self.flow = Some(flow);
                Ok(next)
            }
            Act::Wait(by) => {
                self.bench.clock.advance(by);
                return None;
            }
            Act::Audit => {
                let filter = jit_domain::audit::AuditFilter { limit: 1, ..Default::default() };
                let events = self.bench.store.audit_events(&filter).await.unwrap();
                let newest = events.first().map(|event| serde_json::to_value(&event.action).unwrap());
                return Some(format!("newest event: {}", newest.map_or("none".into(), |e| e.to_string())));
            }
            Act::Password(user, right) => {
                self.user = Some(user);
                let password = if right { PASSWORD } else { "not the password" };
                let (flow, csrf) = match self.form().await {
                    Ok(form) => form,
                    Err(no_page) => return Some(no_page),
                };
                engine.password(&flow, &csrf, user, password).await
            }
            Act::Federate(connection) => {
                let (flow, csrf) = match self.form().await {
                    Ok(form) => form,
                    Err(no_page) => return Some(no_page),
                };
                let next = engine.federate(&flow, &csrf, connection).await;
                if let Ok(Next::RedirectToIdp(url)) = &next {
                    self.redirects.push(url.clone());
                }
                next
            }
            Act::IdpSignsIn(n, subject, claims) => {
                self.bench.scripted.will_sign_in(subject, serde_json::from_str(claims).unwrap());
                let url = if n == 0 { self.redirects.last() } else { self.redirects.get(n - 1) };
                let callback = bench::scripted_idp::ScriptedIdp::answer(url.expect("a redirect"), None);
                engine.callback(self.flow.as_deref(), bench::CONNECTION, &callback).await
            }
            Act::IdpDeclines => {
                let callback =
                    bench::scripted_idp::ScriptedIdp::answer(self.redirects.last().unwrap(), Some("access_denied"));
                engine.callback(self.flow.as_deref(), bench::CONNECTION, &callback).await
            }
            Act::Totp(code) => {
                let (flow, csrf) = match self.form().await {
                    Ok(form) => form,
                    Err(no_page) => return Some(no_page),
                };
                let code = self.totp_code(&flow, code).await;
                let answer = engine.totp(&flow, &csrf, &code).await;
                if matches!(answer, Ok(Next::Complete(_)) | Ok(Next::Continue { .. })) {
                    self.accepted = Some(code);
                }
                answer
            }
            Act::SendEmail => {
                let (flow, csrf) = match self.form().await {
                    Ok(form) => form,
                    Err(no_page) => return Some(no_page),
                };
                engine.send_email_otp(&flow, &csrf).await
            }
            Act::EmailCode(code) => {
                let (flow, csrf) = match self.form().await {
                    Ok(form) => form,
                    Err(no_page) => return Some(no_page),
                };
                let right = self.bench.outbox.sent().last().map_or("123456".to_owned(), |(_, code)| code.clone());
                let code = match code {
                    Code::Right | Code::Replay => right,
                    Code::Wrong => if right == "000000" { "000001" } else { "000000" }.to_owned(),
                };
                engine.email_otp(&flow, &csrf, &code).await
            }
        };
        let moved = match (&answer, &self.flow) {
            (Ok(Next::Continue { new_flow_id: Some(_), .. }), Some(flow)) => {
                self.flow = Some(id_after(flow, &answer));
                " (new sign-in id)"
            }
            _ => "",
        };
        let checked = match act {
            // What the IdP client was asked to check: a refused answer
            // never reaches it (nothing is exchanged).
            Act::IdpSignsIn(..) => format!(" · answers checked so far: {}", self.bench.scripted.exchanged()),
            _ => String::new(),
        };
        Some(format!("{}{moved}{checked}", describe_with_error_kind(&answer)))
    }

    /// The current sign-in and its form's CSRF token, or why there is none.
    async fn form(&self) -> Result<(String, String), String> {
        let flow = self.flow.clone().ok_or("no sign-in")?;
        match self.bench.engine.view(&flow).await {
            Ok(view) => Ok((flow, view.csrf)),
            Err(error) => Err(format!("no page: {error:?}")),
        }
    }

    /// A TOTP code for the current user: of the secret being enrolled (from
    /// the page) or the one enrolled.
    async fn totp_code(&mut self, flow: &str, code: Code) -> String {
        let user = self.user.expect("a user signed in with a password first");
        if let Ok(view) = self.bench.engine.view(flow).await
            && let Some(TotpView::Enrol { otpauth_uri, .. }) = &view.totp
        {
            let uri = url::Url::parse(otpauth_uri).unwrap();
            let secret = uri.query_pairs().find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned()).unwrap();
            self.secrets.insert(user, TotpSecret::new(secret).unwrap());
        }
        let secret = &self.secrets[user];
        let now = self.bench.now();
        match code {
            Code::Right => totp::code_at(secret, now).unwrap(),
            Code::Replay => self.accepted.clone().expect("a code was accepted before"),
            Code::Wrong => {
                let near: Vec<String> =
                    (-3..=3).map(|k| totp::code_at(secret, now + Duration::seconds(30 * k)).unwrap()).collect();
                ["000000", "123456", "999999"].into_iter().find(|c| !near.iter().any(|n| n == c)).unwrap().into()
            }
        }
    }
}

/// [`describe`], with errors named by their kind and message.
fn describe_with_error_kind(answer: &Result<Next, SignInError>) -> String {
    match answer {
        Err(error) => format!("refused: {error}"),
        ok => describe(ok),
    }
}

const LOCAL_THEN_TOTP: &[&[&str]] = &[&["LOCAL"], &["TOTP"]];
const LOCAL_THEN_EMAIL: &[&[&str]] = &[&["LOCAL"], &["EMAIL_OTP"]];

/// TOTP: a user without one enrols in the sign-in; a code works once, on
/// this sign-in or any other; the next time step's code works. (Moved from
/// the end-to-end suite, where it waited for the time step.)
#[tokio::test]
async fn totp_is_enrolled_in_the_sign_in_and_each_code_works_once() {
    let setup = Setup { steps: LOCAL_THEN_TOTP, users: &[("alice", "alice@example.com")], ..SETUP };
    use Act::*;
    let acts = [
        Start,
        Password("alice", true),
        Totp(Code::Right),
        Start,
        Password("alice", true),
        Totp(Code::Replay),
        Wait(Duration::seconds(30)),
        Totp(Code::Right),
        Start,
        Password("alice", true),
        Totp(Code::Replay),
    ];
    check(
        setup,
        &acts,
        expect![[r#"
        > start
        < step 1
        > password alice right
        < step 2 (new sign-in id)
        > TOTP Right
        < complete
        > start
        < step 1
        > password alice right
        < step 2 (new sign-in id)
        > TOTP Replay
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
        > wait 30s
        > TOTP Right
        < complete
        > start
        < step 1
        > password alice right
        < step 2 (new sign-in id)
        > TOTP Replay
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
    "#]],
    )
    .await;
}

/// TOTP lockout: five wrong codes are free, the sixth locks (with backoff);
/// while locked even the right code is refused, in any sign-in; after the
/// lock the right code works. (Moved from the end-to-end suite.)
#[tokio::test]
async fn wrong_totp_codes_lock_with_backoff() {
    let setup = Setup { steps: LOCAL_THEN_TOTP, users: &[("erin", "erin@example.com")], totp: &["erin"], ..SETUP };
    use Act::*;
    let mut acts = vec![Start, Password("erin", true)];
    acts.extend([Totp(Code::Wrong); 6]);
    acts.extend([Totp(Code::Right), Start, Password("erin", true), Totp(Code::Right)]);
    acts.extend([Wait(Duration::seconds(30)), Totp(Code::Right)]);
    check(setup, &acts, expect![[r#"
        > start
        < step 1
        > password erin right
        < step 2 (new sign-in id)
        > TOTP Wrong
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
        > TOTP Wrong
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
        > TOTP Wrong
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
        > TOTP Wrong
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
        > TOTP Wrong
        < step 2 error: That code is not right, or it was already used. Enter the next code your app shows.
        > TOTP Wrong
        < step 2 error: Too many wrong codes: codes from your authenticator are refused until 2026-06-01T09:00:30Z (UTC). Try again then.
        > TOTP Right
        < step 2 error: Too many wrong codes: codes from your authenticator are refused until 2026-06-01T09:00:30Z (UTC). Try again then.
        > start
        < step 1
        > password erin right
        < step 2 (new sign-in id)
        > TOTP Right
        < step 2 error: Too many wrong codes: codes from your authenticator are refused until 2026-06-01T09:00:30Z (UTC). Try again then.
        > wait 30s
        > TOTP Right
        < complete
    "#]]).await;
}

/// Email OTP: a code expires on the clock (moved from the end-to-end suite,
/// where it slept), a new one can be asked for, wrong codes count against
/// the code, the right one completes the step.
#[tokio::test]
async fn email_codes_expire_and_count_their_attempts() {
    let setup = Setup { steps: LOCAL_THEN_EMAIL, users: &[("hank", "hank@example.com")], ..SETUP };
    use Act::*;
    let acts = [
        Start,
        Password("hank", true),
        EmailCode(Code::Right),
        SendEmail,
        Wait(Duration::minutes(10)),
        EmailCode(Code::Right),
        SendEmail,
        Wait(Duration::minutes(1)),
        SendEmail,
        EmailCode(Code::Wrong),
        EmailCode(Code::Wrong),
        EmailCode(Code::Right),
    ];
    check(
        setup,
        &acts,
        expect![[r#"
        > start
        < step 1
        > password hank right
        < step 2 (new sign-in id)
        > email code Right
        < step 2 error: Ask for a code first.
        > send an email code
        < step 2 notice: We sent a code to h***@example.com. It is valid for 10 minutes.
        > wait 10m
        > email code Right
        < step 2 error: That code has expired. Ask for a new code.
        > send an email code
        < step 2 notice: We sent a code to h***@example.com. It is valid for 10 minutes.
        > wait 1m
        > send an email code
        < step 2 notice: We sent a code to h***@example.com. It is valid for 10 minutes.
        > email code Wrong
        < step 2 error: That code is not right. 4 attempt(s) left for this code.
        > email code Wrong
        < step 2 error: That code is not right. 3 attempt(s) left for this code.
        > email code Right
        < complete
    "#]],
    )
    .await;
}

/// Password lockout per account, across sign-ins: a new sign-in does not
/// reset it, a locked account answers as a wrong password does, and the
/// lock ends on the clock.
#[tokio::test]
async fn wrong_passwords_lock_the_account_across_sign_ins() {
    let setup = Setup { steps: &[&["LOCAL"]], users: &[("bob", "bob@example.com")], ..SETUP };
    use Act::*;
    let mut acts = vec![Start];
    acts.extend([Password("bob", false); 4]);
    acts.extend([Start, Password("bob", false), Password("bob", false), Password("bob", true)]);
    acts.extend([Wait(Duration::seconds(30)), Password("bob", true)]);
    check(
        setup,
        &acts,
        expect![[r#"
        > start
        < step 1
        > password bob wrong
        < step 1 error: Wrong username or password.
        > password bob wrong
        < step 1 error: Wrong username or password.
        > password bob wrong
        < step 1 error: Wrong username or password.
        > password bob wrong
        < step 1 error: Wrong username or password.
        > start
        < step 1
        > password bob wrong
        < step 1 error: Wrong username or password.
        > password bob wrong
        < step 1 error: Wrong username or password.
        > password bob right
        < step 1 error: Wrong username or password.
        > wait 30s
        > password bob right
        < complete
    "#]],
    )
    .await;
}

/// The seeds' script: local users get the second factor, federated users
/// of the connection skip it (and are provisioned just in time).
#[tokio::test]
async fn the_seeds_script_skips_mfa_for_federated_users() {
    let setup = Setup {
        steps: &[&["LOCAL", "corp"], &["TOTP"]],
        script: Some(jit_domain::flow::SKIP_MFA_FOR_FEDERATED_SCRIPT),
        users: &[("alice", "alice@example.com")],
        totp: &["alice"],
        ..SETUP
    };
    use Act::*;
    let acts = [
        Start,
        Federate("corp"),
        IdpSignsIn(0, "fed-1", r#"{"email": "fed@example.com", "email_verified": true}"#),
        Start,
        Password("alice", true),
        Totp(Code::Right),
    ];
    check(
        setup,
        &acts,
        expect![[r#"
        > start
        < step 1
        > continue with corp
        < redirect to IdP
        > the IdP signs in fed-1
        < complete · answers checked so far: 1
        > start
        < step 1
        > password alice right
        < step 2 (new sign-in id)
        > TOTP Right
        < complete
    "#]],
    )
    .await;
}

/// Pending work belongs to its step: of two redirects started at step 2,
/// the first answer completes it; the second, arriving at step 3, is
/// refused before anything is exchanged. A user who declines at the IdP
/// goes back to the application.
#[tokio::test]
async fn an_idp_answer_completes_only_the_step_that_sent_the_user() {
    let setup = Setup {
        steps: &[&["LOCAL"], &["corp"], &["TOTP"]],
        users: &[("alice", "alice@example.com")],
        totp: &["alice"],
        ..SETUP
    };
    use Act::*;
    let acts = [
        Start,
        Password("alice", true),
        Federate("corp"),
        Federate("corp"),
        IdpSignsIn(1, "alice-at-corp", r#"{"email": "alice@example.com", "email_verified": true}"#),
        IdpSignsIn(2, "alice-at-corp", r#"{"email": "alice@example.com", "email_verified": true}"#),
        Totp(Code::Right),
        Start,
        Password("alice", true),
        Federate("corp"),
        IdpDeclines,
    ];
    check(setup, &acts, expect![[r#"
        > start
        < step 1
        > password alice right
        < step 2 (new sign-in id)
        > continue with corp
        < redirect to IdP
        > continue with corp
        < redirect to IdP
        > the IdP signs in alice-at-corp, answering redirect 1
        < step 3 · answers checked so far: 1
        > the IdP signs in alice-at-corp, answering redirect 2
        < refused: this answer from corp belongs to a step of the sign-in that is already done or was left; nothing was changed. Continue in the window where you signed in, or start again from the application · answers checked so far: 1
        > TOTP Right
        < complete
        > start
        < step 1
        > password alice right
        < step 2 (new sign-in id)
        > continue with corp
        < redirect to IdP
        > the user declines at the IdP
        < declined
    "#]]).await;
}

/// A user of a JIT-disabled connection has no local account: a TOTP step
/// after it ends the sign-in with the page that says so (the seeds'
/// warning), never a 500.
#[tokio::test]
async fn mfa_after_a_jit_disabled_connection_needs_a_local_account() {
    let setup = Setup { steps: &[&["corp"], &["TOTP"]], jit: false, ..SETUP };
    use Act::*;
    let acts = [Start, Federate("corp"), IdpSignsIn(0, "guest", r#"{"email": "guest@example.com"}"#)];
    check(setup, &acts, expect![[r#"
        > start
        < step 1
        > continue with corp
        < redirect to IdP
        > the IdP signs in guest
        < refused: step 2 of this sign-in (TOTP) needs a local account, but you signed in through corp, whose users have no local account here (Just-in-Time provisioning is disabled). Ask the administrator to enable JIT provisioning for corp or to skip this step for its users. · answers checked so far: 1
    "#]]).await;
}

/// Issue 9 §2: a connection's claim filter admits only the sign-ins whose
/// claims meet it ("only members of group staff"); the others are refused
/// before anything is written, with an audit event — with JIT on or off.
#[tokio::test]
async fn a_claim_filter_refuses_sign_ins_that_do_not_meet_it() {
    let filters = r#"[{"claim": "groups", "equals": "staff"}, {"claim": "email", "matches": "@corp\\.example$"}]"#;
    use Act::*;
    let acts = [
        Start,
        Federate("corp"),
        IdpSignsIn(0, "eve", r#"{"email": "eve@corp.example", "groups": ["contractors"]}"#),
        Audit,
        Start,
        Federate("corp"),
        IdpSignsIn(0, "mallory", r#"{"email": "mallory@evil.example", "groups": ["staff"]}"#),
        Start,
        Federate("corp"),
        IdpSignsIn(0, "ann", r#"{"email": "ann@corp.example", "groups": ["staff", "hr"]}"#),
    ];
    let jit_off = transcript(Setup { steps: &[&["corp"]], jit: false, claim_filters: filters, ..SETUP }, &acts).await;
    let jit_on = Setup { steps: &[&["corp"]], claim_filters: filters, ..SETUP };
    check(jit_on, &acts, expect![[r#"
        > start
        < step 1
        > continue with corp
        < redirect to IdP
        > the IdP signs in eve
        < refused: this connection admits only sign-ins whose groups meets its filter, and this one does not; ask the administrator if you should have access · answers checked so far: 1
        > the audit trail
        < newest event: {"action":"refused","refusal":{"claim":"groups","reason":"claim_filter"}}
        > start
        < step 1
        > continue with corp
        < redirect to IdP
        > the IdP signs in mallory
        < refused: this connection admits only sign-ins whose email meets its filter, and this one does not; ask the administrator if you should have access · answers checked so far: 2
        > start
        < step 1
        > continue with corp
        < redirect to IdP
        > the IdP signs in ann
        < complete · answers checked so far: 3
    "#]]).await;
    let jit_on = transcript(Setup { steps: &[&["corp"]], claim_filters: filters, ..SETUP }, &acts).await;
    assert_eq!(jit_off, jit_on, "the filter holds with JIT off too");
}
