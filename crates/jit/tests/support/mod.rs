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

    /// The audit trail.
    pub async fn audit(&self) -> Vec<Value> {
        self.admin.get("/audit").await.as_array().cloned().unwrap_or_default()
    }
}
