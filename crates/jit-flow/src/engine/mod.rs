//! The sign-in state machine.
//!
//! A sign-in is a [`SignInState`] stored under a random id (the browser keeps
//! the id in a cookie). Each request loads it, does one thing — show the
//! current step, check a password, send the user to an IdP, take the IdP's
//! answer — stores it again, and says what comes [`Next`]. When the last step
//! is done, an authorization code is issued for the application.

use std::sync::Arc;
use std::time::SystemTime;

use jit_domain::application::Application;
use jit_domain::connection::{Connection, ConnectionName};
use jit_domain::error::MappingError;
use jit_domain::flow::{Step, StepOption};
use jit_domain::mfa::LockoutPolicy;
use jit_domain::ports::{
    ApplicationStore, ConnectionStore, ExpiringRecordStore, PasswordLockoutStore, ProvisioningStore, RecordKind,
    SchemaStore, StoreError, TotpStore, UserStore,
};
use jit_domain::provisioning::Decision;
use jit_domain::service::{ProvisioningOutcome, identity_from_claims, provision};
use jit_idp::{CallbackParams, IdpError};
use time::{Duration, OffsetDateTime};

use crate::error::SignInError;
use crate::factors::email_otp::EmailOtpPolicy;
use crate::factors::mailer::{LogMailer, Mailer};
use crate::idps::IdpDirectory;
use crate::state::{CompletedStep, PendingFederation, SignInState, StepState};
use jit_primitives::clock::Clock;
use jit_primitives::password::verify_password_off_thread;
use jit_primitives::secret::{random_token, secrets_match, stored_form};
use jit_provider::{AuthorizationGrant, SignedInSubject, ValidatedAuthorization, issue_code};
use jit_script::{ScriptLimits, ScriptRunner};

mod scripted;
mod second_factors;

/// Everything the engine needs from storage.
pub trait EngineStore:
    ApplicationStore
    + ConnectionStore
    + ExpiringRecordStore
    + SchemaStore
    + ProvisioningStore
    + UserStore
    + TotpStore
    + PasswordLockoutStore
{
}
impl<
    T: ApplicationStore
        + ConnectionStore
        + ExpiringRecordStore
        + SchemaStore
        + ProvisioningStore
        + UserStore
        + TotpStore
        + PasswordLockoutStore,
> EngineStore for T
{
}

/// Lifetimes and addresses.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Our public URL (no trailing slash); callbacks are
    /// `<public_url>/federation/<connection>/callback`.
    pub public_url: String,
    /// How long a sign-in may take.
    pub sign_in_ttl: Duration,
    /// How long an authorization code is valid.
    pub code_ttl: Duration,
    /// Wrong passwords and codes allowed in one sign-in before it ends.
    pub max_failures: u32,
    /// When repeated password attempts lock an account's password sign-in
    /// (across sign-ins: starting a new one does not reset it).
    pub password_lockout: LockoutPolicy,
    /// The issuer name authenticator apps show for TOTP enrolments.
    pub totp_issuer: String,
    /// When repeated wrong TOTP codes lock an account's TOTP.
    pub totp_lockout: LockoutPolicy,
    /// Lifetime, attempts and resends of email codes.
    pub email_otp: EmailOtpPolicy,
    /// Time, memory and stack limits of one script evaluation.
    pub script_limits: ScriptLimits,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            sign_in_ttl: Duration::minutes(15),
            code_ttl: Duration::seconds(60),
            max_failures: 10,
            password_lockout: LockoutPolicy::default(),
            totp_issuer: crate::factors::totp::DEFAULT_ISSUER.into(),
            totp_lockout: LockoutPolicy::default(),
            email_otp: EmailOtpPolicy::default(),
            script_limits: ScriptLimits::default(),
        }
    }
}

/// The answer to a wrong password, an unknown user and a locked account
/// alike.
const WRONG_PASSWORD: &str = "Wrong username or password.";

