//! The attack suite of the security review (issue 7): one test per finding,
//! over real HTTP against `jit serve`, with `jit_testkit::TestIdp` as a
//! misbehaving (or attacker-controlled) IdP and node `oidc-provider` where
//! an IdP session matters. Each test names the finding it guards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// A second test IdP connected as `name` (the attacker's, or another
/// organisation's), with JIT on.
async fn add_idp(rig: &Rig, name: &str, jit: Value) -> jit_testkit::TestIdp {
    let idp = jit_testkit::TestIdp::start(jit_testkit::TestIdpConfig {
        redirect_uri: format!("{}/federation/{name}/callback", rig.jit_url),
        ..jit_testkit::TestIdpConfig::default()
    })
    .await
    .unwrap();
    let config = idp.config();
    rig.admin
        .post(
            "/connections",
            json!({"name": name, "display_name": format!("{name} IdP"), "protocol": "oidc",
                   "oidc": {"issuer": idp.issuer(), "client_id": config.client_id,
                            "client_secret": config.client_secret, "scopes": ["openid", "profile", "email"]},
                   "jit": jit}),
        )
        .await;
    let steps = json!([{"options": ["LOCAL", "corp", name]}]);
    rig.set_flow(steps, None).await;
    idp
}

/// A whole sign-in through connection `fidp` in a fresh browser: the ID
/// token's claims, or the error page.
async fn sign_in_through(rig: &mut Rig, fidp: &str) -> Result<Value, Page> {
    rig.new_browser();
    let request = rig.authorization(Some(fidp));
    let trail = rig.walk(&request.url).await;
    match &trail.end {
        End::Stopped(url) if url.starts_with(&rig.redirect_uri) => Ok(rig.tokens(&request, &trail).await.1),
        _ => Err(trail.page().clone()),
    }
}

/// A local account an administrator made, vouching for its email.
async fn verified_local(rig: &Rig, username: &str, email: &str) -> String {
    let user = rig
        .admin
        .post("/users", json!({"username": username, "attributes": {"email": email}, "email_verified": true}))
        .await;
    user["id"].as_str().unwrap().to_owned()
}

/// Finding 1 (critical): a second pending federation must not complete the
/// next step. Two "continue with corp" clicks; the first answer leads to
/// TOTP; the second redirect, answered by the IdP (node oidc-provider),
/// must not complete TOTP.
#[tokio::test(flavor = "multi_thread")]
async fn finding_1_a_second_pending_federation_does_not_skip_mfa() {
    let world =
        World::start(jit_on(), json!({"alice": {}}), json!([{"options": ["corp"]}, {"options": ["TOTP"]}])).await;
    let page = world.browser.get(&format!("{}/login", world.app_url)).await;
    assert_eq!(page.status, 200, "jit's sign-in page: {}", page.body);
    let csrf = hidden_value(&page.body, "csrf").unwrap();
    let action = reqwest::Url::parse(&page.url).unwrap().join(&form_action(&page.body, "/signin/federated").unwrap());
    let action = action.unwrap().to_string();
    let mut redirects = Vec::new();
    for _ in 0..2 {
        let response =
            world.browser.client.post(&action).form(&[("csrf", csrf.as_str()), ("connection", "corp")]).send().await;
        let response = response.unwrap();
        assert!(response.status().is_redirection(), "{}", response.status());
        redirects.push(response.headers()["location"].to_str().unwrap().to_owned());
    }
    let at_idp = world.browser.get(&redirects[0]).await;
    let at_totp = world.browser.idp_login(&at_idp, "alice").await;
    assert!(at_totp.body.contains("otpauth://"), "step 2 asks to set up TOTP: {}", at_totp.body);

    let mut replayed = world.browser.get(&redirects[1]).await;
    if replayed.url.starts_with(&world.idp_url) {
        // The IdP keeps no session between its logins: log in there again.
        replayed = world.browser.idp_login(&replayed, "alice").await;
    }
    assert!(!replayed.url.starts_with(&world.app_url), "the second answer reached the application: {}", replayed.url);
    assert!(matches!(replayed.status, 400 | 409), "{} {}", replayed.status, replayed.body);
    let still = world.browser.get(&format!("{}/signin", world.jit_url)).await;
    assert!(still.body.contains("otpauth://"), "the sign-in is still at TOTP: {}", still.body);
}

