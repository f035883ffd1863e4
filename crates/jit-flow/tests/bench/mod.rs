//! The in-process test bench of the sign-in engine: a real SQLite store in a
//! temporary directory, a [`FixedClock`] that tests move, a capturing
//! mailer, and `jit_testkit::TestIdp` as the external IdP on loopback. No
//! HTTP server of ours: tests call the engine as the handlers do.
//!
//! [`GatedStore`] wraps the store so a test can make several requests load
//! the same stored sign-in before any of them goes on: races become
//! deterministic.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jit_domain::application::Application;
use jit_domain::attribute::{AttributeName, Attributes};
use jit_domain::audit::{AuditEvent, AuditFilter};
use jit_domain::connection::{Connection, ConnectionName, JitPolicy, OidcSettings};
use jit_domain::flow::{SignInFlow, Step, StepOption};
use jit_domain::mfa::{Attempt, LockoutPolicy, TotpRecord, TotpSecret};
use jit_domain::ports::{
    ApplicationStore, AuditLog, ConnectionStore, ExpiringRecordStore, FederatedLink, NewLocalUser,
    PasswordLockoutStore, ProvisioningFacts, ProvisioningStore, RecordKind, SchemaStore, StoreError, TotpStore,
    UserStore, Versioned,
};
use jit_domain::provisioning::{Decision, LookupKey};
use jit_domain::schema::{AttributeDefinition, AttributeSchema};
use jit_domain::user::{FederatedIdentity, LocalUser, UserId, Username};
use jit_flow::factors::mailer::{CodeMail, MailError, Mailer};
use jit_flow::idps::{IdpRegistry, IdpSettings, callback_url};
use jit_flow::{EngineSettings, Next, SignInEngine};
use jit_idp::CallbackParams;
use jit_primitives::clock::FixedClock;
use jit_provider::{AuthorizationContext, ValidatedAuthorization};
use jit_store::Store;
use jit_testkit::{TestIdp, TestIdpConfig};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Barrier;

pub mod scripted_idp;
use scripted_idp::{ScriptedDirectory, ScriptedIdp};

pub const PUBLIC_URL: &str = "http://jit.test";
pub const CONNECTION: &str = "corp";
pub const PASSWORD: &str = "correct horse battery staple";

/// Mails kept in memory: (to, code).
#[derive(Default)]
pub struct Outbox(Mutex<Vec<(String, String)>>);

impl Outbox {
    /// Every mail so far: (to, code).
    pub fn sent(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }

    pub fn last_code(&self) -> String {
        self.0.lock().unwrap().last().map(|(_, code)| code.clone()).expect("a code was sent")
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_code(&self, to: &str, code: &str, _: &CodeMail) -> Result<(), MailError> {
        self.0.lock().unwrap().push((to.to_owned(), code.to_owned()));
        Ok(())
    }
}

pub struct Bench {
    pub engine: Arc<SignInEngine<GatedStore>>,
    pub store: Arc<GatedStore>,
    pub clock: Arc<FixedClock>,
    /// The IdP on loopback (`Bench::new`, `Bench::with_settings`).
    loopback: Option<TestIdp>,
    /// The IdP in process (`Bench::scripted`).
    pub scripted: Arc<ScriptedIdp>,
    pub outbox: Arc<Outbox>,
    pub app: Application,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A step of the flow, from option names as the admin API spells them.
pub fn step(options: &[&str]) -> Step {
    Step { options: options.iter().map(|o| StepOption::try_from((*o).to_owned()).unwrap()).collect() }
}

impl Bench {
    /// An application `app` with these steps (and script), the connection
    /// `corp` to the test IdP with JIT on.
    pub async fn new(steps: Vec<Step>, script: Option<&str>) -> Self {
        Self::with_settings(steps, script, EngineSettings::default()).await
    }

    pub async fn with_settings(steps: Vec<Step>, script: Option<&str>, settings: EngineSettings) -> Self {
        Self::build(steps, script, settings, false).await
    }

    /// As [`Bench::with_settings`], with `corp` served by a [`ScriptedIdp`]
    /// in process instead of the test IdP on loopback.
    pub async fn scripted(steps: Vec<Step>, script: Option<&str>, settings: EngineSettings) -> Self {
        Self::build(steps, script, settings, true).await
    }