/// What the HTTP layer does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The sign-in moved on to step `step` (1-based): show its current
    /// step (`GET /signin`), under `new_flow_id` when the step just done
    /// identified the user (the browser's cookie must change).
    Continue {
        /// The step now current (1-based).
        step: usize,
        /// The sign-in's new id, when this request moved it to one.
        new_flow_id: Option<String>,
    },
    /// Show the current step with something to tell the user (a refused
    /// attempt, a code that was sent): rendered as the answer itself.
    Show(StepView),
    /// Send the browser to an external IdP.
    RedirectToIdp(String),
    /// Done: send the browser back to the application with this code.
    Complete(IssuedCode),
    /// The user declined at the external IdP: send the browser back to the
    /// application with `error=access_denied` (the sign-in is over).
    Declined(DeclinedSignIn),
}

/// A sign-in the user declined, for the application's redirect URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclinedSignIn {
    /// Where to send the error.
    pub redirect_uri: String,
    /// The application's `state`.
    pub state: Option<String>,
    /// Which connection the user declined at.
    pub connection: String,
}

/// The current step, for the sign-in page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepView {
    /// The application's name.
    pub application: String,
    /// The step (1-based) and how many there are.
    pub step: usize,
    /// How many steps the flow has.
    pub steps: usize,
    /// Whether the step offers the local password form.
    pub local: bool,
    /// Connections offered: (name, display name).
    pub connections: Vec<(String, String)>,
    /// The token forms must echo.
    pub csrf: String,
    /// A message about the last attempt (e.g. wrong password).
    pub error: Option<String>,
    /// Something to tell the user (e.g. that a code was sent).
    pub notice: Option<String>,
    /// TOTP, when the step offers it to this user.
    pub totp: Option<TotpView>,
    /// Email OTP, when the step offers it to this user.
    pub email_otp: Option<EmailOtpView>,
}

/// The TOTP part of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TotpView {
    /// Ask for a code.
    Verify,
    /// The user has no TOTP yet: show the secret to add to an authenticator
    /// app, then ask for a first code.
    Enrol {
        /// The `otpauth://` URI (contains the secret).
        otpauth_uri: String,
        /// The same as a QR code, a `data:image/png;base64,` URL.
        qr_data_url: String,
    },
}

/// The Email OTP part of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailOtpView {
    /// Where the code goes, masked (`a***@example.com`).
    pub masked_address: String,
    /// Whether a code was sent in this step.
    pub sent: bool,
}

/// An authorization code for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCode {
    /// Where to send it.
    pub redirect_uri: String,
    /// The code.
    pub code: String,
    /// The application's `state`.
    pub state: Option<String>,
}

/// The sign-in state machine over a store.
pub struct SignInEngine<S: ?Sized> {
    store: Arc<S>,
    idps: Arc<dyn IdpDirectory>,
    clock: Arc<dyn Clock>,
    settings: EngineSettings,
    mailer: Arc<dyn Mailer>,
    scripts: ScriptRunner,
}

/// Redirects to IdPs one sign-in may start.
pub const MAX_FEDERATIONS: u32 = 10;

impl<S: EngineStore + ?Sized> SignInEngine<S> {
    /// An engine over `store`.
    pub fn new(
        store: Arc<S>,
        idps: impl IdpDirectory + 'static,
        clock: Arc<dyn Clock>,
        settings: EngineSettings,
    ) -> Self {
        let scripts = ScriptRunner::new(settings.script_limits);
        Self { store, idps: Arc::new(idps), clock, settings, mailer: Arc::new(LogMailer), scripts }
    }

    /// Sends Email OTP codes with `mailer` (the default writes them to the
    /// log, marked as a development fallback).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// The client the engine's sign-ins use for `connection` (the same
    /// settings, timeouts and cached discovery): for an administrator's
    /// trial sign-in, which provisions nothing.
    pub fn idp_client(&self, connection: &Connection) -> Result<Arc<dyn jit_idp::IdpClient>, SignInError> {
        self.idps.client(connection, &self.settings.public_url)
    }

