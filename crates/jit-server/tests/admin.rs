//! The admin REST API over real HTTP: the real router over a real store (a
//! temporary SQLite file), served on 127.0.0.1, called with reqwest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use jit_domain::flow::SKIP_MFA_FOR_FEDERATED_SCRIPT;
use jit_domain::ports::{ApplicationStore, ConnectionStore, SigningKeyStore, TotpStore, UserStore};
use jit_domain::prelude::*;
use jit_domain::service::identity_from_claims;
use jit_flow::idps::{IdpRegistry, IdpSettings};
use jit_flow::{EngineSettings, SignInEngine};
use jit_primitives::clock::{Clock, SystemClock};
use jit_provider::{KeyRing, Provider, ProviderSettings};
use jit_server::{AppState, ServerSettings};
use jit_store::Store;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const TOKEN: &str = "admin-token-for-tests";

/// Every table of the store, for "nothing was written" checks.
const TABLES: &[&str] = &[
    "users",
    "user_attributes",
    "federated_identities",
    "user_totp",
    "connections",
    "applications",
    "application_connections",
    "attribute_definitions",
    "collections",
    "memberships",
    "expiring_records",
    "signing_keys",
    "audit_events",
];

/// A running server and a client for it.
struct Server {
    base: String,
    client: reqwest::Client,
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers, body as JSON (or as a string if not JSON),
/// and the raw text.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl Server {
    /// The store, a key ring, an engine and the router, wired as `jit serve`
    /// wires them, serving on a free loopback port.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
        let sealing = jit_store::SealingKeys::generate().unwrap();
        let store = Arc::new(Store::connect(&url, AttributeSchema::standard(), sealing).await.unwrap());
        store.migrate().await.unwrap();
        store.prepare_secrets().await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let keys = Arc::new(KeyRing::open(store.clone(), clock.now()).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public_url = format!("http://{}", listener.local_addr().unwrap());
        let engine = SignInEngine::new(
            store.clone(),
            IdpRegistry::new(IdpSettings::default()),
            clock.clone(),
            EngineSettings { public_url: public_url.clone(), ..EngineSettings::default() },
        );
        let state = AppState {
            store: store.clone(),
            engine: Arc::new(engine),
            provider: Arc::new(Provider::new(store.clone(), keys.clone(), ProviderSettings::new(public_url.clone()))),
            clock,
            settings: Arc::new(ServerSettings::new(public_url.clone())),
            admin_token: Arc::new(TOKEN.to_owned()),
            admin_failures: Arc::default(),
            metrics: None,
        };
        let app = jit_server::router(state);
        let limits = jit_server::serve::ConnectionLimits::default();
        tokio::spawn(
            async move { jit_server::serve::serve(listener, app, limits, std::future::pending()).await.unwrap() },
        );
        Self { base: public_url, client: reqwest::Client::new(), store, keys, _dir: dir }
    }

    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = self.client.request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Answer { status, headers, body, text }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(TOKEN), body).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a connection, asserting success.
    async fn connection(&self, body: Value) -> Value {
        let answer = self.post("/connections", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body
    }

    /// Creates a user, asserting success.
    async fn user(&self, body: Value) -> Value {
        let answer = self.post("/users", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body
    }

    /// Rows per table.
    async fn row_counts(&self) -> Vec<(&'static str, i64)> {
        let db = self.store.database();
        let mut counts = Vec::new();
        for table in TABLES {
            let sql = format!("SELECT COUNT(*) AS n FROM {table}");
            let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
            counts.push((*table, row.try_get::<i64>("", "n").unwrap()));
        }
        counts
    }
}

impl Answer {
    /// Asserts the status and the admin API's error shape.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["error"], code, "{}", self.text);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.text);
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

fn connection_body(name: &str, jit: Value) -> Value {
    json!({
        "name": name,
        "display_name": format!("{name} IdP"),
        "protocol": "oidc",
        "oidc": {
            "issuer": "https://idp.example.com",
            "client_id": "jit-at-idp",
            "client_secret": "very-secret-value-at-the-idp",
            "scopes": ["openid", "profile", "email"],
            "token_auth_method": "client_secret_basic",
            "allowed_algorithms": ["RS256"],
            "fetch_userinfo": true
        },
        "claim_mappings": {},
        "jit": jit
    })
}

fn jit_on() -> Value {
    json!({"enabled": true, "sync_method": "override_all", "trust_email": false,
           "linking": {"enabled": true, "rules": [], "skip_provisioning_without_match": false}})
}

fn app_body(name: &str, steps: Value) -> Value {
    json!({"name": name, "redirect_uris": ["https://app.example.com/callback"], "public": false,
           "sign_in": {"steps": steps, "script": null}})
}

/// Provisions a federated user straight through the store (as a sign-in
/// would), returning the outcome.
async fn provision_through_store(server: &Server, connection: &str, claims: Value) -> ProvisioningOutcome {
    let connection = server.store.connection(&ConnectionName::new(connection).unwrap()).await.unwrap().unwrap();
    let schema = &*server.store.schema().await.unwrap();
    let claims = claims.as_object().unwrap().clone();
    let identity = identity_from_claims(&connection, claims["sub"].as_str().unwrap(), &[&claims], schema).unwrap();
    provision(&*server.store, &connection.jit, schema, &identity, time::OffsetDateTime::now_utc()).await.unwrap()
}

/// The kind of decision a real sign-in came to, as the preview names it.
fn decision_kind(outcome: &ProvisioningOutcome) -> &'static str {
    match outcome {
        ProvisioningOutcome::PassThrough(_) => "pass_through",
        ProvisioningOutcome::Refused(_) => "refuse",
        ProvisioningOutcome::SignedIn { decision: Decision::SignIn { .. }, .. } => "sign_in",
        ProvisioningOutcome::SignedIn { decision: Decision::Link { .. }, .. } => "link",
        ProvisioningOutcome::SignedIn { decision: Decision::Create { .. }, .. } => "create",
        ProvisioningOutcome::SignedIn { decision, .. } => panic!("a sign-in with decision {decision:?}"),
    }
}

// ---------------------------------------------------------------------------
// Authentication and the document

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_or_with_a_wrong_token_are_refused() {
    let server = Server::start().await;
    for token in [None, Some("wrong-token"), Some("")] {
        let answer = server.send(Method::GET, "/connections", token, None).await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let challenge = answer.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "challenge {challenge:?}");
    }
    // A write with a wrong token writes nothing.
    let before = server.row_counts().await;
    let answer = server
        .send(Method::POST, "/users", Some("wrong-token"), Some(json!({"username": "mallory", "attributes": {}})))
        .await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(server.row_counts().await, before);

    let answer = server.get("/connections").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body, json!([]));
    assert_eq!(answer.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_but_the_document_needs_the_token() {
    let server = Server::start().await;
    let document = server.send(Method::GET, "/openapi.json", None, None).await.body;
    let paths = document["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = path.replace("{name}", "corp").replace("{client_id}", "abc").replace("{id}", "x");
        let relative = concrete.strip_prefix("/api/v1").unwrap();
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
            let answer = server.send(method.clone(), relative, None, body).await;
            if relative == "/openapi.json" {
                assert_eq!(answer.status, StatusCode::OK);
            } else {
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path} answered without a token");
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} operations documented");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_without_a_token_and_lists_the_api() {
    let server = Server::start().await;
    let answer = server.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let document: Value = serde_json::from_str(&answer.text).expect("the document is JSON");
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    assert_eq!(document["info"]["title"], "jit admin API");
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/connections", &["get", "post"][..]),
        ("/api/v1/connections/{name}", &["get", "put", "delete"]),
        ("/api/v1/connections/{name}/jit/preview", &["post"]),
        ("/api/v1/connections/{name}/jit", &["get", "put"]),
        ("/api/v1/applications", &["get", "post"]),
        ("/api/v1/applications/{client_id}", &["get", "put", "delete"]),
        ("/api/v1/applications/{client_id}/secret", &["post"]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/{id}", &["get", "patch", "delete"]),
        ("/api/v1/users/{id}/totp", &["delete"]),
        ("/api/v1/audit", &["get"]),
        ("/api/v1/keys/rotate", &["post"]),
        ("/api/v1/attributes", &["get", "post"]),
        ("/api/v1/groups", &["get", "post"]),
        ("/api/v1/groups/{name}", &["get", "put", "delete"]),
        ("/api/v1/groups/{name}/members/{user_id}", &["put", "delete"]),
        ("/api/v1/roles", &["get", "post"]),
        ("/api/v1/roles/{name}", &["get", "put", "delete"]),
        ("/api/v1/roles/{name}/members/{user_id}", &["put", "delete"]),
        ("/api/v1/attributes/{name}", &["get", "put", "delete"]),
        ("/api/v1/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
        }
    }
    let scheme = &document["components"]["securitySchemes"]["admin_token"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(document["security"], json!([{"admin_token": []}]));
    assert_eq!(paths["/api/v1/openapi.json"]["get"]["security"], json!([{}]), "the document itself is open");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in ["Connection", "JitPolicy", "SyncMethod", "ApplicationView", "FlowWarning", "UserView", "AuditEvent"]
    {
        assert!(schemas.contains_key(schema), "schema {schema} missing: {:?}", schemas.keys().collect::<Vec<_>>());
    }
    assert_eq!(schemas["SyncMethod"]["enum"], json!(["override_all", "preserve_local", "none"]));
    assert_eq!(schemas["ConnectionName"]["type"], "string");
}

// ---------------------------------------------------------------------------
// Connections

#[tokio::test(flavor = "multi_thread")]
async fn connections_can_be_created_read_listed_replaced_and_deleted_without_their_secret_leaking() {
    let server = Server::start().await;
    let secret = "very-secret-value-at-the-idp";

    let answer = server.post("/connections", connection_body("corp", jit_on())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.headers.get("location").and_then(|v| v.to_str().ok()), Some("/api/v1/connections/corp"));
    assert!(!answer.text.contains(secret), "the secret leaked: {}", answer.text);
    assert_eq!(answer.body["oidc"]["client_secret"], Value::Null);
    assert_eq!(answer.body["oidc"]["client_secret_set"], true);
    assert_eq!(answer.body["oidc"]["issuer"], "https://idp.example.com");
    assert_eq!(answer.body["jit"], jit_on());

    let read = server.get("/connections/corp").await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.text.contains(secret));
    assert_eq!(read.body, answer.body);
    let list = server.get("/connections").await;
    assert!(!list.text.contains(secret));
    assert_eq!(list.body, json!([answer.body]));

    // PUT with the secret left null keeps it; the rest is replaced.
    let mut changed = read.body.clone();
    changed["display_name"] = json!("Corporate");
    changed["jit"]["sync_method"] = json!("preserve_local");
    let answer = server.put("/connections/corp", changed).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["display_name"], "Corporate");
    assert_eq!(answer.body["oidc"]["client_secret_set"], true);
    let stored = server.store.connection(&ConnectionName::new("corp").unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.oidc.client_secret.as_deref(), Some(secret));
    assert_eq!(stored.jit.sync_method, SyncMethod::PreserveLocal);
    // A new secret replaces it, and is not echoed.
    let mut new_secret = connection_body("corp", jit_on());
    new_secret["oidc"]["client_secret"] = json!("rotated-secret-at-the-idp");
    let answer = server.put("/connections/corp", new_secret).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(!answer.text.contains("rotated-secret-at-the-idp"));
    let stored = server.store.connection(&ConnectionName::new("corp").unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.oidc.client_secret.as_deref(), Some("rotated-secret-at-the-idp"));

    // Renaming through PUT, a duplicate name and absent connections.
    let answer = server.put("/connections/corp", connection_body("other", jit_on())).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server.post("/connections", connection_body("corp", jit_on())).await.assert_error(StatusCode::CONFLICT, "conflict");
    server.get("/connections/ghost").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    server
        .put("/connections/ghost", connection_body("ghost", jit_on()))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let answer = server.delete("/connections/corp").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    server.get("/connections/corp").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    server.delete("/connections/corp").await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_connections_are_refused_and_nothing_is_written() {
    let server = Server::start().await;
    server.connection(connection_body("corp", jit_on())).await;
    let before = server.row_counts().await;

    // A linking rule aimed at an attribute that several users may share.
    let mut policy = jit_on();
    policy["linking"]["rules"] = json!([{"federated": "given_name", "local": "given_name"}]);
    let answer = server.post("/connections", connection_body("partner", policy.clone())).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(answer.message().contains("not unique"), "{}", answer.message());
    // The same policy through PUT leaves the stored connection as it was.
    let answer = server.put("/connections/corp", connection_body("corp", policy)).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(answer.message().contains("not unique"), "{}", answer.message());
    let stored = server.store.connection(&ConnectionName::new("corp").unwrap()).await.unwrap().unwrap();
    assert!(stored.jit.linking.rules.is_empty());

    let cases: Vec<(Value, &str)> = vec![
        (json!({"/oidc/issuer": "idp.example.com"}), "issuer"),
        (json!({"/oidc/issuer": "ftp://idp.example.com"}), "issuer"),
        (json!({"/oidc/allowed_algorithms": ["none"]}), "never accepted"),
        (json!({"/oidc/client_id": ""}), "client_id"),
        (json!({"/claim_mappings": {"upn": "totp_secret"}}), "system attribute"),
        (json!({"/name": "Not A Name"}), "invalid connection name"),
        (json!({"/jit/sync_method": "sometimes"}), "sync_method"),
    ];
    for (patch, expected) in cases {
        let mut body = connection_body("partner", jit_on());
        for (pointer, value) in patch.as_object().unwrap() {
            *body.pointer_mut(pointer).unwrap() = value.clone();
        }
        let answer = server.post("/connections", body).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(answer.message().contains(expected), "{patch}: {}", answer.message());
    }
    let answer = server.post("/connections", json!(["not", "an", "object"])).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(server.row_counts().await, before, "a refused request wrote something");
}

// ---------------------------------------------------------------------------
// Applications

#[tokio::test(flavor = "multi_thread")]
async fn applications_get_a_secret_once_and_a_warning_for_mfa_after_a_jit_disabled_connection() {
    let server = Server::start().await;
    server.connection(connection_body("partner", json!({"enabled": false}))).await;

    let answer = server
        .post("/applications", app_body("portal", json!([{"options": ["LOCAL", "partner"]}, {"options": ["TOTP"]}])))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let client_id = answer.body["client_id"].as_str().unwrap().to_owned();
    let secret = answer.body["client_secret"].as_str().unwrap().to_owned();
    assert!(client_id.len() >= 32 && secret.len() >= 32);
    assert_eq!(
        answer.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/applications/{client_id}").as_str())
    );
    let warnings = answer.body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["kind"], "mfa_with_jit_disabled_connection");
    assert_eq!(warnings[0]["connection"], "partner");
    assert_eq!(warnings[0]["mfa_step"], 2);
    assert_eq!(warnings[0]["option"], "TOTP");
    assert!(warnings[0]["suggested_script"].as_str().unwrap().contains("executeStep"));
    assert_eq!(answer.body["sign_in"]["steps"][0]["options"], json!(["LOCAL", "partner"]));

    // Only the hash is stored, and the secret is never shown again.
    let stored = server.store.application(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.client_secret_hash, Some(jit_primitives::secret::stored_form(&secret)));
    let read = server.get(&format!("/applications/{client_id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.body.get("client_secret").is_none() && !read.text.contains(&secret), "{}", read.text);
    assert_eq!(read.body["warnings"].as_array().map(Vec::len), Some(1));
    let list = server.get("/applications").await;
    assert!(!list.text.contains(&secret));
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));

    // Rotation: a new secret, shown once, replaces the old one.
    let rotated = server.post(&format!("/applications/{client_id}/secret"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_secret = rotated.body["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let stored = server.store.application(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.client_secret_hash, Some(jit_primitives::secret::stored_form(new_secret)));

    // A connection in a flow cannot be deleted.
    server.delete("/connections/partner").await.assert_error(StatusCode::CONFLICT, "in_use");

    // Replace: same client id; the secret stays while the client stays confidential.
    let answer =
        server.put(&format!("/applications/{client_id}"), app_body("portal 2", json!([{"options": ["LOCAL"]}]))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["client_id"], client_id.as_str());
    assert_eq!(answer.body["name"], "portal 2");
    assert!(answer.body.get("client_secret").is_none());
    assert_eq!(answer.body["warnings"], json!([]));
    let stored = server.store.application(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.client_secret_hash, Some(jit_primitives::secret::stored_form(new_secret)));

    let answer = server.delete(&format!("/applications/{client_id}")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    server.get(&format!("/applications/{client_id}")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    server.delete(&format!("/applications/{client_id}")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.delete("/connections/partner").await.status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_applications_have_no_secret() {
    let server = Server::start().await;
    let mut body = app_body("native", json!([{"options": ["LOCAL"]}]));
    body["public"] = json!(true);
    body["redirect_uris"] = json!(["com.example.app:/cb", "http://127.0.0.1:7000/cb", "http://[::1]/cb"]);
    let answer = server.post("/applications", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert!(answer.body.get("client_secret").is_none(), "{}", answer.text);
    let client_id = answer.body["client_id"].as_str().unwrap();
    assert_eq!(server.store.application(client_id).await.unwrap().unwrap().client_secret_hash, None);
    let answer = server.post(&format!("/applications/{client_id}/secret"), json!({})).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_applications_are_refused_and_nothing_is_written() {
    let server = Server::start().await;
    server.connection(connection_body("corp", jit_on())).await;
    let before = server.row_counts().await;
    let local = json!([{"options": ["LOCAL"]}]);
    let cases: Vec<(Value, &str)> = vec![
        (app_body("a", json!([{"options": ["LOCAL", "ghost"]}])), "does not exist"),
        (app_body("a", json!([{"options": ["TOTP"]}])), "identified by an earlier step"),
        (app_body("a", json!([])), "at least one step"),
        (
            json!({"name": "a", "redirect_uris": ["https://app.example.com/cb"],
                   "sign_in": {"steps": local, "script": "var onLoginRequest = function (context) {"}}),
            "syntax error",
        ),
        (json!({"name": "a", "redirect_uris": ["http://app.example.com/cb"], "sign_in": {"steps": local}}), "https"),
        (
            json!({"name": "a", "redirect_uris": ["https://app.example.com/cb#x"], "sign_in": {"steps": local}}),
            "fragment",
        ),
        (json!({"name": "a", "redirect_uris": ["/cb"], "sign_in": {"steps": local}}), "absolute"),
        (json!({"name": "a", "redirect_uris": [], "sign_in": {"steps": local}}), "redirect_uris"),
        (json!({"name": " ", "redirect_uris": ["https://app.example.com/cb"]}), "name"),
    ];
    for (body, expected) in cases {
        let answer = server.post("/applications", body.clone()).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(answer.message().contains(expected), "{body}: {}", answer.message());
    }
    assert_eq!(server.row_counts().await, before, "a refused request wrote something");
    server.get("/applications/nope").await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_are_validated_when_an_application_is_saved() {
    let server = Server::start().await;
    server.connection(connection_body("partner", json!({"enabled": false}))).await;
    let steps = json!([{"options": ["LOCAL", "partner"]}, {"options": ["TOTP"]}]);
    let with_script = |script: &str| {
        let mut body = app_body("portal", steps.clone());
        body["sign_in"]["script"] = json!(script);
        body
    };

    // Without a script: the JIT/MFA warning, suggesting the seeds' script.
    let answer = server.post("/applications", app_body("portal", steps.clone())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let client_id = answer.body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(answer.body["warnings"][0]["suggested_script"], SKIP_MFA_FOR_FEDERATED_SCRIPT);
    assert!(answer.body["warnings"][0]["message"].as_str().unwrap().contains("script"), "{}", answer.text);

    // The seeds' script, byte for byte, is accepted and takes over the warning.
    let answer = server.put(&format!("/applications/{client_id}"), with_script(SKIP_MFA_FOR_FEDERATED_SCRIPT)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["sign_in"]["script"], SKIP_MFA_FOR_FEDERATED_SCRIPT);
    assert_eq!(answer.body["warnings"], json!([]));
    let read = server.get(&format!("/applications/{client_id}")).await;
    assert_eq!(read.body["sign_in"]["script"], SKIP_MFA_FOR_FEDERATED_SCRIPT);
    let stored = server.store.application(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.sign_in.script.as_deref(), Some(SKIP_MFA_FOR_FEDERATED_SCRIPT));

    // Scripts that only fail when a sign-in runs them are saved: their
    // syntax is fine and onLoginRequest exists.
    for script in [
        "var onLoginRequest = function (context) { while (true) {} };",
        "var onLoginRequest = function (context) { throw new Error('boom'); };",
        "var onLoginRequest = function (context) { executeStep(7); };",
    ] {
        let mut body = with_script(script);
        body["name"] = json!("runtime failures");
        let answer = server.post("/applications", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{script}: {}", answer.text);
        let id = answer.body["client_id"].as_str().unwrap();
        assert_eq!(server.delete(&format!("/applications/{id}")).await.status, StatusCode::NO_CONTENT);
    }

    // Invalid scripts: a 400 with the engine's message; nothing is written,
    // on create or on replace.
    let before = server.row_counts().await;
    let cases = [
        ("var onLoginRequest = function (context) {\n  executeStep(1\n};", "syntax error"),
        ("var onLoginRequest = function (context) {\n  executeStep(1\n};", "line"),
        ("var x = 1;", "onLoginRequest"),
        ("", "onLoginRequest"),
        ("throw new Error('top level');", "top level"),
        ("while (true) {}", "time budget"),
        ("var a = []; for (;;) { a.push(new Array(1000).fill(1)); }", "memory limit"),
    ];
    for (script, expected) in cases {
        let started = std::time::Instant::now();
        let answer = server.post("/applications", with_script(script)).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(answer.message().contains(expected), "{script:?}: {}", answer.message());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{script:?} took {:?}", started.elapsed());
        let answer = server.put(&format!("/applications/{client_id}"), with_script(script)).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let long = format!("var onLoginRequest = function (context) {{}};{}", " ".repeat(70 * 1024));
    server.post("/applications", with_script(&long)).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(server.row_counts().await, before, "a refused request wrote something");
    let stored = server.store.application(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.sign_in.script.as_deref(), Some(SKIP_MFA_FOR_FEDERATED_SCRIPT), "the stored script is kept");
}

/// Issue 7 (low): failed admin authentications are limited per client
/// address; past the limit even the right token is refused, unchecked.
#[tokio::test(flavor = "multi_thread")]
async fn failed_admin_authentications_are_rate_limited() {
    let server = Server::start().await;
    for _ in 0..jit_server::FailureLimiter::MAX_FAILURES {
        server
            .send(Method::GET, "/connections", Some("wrong-token"), None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let limited = server.send(Method::GET, "/connections", Some(TOKEN), None).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(limited.headers.get("retry-after").is_some(), "{:?}", limited.headers);
}

// ---------------------------------------------------------------------------
// Users

/// Issue 9 §5: an application's custom scopes name declared attributes;
/// reserved names and undeclared attributes are refused.
#[tokio::test]
async fn applications_declare_scopes_of_their_own() {
    let server = Server::start().await;
    server.post("/attributes", json!({"name": "employee_id", "unique": true})).await;
    let app = |scopes: Value| json!({"name": "hr", "redirect_uris": ["https://hr.example/cb"], "public": true, "scopes": scopes});
    for (scopes, why) in [
        (json!([{"scope": "groups", "claims": ["employee_id"]}]), "standard scope"),
        (json!([{"scope": "employee", "claims": ["shoe_size"]}]), "unknown attribute"),
        (json!([{"scope": "employee", "claims": ["email"]}]), "not a declared attribute"),
        (json!([{"scope": "has space", "claims": ["employee_id"]}]), "use 1 to 64"),
        (json!([{"scope": "employee", "claims": []}]), "name 1 to 64"),
    ] {
        let refused = server.post("/applications", app(scopes.clone())).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{scopes}: {}", refused.text);
        assert!(refused.text.contains(why) || why == "unknown attribute", "{why}: {}", refused.text);
    }
    let created = server.post("/applications", app(json!([{"scope": "employee", "claims": ["employee_id"]}]))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["scopes"], json!([{"scope": "employee", "claims": ["employee_id"]}]));
}

/// Issue 9 §3: groups and roles are records of their own; a membership an
/// administrator grants is listed on the user as granted by `admin`.
#[tokio::test]
async fn groups_and_roles_have_members_granted_by_an_administrator() {
    let server = Server::start().await;
    let created = server.post("/groups", json!({"name": "staff", "description": "Everyone employed"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers.get("location").and_then(|v| v.to_str().ok()), Some("/api/v1/groups/staff"));
    assert_eq!(server.post("/groups", json!({"name": "staff"})).await.status, StatusCode::CONFLICT);
    assert_eq!(server.post("/groups", json!({"name": " padded "})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(server.post("/roles", json!({"name": "approver"})).await.status, StatusCode::CREATED);

    let ann = server.user(json!({"username": "ann"})).await;
    let id = ann["id"].as_str().unwrap();
    assert_eq!(server.put(&format!("/groups/staff/members/{id}"), json!({})).await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.put(&format!("/roles/approver/members/{id}"), json!({})).await.status, StatusCode::NO_CONTENT);
    let missing = server.put("/groups/nobody/members/00000000-0000-0000-0000-000000000000", json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let user = server.get(&format!("/users/{id}")).await.body;
    assert_eq!(user["groups"], json!([{"name": "staff", "granted_by": "admin"}]), "{user}");
    assert_eq!(user["roles"], json!([{"name": "approver", "granted_by": "admin"}]), "{user}");
    assert_eq!(server.get("/groups/staff").await.body["members"], 1);
    let described = server.put("/groups/staff", json!({"description": "All staff"})).await;
    assert_eq!(described.body["description"], "All staff", "{}", described.text);

    assert_eq!(server.delete(&format!("/groups/staff/members/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.delete(&format!("/groups/staff/members/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.delete("/roles/approver").await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.get(&format!("/users/{id}")).await.body["roles"], json!([]));
    assert_eq!(server.get("/roles/approver").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn operators_declare_attributes_and_users_carry_them() {
    let server = Server::start().await;
    // Before it is declared, an attribute is refused (as a new user finds).
    let refused = server.post("/users", json!({"username": "ann", "attributes": {"department": "Sales"}})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);

    let listed = server.get("/attributes").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let email = listed.body.as_array().unwrap().iter().find(|a| a["name"] == "email").cloned().unwrap();
    assert_eq!((email["standard"].clone(), email["unique"].clone()), (json!(true), json!(true)), "{email}");

    let declared =
        server.post("/attributes", json!({"name": "department", "description": "Where the user works"})).await;
    assert_eq!(declared.status, StatusCode::CREATED, "{}", declared.text);
    assert_eq!(declared.body["normalization"], "exact");
    assert_eq!(declared.body["standard"], false);
    assert_eq!(declared.headers.get("location").and_then(|v| v.to_str().ok()), Some("/api/v1/attributes/department"));
    let again = server.post("/attributes", json!({"name": "department"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    for standard in ["email", "given_name", "email_verified"] {
        let redefined = server.put(&format!("/attributes/{standard}"), json!({"name": standard})).await;
        assert_eq!(redefined.status, StatusCode::BAD_REQUEST, "{standard}: {}", redefined.text);
        let deleted = server.delete(&format!("/attributes/{standard}")).await;
        assert_eq!(deleted.status, StatusCode::BAD_REQUEST, "{standard}: {}", deleted.text);
    }

    server.user(json!({"username": "ann", "attributes": {"department": "Sales"}})).await;
    server.user(json!({"username": "bob", "attributes": {"department": "sales"}})).await;
    // Unique, compared case-insensitively: Ann and Bob share a value.
    let unique = json!({"name": "department", "unique": true, "normalization": "case_insensitive"});
    let colliding = server.put("/attributes/department", unique).await;
    assert_eq!(colliding.status, StatusCode::CONFLICT, "{}", colliding.text);
    assert_eq!(colliding.body["error"], "collisions");
    assert!(colliding.text.contains("1 value(s)") && colliding.text.contains("Sales"), "{}", colliding.text);
    // Compared exactly they differ: unique holds from now on.
    let exact = server.put("/attributes/department", json!({"name": "department", "unique": true})).await;
    assert_eq!(exact.status, StatusCode::OK, "{}", exact.text);
    let twin = server.post("/users", json!({"username": "cy", "attributes": {"department": "Sales"}})).await;
    assert_eq!(twin.status, StatusCode::CONFLICT, "{}", twin.text);

    // A connection linking on it keeps it from being deleted.
    let jit = json!({"enabled": true, "sync_method": "override_all", "trust_email": false,
                     "linking": {"enabled": true, "skip_provisioning_without_match": false,
                                 "rules": [{"federated": "department", "local": "department", "trusted": true}]}});
    server.connection(connection_body("corp", jit)).await;
    let in_use = server.delete("/attributes/department").await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.text);
    assert!(in_use.text.contains("corp"), "{}", in_use.text);
    assert_eq!(server.delete("/connections/corp").await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.delete("/attributes/department").await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.get("/attributes/department").await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.delete("/attributes/department").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_patch_user_attributes_under_the_schema_rules() {
    let server = Server::start().await;
    let declared = server.post("/attributes", json!({"name": "employee_id", "unique": true})).await;
    assert_eq!(declared.status, StatusCode::CREATED, "{}", declared.text);
    let ann = server
        .user(json!({"username": "ann", "email_verified": true,
                     "attributes": {"email": "ann@example.com", "nickname": "annie", "employee_id": "E1"}}))
        .await;
    let bob = server.user(json!({"username": "bob", "attributes": {"employee_id": "E2"}})).await;
    let ann_url = format!("/users/{}", ann["id"].as_str().unwrap());
    let bob_url = format!("/users/{}", bob["id"].as_str().unwrap());

    let patched = server
        .patch(&ann_url, json!({"attributes": {"nickname": null, "given_name": "Ann", "groups": ["staff", "hr"]}}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        patched.body["attributes"],
        json!({"email": "ann@example.com", "employee_id": "E1", "given_name": "Ann", "groups": ["staff", "hr"]})
    );
    assert_eq!(patched.body["email_verified"], true, "the email did not change");
    assert_eq!(patched.body["provenance"]["given_name"]["source"], "admin", "{}", patched.text);
    assert!(patched.body["provenance"].get("nickname").is_none(), "removed: {}", patched.text);

    // Another user's unique value: 409, and nothing changed.
    let taken = server.patch(&bob_url, json!({"attributes": {"employee_id": "E1", "nickname": "bobby"}})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    assert_eq!(server.get(&bob_url).await.body["attributes"], json!({"employee_id": "E2"}));
    // The schema's rules: unknown names, several values for a single one,
    // numbers, system attributes.
    for bad in [
        json!({"attributes": {"shoe_size": "42"}}),
        json!({"attributes": {"nickname": ["a", "b"]}}),
        json!({"attributes": {"nickname": 7}}),
        json!({"attributes": {"email_verified": "true"}}),
    ] {
        let refused = server.patch(&bob_url, bad.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}: {}", refused.text);
    }
    // A changed email is unverified unless the administrator vouches.
    let moved = server.patch(&ann_url, json!({"attributes": {"email": "ann@corp.example"}})).await;
    assert_eq!(moved.body["email_verified"], false, "{}", moved.text);
    let vouched =
        server.patch(&ann_url, json!({"attributes": {"email": "ann@corp.example"}, "email_verified": true})).await;
    assert_eq!(vouched.body["email_verified"], true, "{}", vouched.text);
    let missing = server.patch("/users/00000000-0000-0000-0000-000000000000", json!({"attributes": {}})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_can_be_created_searched_read_and_deleted() {
    let server = Server::start().await;
    let password = "correct horse battery staple";
    let answer = server
        .post(
            "/users",
            json!({"username": "alice", "password": password, "email_verified": true,
                   "attributes": {"email": "Alice@Example.com", "given_name": "Alice", "groups": ["staff"]}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert!(!answer.text.contains(password) && !answer.text.contains("argon2"), "{}", answer.text);
    assert!(answer.body.get("password").is_none());
    let id = answer.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    assert_eq!(answer.body["username"], "alice");
    assert_eq!(answer.body["attributes"]["email"], "Alice@Example.com");
    assert_eq!(answer.body["attributes"]["groups"], json!(["staff"]));
    assert_eq!(answer.body["federated_identities"], json!([]));
    assert_eq!(answer.body["email_verified"], true);
    let user_id = UserId(id.parse().unwrap());
    let hash = server.store.password_hash(user_id).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$"), "the password is stored hashed");

    // Search: emails and usernames compare case-insensitively.
    let found = server.get("/users?attribute=email&value=ALICE@example.COM").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(found.body.as_array().map(Vec::len), Some(1), "{}", found.text);
    assert_eq!(found.body[0]["id"], id.as_str());
    let found = server.get("/users?attribute=username&value=Alice").await;
    assert_eq!(found.body[0]["id"], id.as_str(), "{}", found.text);
    let found = server.get("/users?attribute=given_name&value=Alice").await;
    assert_eq!(found.body[0]["id"], id.as_str(), "{}", found.text);
    assert_eq!(server.get("/users?attribute=email&value=bob@example.com").await.body, json!([]));
    server.get("/users").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server.get("/users?attribute=shoe_size&value=42").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server.get("/users?attribute=password_hash&value=x").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Unique values: the same verified email in another case is taken.
    let before = server.row_counts().await;
    let answer = server
        .post(
            "/users",
            json!({"username": "alice2", "attributes": {"email": "alice@EXAMPLE.com"}, "email_verified": true}),
        )
        .await;
    answer.assert_error(StatusCode::CONFLICT, "conflict");
    let answer = server.post("/users", json!({"username": "ALICE", "attributes": {}})).await;
    answer.assert_error(StatusCode::CONFLICT, "conflict");
    for body in [
        json!({"username": " spaced ", "attributes": {}}),
        json!({"username": "bob", "attributes": {"totp_secret": "x"}}),
        json!({"username": "bob", "attributes": {"username": "other"}}),
        json!({"username": "bob", "attributes": {"shoe_size": "42"}}),
        json!({"username": "bob", "password": "", "attributes": {}}),
    ] {
        server.post("/users", body).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(server.row_counts().await, before, "a refused request wrote something");
    // An unverified email holds the address for nobody: it may repeat.
    let unverified = server.user(json!({"username": "alice2", "attributes": {"email": "alice@EXAMPLE.com"}})).await;
    assert_eq!(unverified["email_verified"], false);
    let found = server.get("/users?attribute=email&value=alice@example.com").await;
    assert_eq!(found.body.as_array().map(Vec::len), Some(2), "{}", found.text);
    assert_eq!(
        server.delete(&format!("/users/{}", unverified["id"].as_str().unwrap())).await.status,
        StatusCode::NO_CONTENT
    );

    let read = server.get(&format!("/users/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["username"], "alice");
    assert_eq!(server.delete(&format!("/users/{id}")).await.status, StatusCode::NO_CONTENT);
    server.get(&format!("/users/{id}")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    server.delete(&format!("/users/{id}")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    server.get("/users/not-a-uuid").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.get("/users?attribute=email&value=alice@example.com").await.body, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_totp_can_be_reset_and_its_secret_is_never_shown() {
    let server = Server::start().await;
    let user = server.user(json!({"username": "alice", "attributes": {"email": "alice@example.com"}})).await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["totp_enrolled"], false, "{user}");
    server.delete(&format!("/users/{id}/totp")).await.assert_error(StatusCode::NOT_FOUND, "not_found");

    let secret_text = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let secret = jit_domain::mfa::TotpSecret::new(secret_text).unwrap();
    let user_id = UserId(id.parse().unwrap());
    let now = time::OffsetDateTime::now_utc();
    server.store.enrol_totp(user_id, &secret, jit_domain::mfa::totp_step(now), now).await.unwrap();

    let read = server.get(&format!("/users/{id}")).await;
    assert_eq!(read.body["totp_enrolled"], true, "{}", read.text);
    let found = server.get("/users?attribute=email&value=alice@example.com").await;
    assert_eq!(found.body[0]["totp_enrolled"], true, "{}", found.text);
    for text in [&read.text, &found.text] {
        assert!(!text.contains(secret_text) && !text.contains("totp_secret"), "the secret leaks: {text}");
    }

    let answer = server.delete(&format!("/users/{id}/totp")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert!(server.store.totp(user_id).await.unwrap().is_none());
    assert_eq!(server.get(&format!("/users/{id}")).await.body["totp_enrolled"], false);
    let again = server.delete(&format!("/users/{id}/totp")).await;
    again.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(again.message().contains("no TOTP enrolment"), "{}", again.message());

    let unknown = server.delete(&format!("/users/{}/totp", uuid_like())).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(unknown.message().contains("there is no user"), "{}", unknown.message());
    server.delete("/users/not-a-uuid/totp").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    let unauthenticated = server.send(Method::DELETE, &format!("/users/{id}/totp"), None, None).await;
    unauthenticated.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// A well-formed user id that nobody has.
fn uuid_like() -> String {
    "0190f1f2-0000-7000-8000-000000000000".to_owned()
}

// ---------------------------------------------------------------------------
// JIT preview

/// A server with connections `corp` (JIT on), `strict` (provisioning
/// skipped without a match) and `open` (JIT off), and Bob, whose email
/// `bob@example.com` is verified.
async fn preview_server() -> (Server, Value) {
    let server = Server::start().await;
    server.connection(connection_body("corp", jit_on())).await;
    let mut strict = jit_on();
    strict["linking"]["skip_provisioning_without_match"] = json!(true);
    server.connection(connection_body("strict", strict)).await;
    server.connection(connection_body("open", json!({"enabled": false}))).await;
    let bob = server
        .user(json!({"username": "bob", "attributes": {"email": "bob@example.com", "name": "Bob"}, "email_verified": true}))
        .await;
    (server, bob)
}

/// Issue 9 §2 and §4: the JIT policy is its own resource, and a username
/// template names new accounts, falling back to `<connection>.<sub>` when
/// the name it makes is taken.
#[tokio::test(flavor = "multi_thread")]
async fn the_jit_policy_is_a_resource_and_a_template_names_new_accounts() {
    let (server, _bob) = preview_server().await;
    let policy = server.get("/connections/corp/jit").await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.text);
    assert_eq!(policy.body["enabled"], true);
    assert!(policy.body.get("username_template").is_none(), "no template by default: {}", policy.text);

    let mut with_template = policy.body.clone();
    with_template["username_template"] = json!("{email}");
    let replaced = server.put("/connections/corp/jit", with_template.clone()).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(server.get("/connections/corp").await.body["jit"]["username_template"], "{email}");
    let mut broken = with_template.clone();
    broken["username_template"] = json!("{email");
    assert_eq!(server.put("/connections/corp/jit", broken).await.status, StatusCode::BAD_REQUEST);
    let mut untrusted = with_template.clone();
    untrusted["linking"]["rules"] = json!([{"federated": "preferred_username", "local": "username"}]);
    let refused = server.put("/connections/corp/jit", untrusted).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(server.get("/connections/corp/jit").await.body, replaced.body, "nothing stored");

    let preview = |email: &'static str| json!({"claims": {"sub": "s-7", "email": email, "email_verified": false, "preferred_username": "ignored"}});
    let answer = server.post("/connections/corp/jit/preview", preview("carol@example.com")).await;
    assert_eq!(
        (answer.body["decision"].clone(), answer.body["username"].clone()),
        (json!("create"), json!("carol@example.com"))
    );
    // The name the template makes is taken: the fallback name, not a merge.
    server.user(json!({"username": "dave@example.com"})).await;
    let answer = server.post("/connections/corp/jit/preview", preview("dave@example.com")).await;
    assert_eq!(
        (answer.body["decision"].clone(), answer.body["username"].clone()),
        (json!("create"), json!("corp.s-7")),
        "{}",
        answer.text
    );
    assert_eq!(server.get("/connections/nope/jit").await.status, StatusCode::NOT_FOUND);
}

/// Issue 9 §4: the dry run shows the membership changes a sign-in would
/// make, and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_dry_run_shows_membership_changes() {
    let (server, _bob) = preview_server().await;
    server.post("/groups", json!({"name": "staff"})).await;
    let mut corp = server.get("/connections/corp").await.body;
    corp["groups"] = json!({"mappings": {"Staff": "staff", "Old": "gone"}, "sync_method": "override_all"});
    corp["oidc"]["client_secret"] = Value::Null;
    let replaced = server.put("/connections/corp", corp).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    let before = server.row_counts().await;
    let answer = server
        .post("/connections/corp/jit/preview", json!({"claims": {"sub": "s-9", "groups": ["Staff", "Old"]}}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["decision"], "create", "{}", answer.text);
    let memberships = &answer.body["memberships"][0];
    assert_eq!(memberships["kind"], "group", "{}", answer.text);
    assert_eq!(memberships["add"], json!(["staff"]));
    assert_eq!(memberships["unknown"], json!(["gone"]));
    assert!(answer.body["mapped"]["attributes"].get("groups").is_none(), "groups are memberships here");
    assert_eq!(server.row_counts().await, before, "the dry run wrote nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jit_preview_says_what_would_happen_and_writes_nothing() {
    let (server, bob) = preview_server().await;
    let before = server.row_counts().await;

    // Nobody has this email: create.
    let answer = server
        .post(
            "/connections/corp/jit/preview",
            json!({"claims": {"sub": "s-1", "email": "New@Example.com", "email_verified": true,
                              "preferred_username": "newbie", "given_name": "New", "department": "Sales"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["decision"], "create", "{}", answer.text);
    assert_eq!(answer.body["mapped"]["dropped_claims"], json!(["department"]), "{}", answer.text);
    assert_eq!(answer.body["username"], "newbie");
    assert_eq!(answer.body["changes"]["attributes"], json!({"email": "New@Example.com", "given_name": "New"}));
    assert_eq!(answer.body["matched_rule"], Value::Null);
    assert_eq!(answer.body["refusal"], Value::Null);
    let email_lookup =
        answer.body["candidates"].as_array().unwrap().iter().find(|c| c["attribute"] == "email").cloned().unwrap();
    assert_eq!(email_lookup, json!({"attribute": "email", "value": "new@example.com", "users": []}));

    // Bob's email, verified: link to Bob by the (default) email rule.
    let answer = server
        .post(
            "/connections/corp/jit/preview",
            json!({"claims": {"sub": "s-2", "email": "BOB@example.com", "email_verified": true, "name": "Robert"}}),
        )
        .await;
    assert_eq!(answer.body["decision"], "link", "{}", answer.text);
    assert_eq!(answer.body["matched_rule"], json!({"index": 0, "rule": {"federated": "email", "local": "email"}}));
    assert_eq!(answer.body["user"]["id"], bob["id"]);
    assert_eq!(answer.body["changes"]["changed"], json!(["email", "name"]), "{}", answer.text);
    assert_eq!(answer.body["changes"]["attributes"]["name"], "Robert");
    let candidates = answer.body["candidates"].as_array().unwrap();
    assert!(
        candidates.contains(&json!({"attribute": "email", "value": "bob@example.com",
                                    "users": [{"id": bob["id"], "username": "bob"}]})),
        "{candidates:?}"
    );

    assert_eq!(answer.body["email_verified"], true, "{}", answer.text);

    // The same claims with email_verified overridden to false: the
    // unproven address finds nobody, and the new account's email would be
    // unverified.
    let answer = server
        .post(
            "/connections/corp/jit/preview",
            json!({"claims": {"sub": "s-2", "email": "bob@example.com", "email_verified": true}, "email_verified": false}),
        )
        .await;
    assert_eq!(answer.body["decision"], "create", "{}", answer.text);
    assert_eq!(answer.body["email_verified"], false, "{}", answer.text);
    assert_eq!(answer.body["matched_rule"], Value::Null);

    // No account and provisioning skipped: refused, with the reason.
    let answer = server
        .post("/connections/strict/jit/preview", json!({"claims": {"sub": "s-3", "email": "x@example.com"}}))
        .await;
    assert_eq!(answer.body["decision"], "refuse", "{}", answer.text);
    assert_eq!(answer.body["refusal"]["reason"], "no_matching_account");
    assert!(answer.body["refusal"]["message"].as_str().unwrap().contains("no local account matches"));

    // JIT off: the attributes pass through.
    let answer = server
        .post("/connections/open/jit/preview", json!({"claims": {"sub": "s-4", "email": "bob@example.com"}}))
        .await;
    assert_eq!(answer.body["decision"], "pass_through", "{}", answer.text);
    assert_eq!(answer.body["candidates"], json!([]));
    assert_eq!(answer.body["mapped"]["attributes"], json!({"email": "bob@example.com"}));

    // Bad input.
    let preview = |body: Value| server.post("/connections/corp/jit/preview", body);
    preview(json!({"claims": {"email": "a@b.c"}})).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    preview(json!({"claims": ["sub"]})).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    preview(json!({"claims": {"sub": "s", "email": {"x": 1}}}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let answer = server.post("/connections/ghost/jit/preview", json!({"claims": {"sub": "s"}})).await;
    answer.assert_error(StatusCode::NOT_FOUND, "not_found");

    assert_eq!(server.row_counts().await, before, "the preview wrote something");

    // After a real sign-in created an account for s-5, a preview with the
    // same subject signs in as it.
    let ProvisioningOutcome::SignedIn { user, .. } = provision_through_store(
        &server,
        "corp",
        json!({"sub": "s-5", "email": "carol@example.com", "email_verified": true, "preferred_username": "carol"}),
    )
    .await
    else {
        panic!("expected a sign-in")
    };
    let before = server.row_counts().await;
    let answer = server
        .post(
            "/connections/corp/jit/preview",
            json!({"claims": {"sub": "s-5", "email": "carol@example.com", "family_name": "Jones"}}),
        )
        .await;
    assert_eq!(answer.body["decision"], "sign_in", "{}", answer.text);
    assert_eq!(answer.body["user"]["id"], user.id.to_string());
    assert_eq!(answer.body["changes"]["changed"], json!(["family_name"]));
    assert_eq!(server.row_counts().await, before, "the preview wrote something");
}

/// Issue 8, section 3: the dry run and the real sign-in share one
/// pipeline, so they reach the same decision, for every kind of decision.
#[tokio::test(flavor = "multi_thread")]
async fn the_preview_decides_as_a_real_sign_in_does() {
    let (server, _bob) = preview_server().await;
    let cases = [
        ("corp", json!({"sub": "n-1", "email": "new@example.com", "email_verified": true}), "create"),
        ("corp", json!({"sub": "n-1", "email": "new@example.com", "given_name": "N"}), "sign_in"),
        ("corp", json!({"sub": "b-1", "email": "BOB@example.com", "email_verified": true}), "link"),
        ("strict", json!({"sub": "x-1", "email": "nobody@example.com", "email_verified": true}), "refuse"),
        ("open", json!({"sub": "o-1", "email": "o@example.com"}), "pass_through"),
    ];
    for (connection, claims, expected) in cases {
        let previewed =
            server.post(&format!("/connections/{connection}/jit/preview"), json!({"claims": claims.clone()})).await;
        assert_eq!(previewed.body["decision"], expected, "preview of {claims}: {}", previewed.text);
        let outcome = provision_through_store(&server, connection, claims.clone()).await;
        assert_eq!(decision_kind(&outcome), expected, "a real sign-in with {claims}: {outcome:?}");
    }
}

// ---------------------------------------------------------------------------
// Audit and keys

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_lists_provisioning_events_newest_first() {
    let server = Server::start().await;
    server.connection(connection_body("corp", jit_on())).await;
    let mut strict = jit_on();
    strict["linking"]["skip_provisioning_without_match"] = json!(true);
    server.connection(connection_body("strict", strict)).await;
    assert_eq!(server.get("/audit").await.body, json!([]));

    let ProvisioningOutcome::SignedIn { user, .. } = provision_through_store(
        &server,
        "corp",
        json!({"sub": "s-1", "email": "dan@example.com", "email_verified": true}),
    )
    .await
    else {
        panic!("expected a sign-in")
    };
    let refused = provision_through_store(&server, "strict", json!({"sub": "s-2", "email": "eve@example.com"})).await;
    assert!(matches!(refused, ProvisioningOutcome::Refused(Refusal::NoMatchingAccount)), "{refused:?}");

    let all = server.get("/audit").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let events = all.body.as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["action"], "refused", "newest first");
    assert_eq!(events[0]["refusal"]["reason"], "no_matching_account");
    assert_eq!(events[1]["action"], "created");
    assert_eq!(events[1]["connection"], "corp");
    assert_eq!(events[1]["subject"], "s-1");
    assert_eq!(events[1]["user"], user.id.to_string());

    let mine = server.get(&format!("/audit?user={}", user.id)).await;
    assert_eq!(mine.body.as_array().map(Vec::len), Some(1), "{}", mine.text);
    let strict_only = server.get("/audit?connection=strict").await;
    assert_eq!(strict_only.body.as_array().map(Vec::len), Some(1));
    assert_eq!(strict_only.body[0]["action"], "refused");
    assert_eq!(server.get("/audit?limit=1").await.body.as_array().map(Vec::len), Some(1));
    server.get("/audit?user=nope").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server.get("/audit?limit=many").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server.get("/audit?connection=Bad%20Name").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // The user's federated identity shows on the user.
    let read = server.get(&format!("/users/{}", user.id)).await;
    assert_eq!(read.body["federated_identities"][0]["connection"], "corp");
    assert_eq!(read.body["federated_identities"][0]["subject"], "s-1");
    assert!(read.body["federated_identities"][0]["first_seen"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_keys_makes_a_new_signing_key() {
    let server = Server::start().await;
    let before = server.store.signing_keys().await.unwrap();
    let answer = server.post("/keys/rotate", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["algorithm"], "ES256", "ES256 by default");
    let kid = answer.body["kid"].as_str().unwrap();
    let keys = server.store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), before.len() + 1);
    let active: Vec<&str> = keys.iter().filter(|k| k.active).map(|k| k.kid.as_str()).collect();
    assert_eq!(active, [kid], "only the new key signs");

    // Without any body (`curl -X POST`), too.
    let response =
        server.client.post(format!("{}/api/v1/keys/rotate", server.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["algorithm"], "ES256");
    assert_eq!(server.store.signing_keys().await.unwrap().iter().filter(|k| k.active).count(), 1);
}

/// The published JWK of `kid` (asserting there is one).
async fn published_jwk(server: &Server, kid: &str) -> Value {
    let jwks: Value =
        server.client.get(format!("{}/oauth2/jwks", server.base)).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    keys.iter().find(|k| k["kid"] == kid).cloned().unwrap_or_else(|| panic!("{kid} is not published: {jwks}"))
}

/// Verifies `token` against the published JWK named by its header, with
/// that JWK's `alg`.
async fn verify_with_published_key(server: &Server, token: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let published = published_jwk(server, header.kid.as_deref().unwrap()).await;
    assert_eq!(published["alg"], format!("{:?}", header.alg), "the token's alg is the published key's");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(published).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["demo"]);
    validation.set_required_spec_claims(&["exp", "aud"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
    (data.header, data.claims)
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_to_rs256_publishes_an_rsa_key_that_verifies_the_tokens_it_signs() {
    let server = Server::start().await;
    let first = server.store.signing_keys().await.unwrap()[0].clone();
    assert_eq!(first.algorithm, "ES256", "the key made at first start is ES256");

    let answer = server.post("/keys/rotate", json!({"algorithm": "RS256"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["algorithm"], "RS256");
    let kid = answer.body["kid"].as_str().unwrap().to_owned();

    // Stored like the EC keys: PKCS#8, here of a 2048-bit RSA key.
    let stored = server.store.signing_keys().await.unwrap();
    let rsa = stored.iter().find(|k| k.kid == kid).unwrap();
    assert_eq!((rsa.algorithm.as_str(), rsa.active), ("RS256", true));
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&rsa.private_key_der).expect("PKCS#8");
    assert_eq!(pair.public_modulus_len(), 256, "RSA 2048");
    assert!(!stored.iter().find(|k| k.kid == first.kid).unwrap().active, "the ES256 key is retired");

    // Published: an RSA signing key named by its RFC 7638 thumbprint, beside
    // the retired EC key.
    let jwk = published_jwk(&server, &kid).await;
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(jwk["n"].as_str().is_some_and(|n| n.len() > 300) && jwk["e"] == "AQAB", "{jwk}");
    assert!(jwk.get("d").is_none() && jwk.get("p").is_none(), "no private part is published: {jwk}");
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    assert_eq!(parsed.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap(), kid);
    assert_eq!(published_jwk(&server, &first.kid).await["kty"], "EC", "the retired key stays published");

    // Discovery lists both algorithms.
    let discovery: Value = server
        .client
        .get(format!("{}/.well-known/openid-configuration", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["ES256", "RS256"]));

    // What the ring signs now is RS256 under the new kid, and verifies
    // against the published JWK.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"iss": server.base, "sub": "someone", "aud": "demo", "iat": now, "exp": now + 300});
    let token = server.keys.sign(&claims, None).await.unwrap();
    let (header, verified) = verify_with_published_key(&server, &token).await;
    assert_eq!((header.alg, header.kid.as_deref()), (jsonwebtoken::Algorithm::RS256, Some(kid.as_str())));
    assert_eq!(verified, claims);

    // Another instance over the same store (a restart) loads the stored RSA
    // key and signs with it.
    let other = KeyRing::open(server.store.clone(), time::OffsetDateTime::now_utc()).await.unwrap();
    let token = other.sign(&claims, None).await.unwrap();
    let (header, _) = verify_with_published_key(&server, &token).await;
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    assert!(other.decoding_key(&kid).await.unwrap().is_some());

    // Back to ES256: the RSA key is retired and still published.
    let back = server.post("/keys/rotate", json!({"algorithm": "ES256"})).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    let es_kid = back.body["kid"].as_str().unwrap();
    let (header, _) = verify_with_published_key(&server, &server.keys.sign(&claims, None).await.unwrap()).await;
    assert_eq!((header.alg, header.kid.as_deref()), (jsonwebtoken::Algorithm::ES256, Some(es_kid)));
    assert_eq!(published_jwk(&server, &kid).await["kty"], "RSA");
    // The other instance still signs with its cached (retired, published)
    // key until it rereads the store, but already verifies the new one.
    assert!(other.decoding_key(es_kid).await.unwrap().is_some(), "an unknown kid rereads the store");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_refuses_unknown_algorithms_and_writes_nothing() {
    let server = Server::start().await;
    let before = server.store.signing_keys().await.unwrap();
    for body in [json!({"algorithm": "HS256"}), json!({"algorithm": "rs256"}), json!({"algorithm": "none"})] {
        let answer = server.post("/keys/rotate", body.clone()).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(answer.message().contains("ES256") && answer.message().contains("RS256"), "{body}: {}", answer.text);
    }
    let typo = server.post("/keys/rotate", json!({"alg": "RS256"})).await;
    typo.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(typo.message().contains("algorithm"), "{}", typo.text);
    let not_json = server
        .client
        .post(format!("{}/api/v1/keys/rotate", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("RS256")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(server.store.signing_keys().await.unwrap().len(), before.len(), "no key was made");

    // The document describes the optional body.
    let document = server.send(Method::GET, "/openapi.json", None, None).await.body;
    let body = &document["paths"]["/api/v1/keys/rotate"]["post"]["requestBody"];
    assert_ne!(body["required"], json!(true), "{body}");
    let schema = &body["content"]["application/json"]["schema"];
    assert_eq!(schema["oneOf"][0]["$ref"], "#/components/schemas/RotateKeyRequest", "{body}");
    assert_eq!(schema["oneOf"][1]["type"], "null", "{body}");
    assert_eq!(document["components"]["schemas"]["SigningAlgorithm"]["enum"], json!(["ES256", "RS256"]));
}
