//! End-to-end harness: the scenario world on top of `jit_testkit::harness`
//! (real processes on loopback: `jit serve`, oidc-provider, openid-client).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

pub use jit_testkit::harness::*;
use serde_json::{Value, json};

/// This crate's `jit` binary.
pub fn jit_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_jit"))
}

/// Creates the connection `corp` (JIT on) to the in-process test IdP.
pub async fn connect_test_idp(admin: &Admin, idp: &jit_testkit::TestIdp) {
    let config = idp.config();
    admin
        .post(
            "/connections",
            json!({"name": "corp", "display_name": "Corp IdP", "protocol": "oidc",
                   "oidc": {"issuer": idp.issuer(), "client_id": config.client_id,
                            "client_secret": config.client_secret, "scopes": ["openid", "profile", "email"]},
                   "jit": jit_on()}),
        )
        .await;
}

/// A connection body for the admin API.
pub fn connection(name: &str, issuer: &str, jit: Value) -> Value {
    json!({
        "name": name,
        "display_name": format!("{name} IdP"),
        "protocol": "oidc",
        "oidc": {"issuer": issuer, "client_id": "jit", "client_secret": "jit-secret-at-idp", "scopes": ["openid", "profile", "email"]},
        "jit": jit,
    })
}

/// Everything of one scenario: jit on SQLite (or the given database), the
/// external IdP with connection `corp`, and the application.
pub struct World {
    pub jit_url: String,
    pub idp_url: String,
    pub app_url: String,
    pub admin: Admin,
    pub client_id: String,
    pub browser: Browser,
    _procs: Vec<Proc>,
    _dir: tempfile::TempDir,
}

impl World {
    /// Starts the world: the connection `corp` with `jit` as its policy,
    /// `users` at the IdP, and an application whose flow is `steps`.
    pub async fn start(jit: Value, users: Value, steps: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
        let (jit_port, idp_port, app_port) = (free_port(), free_port(), free_port());
        let jit_url = format!("http://127.0.0.1:{jit_port}");
        let idp_url = format!("http://127.0.0.1:{idp_port}");
        let app_url = format!("http://127.0.0.1:{app_port}");
        let idp = start_idp(idp_port, &jit_url, "corp", &users);
        let jit_proc = start_jit(jit_binary(), jit_port, &database_url);
        let admin = Admin::new(&jit_url);
        admin.post("/connections", connection("corp", &idp_url, jit)).await;
        let app = admin
            .post(
                "/applications",
                json!({"name": "demo", "redirect_uris": [format!("{app_url}/callback")], "public": false,
                       "sign_in": {"steps": steps}}),
            )
            .await;
        let client_id = app["client_id"].as_str().unwrap().to_owned();
        let app_proc = start_app(app_port, &jit_url, &client_id, app["client_secret"].as_str());
        Self {
            jit_url,
            idp_url,
            app_url,
            admin,
            client_id,
            browser: Browser::new(),
            _procs: vec![app_proc, jit_proc, idp],
            _dir: dir,
        }
    }

    /// A fresh browser (no cookies).
    pub fn new_browser(&mut self) {
        self.browser = Browser::new();
    }

    /// The first line `jit serve` printed that contains `needle`.
    pub fn jit_output_line(&self, needle: &str) -> Option<String> {
        self._procs.iter().find(|p| p.name().starts_with("jit:")).and_then(|p| p.output_line(needle))
    }

    /// Replaces the IdP's users (their claims for the next logins).
    pub async fn set_idp_users(&self, users: &Value) {
        let response =
            reqwest::Client::new().post(format!("{}/_test/users", self.idp_url)).json(users).send().await.unwrap();
        assert!(response.status().is_success(), "setting IdP users failed: {}", response.status());
    }

    /// A whole federated sign-in through `corp` as `login`, ending where the
    /// redirects end (the application's JSON on success).
    pub async fn federated_login(&self, login: &str) -> Page {
        let page = self.browser.get(&format!("{}/login?fidp=corp", self.app_url)).await;
        self.browser.idp_login(&page, login).await
    }

    /// [`World::federated_login`], the application asking for `scope`.
    pub async fn federated_login_with_scope(&self, login: &str, scope: &str) -> Page {
        let scope = url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>();
        let page = self.browser.get(&format!("{}/login?fidp=corp&scope={scope}", self.app_url)).await;
        self.browser.idp_login(&page, login).await
    }

    /// The application's answer as JSON (asserting success).
    pub fn app_claims(page: &Page) -> Value {
        assert_eq!(page.status, 200, "the application did not get a successful sign-in: {} {}", page.url, page.body);
        serde_json::from_str(&page.body).unwrap()
    }