    /// Starts a sign-in for a validated authorization request. With `fidp`,
    /// goes straight to that connection if step 1 offers it.
    pub async fn start(&self, request: ValidatedAuthorization) -> Result<(String, Next), SignInError> {
        let ValidatedAuthorization { application, context, fidp } = request;
        let application = &application;
        metrics::counter!("jit_sign_ins_started_total", "application" => application.client_id.clone()).increment(1);
        let state = SignInState {
            authorization: context,
            step: 0,
            epoch: 0,
            completed: Vec::new(),
            subject: None,
            csrf: random_token()?,
            auth_time: None,
            failures: 0,
            federations: 0,
            step_state: StepState::Choosing,
            version: None,
            identified_now: false,
        };
        let flow_id = random_token()?;
        let Some(first) = self.next_step(application, &state).await? else {
            return Err(SignInError::InvalidFlow("the sign-in script chose no step to start with".into()));
        };
        let mut state = state;
        self.enter_step(application, &mut state, first).await?;
        let next = match fidp.as_deref() {
            // Straight on to the IdP: the sign-in is stored once, with its
            // federation already counted (one write, not an insert and an
            // update).
            Some(connection) => self.federate_unchecked(&flow_id, &mut state, application, connection).await?,
            None => {
                self.save(&flow_id, &mut state).await?;
                Next::Continue { step: state.step + 1, new_flow_id: None }
            }
        };
        Ok((flow_id, next))
    }

    /// The current step of a sign-in.
    pub async fn view(&self, flow_id: &str) -> Result<StepView, SignInError> {
        let state = self.load(flow_id).await?;
        let application = self.application(&state).await?;
        self.view_of(&application, &state, None, None).await
    }

    /// Checks a local username and password.
    pub async fn password(
        &self,
        flow_id: &str,
        csrf: &str,
        username: &str,
        password: &str,
    ) -> Result<Next, SignInError> {
        let mut state = self.load_checked(flow_id, csrf).await?;
        let application = self.application(&state).await?;
        let step = current_step(&application, &state)?;
        if !step.options.contains(&StepOption::Local) {
            return Err(SignInError::NotOffered("Username and password".into()));
        }
        self.count_attempt(flow_id, &mut state).await?;
        let user = self.store.user_by_username(username.trim()).await?;
        let now = self.clock.now();
        // Count the attempt before checking it (per account, across
        // sign-ins): of a burst of guesses, those past the lockout
        // threshold are refused however many arrive at once. A right
        // password clears the count.
        let mut locked = None;
        let hash = match &user {
            Some(user) => match self.store.record_password_attempt(user.id, now, &self.settings.password_lockout).await
            {
                Ok(attempt) => {
                    locked = Some(attempt.lock).filter(|_| !attempt.allowed);
                    self.store.password_hash(user.id).await?
                }
                // Deleted since the lookup: as an unknown user.
                Err(StoreError::NotFound(_)) => None,
                Err(other) => return Err(other.into()),
            },
            None => None,
        };
        // Verified even when locked (against the dummy hash for unknown
        // users), so that the time taken says nothing either.
        let verified = verify_password_off_thread(password.to_owned(), hash).await?;
        match (user, locked) {
            (Some(user), Some(lock)) => {
                // The same answer as a wrong password: a lock must not tell
                // that the account exists.
                tracing::info!(
                    event = "password_locked",
                    user = %user.id.0,
                    failures = lock.failures,
                    "local sign-in refused: password sign-in is locked"
                );
                self.fail_step(flow_id, &application, state, StepOption::Local, WRONG_PASSWORD).await
            }
            (Some(user), None) if verified => {
                self.store.clear_password_failures(user.id).await?;
                state.failures = state.failures.saturating_sub(1);
                self.complete_step(&mut state, StepOption::Local, SignedInSubject::Local { user: user.id })?;
                self.advance(flow_id, &application, state).await
            }
            _ => {
                tracing::info!(event = "local_sign_in_failed", "local sign-in failed");
                self.fail_step(flow_id, &application, state, StepOption::Local, WRONG_PASSWORD).await
            }
        }
    }

