//! The state of a sign-in between requests, stored through the
//! as [`jit_domain::ports::RecordKind::SignIn`] and
//! [`jit_domain::ports::RecordKind::PendingFederation`] records so that any
//! instance can continue it.

use jit_domain::connection::ConnectionName;
use jit_domain::flow::StepOption;
use jit_domain::mfa::TotpSecret;
use jit_idp::PendingAuthorization;
use jit_provider::{AuthorizationContext, SignedInSubject};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::factors::email_otp::EmailOtpChallenge;

/// A step that was tried: what the script API calls `context.steps[n]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedStep {
    /// The step (1-based).
    pub step: usize,
    /// The option the user completed (or failed).
    pub option: StepOption,
    /// Whether it succeeded. Failures are recorded only in scripted flows,
    /// where `onFail` may act on them.
    #[serde(default = "succeeded_by_default")]
    pub succeeded: bool,
}

fn succeeded_by_default() -> bool {
    true
}

impl CompletedStep {
    /// The authenticator's IdP name as scripts see it: `LOCAL` or the
    /// connection's name.
    pub fn idp(&self) -> String {
        self.option.to_string()
    }
}

/// A sign-in in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInState {
    /// The application's request.
    pub authorization: AuthorizationContext,
    /// Index of the step being done (0-based).
    pub step: usize,
    /// How many times a step was entered or left in this sign-in: the
    /// version of the current step. Work started at a step (a redirect to
    /// an IdP, an email code, a TOTP enrolment) carries the epoch it was
    /// started at and is void once the epoch moves on.
    #[serde(default)]
    pub epoch: u64,
    /// Steps done so far.
    pub completed: Vec<CompletedStep>,
    /// Who has been identified so far.
    pub subject: Option<SignedInSubject>,
    /// Token that forms must echo (bound to this sign-in).
    pub csrf: String,
    /// When the user authenticated (for `auth_time`).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub auth_time: Option<OffsetDateTime>,
    /// Attempts in this sign-in (passwords and codes) not proven right:
    /// counted before each check, taken back when the check succeeds.
    /// Past a limit the sign-in ends.
    #[serde(default)]
    pub failures: u32,
    /// Redirects to IdPs started in this sign-in (each stores a pending
    /// federation until it expires); past a limit, no more.
    #[serde(default)]
    pub federations: u32,
    /// What the current step has under way, replaced whole when a step is
    /// entered or left.
    #[serde(default)]
    pub step_state: StepState,
    /// The stored version this state was loaded at: saving replaces that
    /// version or fails, so parallel requests of one sign-in cannot each
    /// count the same attempt. `None` for a sign-in not stored yet.
    #[serde(skip)]
    pub version: Option<i64>,
    /// Set by the request whose step first identified the user: the
    /// sign-in then moves to a new id (the browser gets a new cookie), so a
    /// flow id seen before the user signed in is worth nothing after.
    #[serde(skip)]
    pub identified_now: bool,
}

impl SignInState {
    /// Moves to `step` (0-based): a new epoch, so that everything pending
    /// at the step being left (redirects to IdPs, email codes, a TOTP
    /// enrolment) is void, and a new CSRF token, so that forms of the step
    /// being left cannot act on this one.
    pub fn enter(&mut self, step: usize, csrf: String) {
        self.leave();
        self.step = step;
        self.csrf = csrf;
    }

    /// Leaves the current step (completed or abandoned): the epoch moves
    /// on and whatever the step had under way is dropped.
    pub fn leave(&mut self) {
        self.epoch += 1;
        self.step_state = StepState::Choosing;
    }
}

/// What the current step has under way. It belongs to one step: entering
/// or leaving a step replaces it whole ([`SignInState::enter`],
/// [`SignInState::leave`]), so nothing started at one step can act at
/// another. A redirect to an IdP is its own record ([`PendingFederation`]),
/// bound to the step and epoch that started it, because it outlives the
/// request that stores the sign-in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum StepState {
    /// Nothing under way: the page offers the step's options.
    #[default]
    Choosing,
    /// Second factors under way. A step may offer TOTP and Email OTP at
    /// once: both can be.
    SecondFactors(SecondFactors),
}