    async fn build(steps: Vec<Step>, script: Option<&str>, settings: EngineSettings, scripted: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
        let schema = AttributeSchema::standard();
        let inner = Store::connect(&url, schema.clone(), jit_store::SealingKeys::generate().unwrap()).await.unwrap();
        inner.migrate().await.unwrap();
        inner.prepare_secrets().await.unwrap();
        let store = Arc::new(GatedStore { inner, gate: Mutex::new(None) });
        let name = ConnectionName::new(CONNECTION).unwrap();
        let loopback = match scripted {
            true => None,
            false => Some(
                TestIdp::start(TestIdpConfig { redirect_uri: callback_url(PUBLIC_URL, &name), ..Default::default() })
                    .await
                    .unwrap(),
            ),
        };
        let (issuer, client_id, client_secret) = match &loopback {
            Some(idp) => (idp.issuer(), idp.config().client_id.clone(), idp.config().client_secret.clone()),
            None => (scripted_idp::ISSUER.to_owned(), "jit".to_owned(), "secret".to_owned()),
        };
        // The loopback IdP stamps its tokens with the real time; the
        // scripted one has no clock, so its scenarios start at a fixed
        // instant (the start of a TOTP time step) and print the same
        // times on every run.
        let start = if scripted { time::macros::datetime!(2026-06-01 09:00:00 UTC) } else { OffsetDateTime::now_utc() };
        let clock = Arc::new(FixedClock::new(start));
        let now = jit_primitives::clock::Clock::now(&*clock);
        let connection = Connection {
            name,
            display_name: "Corp".into(),
            protocol: Default::default(),
            oidc: OidcSettings {
                issuer,
                client_id,
                client_secret: Some(client_secret),
                scopes: vec!["email".into(), "profile".into()],
                ..Default::default()
            },
            claim_mappings: Default::default(),
            jit: JitPolicy::default(),
            claim_filters: Vec::new(),
            groups: None,
            roles: None,
        };
        store.create_connection(&connection, now).await.unwrap();
        let app = Application {
            name: "app".into(),
            client_id: "app".into(),
            client_secret_hash: None,
            redirect_uris: vec![jit_domain::application::RedirectUri::parse("https://app.test/cb").unwrap()],
            public: true,
            sign_in: SignInFlow { steps, script: script.map(str::to_owned) },
            scopes: Vec::new(),
        };
        store.create_application(&app, now).await.unwrap();
        let outbox = Arc::new(Outbox::default());
        let settings = EngineSettings { public_url: PUBLIC_URL.into(), ..settings };
        let scripted_idp = Arc::new(ScriptedIdp::default());
        let engine = match scripted {
            true => {
                let directory = ScriptedDirectory(scripted_idp.clone());
                SignInEngine::new(store.clone(), directory, clock.clone(), settings)
            }
            false => {
                let registry = IdpRegistry::new(IdpSettings::default());
                SignInEngine::new(store.clone(), registry, clock.clone(), settings)
            }
        }
        .with_mailer(outbox.clone());
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { engine: Arc::new(engine), store, clock, loopback, scripted: scripted_idp, outbox, app, http, _dir: dir }
    }

    /// The test IdP on loopback.
    pub fn idp(&self) -> &TestIdp {
        self.loopback.as_ref().expect("a bench with the IdP on loopback")
    }

    pub fn now(&self) -> OffsetDateTime {
        jit_primitives::clock::Clock::now(&*self.clock)
    }

    /// Starts a sign-in: its id and the first page.
    pub async fn start(&self) -> (String, Next) {
        let authorization = AuthorizationContext {
            client_id: self.app.client_id.clone(),
            redirect_uri: self.app.redirect_uris[0].to_string(),
            state: Some("app-state".into()),
            nonce: None,
            scope: "openid".into(),
            code_challenge: Some("challenge".into()),
            request_params: Default::default(),
        };
        let request = ValidatedAuthorization { application: self.app.clone(), context: authorization, fidp: None };
        self.engine.start(request).await.unwrap()
    }

    /// A local user with [`PASSWORD`] and these attributes.
    pub async fn local_user(&self, username: &str, attributes: Value) -> UserId {
        let attributes: Attributes = serde_json::from_value(attributes).unwrap();
        let user = NewLocalUser {
            username: Username::new(username).unwrap(),
            attributes,
            password_hash: Some(jit_primitives::password::hash_password(PASSWORD).unwrap()),
            email_verified: true,
        };
        self.store.create_user(user, self.now()).await.unwrap().id
    }

    /// Starts a sign-in and passes its first step with `username`'s
    /// password: the sign-in's id (a new one: the user is now known).
    pub async fn signed_in(&self, username: &str) -> String {
        let (flow, _) = self.start().await;
        let answer = self.engine.password(&flow, &self.csrf(&flow).await, username, PASSWORD).await;
        assert!(matches!(answer, Ok(Next::Continue { .. }) | Ok(Next::Complete(_))), "{}", describe(&answer));
        id_after(&flow, &answer)
    }