    /// Sends the user to a connection offered by the current step.
    pub async fn federate(&self, flow_id: &str, csrf: &str, connection: &str) -> Result<Next, SignInError> {
        let mut state = self.load_checked(flow_id, csrf).await?;
        let application = self.application(&state).await?;
        self.federate_unchecked(flow_id, &mut state, &application, connection).await
    }

    /// Stores a pending federation for the current step, counted in the
    /// sign-in first (compare-and-swap): one sign-in makes jit keep at most
    /// [`MAX_FEDERATIONS`] of them, however often "continue" is clicked.
    async fn federate_unchecked(
        &self,
        flow_id: &str,
        state: &mut SignInState,
        application: &Application,
        connection: &str,
    ) -> Result<Next, SignInError> {
        let name = ConnectionName::new(connection).map_err(|_| SignInError::UnknownConnection(connection.into()))?;
        let step = current_step(application, state)?;
        if !step.options.contains(&StepOption::Connection(name.clone())) {
            return Err(SignInError::NotOffered(format!("Connection {connection:?}")));
        }
        state.federations += 1;
        if state.federations > MAX_FEDERATIONS {
            return Err(SignInError::TooManyAttempts);
        }
        self.save(flow_id, state).await?;
        let connection = self.connection(&name).await?;
        let client = self.idps.client(&connection, &self.settings.public_url)?;
        let start = client.begin().await.map_err(|source| SignInError::Idp { connection: name.to_string(), source })?;
        let pending = PendingFederation {
            flow_key: stored_form(flow_id),
            connection: name,
            step: state.step,
            epoch: state.epoch,
            pending: start.pending,
        };
        let value = serde_json::to_value(&pending).map_err(|e| SignInError::Internal(e.to_string()))?;
        let key = stored_form(&pending.pending.state);
        self.store.insert_record(RecordKind::PendingFederation, &key, &value, self.expiry()).await?;
        Ok(Next::RedirectToIdp(start.url))
    }