    /// Users holding `email`.
    pub async fn users_with_email(&self, email: &str) -> Vec<Value> {
        let found = self.admin.get(&format!("/users?attribute=email&value={email}")).await;
        found.as_array().cloned().unwrap_or_default()
    }

    /// Users whose `attribute` is `value`.
    pub async fn users_with(&self, attribute: &str, value: &str) -> Vec<Value> {
        let found = self.admin.get(&format!("/users?attribute={attribute}&value={value}")).await;
        found.as_array().cloned().unwrap_or_default()
    }

    /// The audit trail.
    pub async fn audit(&self) -> Vec<Value> {
        self.admin.get("/audit").await.as_array().cloned().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Databases

/// The database of one scenario: a fresh `jit_t_<random>` database on the
/// server `JIT_STORE_TEST_URL` names (a `postgres://` or `mysql://` URL, as
/// for the store suite), dropped at the end; else a SQLite file in a
/// temporary directory. Several `jit serve` processes may share it.
pub use jit_testkit::scratch::ScratchDatabase;

/// `prefix` followed by something no other call in any process returns.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{nanos:x}_{:x}_{n}", std::process::id())
}

// ---------------------------------------------------------------------------
// Walking through redirects

/// What to do with the next URL of a walk.
pub enum Hop {
    /// Request this URL (the one given, or a rewritten one).
    Follow(String),
    /// Stop before requesting it.
    Stop,
}

/// Where a walk ended.
#[derive(Debug)]
pub enum End {
    /// A non-redirect answer.
    Page(Page),
    /// A redirect to this URL, which the walk did not follow.
    Stopped(String),
}

/// A walk through redirects: every URL requested, and where it ended.
#[derive(Debug)]
pub struct Trail {
    /// The URLs requested, in order.
    pub visited: Vec<String>,
    /// How it ended.
    pub end: End,
}

impl Trail {
    /// The page it ended on (panics if it stopped at a redirect).
    pub fn page(&self) -> &Page {
        match &self.end {
            End::Page(page) => page,
            End::Stopped(url) => {
                panic!("expected a page, the walk stopped at a redirect to {url}: {:#?}", self.visited)
            }
        }
    }

    /// The redirect it stopped at (panics if it ended on a page).
    pub fn stopped_at(&self) -> &str {
        match &self.end {
            End::Stopped(url) => url,
            End::Page(page) => {
                panic!(
                    "expected a redirect, got {} at {}: {}\nvisited {:#?}",
                    page.status, page.url, page.body, self.visited
                )
            }
        }
    }

    /// The first visited URL starting with `prefix`.
    pub fn visited_starting_with(&self, prefix: &str) -> Option<&str> {
        self.visited.iter().map(String::as_str).find(|url| url.starts_with(prefix))
    }
}

/// GETs `url` with `browser` and follows redirects one hop at a time,
/// asking `hop` about every URL (the first one too).
pub async fn walk(browser: &Browser, url: &str, hop: impl Fn(&str) -> Hop) -> Trail {
    let mut visited = Vec::new();
    let mut next = url.to_owned();
    for _ in 0..20 {
        let url = match hop(&next) {
            Hop::Follow(url) => url,
            Hop::Stop => return Trail { visited, end: End::Stopped(next) },
        };
        let response = browser.client.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        visited.push(url.clone());
        if !response.status().is_redirection() {
            let status = response.status().as_u16();
            let page = Page { url, status, body: response.text().await.unwrap() };
            return Trail { visited, end: End::Page(page) };
        }
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        next = reqwest::Url::parse(&url).unwrap().join(&location).unwrap().to_string();
    }
    panic!("too many redirects: {visited:#?}")
}

/// The value of query parameter `name` of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Asserts that `page` is one of jit's error pages with `status`, saying
/// `phrase`, and echoing none of `secrets`.
pub fn assert_error_page(case: &str, page: &Page, status: u16, phrase: &str, secrets: &[&str]) {
    assert_eq!(page.status, status, "{case}: status at {}: {}", page.url, page.body);
    assert!(page.body.contains("role=\"alert\""), "{case}: not an error page: {}", page.body);
    let text = unescape_html(&page.body);
    assert!(text.contains(phrase), "{case}: the page does not say {phrase:?}: {}", page.body);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!page.body.contains(secret), "{case}: the page echoes the secret {secret:?}: {}", page.body);
    }
}

