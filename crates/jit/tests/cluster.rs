//! Two `jit serve` processes on one database, as behind a load balancer:
//! any request of a sign-in may land on either. Both are public at instance
//! B's URL (so the IdP calls back to B and the application talks to B); the
//! test sends chosen requests to A's port instead.
//!
//! The database is a fresh one on the server `JIT_STORE_TEST_URL` names
//! (PostgreSQL or MySQL/MariaDB; `cargo xtask ci` runs this file on both),
//! else a SQLite file both processes open.
//!
//! The browser's cookie jar sends cookies set by `127.0.0.1:<A>` to
//! `127.0.0.1:<B>` too (cookies are not port-specific, RFC 6265 §8.5), as a
//! browser does for two instances behind one host name. The callback only
//! succeeds when the sign-in cookie set by one instance reaches the other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use jit_testkit::{TestIdp, TestIdpConfig};
use serde_json::{Value, json};
use support::*;

/// Instances A and B, the test IdP, and the application (openid-client).
struct Cluster {
    a: String,
    b: String,
    admin: Admin,
    app_url: String,
    idp: TestIdp,
    // Processes stop before the database is dropped (fields drop in order).
    _procs: Vec<Proc>,
    db: ScratchDatabase,
}

impl Cluster {
    async fn start() -> Self {
        let db = ScratchDatabase::for_tests().await;
        let (a_port, b_port, app_port) = (free_port(), free_port(), free_port());
        let a = format!("http://127.0.0.1:{a_port}");
        let b = format!("http://127.0.0.1:{b_port}");
        let idp = TestIdp::start(TestIdpConfig {
            redirect_uri: format!("{b}/federation/corp/callback"),
            ..TestIdpConfig::default()
        })
        .await
        .unwrap();
        // One after the other: the first migrates the fresh database and
        // creates the signing key, the second finds both.
        let jit_a = start_jit_public_at(jit_binary(), a_port, &db.url, &b);
        let jit_b = start_jit_public_at(jit_binary(), b_port, &db.url, &b);
        // Configured through A, used through both.
        let admin = Admin::new(&a);
        connect_test_idp(&admin, &idp).await;
        let app = admin
            .post(
                "/applications",
                json!({"name": "demo", "redirect_uris": [format!("http://127.0.0.1:{app_port}/callback")],
                       "public": false, "sign_in": {"steps": [{"options": ["LOCAL", "corp"]}]}}),
            )
            .await;
        let app_proc = start_app(app_port, &b, app["client_id"].as_str().unwrap(), app["client_secret"].as_str());
        let app_url = format!("http://127.0.0.1:{app_port}");
        Self { a, b, admin, app_url, idp, _procs: vec![app_proc, jit_a, jit_b], db }
    }

    /// `url` on instance `instance` when it is on B (where every URL jit
    /// hands out points).
    fn on(&self, instance: &str, url: &str) -> String {
        match url.strip_prefix(&self.b) {
            Some(rest) => format!("{instance}{rest}"),
            None => url.to_owned(),
        }
    }

    /// A federated sign-in through `corp` in `browser`: the authorization
    /// request goes to `authorize_at`, the IdP's callback to `callback_at`;
    /// ends where the application answers.
    async fn sign_in(&self, browser: &Browser, authorize_at: &str, callback_at: &str) -> Trail {
        let authorize = format!("{}/oauth2/authorize", self.b);
        let callback = format!("{}/federation/", self.b);
        let (authorize_at, callback_at) = (authorize_at.to_owned(), callback_at.to_owned());
        let b = self.b.clone();
        let on = move |instance: &str, url: &str| format!("{instance}{}", url.strip_prefix(&b).unwrap_or(url));
        walk(browser, &format!("{}/login?fidp=corp", self.app_url), move |next| {
            if next.starts_with(&authorize) {
                Hop::Follow(on(&authorize_at, next))
            } else if next.starts_with(&callback) {
                Hop::Follow(on(&callback_at, next))
            } else {
                Hop::Follow(next.to_owned())
            }
        })
        .await
    }

    async fn users(&self, admin: &Admin) -> Vec<Value> {
        admin.get("/users?attribute=email&value=alice@example.com").await.as_array().cloned().unwrap()
    }

    async fn audit(&self) -> Vec<Value> {
        self.admin.get("/audit").await.as_array().cloned().unwrap()
    }
}