    /// Takes an IdP's answer at `/federation/<connection>/callback`.
    /// `flow_id` is the browser's cookie: the answer must come back to the
    /// browser that left.
    pub async fn callback(
        &self,
        flow_id: Option<&str>,
        connection: &str,
        params: &CallbackParams,
    ) -> Result<Next, SignInError> {
        let state_param = params.state.as_deref().ok_or(SignInError::UnknownState)?;
        let key = stored_form(state_param);
        let taken = self.store.take_record(RecordKind::PendingFederation, &key, self.clock.now()).await?;
        let pending = taken.ok_or(SignInError::UnknownState)?;
        let pending: PendingFederation =
            serde_json::from_value(pending).map_err(|e| SignInError::Internal(e.to_string()))?;
        let flow_id = flow_id.filter(|id| secrets_match(&stored_form(id), &pending.flow_key));
        let Some(flow_id) = flow_id.filter(|_| pending.connection.as_str() == connection) else {
            return Err(SignInError::UnknownState);
        };
        let mut state = self.load(flow_id).await?;
        let application = self.application(&state).await?;
        // The answer completes the step that sent the user away, and only
        // while that step is current: an answer to a redirect of a step
        // already done (a second "continue" click, an old tab) must not
        // complete whatever step came next.
        let offered = current_step(&application, &state)
            .is_ok_and(|step| step.options.contains(&StepOption::Connection(pending.connection.clone())));
        if pending.step != state.step || pending.epoch != state.epoch || !offered {
            tracing::warn!(
                event = "stale_federation",
                connection = %pending.connection,
                started_at_step = pending.step + 1,
                current_step = state.step + 1,
                "an identity provider's answer for a step that is no longer current was refused"
            );
            return Err(SignInError::StaleStep { connection: pending.connection.to_string() });
        }
        let connection = self.connection(&pending.connection).await?;
        let client = self.idps.client(&connection, &self.settings.public_url)?;
        let now: SystemTime = self.clock.now().into();
        let called = std::time::Instant::now();
        let finished = client.finish(params, &pending.pending, now).await;
        metrics::histogram!("jit_idp_call_duration_seconds", "connection" => connection.name.to_string(), "call" => "finish")
            .record(called.elapsed().as_secs_f64());
        let login = match finished {
            Ok(login) => login,
            // The user said no at the IdP: the application asked, so it
            // gets the answer (OpenID Connect Core 3.1.2.6), not a page.
            Err(IdpError::IdpRefused { error, .. }) if error == "access_denied" => {
                tracing::info!(event = "federated_sign_in_declined", connection = %connection.name, "declined at the IdP");
                self.end(flow_id, &state).await?;
                completed(&state.authorization.client_id, connection.name.as_str(), "declined");
                return Ok(Next::Declined(DeclinedSignIn {
                    redirect_uri: state.authorization.redirect_uri,
                    state: state.authorization.state,
                    connection: connection.name.to_string(),
                }));
            }
            Err(source) => {
                completed(&state.authorization.client_id, connection.name.as_str(), "idp_error");
                return Err(SignInError::Idp { connection: connection.name.to_string(), source });
            }
        };
        // The schema of now: an attribute declared a second ago maps.
        let schema = self.store.attribute_schema().await?;
        let identity = match identity_from_claims(&connection, &login.subject, &login.documents(), &schema) {
            Ok(identity) => identity,
            Err(MappingError::InvalidSubject) => {
                return Err(SignInError::InvalidSubject { connection: connection.name.to_string() });
            }
            Err(other) => return Err(other.into()),
        };
        let outcome = provision(&*self.store, &connection.jit, &schema, &identity, self.clock.now()).await?;
        let subject = match outcome {
            ProvisioningOutcome::PassThrough(identity) => {
                decided(&connection, "pass_through");
                SignedInSubject::PassThrough {
                    connection: identity.connection,
                    subject: identity.subject,
                    attributes: identity.attributes,
                    email_verified: identity.email_verified || connection.jit.trust_email,
                }
            }
            ProvisioningOutcome::SignedIn { user, decision } => {
                log_decision(&connection, &decision);
                SignedInSubject::Local { user: user.id }
            }
            ProvisioningOutcome::Refused(refusal) => {
                tracing::info!(
                    event = "provisioning_refused",
                    connection = %connection.name,
                    reason = %refusal,
                    "federated sign-in refused"
                );
                decided(&connection, "refused");
                metrics::counter!(
                    "jit_provisioning_refusals_total",
                    "connection" => connection.name.to_string(),
                    "reason" => refusal.code()
                )
                .increment(1);
                completed(&state.authorization.client_id, connection.name.as_str(), "refused");
                return Err(SignInError::Refused(refusal));
            }
        };
        self.complete_step(&mut state, StepOption::Connection(connection.name.clone()), subject)?;
        self.advance(flow_id, &application, state).await
    }

    fn complete_step(
        &self,
        state: &mut SignInState,
        option: StepOption,
        subject: SignedInSubject,
    ) -> Result<(), SignInError> {
        // The first step that identifies the user fixes the subject; a later
        // identifying step must find the same user.
        match &state.subject {
            None => {
                state.subject = Some(subject);
                state.identified_now = true;
            }
            Some(known) if *known == subject => {}
            Some(_) => {
                return Err(SignInError::InvalidFlow(
                    "a later step signed in a different user than the first step".into(),
                ));
            }
        }
        state.completed.push(CompletedStep { step: state.step + 1, option, succeeded: true });
        state.auth_time = Some(self.clock.now());
        state.leave();
        state.step += 1;
        Ok(())
    }