/// Finding 2 (pre-account takeover): an account created from an unverified
/// email is not linked into when the address's owner signs in verified
/// through another connection.
#[tokio::test(flavor = "multi_thread")]
async fn finding_2_an_unverified_pre_account_is_not_linked_into() {
    let mut rig = Rig::start().await;
    rig.idp.set_user("mallory", json!({"email": "newhire@corp.test", "email_verified": false}));
    let planted = sign_in_through(&mut rig, "corp").await.unwrap();
    let partner = add_idp(&rig, "partner", jit_on()).await;
    partner.set_user("newhire", json!({"email": "newhire@corp.test", "email_verified": true}));
    let owner = sign_in_through(&mut rig, "partner").await.unwrap();
    assert_ne!(owner["sub"], planted["sub"], "the owner was signed in to the attacker's account");
    let users = rig.users_with_email("newhire@corp.test").await;
    let flags: Vec<&Value> = users.iter().map(|u| &u["email_verified"]).collect();
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(flags.contains(&&json!(true)) && flags.contains(&&json!(false)), "{users:?}");
}

/// Finding 3a: a verified `email` does not vouch for a `upn` mapped onto
/// the local email.
#[tokio::test(flavor = "multi_thread")]
async fn finding_3a_a_mapped_upn_is_not_verified_by_the_email_flag() {
    let mut rig = Rig::start().await;
    let victim = verified_local(&rig, "victim", "victim@corp.test").await;
    let mut connection = rig.admin.get("/connections/corp").await;
    connection["claim_mappings"] = json!({"upn": "email"});
    rig.admin.put("/connections/corp", connection).await;
    rig.idp
        .set_user("mallory", json!({"email": "mallory@evil.test", "email_verified": true, "upn": "victim@corp.test"}));
    let claims = sign_in_through(&mut rig, "corp").await.unwrap();
    assert_ne!(claims["sub"], victim.as_str(), "signed in as the victim");
    assert_eq!(claims["email_verified"], false, "{claims}");
}

/// Finding 3b: userinfo's other email under the ID token's flag is
/// unverified; 3c: a string "true" (Cognito) parses instead of failing.
#[tokio::test(flavor = "multi_thread")]
async fn finding_3b_3c_email_verified_belongs_to_its_document_and_may_be_a_string() {
    let mut rig = Rig::start().await;
    let victim = verified_local(&rig, "victim", "victim@corp.test").await;
    rig.idp.set_user("mallory", json!({"email": "mallory@evil.test", "email_verified": true}));
    rig.idp.set_userinfo_overrides(json!({"email": "victim@corp.test", "email_verified": null}));
    let claims = sign_in_through(&mut rig, "corp").await.unwrap();
    assert_ne!(claims["sub"], victim.as_str(), "linked into the victim through userinfo's email");

    rig.idp.set_user("victim-at-idp", json!({"email": "victim@corp.test"}));
    rig.idp.set_userinfo_overrides(json!({"email_verified": "true"}));
    let claims =
        sign_in_through(&mut rig, "corp").await.unwrap_or_else(|page| panic!("{}: {}", page.status, page.body));
    assert_eq!(claims["sub"], victim.as_str(), "a string \"true\" in userinfo verifies its email");
}

/// Finding 4: parallel Email OTP guesses are counted before they are
/// compared: of a burst of wrong codes and the right one, at most as many
/// are checked as the code has tries.
#[tokio::test(flavor = "multi_thread")]
async fn finding_4_a_burst_of_email_codes_is_counted_before_it_is_checked() {
    let smtp = SmtpListener::start();
    let rig = Rig::start_with_env(&[("JIT_SMTP_URL", &smtp.url())]).await;
    rig.set_flow(json!([{"options": ["LOCAL"]}, {"options": ["EMAIL_OTP"]}]), None).await;
    rig.admin
        .post(
            "/users",
            json!({"username": "ann", "password": "ann's long password", "attributes": {"email": "ann@corp.test"}}),
        )
        .await;
    let (_, trail) = rig.password_sign_in("ann", "ann's long password").await;
    let sent = rig.submit(trail.page(), "/signin/email-otp/send", &[]).await;
    let page = sent.page().clone();
    let (_, body) = mail_parts(&smtp.next_mail());
    let code = body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_owned();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let csrf = hidden_value(&page.body, "csrf").unwrap();
    let url = reqwest::Url::parse(&page.url).unwrap().join(&form_action(&page.body, "/signin/email-otp").unwrap());
    let url = url.unwrap().to_string();
    let mut guesses: Vec<&str> = vec![wrong; 24];
    guesses.push(&code);
    let answers = futures::future::join_all(
        guesses
            .iter()
            .map(|guess| rig.browser.client.post(&url).form(&[("csrf", csrf.as_str()), ("code", *guess)]).send()),
    )
    .await;
    let statuses: Vec<u16> = answers.into_iter().map(|a| a.unwrap().status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| matches!(s, 401 | 303)).count();
    println!("burst of 25 email codes: {checked} checked, statuses {statuses:?}");
    assert!(checked <= 5, "more codes were checked than a code has tries: {statuses:?}");
}