/// The application's JSON after a successful sign-in.
fn app_claims(trail: &Trail) -> Value {
    let page = trail.page();
    assert_eq!(page.status, 200, "the sign-in failed at {}: {}\nvisited {:#?}", page.url, page.body, trail.visited);
    serde_json::from_str(&page.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorization_request_on_one_instance_and_the_callback_on_the_other() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.a.clone(), cluster.b.clone());
    eprintln!("cluster on {}: A = {a}, B = {b}", cluster.db.backend());

    // First login: authorize at A (which stores the sign-in and sends the
    // browser to the IdP), callback at B (which finishes it).
    let browser = Browser::new();
    let trail = cluster.sign_in(&browser, &a, &b).await;
    let authorize = trail.visited_starting_with(&format!("{a}/oauth2/authorize")).unwrap();
    assert!(authorize.contains("fidp=corp"));
    assert!(trail.visited_starting_with(&format!("{b}/federation/corp/callback")).is_some(), "{:#?}", trail.visited);
    assert!(trail.visited_starting_with(&format!("{a}/federation/")).is_none());
    let claims = app_claims(&trail);
    let sub = claims["id_token_claims"]["sub"].clone();
    assert_eq!(claims["id_token_claims"]["iss"], b.as_str());
    assert_eq!(claims["id_token_claims"]["email"], "alice@example.com");
    assert_eq!(claims["userinfo"]["sub"], sub);

    // Both instances see the one user.
    for admin in [Admin::new(&a), Admin::new(&b)] {
        let users = cluster.users(&admin).await;
        assert_eq!(users.len(), 1, "{users:?}");
        assert_eq!(users[0]["id"], sub);
    }
    let audit = cluster.audit().await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["action"], "created");

    // Second login the other way round, without fidp: the authorization
    // request at B, the sign-in page and its form at A, the callback at A.
    let browser = Browser::new();
    let login = format!("{}/login", cluster.app_url);
    let trail = walk(&browser, &login, |next| {
        if next.starts_with(&format!("{b}/signin")) {
            Hop::Follow(cluster.on(&a, next))
        } else {
            Hop::Follow(next.into())
        }
    })
    .await;
    let page = trail.page();
    assert!(page.url.starts_with(&format!("{a}/signin")), "{:#?}", trail.visited);
    assert!(trail.visited_starting_with(&format!("{b}/oauth2/authorize")).is_some(), "{:#?}", trail.visited);
    assert_eq!(page.status, 200, "A shows the sign-in B started: {}", page.body);
    let csrf = hidden_value(&page.body, "csrf").unwrap();
    let response = browser
        .client
        .post(format!("{a}/signin/federated"))
        .form(&[("csrf", csrf.as_str()), ("connection", "corp")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let to_idp = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(to_idp.starts_with(&cluster.idp.issuer()), "{to_idp}");
    let callback = format!("{b}/federation/");
    let trail = walk(&browser, &to_idp, |next| {
        if next.starts_with(&callback) { Hop::Follow(cluster.on(&a, next)) } else { Hop::Follow(next.into()) }
    })
    .await;
    assert!(trail.visited_starting_with(&format!("{a}/federation/corp/callback")).is_some(), "{:#?}", trail.visited);
    let claims = app_claims(&trail);
    assert_eq!(claims["id_token_claims"]["sub"], sub, "the same user signed in again");
    assert_eq!(cluster.users(&cluster.admin).await.len(), 1);
    assert_eq!(cluster.audit().await.len(), 1, "nothing changed, so nothing more was audited");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_logins_across_instances_create_one_user() {
    const LOGINS: usize = 6;
    let cluster = std::sync::Arc::new(Cluster::start().await);
    eprintln!("cluster on {}", cluster.db.backend());
    // Every browser goes as far as the IdP's answer (authorization requests
    // alternating between A and B)...
    let callback = format!("{}/federation/", cluster.b);
    let mut answers = Vec::new();
    for i in 0..LOGINS {
        let browser = Browser::new();
        let authorize_at = if i % 2 == 0 { &cluster.a } else { &cluster.b };
        let authorize = format!("{}/oauth2/authorize", cluster.b);
        let trail = walk(&browser, &format!("{}/login?fidp=corp", cluster.app_url), |next| {
            if next.starts_with(&callback) {
                Hop::Stop
            } else if next.starts_with(&authorize) {
                Hop::Follow(cluster.on(authorize_at, next))
            } else {
                Hop::Follow(next.into())
            }
        })
        .await;
        answers.push((browser, trail.stopped_at().to_owned()));
    }
    // ...then all the answers arrive at once, at the other instance.
    let mut tasks = Vec::new();
    for (i, (browser, answer)) in answers.into_iter().enumerate() {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let callback_at = if i % 2 == 0 { &cluster.b } else { &cluster.a };
            let trail = walk(&browser, &cluster.on(callback_at, &answer), |next| Hop::Follow(next.into())).await;
            app_claims(&trail)["id_token_claims"]["sub"].clone()
        }));
    }
    let mut subs = Vec::new();
    for task in tasks {
        subs.push(task.await.unwrap());
    }
    assert!(subs.iter().all(|sub| *sub == subs[0]), "every login signed in the same user: {subs:?}");
    let users = cluster.users(&cluster.admin).await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["id"], subs[0]);
    let audit = cluster.audit().await;
    assert_eq!(audit.iter().filter(|e| e["action"] == "created").count(), 1, "{audit:?}");
    assert_eq!(cluster.idp.counters().token, LOGINS as u64);
}