    /// Counts an attempt (password or code) of this sign-in before it is
    /// checked, and stores the count (compare-and-swap): of parallel
    /// attempts on one loaded state only one gets to be checked, and past
    /// [`EngineSettings::max_failures`] the sign-in ends unchecked. A right
    /// answer takes its count back (`failures - 1`) with the next save.
    async fn count_attempt(&self, flow_id: &str, state: &mut SignInState) -> Result<(), SignInError> {
        state.failures += 1;
        if state.failures > self.settings.max_failures {
            self.end(flow_id, state).await?;
            tracing::info!(event = "sign_in_too_many_failures", "sign-in ended after too many failures");
            return Err(SignInError::TooManyAttempts);
        }
        self.save(flow_id, state).await
    }

    /// A wrong password or code at the current step (already counted): the
    /// step is shown again with `message` — or, in a scripted flow, the
    /// failure is recorded and the script decides (its `onFail`). A script
    /// that asks for nothing more after a failure ends the sign-in failed:
    /// a failed step never lets a sign-in complete.
    async fn fail_step(
        &self,
        flow_id: &str,
        application: &Application,
        mut state: SignInState,
        option: StepOption,
        message: &str,
    ) -> Result<Next, SignInError> {
        if application.sign_in.script.is_some() {
            state.completed.push(CompletedStep { step: state.step + 1, option, succeeded: false });
            let step_before = state.step;
            match self.next_step(application, &state).await? {
                // Tried again: the failure is recorded for the script.
                Some(next) if next == step_before => self.save(flow_id, &mut state).await?,
                Some(next) => {
                    self.enter_step(application, &mut state, next).await?;
                    self.save(flow_id, &mut state).await?;
                    return Ok(Next::Continue { step: state.step + 1, new_flow_id: None });
                }
                None => {
                    self.end(flow_id, &state).await?;
                    tracing::info!(
                        event = "sign_in_step_failed",
                        application = %application.name,
                        step = step_before + 1,
                        "the script asked for nothing after a failed step: the sign-in ends failed"
                    );
                    return Err(SignInError::StepFailed { step: step_before + 1 });
                }
            }
        }
        // Nothing else changed since the attempt was counted and stored.
        Ok(Next::Show(self.view_of(application, &state, Some(message.to_owned()), None).await?))
    }

    /// Moves on after a completed step: the next step's page, or the code.
    async fn advance(
        &self,
        flow_id: &str,
        application: &Application,
        mut state: SignInState,
    ) -> Result<Next, SignInError> {
        match self.next_step(application, &state).await? {
            Some(next) => {
                self.enter_step(application, &mut state, next).await?;
                let new_flow_id = if state.identified_now {
                    Some(self.move_to_new_id(flow_id, &mut state).await?)
                } else {
                    self.save(flow_id, &mut state).await?;
                    None
                };
                Ok(Next::Continue { step: state.step + 1, new_flow_id })
            }
            None => self.finish(flow_id, state).await,
        }
    }

    /// The step to do next (0-based), or `None` when the sign-in is done:
    /// the script's choice, or else the step after the last one completed.
    async fn next_step(&self, application: &Application, state: &SignInState) -> Result<Option<usize>, SignInError> {
        match &application.sign_in.script {
            Some(script) => self.scripted_next_step(application, script, state).await,
            None => Ok((state.step < application.sign_in.steps.len()).then_some(state.step)),
        }
    }