/// Second factors started but not finished at the current step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactors {
    /// A TOTP secret shown to a user who is not enrolled yet; saved on the
    /// account when the user confirms it with a first code. Redacted in
    /// `Debug`.
    #[serde(default)]
    pub totp_enrolment: Option<TotpSecret>,
    /// The email code that was sent.
    #[serde(default)]
    pub email_code: Option<EmailCode>,
}

/// An email code that was sent at this step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailCode {
    /// Its hash, expiry and counters.
    pub challenge: EmailOtpChallenge,
    /// The address it went to: the one a right code proves the user reads
    /// (and so verifies), whatever the account's email became meanwhile.
    pub sent_to: String,
}

impl StepState {
    /// The second factors under way, if any.
    pub fn second_factors(&self) -> Option<&SecondFactors> {
        match self {
            StepState::SecondFactors(factors) => Some(factors),
            StepState::Choosing => None,
        }
    }

    /// Changes the second factors under way, starting them if none were.
    pub fn with_second_factors<R>(&mut self, change: impl FnOnce(&mut SecondFactors) -> R) -> R {
        let mut factors = match std::mem::take(self) {
            StepState::SecondFactors(factors) => factors,
            StepState::Choosing => SecondFactors::default(),
        };
        let result = change(&mut factors);
        *self = StepState::SecondFactors(factors);
        result
    }

    /// The TOTP secret waiting for its first code, if any.
    pub fn totp_enrolment(&self) -> Option<&TotpSecret> {
        self.second_factors().and_then(|factors| factors.totp_enrolment.as_ref())
    }

    /// The email code sent at this step, if any.
    pub fn email_code(&self) -> Option<&EmailCode> {
        self.second_factors().and_then(|factors| factors.email_code.as_ref())
    }

    /// The email code sent at this step, if any, to change.
    pub fn email_code_mut(&mut self) -> Option<&mut EmailCode> {
        match self {
            StepState::SecondFactors(factors) => factors.email_code.as_mut(),
            StepState::Choosing => None,
        }
    }
}

/// A redirect to an external IdP waiting for its callback. Stored apart,
/// under the hash of its `state`, and taken once: a replayed or forged
/// callback finds nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFederation {
    /// The stored form of the sign-in's id (checked against the browser's
    /// cookie).
    pub flow_key: String,
    /// The connection.
    pub connection: ConnectionName,
    /// The step (0-based) that sent the user to the IdP.
    pub step: usize,
    /// The epoch of that step: the answer completes that step only while it
    /// is still the current one.
    pub epoch: u64,
    /// What the IdP client needs to finish.
    pub pending: PendingAuthorization,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn debug_output_never_shows_a_pending_totp_secret() {
        let secret = TotpSecret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        let mut state = SignInState {
            authorization: AuthorizationContext {
                client_id: "app".into(),
                redirect_uri: "https://app.example/cb".into(),
                state: None,
                nonce: None,
                scope: "openid".into(),
                code_challenge: None,
                request_params: BTreeMap::new(),
            },
            step: 1,
            epoch: 0,
            completed: Vec::new(),
            subject: None,
            csrf: "csrf".into(),
            auth_time: None,
            failures: 0,
            federations: 0,
            step_state: StepState::Choosing,
            version: Some(1),
            identified_now: false,
        };
        state.step_state.with_second_factors(|factors| factors.totp_enrolment = Some(secret));
        let stored = serde_json::to_string(&state).unwrap();
        assert!(stored.contains("JBSWY3DP"), "the secret is stored with the sign-in: {stored}");
        let shown = format!("{state:?}");
        assert!(!shown.contains("JBSWY3DP"), "{shown}");
    }
}