    /// Follows a redirect to the test IdP: the callback it sends back.
    pub async fn at_idp(&self, next: &Next) -> CallbackParams {
        let Next::RedirectToIdp(url) = next else { panic!("expected a redirect to the IdP, got {next:?}") };
        if self.loopback.is_none() {
            return ScriptedIdp::answer(url, None);
        }
        let response = self.http.get(url).send().await.unwrap();
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let location = url::Url::parse(&location).unwrap();
        let mut params = CallbackParams::default();
        for (name, value) in location.query_pairs() {
            let value = Some(value.into_owned());
            match name.as_ref() {
                "code" => params.code = value,
                "state" => params.state = value,
                "error" => params.error = value,
                "iss" => params.iss = value,
                _ => {}
            }
        }
        params
    }

    /// The CSRF token of the sign-in's current page.
    pub async fn csrf(&self, flow: &str) -> String {
        self.engine.view(flow).await.unwrap().csrf
    }

    /// Makes the next `n` loads of a sign-in wait for each other, so that
    /// `n` requests start from the same stored state.
    pub fn gate_next_loads(&self, n: usize) {
        *self.store.gate.lock().unwrap() = Some((Arc::new(Barrier::new(n)), n));
    }
}

/// The sign-in's id after an answer: a new one when the answer moved the
/// sign-in (the step just done identified the user).
pub fn id_after(flow: &str, answer: &Result<Next, jit_flow::SignInError>) -> String {
    match answer {
        Ok(Next::Continue { new_flow_id: Some(id), .. }) => id.clone(),
        _ => flow.to_owned(),
    }
}

/// A short description of an engine answer, for assertions.
pub fn describe(result: &Result<Next, jit_flow::SignInError>) -> String {
    match result {
        Ok(Next::Show(view)) => match (&view.error, &view.notice) {
            (Some(error), _) => format!("step {} error: {error}", view.step),
            (None, Some(notice)) => format!("step {} notice: {notice}", view.step),
            (None, None) => format!("step {}", view.step),
        },
        Ok(Next::Continue { step, .. }) => format!("step {step}"),
        Ok(Next::RedirectToIdp(_)) => "redirect to IdP".into(),
        Ok(Next::Complete(_)) => "complete".into(),
        Ok(Next::Declined(_)) => "declined".into(),
        Err(error) => format!("error: {error:?}"),
    }
}

/// The store, with a gate on loading sign-ins (see
/// [`Bench::gate_next_loads`]). Everything else is passed through.
pub struct GatedStore {
    pub inner: Store,
    gate: Mutex<Option<(Arc<Barrier>, usize)>>,
}

#[async_trait]
impl ExpiringRecordStore for GatedStore {
    async fn insert_record(
        &self,
        kind: RecordKind,
        key: &str,
        value: &Value,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.insert_record(kind, key, value, expires_at).await
    }
    async fn record(
        &self,
        kind: RecordKind,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned<Value>>, StoreError> {
        let loaded = self.inner.record(kind, key, now).await;
        let barrier = {
            let mut gate = self.gate.lock().unwrap();
            match gate.as_mut() {
                Some((barrier, left)) if kind == RecordKind::SignIn => {
                    let barrier = barrier.clone();
                    *left -= 1;
                    if *left == 0 {
                        *gate = None;
                    }
                    Some(barrier)
                }
                _ => None,
            }
        };
        if let Some(barrier) = barrier {
            barrier.wait().await;
        }
        loaded
    }
    async fn replace_record(
        &self,
        kind: RecordKind,
        key: &str,
        version: i64,
        value: &Value,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.replace_record(kind, key, version, value, expires_at, now).await
    }
    async fn take_record(&self, kind: RecordKind, key: &str, now: OffsetDateTime) -> Result<Option<Value>, StoreError> {
        self.inner.take_record(kind, key, now).await
    }
    async fn delete_record_if(
        &self,
        kind: RecordKind,
        key: &str,
        version: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.delete_record_if(kind, key, version, now).await
    }
    async fn purge_expired_records(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge_expired_records(now).await
    }
}

#[async_trait]
impl SchemaStore for GatedStore {
    async fn attribute_schema(&self) -> Result<Arc<AttributeSchema>, StoreError> {
        self.inner.attribute_schema().await
    }
    async fn put_attribute(&self, definition: &AttributeDefinition, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.inner.put_attribute(definition, now).await
    }
    async fn delete_attribute(&self, name: &AttributeName) -> Result<bool, StoreError> {
        self.inner.delete_attribute(name).await
    }
}

#[async_trait]
impl ProvisioningStore for GatedStore {
    async fn facts(&self, identity: &FederatedIdentity, keys: &[LookupKey]) -> Result<ProvisioningFacts, StoreError> {
        self.inner.facts(identity, keys).await
    }
    async fn apply(
        &self,
        identity: &FederatedIdentity,
        decision: &Decision,
        now: OffsetDateTime,
    ) -> Result<Option<LocalUser>, StoreError> {
        self.inner.apply(identity, decision, now).await
    }
}

#[async_trait]
impl UserStore for GatedStore {
    async fn provenance(
        &self,
        id: UserId,
    ) -> Result<std::collections::BTreeMap<String, jit_domain::ports::Provenance>, StoreError> {
        self.inner.provenance(id).await
    }
    async fn set_attributes(
        &self,
        id: UserId,
        attributes: &Attributes,
        email_verified: bool,
        now: OffsetDateTime,
    ) -> Result<LocalUser, StoreError> {
        self.inner.set_attributes(id, attributes, email_verified, now).await
    }
    async fn create_user(&self, user: NewLocalUser, now: OffsetDateTime) -> Result<LocalUser, StoreError> {
        self.inner.create_user(user, now).await
    }
    async fn user(&self, id: UserId) -> Result<Option<LocalUser>, StoreError> {
        self.inner.user(id).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<LocalUser>, StoreError> {
        self.inner.user_by_username(username).await
    }
    async fn find_users(&self, name: &AttributeName, value: &str, limit: u64) -> Result<Vec<LocalUser>, StoreError> {
        self.inner.find_users(name, value, limit).await
    }
    async fn verify_email(&self, id: UserId, address: &str) -> Result<bool, StoreError> {
        self.inner.verify_email(id, address).await
    }
    async fn record_email_otp_send(
        &self,
        id: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        self.inner.record_email_otp_send(id, now, policy).await
    }
    async fn clear_email_otp_sends(&self, id: UserId) -> Result<(), StoreError> {
        self.inner.clear_email_otp_sends(id).await
    }
    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        self.inner.password_hash(id).await
    }
    async fn federated_links(&self, id: UserId) -> Result<Vec<FederatedLink>, StoreError> {
        self.inner.federated_links(id).await
    }
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        self.inner.delete_user(id).await
    }
}

#[async_trait]
impl ConnectionStore for GatedStore {
    async fn create_connection(&self, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.create_connection(connection, now).await
    }
    async fn update_connection(&self, connection: &Connection, now: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.update_connection(connection, now).await
    }
    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError> {
        self.inner.connection(name).await
    }
    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.inner.connections().await
    }
    async fn linked_users(&self) -> Result<std::collections::BTreeMap<ConnectionName, u64>, StoreError> {
        self.inner.linked_users().await
    }
    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError> {
        self.inner.delete_connection(name).await
    }
}

#[async_trait]
impl ApplicationStore for GatedStore {
    async fn create_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.create_application(application, now).await
    }
    async fn update_application(&self, application: &Application, now: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.update_application(application, now).await
    }
    async fn application(&self, client_id: &str) -> Result<Option<Application>, StoreError> {
        self.inner.application(client_id).await
    }
    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.inner.applications().await
    }
    async fn delete_application(&self, client_id: &str) -> Result<bool, StoreError> {
        self.inner.delete_application(client_id).await
    }
}

#[async_trait]
impl TotpStore for GatedStore {
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError> {
        self.inner.totp(user).await
    }
    async fn enrol_totp(
        &self,
        user: UserId,
        secret: &TotpSecret,
        used_step: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.enrol_totp(user, secret, used_step, now).await
    }
    async fn accept_totp_step(&self, user: UserId, step: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.inner.accept_totp_step(user, step, now).await
    }
    async fn record_totp_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        self.inner.record_totp_attempt(user, now, policy).await
    }
    async fn reset_totp(&self, user: UserId) -> Result<bool, StoreError> {
        self.inner.reset_totp(user).await
    }
}

#[async_trait]
impl PasswordLockoutStore for GatedStore {
    async fn record_password_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Attempt, StoreError> {
        self.inner.record_password_attempt(user, now, policy).await
    }
    async fn clear_password_failures(&self, user: UserId) -> Result<(), StoreError> {
        self.inner.clear_password_failures(user).await
    }
    async fn password_locked_until(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        self.inner.password_locked_until(user, now).await
    }
}

#[async_trait]
impl AuditLog for GatedStore {
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_events(filter).await
    }
}