    /// Enters step `index` (0-based): a new epoch and CSRF token (see
    /// [`SignInState::enter`]), then refuses a step this user cannot do and
    /// creates the TOTP secret a user without TOTP enrols with.
    async fn enter_step(
        &self,
        application: &Application,
        state: &mut SignInState,
        index: usize,
    ) -> Result<(), SignInError> {
        state.enter(index, random_token()?);
        let step = current_step(application, state)?;
        let Some(option) = step.options.iter().find(|o| o.needs_local_account()) else { return Ok(()) };
        let only_mfa = step.options.iter().all(StepOption::needs_local_account);
        match &state.subject {
            Some(SignedInSubject::PassThrough { connection, .. }) if only_mfa => {
                tracing::warn!(
                    event = "mfa_without_local_account",
                    connection = %connection,
                    step = state.step + 1,
                    option = %option,
                    "a step needing a local account was reached by a JIT-disabled connection's user"
                );
                Err(SignInError::NeedsLocalAccount {
                    step: state.step + 1,
                    option: option.to_string(),
                    connection: connection.to_string(),
                })
            }
            None if only_mfa => Err(SignInError::InvalidFlow(format!(
                "step {} ({option}) needs a user that an earlier step identified, and none did",
                state.step + 1
            ))),
            Some(SignedInSubject::Local { user }) => {
                let user = *user;
                if step.options.contains(&StepOption::Totp) {
                    self.prepare_totp(state, user).await?;
                } else if only_mfa && self.email_address(user).await?.is_none() {
                    // Email OTP is all the step offers, and there is nowhere to send a code.
                    return Err(SignInError::NoEmailAddress);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn finish(&self, flow_id: &str, state: SignInState) -> Result<Next, SignInError> {
        let subject = state.subject.ok_or_else(|| SignInError::InvalidFlow("no step identified the user".into()))?;
        let grant = AuthorizationGrant {
            authorization: state.authorization.clone(),
            subject,
            auth_time: state.auth_time.unwrap_or_else(|| self.clock.now()),
            methods: state.completed.iter().filter(|c| c.succeeded).map(CompletedStep::idp).collect(),
        };
        // The sign-in is over: its state cannot be used again, and it ends
        // only as it was loaded (compare-and-delete): of two requests
        // finishing it at once, or of a finish racing a counted attempt,
        // only one wins.
        if let Some(version) = state.version
            && !self.store.delete_record_if(RecordKind::SignIn, &flow_key(flow_id), version, self.clock.now()).await?
        {
            return Err(SignInError::Concurrent);
        }
        let code = issue_code(&*self.store, &grant, self.clock.now() + self.settings.code_ttl).await?;
        let connection = state.completed.iter().filter(|c| c.succeeded).map(CompletedStep::idp).next();
        completed(&state.authorization.client_id, connection.as_deref().unwrap_or("LOCAL"), "success");
        Ok(Next::Complete(IssuedCode {
            redirect_uri: state.authorization.redirect_uri,
            code,
            state: state.authorization.state,
        }))
    }

    async fn view_of(
        &self,
        application: &Application,
        state: &SignInState,
        error: Option<String>,
        notice: Option<String>,
    ) -> Result<StepView, SignInError> {
        let step = current_step(application, state)?;
        let mut connections = Vec::new();
        for option in &step.options {
            if let StepOption::Connection(name) = option {
                let connection = self.connection(name).await?;
                connections.push((name.to_string(), connection.display_name));
            }
        }
        let (totp, email_otp) = self.mfa_views(step, state).await?;
        Ok(StepView {
            application: application.name.clone(),
            step: state.step + 1,
            steps: application.sign_in.steps.len(),
            local: step.options.contains(&StepOption::Local),
            connections,
            csrf: state.csrf.clone(),
            error,
            notice,
            totp,
            email_otp,
        })
    }

    async fn application(&self, state: &SignInState) -> Result<Application, SignInError> {
        self.store.application(&state.authorization.client_id).await?.ok_or(SignInError::Expired)
    }

    async fn connection(&self, name: &ConnectionName) -> Result<Connection, SignInError> {
        self.store.connection(name).await?.ok_or_else(|| SignInError::UnknownConnection(name.to_string()))
    }

    async fn load(&self, flow_id: &str) -> Result<SignInState, SignInError> {
        let record = self.store.record(RecordKind::SignIn, &flow_key(flow_id), self.clock.now()).await?;
        let record = record.ok_or(SignInError::Expired)?;
        let mut state: SignInState = serde_json::from_value(record.value).map_err(|_| SignInError::Expired)?;
        state.version = Some(record.version);
        Ok(state)
    }

    async fn load_checked(&self, flow_id: &str, csrf: &str) -> Result<SignInState, SignInError> {
        let state = self.load(flow_id).await?;
        if secrets_match(&state.csrf, csrf) { Ok(state) } else { Err(SignInError::Csrf) }
    }

    /// Stores the sign-in: a new one as is, a loaded one only if nobody
    /// changed it since it was loaded ([`SignInError::Concurrent`] otherwise).
    async fn save(&self, flow_id: &str, state: &mut SignInState) -> Result<(), SignInError> {
        let value = serde_json::to_value(&*state).map_err(|e| SignInError::Internal(e.to_string()))?;
        let key = flow_key(flow_id);
        let version = match state.version {
            None => {
                self.store.insert_record(RecordKind::SignIn, &key, &value, self.expiry()).await?;
                1
            }
            Some(version) => {
                let now = self.clock.now();
                if !self.store.replace_record(RecordKind::SignIn, &key, version, &value, self.expiry(), now).await? {
                    return Err(SignInError::Concurrent);
                }
                version + 1
            }
        };
        state.version = Some(version);
        Ok(())
    }

    /// Stores the sign-in under a fresh id and deletes it under `flow_id`
    /// (only as loaded: a concurrent change wins, and this request fails
    /// with [`SignInError::Concurrent`]). Returns the new id.
    async fn move_to_new_id(&self, flow_id: &str, state: &mut SignInState) -> Result<String, SignInError> {
        let new_id = random_token()?;
        let value = serde_json::to_value(&*state).map_err(|e| SignInError::Internal(e.to_string()))?;
        let now = self.clock.now();
        self.store.insert_record(RecordKind::SignIn, &flow_key(&new_id), &value, self.expiry()).await?;
        if let Some(version) = state.version
            && !self.store.delete_record_if(RecordKind::SignIn, &flow_key(flow_id), version, now).await?
        {
            self.store.take_record(RecordKind::SignIn, &flow_key(&new_id), now).await?;
            return Err(SignInError::Concurrent);
        }
        state.version = Some(1);
        state.identified_now = false;
        Ok(new_id)
    }

    /// Ends the sign-in (refused or failed): its state is deleted if it is
    /// still as loaded; if another request changed it meanwhile, that
    /// request's outcome stands.
    async fn end(&self, flow_id: &str, state: &SignInState) -> Result<(), SignInError> {
        if let Some(version) = state.version {
            self.store.delete_record_if(RecordKind::SignIn, &flow_key(flow_id), version, self.clock.now()).await?;
        }
        Ok(())
    }

    fn expiry(&self) -> OffsetDateTime {
        self.clock.now() + self.settings.sign_in_ttl
    }
}

/// Sign-ins are stored under the hash of their id: the id is the browser's
/// bearer secret and never lands in the database.
fn flow_key(flow_id: &str) -> String {
    stored_form(flow_id)
}

fn current_step<'a>(application: &'a Application, state: &SignInState) -> Result<&'a Step, SignInError> {
    application.sign_in.steps.get(state.step).ok_or_else(|| SignInError::InvalidFlow("no step left".into()))
}

fn log_decision(connection: &Connection, decision: &Decision) {
    let kind = match decision {
        Decision::PassThrough { .. } => "pass_through",
        Decision::SignIn { .. } => "sign_in",
        Decision::Link { .. } => "linked",
        Decision::Create { .. } => "created",
        Decision::Refuse(_) => "refused",
    };
    tracing::info!(event = "provisioned", connection = %connection.name, decision = kind, "federated sign-in");
    decided(connection, kind);
}

/// Counts a provisioning decision.
fn decided(connection: &Connection, decision: &'static str) {
    metrics::counter!("jit_provisioning_decisions_total", "connection" => connection.name.to_string(), "decision" => decision)
        .increment(1);
}

/// Counts a sign-in that ended: `connection` is the first connection (or
/// `LOCAL`) that identified the user.
fn completed(application: &str, connection: &str, outcome: &'static str) {
    metrics::counter!(
        "jit_sign_ins_completed_total",
        "application" => application.to_owned(),
        "connection" => connection.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}
