//! End to end over real HTTP: an application (openid-client) signs users in
//! at `jit serve`, which brokers to an external IdP (oidc-provider) and
//! provisions them just in time. See `support` for the harness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::*;

fn alice(claims: Value) -> Value {
    let mut base = json!({"sub": "alice-sub", "email": "Alice@Example.com", "email_verified": true,
                          "given_name": "Alice", "preferred_username": "alice"});
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, claims) {
        base.extend(extra);
    }
    json!({"alice": base})
}

fn jit(sync_method: &str) -> Value {
    json!({"enabled": true, "sync_method": sync_method, "trust_email": false,
           "linking": {"enabled": true, "rules": [], "skip_provisioning_without_match": false}})
}

fn step1() -> Value {
    json!([{"options": ["LOCAL", "corp"]}])
}

#[tokio::test(flavor = "multi_thread")]
async fn first_login_creates_the_user_and_the_application_gets_its_claims() {
    let world = World::start(jit("override_all"), alice(json!({})), step1()).await;
    let page = world.federated_login("alice").await;
    let claims = World::app_claims(&page);
    let id_token = &claims["id_token_claims"];
    assert_eq!(id_token["email"], "Alice@Example.com");
    assert_eq!(id_token["preferred_username"], "alice");
    assert_eq!(id_token["given_name"], "Alice");
    assert_eq!(id_token["iss"], world.jit_url.as_str());
    assert_eq!(claims["userinfo"]["sub"], id_token["sub"]);

    let users = world.users_with_email("alice@example.com").await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["id"], id_token["sub"], "sub is the local user's id");
    assert_eq!(users[0]["federated_identities"][0]["connection"], "corp");
    assert_eq!(users[0]["federated_identities"][0]["subject"], "alice-sub");
    let audit = world.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "created");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_sign_ins_decisions_and_database_work_for_the_admin_token_only() {
    let world = World::start(jit("override_all"), alice(json!({})), step1()).await;
    let url = format!("{}/metrics", world.jit_url);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "metrics need the admin token");
    let scrape = || async {
        let response = client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        response.text().await.unwrap()
    };
    let value = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let before = scrape().await;
    World::app_claims(&world.federated_login("alice").await);
    let after = scrape().await;
    let client_id = &world.client_id;
    assert_eq!(value(&after, &format!("jit_sign_ins_started_total{{application=\"{client_id}\"}}")), 1.0, "{after}");
    let completed =
        format!("jit_sign_ins_completed_total{{application=\"{client_id}\",connection=\"corp\",outcome=\"success\"}}");
    assert_eq!(value(&after, &completed), 1.0, "{after}");
    assert_eq!(value(&after, "jit_provisioning_decisions_total{connection=\"corp\",decision=\"created\"}"), 1.0);
    assert!(value(&after, "jit_idp_call_duration_seconds_count{connection=\"corp\",call=\"finish\"}") >= 1.0);
    assert!(
        after.contains("jit_http_request_duration_seconds_bucket{route=\"/oauth2/token\",status=\"2xx\""),
        "{after}"
    );
    let statements = value(&after, "jit_db_statements_total") - value(&before, "jit_db_statements_total");
    let commits = value(&after, "jit_db_commits_total") - value(&before, "jit_db_commits_total");
    assert!(
        statements >= 10.0 && commits >= 3.0 && commits < statements,
        "a login: {statements} statements, {commits} commits"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn returning_logins_sync_attributes_by_each_method() {
    let mut world = World::start(jit("override_all"), alice(json!({})), step1()).await;
    let cases = [
        // (method, second-login claims, expected local attributes after it)
        (
            "override_all",
            json!({"given_name": null, "family_name": "Liddell"}),
            json!({"email": "Alice@Example.com", "family_name": "Liddell"}),
        ),
        (
            "preserve_local",
            json!({"given_name": "Al"}),
            json!({"email": "Alice@Example.com", "given_name": "Al", "family_name": "Liddell"}),
        ),
        (
            "none",
            json!({"given_name": "Ignored", "family_name": "Ignored"}),
            json!({"email": "Alice@Example.com", "given_name": "Al", "family_name": "Liddell"}),
        ),
    ];
    World::app_claims(&world.federated_login("alice").await);
    let user_id = world.users_with_email("alice@example.com").await[0]["id"].as_str().unwrap().to_owned();
    for (method, claims, expected) in cases {
        let mut connection = world.admin.get("/connections/corp").await;
        connection["jit"]["sync_method"] = json!(method);
        world.admin.put("/connections/corp", connection).await;
        world.set_idp_users(&alice(claims)).await;
        world.new_browser();
        World::app_claims(&world.federated_login("alice").await);
        let user = world.admin.get(&format!("/users/{user_id}")).await;
        assert_eq!(user["attributes"], expected, "after a login with sync method {method}");
    }
    let audit = world.audit().await;
    assert_eq!(
        audit.iter().filter(|e| e["action"] == "synced").count(),
        2,
        "override_all and preserve_local changed something: {audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_email_links_to_the_existing_local_user() {
    let world = World::start(jit("override_all"), alice(json!({})), step1()).await;
    let local = world
        .admin
        .post(
            "/users",
            json!({"username": "alice.local", "password": "pw-123456", "attributes": {"email": "alice@example.com"},
                   "email_verified": true}),
        )
        .await;
    let claims = World::app_claims(&world.federated_login("alice").await);
    assert_eq!(claims["id_token_claims"]["sub"], local["id"]);
    assert_eq!(claims["id_token_claims"]["email_verified"], true);
    assert_eq!(world.users_with_email("alice@example.com").await.len(), 1);
    let audit = world.audit().await;
    assert_eq!(audit[0]["action"], "linked");
}

/// An unverified email finds nobody: the sign-in gets an account of its
/// own whose email is marked unverified, and nothing on the way tells the
/// visitor that a local account has that address. jit's ID token says the
/// email is not verified (finding 8 of the security review).
#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_email_does_not_link_and_reveals_nothing() {
    let world = World::start(jit("override_all"), alice(json!({"email_verified": false})), step1()).await;
    let local = world
        .admin
        .post(
            "/users",
            json!({"username": "alice.local", "attributes": {"email": "alice@example.com"}, "email_verified": true}),
        )
        .await;
    let claims = World::app_claims(&world.federated_login("alice").await);
    assert_ne!(claims["id_token_claims"]["sub"], local["id"]);
    assert_eq!(claims["id_token_claims"]["email_verified"], false, "{claims}");
    assert_eq!(claims["userinfo"]["email_verified"], false, "{claims}");
    let users = world.users_with_email("alice@example.com").await;
    assert_eq!(users.len(), 2, "{users:?}");
    let local = users.iter().find(|u| u["username"] == "alice.local").unwrap();
    assert_eq!(local["federated_identities"], json!([]), "nothing was linked");
    assert!(users.iter().any(|u| u["email_verified"] == false), "{users:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fallback_rule_links_when_the_first_rule_finds_nothing() {
    let mut policy = jit("override_all");
    policy["linking"]["rules"] = json!([{"federated": "email", "local": "email"}, {"federated": "preferred_username", "local": "username", "trusted": true}]);
    let world = World::start(policy, alice(json!({"email": "new-address@example.com"})), step1()).await;
    let local =
        world.admin.post("/users", json!({"username": "alice", "attributes": {"email": "old@example.com"}})).await;
    let claims = World::app_claims(&world.federated_login("alice").await);
    assert_eq!(claims["id_token_claims"]["sub"], local["id"]);
    let audit = world.audit().await;
    assert_eq!(audit[0]["action"], "linked");
    assert_eq!(audit[0]["rule"]["index"], 1, "the fallback rule matched: {audit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_provisioning_refuses_with_a_page_and_writes_nothing_but_the_audit_event() {
    let mut policy = jit("override_all");
    policy["linking"]["skip_provisioning_without_match"] = json!(true);
    let world = World::start(policy, alice(json!({})), step1()).await;
    let page = world.federated_login("alice").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("no local account matches"), "{}", page.body);
    assert!(world.users_with_email("alice@example.com").await.is_empty());
    let audit = world.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn jit_disabled_passes_claims_to_the_application_and_creates_no_user() {
    let off = json!({"enabled": false});
    let world = World::start(off, alice(json!({})), step1()).await;
    let claims = World::app_claims(&world.federated_login("alice").await);
    assert_eq!(claims["id_token_claims"]["email"], "Alice@Example.com");
    assert_eq!(claims["userinfo"]["given_name"], "Alice");
    assert!(world.users_with_email("alice@example.com").await.is_empty());
    assert!(world.audit().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_user_signs_in_with_a_password_and_the_application_gets_its_attributes() {
    let world = World::start(jit("override_all"), alice(json!({})), step1()).await;
    let local = world
        .admin
        .post(
            "/users",
            json!({"username": "carol", "password": "carol's long password",
                   "attributes": {"email": "Carol@Example.com", "given_name": "Carol", "groups": ["staff", "ops"]}}),
        )
        .await;
    // A membership an administrator grants joins the groups in tokens.
    world.admin.post("/groups", json!({"name": "vpn"})).await;
    let member = format!("/groups/vpn/members/{}", local["id"].as_str().unwrap());
    let (status, body) = world.admin.call(reqwest::Method::PUT, &member, None).await;
    assert_eq!(status, 204, "{body}");
    // groups go out only under the scope of that name.
    let page = world.browser.get(&format!("{}/login?scope=openid+profile+email+groups", world.app_url)).await;
    assert_eq!(page.status, 200, "the sign-in page: {}", page.body);
    assert!(page.body.contains("name=\"username\"") && page.body.contains("Continue with corp IdP"), "{}", page.body);
    let csrf = hidden_value(&page.body, "csrf").unwrap();
    let action = form_action(&page.body, "/signin/password").unwrap();
    let action = reqwest::Url::parse(&page.url).unwrap().join(&action).unwrap().to_string();

    // A wrong password and an unknown user get the same answer, which
    // says nothing about whether the user exists.
    let wrong_password =
        world.browser.post_form(&action, &[("csrf", &csrf), ("username", "carol"), ("password", "not it")]).await;
    let unknown_user =
        world.browser.post_form(&action, &[("csrf", &csrf), ("username", "nobody"), ("password", "not it")]).await;
    for (case, page) in [("wrong password", &wrong_password), ("unknown user", &unknown_user)] {
        assert_eq!(page.status, 401, "{case}: {}", page.body);
        assert!(page.body.contains("Wrong username or password."), "{case}: {}", page.body);
        assert!(!page.body.contains("not it"), "{case}: the password is echoed: {}", page.body);
        assert!(page.body.contains("name=\"password\""), "{case}: the form is shown again: {}", page.body);
    }
    assert_eq!(wrong_password.body, unknown_user.body, "the two failures must be indistinguishable");

    // The same sign-in goes on with the right password (the username is
    // case-insensitive).
    let page = world
        .browser
        .post_form(&action, &[("csrf", &csrf), ("username", "Carol"), ("password", "carol's long password")])
        .await;
    let claims = World::app_claims(&page);
    let id_token = &claims["id_token_claims"];
    assert_eq!(id_token["sub"], local["id"], "sub is the local user's id");
    assert_eq!(id_token["iss"], world.jit_url.as_str());
    assert_eq!(id_token["aud"], world.client_id.as_str());
    assert_eq!(id_token["preferred_username"], "carol");
    assert_eq!(id_token["email"], "Carol@Example.com");
    assert_eq!(id_token["given_name"], "Carol");
    assert_eq!(id_token["groups"], json!(["ops", "staff", "vpn"]), "{id_token}");
    assert_eq!(id_token["amr"], json!(["LOCAL"]), "{id_token}");
    assert_eq!(claims["userinfo"]["sub"], local["id"]);
    assert_eq!(claims["userinfo"]["email"], "Carol@Example.com");
    assert!(world.audit().await.is_empty(), "a local sign-in provisions nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_passwords_lock_the_account_across_sign_ins_without_revealing_it() {
    let mut rig = Rig::start().await;
    let password = "dave's long password";
    let dave = rig.admin.post("/users", json!({"username": "dave", "password": password, "attributes": {}})).await;
    let id = dave["id"].as_str().unwrap().to_owned();

    // Five wrong passwords, each in a new sign-in from a new browser (so
    // the per-sign-in limit never applies) ...
    for attempt in 1..=5 {
        rig.new_browser();
        let (_, trail) = rig.password_sign_in("dave", &format!("guess {attempt}")).await;
        let page = trail.page();
        assert_eq!(page.status, 401, "wrong password {attempt}: {}", page.body);
        assert!(page.body.contains("Wrong username or password."), "wrong password {attempt}: {}", page.body);
    }

    // ... and now the right one is refused too, in a fresh sign-in, with
    // the same answer as for an unknown user.
    rig.new_browser();
    let (_, trail) = rig.password_sign_in("dave", password).await;
    let locked = trail.page();
    assert_eq!(locked.status, 401, "the right password while locked: {}", locked.body);
    assert!(locked.body.contains("Wrong username or password."), "{}", locked.body);
    assert!(locked.body.contains("name=\"password\""), "the form is shown again: {}", locked.body);
    assert!(!locked.body.contains(password), "the password is echoed: {}", locked.body);
    let unknown = rig.submit(locked, "/signin/password", &[("username", "nobody"), ("password", "x")]).await;
    assert_eq!(unknown.page().status, 401);
    assert_eq!(unknown.page().body, locked.body, "a locked account and an unknown user must be indistinguishable");
    let again = rig.submit(locked, "/signin/password", &[("username", "dave"), ("password", password)]).await;
    assert_eq!(again.page().body, locked.body, "still locked in the same sign-in");

    // The account itself is untouched: the admin API still shows it.
    let user = rig.admin.get(&format!("/users/{id}")).await;
    assert_eq!(user["username"], "dave", "{user}");
    assert_eq!(user["id"], id.as_str());
}

/// Issue 9 §1–§2 against node oidc-provider: attributes the operator
/// declares arrive from the IdP's claims (a nested one by its dotted path),
/// a linking rule on the IdP's `employee_id` claim links, and the
/// application receives the declared attributes through openid-client.
#[tokio::test(flavor = "multi_thread")]
async fn declared_attributes_arrive_and_a_rule_on_a_declared_claim_links() {
    let idp_alice = alice(json!({"email": "alice@elsewhere.example", "department": "Sales", "employee_id": "E-1",
                                 "org": {"unit": "R&D"}}));
    let world = World::start(jit("override_all"), idp_alice, step1()).await;
    world.admin.post("/attributes", json!({"name": "department"})).await;
    world.admin.post("/attributes", json!({"name": "unit"})).await;
    world.admin.post("/attributes", json!({"name": "employee_id", "unique": true})).await;
    let local = world
        .admin
        .post("/users", json!({"username": "alice.local", "attributes": {"employee_id": "E-1", "department": "HR"}}))
        .await;
    let mut corp = world.admin.get("/connections/corp").await;
    corp["claim_mappings"] = json!({"department": "department", "employee_id": "employee_id", "org.unit": "unit"});
    corp["jit"]["linking"]["rules"] = json!([{"federated": "employee_id", "local": "employee_id", "trusted": true}]);
    world.admin.put("/connections/corp", corp).await;
    // Declared attributes reach the application only through a scope of its
    // own that names them.
    let mut app = world.admin.get(&format!("/applications/{}", world.client_id)).await;
    app["scopes"] = json!([{"scope": "employee", "claims": ["department", "unit"]}]);
    for field in ["client_id", "client_secret", "warnings", "flow_error"] {
        app.as_object_mut().unwrap().remove(field);
    }
    world.admin.put(&format!("/applications/{}", world.client_id), app).await;
    let discovery: serde_json::Value = reqwest::get(format!("{}/.well-known/openid-configuration", world.jit_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(discovery["scopes_supported"].as_array().unwrap().contains(&json!("employee")), "{discovery}");
    assert!(discovery["claims_supported"].as_array().unwrap().contains(&json!("department")), "{discovery}");

    let without = World::app_claims(&world.federated_login("alice").await);
    assert_eq!(without["id_token_claims"]["sub"], local["id"], "linked by employee_id: {without}");
    assert!(without["id_token_claims"].get("department").is_none(), "not asked for: {without}");
    let claims = World::app_claims(&world.federated_login_with_scope("alice", "openid profile email employee").await);
    assert_eq!(claims["id_token_claims"]["sub"], local["id"], "{claims}");
    assert_eq!(claims["id_token_claims"]["department"], "Sales", "synced from the IdP: {claims}");
    assert_eq!(claims["id_token_claims"]["unit"], "R&D", "from the nested claim: {claims}");
    assert_eq!(claims["userinfo"]["department"], "Sales", "{claims}");
    let audit = world.audit().await;
    assert_eq!(audit[0]["action"], "linked", "{audit:?}");
}

/// Issue 9 §3 against node oidc-provider: the IdP's groups map onto local
/// groups; an override-all sign-in that no longer brings a group removes
/// the membership the connection granted, and never the one an
/// administrator granted; a mapped value naming no local group is audited.
#[tokio::test(flavor = "multi_thread")]
async fn idp_groups_sync_without_trampling_manual_grants() {
    let mut world =
        World::start(jit("override_all"), alice(json!({"groups": ["Staff", "HR", "Legacy"]})), step1()).await;
    for group in ["staff", "hr", "vpn"] {
        world.admin.post("/groups", json!({"name": group})).await;
    }
    let mut corp = world.admin.get("/connections/corp").await;
    corp["groups"] = json!({"claim": "groups", "mappings": {"Staff": "staff", "HR": "hr", "Legacy": "gone"},
                            "unmapped": "ignore", "sync_method": "override_all"});
    world.admin.put("/connections/corp", corp).await;

    let first = World::app_claims(&world.federated_login_with_scope("alice", "openid profile email groups").await);
    let id = first["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    assert_eq!(first["id_token_claims"]["groups"], json!(["hr", "staff"]), "{first}");
    let (status, body) = world.admin.call(reqwest::Method::PUT, &format!("/groups/vpn/members/{id}"), None).await;
    assert_eq!(status, 204, "{body}");
    let audit = world.audit().await;
    let synced = audit.iter().find(|e| e["action"] == "memberships").unwrap_or_else(|| panic!("{audit:?}"));
    assert_eq!(synced["added"], json!(["hr", "staff"]));
    assert_eq!(synced["unknown"], json!(["gone"]), "reported, not dropped silently");

    // HR is gone at the IdP.
    world.set_idp_users(&alice(json!({"groups": ["Staff"]}))).await;
    world.new_browser();
    let again = World::app_claims(&world.federated_login_with_scope("alice", "openid profile email groups").await);
    assert_eq!(again["id_token_claims"]["groups"], json!(["staff", "vpn"]), "{again}");
    let user = world.admin.get(&format!("/users/{id}")).await;
    assert_eq!(
        user["groups"],
        json!([{"name": "staff", "granted_by": "connection:corp"}, {"name": "vpn", "granted_by": "admin"}]),
        "{user}"
    );
    assert!(user["attributes"].get("groups").is_none(), "groups are memberships here, not an attribute: {user}");
}