// ---------------------------------------------------------------------------
// A jit with the in-process test IdP, driven by hand-made OAuth requests

/// The policy the rig's connection `corp` gets: JIT on, linking on email.
pub fn jit_on() -> Value {
    json!({"enabled": true, "sync_method": "override_all", "trust_email": false,
           "linking": {"enabled": true, "rules": [], "skip_provisioning_without_match": false}})
}

/// One authorization request of the rig's application.
pub use jit_testkit::authorize::AuthorizationRequest;

/// `jit serve` (its own database) with connection `corp` to an in-process
/// [`jit_testkit::TestIdp`] and an application `demo` whose flow offers
/// `LOCAL` and `corp`. The application is played by the test itself (its
/// redirect URI is never requested): walks stop at the redirect back to it.
pub struct Rig {
    pub jit_url: String,
    pub admin: Admin,
    pub idp: jit_testkit::TestIdp,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub browser: Browser,
    _jit: Proc,
    _db: ScratchDatabase,
}

impl Rig {
    /// A rig with default settings.
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// A rig whose `jit serve` gets the extra environment `env`.
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let db = ScratchDatabase::for_tests().await;
        let jit_port = free_port();
        let jit_url = format!("http://127.0.0.1:{jit_port}");
        let idp = jit_testkit::TestIdp::start(jit_testkit::TestIdpConfig {
            redirect_uri: format!("{jit_url}/federation/corp/callback"),
            ..jit_testkit::TestIdpConfig::default()
        })
        .await
        .unwrap();
        let jit = start_jit_with_env(jit_binary(), jit_port, &db.url, &jit_url, env);
        let admin = Admin::new(&jit_url);
        connect_test_idp(&admin, &idp).await;
        // Never requested: walks stop before it.
        let redirect_uri = "http://127.0.0.1:9/callback".to_owned();
        let app = admin
            .post(
                "/applications",
                json!({"name": "demo", "redirect_uris": [redirect_uri], "public": false,
                       "sign_in": {"steps": [{"options": ["LOCAL", "corp"]}]}}),
            )
            .await;
        Self {
            client_id: app["client_id"].as_str().unwrap().to_owned(),
            client_secret: app["client_secret"].as_str().unwrap().to_owned(),
            jit_url,
            admin,
            idp,
            redirect_uri,
            browser: Browser::new(),
            _jit: jit,
            _db: db,
        }
    }

    /// A fresh browser (no cookies).
    pub fn new_browser(&mut self) {
        self.browser = Browser::new();
    }

    /// A new authorization request (code flow, PKCE S256), through
    /// connection `fidp` if given.
    pub fn authorization(&self, fidp: Option<&str>) -> AuthorizationRequest {
        AuthorizationRequest::new(&self.jit_url, &self.client_id, &self.redirect_uri, "openid profile email", fidp)
    }

    /// Walks from `url` until a page, or until the redirect back to the
    /// application.
    pub async fn walk(&self, url: &str) -> Trail {
        let app = self.redirect_uri.clone();
        walk(&self.browser, url, move |next| if next.starts_with(&app) { Hop::Stop } else { Hop::Follow(next.into()) })
            .await
    }

    /// Walks from `url` and stops before the test IdP's authorization
    /// endpoint.
    pub async fn walk_to_idp(&self, url: &str) -> String {
        let idp = format!("{}/authorize", self.idp.issuer());
        let trail = walk(
            &self.browser,
            url,
            move |next| if next.starts_with(&idp) { Hop::Stop } else { Hop::Follow(next.into()) },
        )
        .await;
        trail.stopped_at().to_owned()
    }

    /// A whole sign-in through `corp`: the request and the trail (ending
    /// at the redirect back to the application, or on an error page).
    pub async fn federated_sign_in(&self) -> (AuthorizationRequest, Trail) {
        let request = self.authorization(Some("corp"));
        let trail = self.walk(&request.url).await;
        (request, trail)
    }

    /// The code of a successful sign-in's redirect back to the application.
    pub fn code(&self, request: &AuthorizationRequest, trail: &Trail) -> String {
        let back = trail.stopped_at();
        assert!(back.starts_with(&self.redirect_uri), "not back at the application: {back}");
        assert_eq!(query_param(back, "state").as_deref(), Some(request.state.as_str()));
        assert_eq!(query_param(back, "iss").as_deref(), Some(self.jit_url.as_str()));
        query_param(back, "code").unwrap_or_else(|| panic!("no code in {back}"))
    }

    /// `POST /oauth2/token` with `client_secret_basic` (`secret`) for `code`.
    pub async fn token(&self, code: &str, verifier: &str, secret: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/oauth2/token", self.jit_url))
            .basic_auth(&self.client_id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `GET /oauth2/userinfo` with `access_token`: status and body.
    pub async fn userinfo(&self, access_token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/oauth2/userinfo", self.jit_url))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Users holding `email`.
    pub async fn users_with_email(&self, email: &str) -> Vec<Value> {
        let found = self.admin.get(&format!("/users?attribute=email&value={email}")).await;
        found.as_array().cloned().unwrap_or_default()
    }

    /// The audit trail.
    pub async fn audit(&self) -> Vec<Value> {
        self.admin.get("/audit").await.as_array().cloned().unwrap_or_default()
    }

    /// Asserts that no user has the test IdP's user's email and that the
    /// audit trail is empty.
    pub async fn assert_nothing_written(&self, case: &str) {
        let users = self.users_with_email("alice@example.com").await;
        assert!(users.is_empty(), "{case}: a user was written: {users:?}");
        let audit = self.audit().await;
        assert!(audit.is_empty(), "{case}: an audit event was written: {audit:?}");
    }
}

// ---------------------------------------------------------------------------
// Forms and multi-step sign-ins on a rig

impl Rig {
    /// Replaces the application's sign-in flow (`steps`, and `script` if
    /// given); the admin API's answer (with its `warnings`).
    pub async fn set_flow(&self, steps: Value, script: Option<&str>) -> Value {
        self.admin
            .put(
                &format!("/applications/{}", self.client_id),
                json!({"name": "demo", "redirect_uris": [self.redirect_uri], "public": false,
                       "sign_in": {"steps": steps, "script": script}}),
            )
            .await
    }

    /// Replaces connection `corp`'s JIT policy.
    pub async fn set_jit(&self, jit: Value) {
        let mut connection = self.admin.get("/connections/corp").await;
        connection["jit"] = jit;
        self.admin.put("/connections/corp", connection).await;
    }

    /// Submits the form of `page` whose action ends with `action`, with
    /// the page's CSRF token and `fields`, and follows the redirects until
    /// a page or the redirect back to the application.
    pub async fn submit(&self, page: &Page, action: &str, fields: &[(&str, &str)]) -> Trail {
        let target = form_action(&page.body, action)
            .unwrap_or_else(|| panic!("no form posting to {action} on {} ({}): {}", page.url, page.status, page.body));
        let csrf = hidden_value(&page.body, "csrf").unwrap_or_else(|| panic!("no CSRF token in {}", page.body));
        let url = reqwest::Url::parse(&page.url).unwrap().join(&target).unwrap().to_string();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let response = self.browser.client.post(&url).form(&form).send().await.unwrap();
        if !response.status().is_redirection() {
            let status = response.status().as_u16();
            let page = Page { url: url.clone(), status, body: response.text().await.unwrap() };
            return Trail { visited: vec![url], end: End::Page(page) };
        }
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let next = reqwest::Url::parse(&url).unwrap().join(&location).unwrap().to_string();
        let mut trail = self.walk(&next).await;
        trail.visited.insert(0, url);
        trail
    }

    /// Starts a sign-in without `fidp` and signs in with a password at
    /// step 1: the request and where it went (the next step's page, or the
    /// redirect back to the application).
    pub async fn password_sign_in(&self, username: &str, password: &str) -> (AuthorizationRequest, Trail) {
        let request = self.authorization(None);
        let trail = self.walk(&request.url).await;
        let page = trail.page();
        assert_eq!(page.status, 200, "the sign-in page: {}", page.body);
        let trail = self.submit(page, "/signin/password", &[("username", username), ("password", password)]).await;
        (request, trail)
    }

    /// Exchanges the code of a successful sign-in for tokens (asserting
    /// success) and returns the token response and the ID token's claims.
    pub async fn tokens(&self, request: &AuthorizationRequest, trail: &Trail) -> (Value, Value) {
        let code = self.code(request, trail);
        let (status, _, body) = self.token(&code, &request.verifier, &self.client_secret.clone()).await;
        assert_eq!(status, 200, "token request: {body}");
        let claims = jwt_claims(body["id_token"].as_str().unwrap_or_else(|| panic!("no ID token in {body}")));
        assert_eq!(claims["nonce"], request.nonce.as_str());
        (body, claims)
    }
}

/// The claims of a JWT (not verified: the tests check what jit put in).
pub fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `text` with the HTML escapes askama writes undone.
pub fn unescape_html(text: &str) -> String {
    text.replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}