/// Finding 5: the Kelvin sign is not a K: no link, and kate's email stays.
#[tokio::test(flavor = "multi_thread")]
async fn finding_5_unicode_look_alikes_do_not_link() {
    let mut rig = Rig::start().await;
    let kate = verified_local(&rig, "kate", "kate@corp.test").await;
    rig.idp.set_user("k", json!({"email": "\u{212A}ate@corp.test", "email_verified": true}));
    let claims = sign_in_through(&mut rig, "corp").await.unwrap();
    assert_ne!(claims["sub"], kate.as_str());
    let kate = rig.admin.get(&format!("/users/{kate}")).await;
    assert_eq!(kate["attributes"]["email"], "kate@corp.test");
}

/// Finding 6 (email recycling): a second subject of the same connection
/// with an address already linked there is refused, audited, and the old
/// owner's account is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn finding_6_a_recycled_address_is_not_linked_again() {
    let mut rig = Rig::start().await;
    let kim = verified_local(&rig, "kim", "kim@corp.test").await;
    rig.idp.set_user("kim-2019", json!({"email": "kim@corp.test", "email_verified": true, "name": "Kim"}));
    assert_eq!(sign_in_through(&mut rig, "corp").await.unwrap()["sub"], kim.as_str());
    rig.idp.set_user("kim-2026", json!({"email": "kim@corp.test", "email_verified": true, "name": "Someone Else"}));
    let page = sign_in_through(&mut rig, "corp").await.unwrap_err();
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(unescape_html(&page.body).contains("already linked to another user"), "{}", page.body);
    let kim = rig.admin.get(&format!("/users/{kim}")).await;
    assert_eq!(kim["attributes"]["name"], "Kim", "the old owner's attributes were overwritten");
    let audit = rig.audit().await;
    assert_eq!(audit[0]["action"], "refused", "{audit:?}");
    assert_eq!(audit[0]["refusal"]["reason"], "already_linked", "{audit:?}");
}

/// Finding 7: a linking rule on a value the IdP does not prove needs
/// `"trusted": true`, refused at save otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn finding_7_an_untrusted_username_rule_is_refused() {
    let rig = Rig::start().await;
    let mut connection = rig.admin.get("/connections/corp").await;
    connection["jit"]["linking"]["rules"] = json!([{"federated": "username", "local": "username"}]);
    let (status, answer) = rig.admin.call(reqwest::Method::PUT, "/connections/corp", Some(connection.clone())).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("\"trusted\": true"), "{answer}");
    connection["jit"]["linking"]["rules"] = json!([{"federated": "username", "local": "username", "trusted": true}]);
    let saved = rig.admin.put("/connections/corp", connection).await;
    assert_eq!(saved["jit"]["linking"]["rules"][0]["trusted"], true);
}

/// Finding 8: every email jit asserts comes with email_verified, also for
/// users of a JIT-disabled connection.
#[tokio::test(flavor = "multi_thread")]
async fn finding_8_email_verified_is_released_with_every_email() {
    let mut rig = Rig::start().await;
    rig.set_jit(json!({"enabled": false})).await;
    rig.idp.set_user("pat", json!({"email": "pat@partner.test", "email_verified": false}));
    let claims = sign_in_through(&mut rig, "corp").await.unwrap();
    assert_eq!((&claims["email"], &claims["email_verified"]), (&json!("pat@partner.test"), &json!(false)), "{claims}");
}

/// Finding 9: a script whose onFail only logs does not let a failed TOTP
/// step complete the sign-in.
#[tokio::test(flavor = "multi_thread")]
async fn finding_9_a_script_that_only_logs_on_fail_fails_closed() {
    let rig = Rig::start().await;
    let script = "var onLoginRequest = function (context) {
        executeStep(1, { onSuccess: function (context) {
            executeStep(2, { onFail: function (context) { Log.info('wrong code'); } });
        } });
    };";
    rig.set_flow(json!([{"options": ["LOCAL"]}, {"options": ["TOTP"]}]), Some(script)).await;
    rig.admin.post("/users", json!({"username": "ann", "password": "ann's long password"})).await;
    let (_, trail) = rig.password_sign_in("ann", "ann's long password").await;
    assert!(trail.page().body.contains("otpauth://"), "{}", trail.page().body);
    let after = rig.submit(trail.page(), "/signin/totp", &[("code", "000000")]).await;
    assert!(matches!(after.end, End::Page(_)), "the sign-in completed without TOTP: {:?}", after.end);
    assert_eq!(after.page().status, 403, "{}", after.page().body);
    assert!(
        after.page().body.contains("step_failed") || after.page().body.contains("Sign-in failed"),
        "{}",
        after.page().body
    );
}

/// Finding 10: what an unauthenticated authorization request can make jit
/// store is bounded: a request over 4096 bytes is refused before anything
/// is stored.
#[tokio::test(flavor = "multi_thread")]
async fn finding_10_oversized_authorization_requests_are_refused() {
    let rig = Rig::start().await;
    let request = rig.authorization(None);
    let page = rig.browser.get(&format!("{}&padding={}", request.url, "x".repeat(60_000))).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("longer than 4096 bytes"), "{}", page.body);
    let page = rig.browser.get(&format!("{}&padding={}", request.url, "x".repeat(3000))).await;
    assert_eq!(page.status, 200, "a long but bounded request is served: {}", page.body);
}

/// Finding 11: half-open requests and idle connections are closed.
#[tokio::test(flavor = "multi_thread")]
async fn finding_11_half_open_and_idle_connections_are_closed() {
    let rig = Rig::start_with_env(&[("JIT_HEADER_READ_TIMEOUT", "1"), ("JIT_IDLE_TIMEOUT", "2")]).await;
    let address = rig.jit_url.trim_start_matches("http://").to_owned();
    let closed_after = |partial: &'static [u8]| {
        let address = address.clone();
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            stream.write_all(partial).unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 1024];
            while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
            started.elapsed()
        })
    };
    let half_open = closed_after(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    let silent = closed_after(b"");
    let (half_open, silent) = (half_open.join().unwrap(), silent.join().unwrap());
    println!("half-open request closed after {half_open:?}, silent connection after {silent:?}");
    assert!(half_open < Duration::from_secs(10), "{half_open:?}");
    assert!(silent < Duration::from_secs(10), "{silent:?}");
}

/// Finding 12: the SQLite file and the generated key file are the owner's
/// only (0600), and the secrets in the file are sealed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn finding_12_the_database_and_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jit.sqlite");
    let port = free_port();
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let jit =
        start_jit_with_env(jit_binary(), port, &url, &format!("http://127.0.0.1:{port}"), &[("JIT_SECRET_KEY", "")]);
    let admin = Admin::new(&format!("http://127.0.0.1:{port}"));
    admin.post("/connections", connection("corp", "https://idp.example.com", jit_on())).await;
    drop(jit);
    for file in [db.clone(), dir.path().join("jit.sqlite.key")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let bytes = std::fs::read(&db).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("jit-secret-at-idp"), "the client secret is in clear in the database file");
}

/// Low: sign-in pages cannot be framed or cached and leak no referrer.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_pages_carry_the_security_headers() {
    let rig = Rig::start().await;
    let request = rig.authorization(None);
    let response = rig.browser.client.get(&request.url).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let page = rig.browser.client.get(reqwest::Url::parse(&request.url).unwrap().join(&location).unwrap()).send().await;
    let headers = page.unwrap().headers().clone();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}: {headers:?}");
    }
}

/// Low: request objects and other response modes get their errors; unknown
/// scopes are not granted; a code redeemed by another client stays good for
/// its owner; an empty or overlong sub is an IdP error, never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn low_findings_of_the_oauth_surface() {
    let mut rig = Rig::start().await;
    for (extra, error) in [
        ("request=eyJhbGciOiJub25lIn0.e30.", "request_not_supported"),
        ("request_uri=https%3A%2F%2Fevil.example%2Fr", "request_uri_not_supported"),
        ("response_mode=fragment", "invalid_request"),
        ("max_age=soon", "invalid_request"),
    ] {
        let request = rig.authorization(None);
        let response = rig.browser.client.get(format!("{}&{extra}", request.url)).send().await.unwrap();
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(query_param(&location, "error").as_deref(), Some(error), "{extra}: {location}");
    }

    // Unknown scopes are not echoed; the code is refused to another client
    // without being used up.
    let other = rig
        .admin
        .post("/applications", json!({"name": "other", "redirect_uris": [rig.redirect_uri], "public": false}))
        .await;
    rig.new_browser();
    let mut request = rig.authorization(Some("corp"));
    request.url = request.url.replace("scope=openid+profile+email", "scope=openid+email+admin");
    let trail = rig.walk(&request.url).await;
    let code = rig.code(&request, &trail);
    let response = reqwest::Client::new()
        .post(format!("{}/oauth2/token", rig.jit_url))
        .basic_auth(other["client_id"].as_str().unwrap(), other["client_secret"].as_str())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", rig.redirect_uri.as_str()),
            ("code_verifier", request.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let (status, _, tokens) = rig.token(&code, &request.verifier, &rig.client_secret.clone()).await;
    assert_eq!(status, 200, "the owner can still redeem its code: {tokens}");
    assert_eq!(tokens["scope"], "openid email", "{tokens}");

    for sub in [String::new(), "s".repeat(256)] {
        rig.idp.set_user(sub.clone(), json!({"email": "x@corp.test", "email_verified": true}));
        let page = sign_in_through(&mut rig, "corp").await.unwrap_err();
        assert_eq!(page.status, 502, "sub of {} characters: {}", sub.len(), page.body);
    }
}
