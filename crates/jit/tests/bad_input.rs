//! Bad input, end to end over real HTTP against `jit serve`: every way a
//! federated sign-in or an OAuth request can be wrong ends in a clear error
//! (a page for the browser, an OAuth error for the application) and writes
//! nothing — no user, no audit event.
//!
//! The external IdP is `jit_testkit::TestIdp` (in-process, with one
//! misbehaviour knob per fault); the application is played by the test
//! itself with hand-made authorization and token requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use jit_testkit::Misbehaviour;
use serde_json::{Value, json};
use support::*;

/// The phrase of the "no sign-in in progress" page.
const UNKNOWN_STATE: &str = "does not match a sign-in in progress";

/// The values of a sign-in that no page may echo: both client secrets, the
/// application's PKCE verifier, and what the trail shows of the federated
/// leg (the IdP's code, the states, jit's nonce and PKCE challenge).
fn secrets_of(rig: &Rig, trail: &Trail, request: &AuthorizationRequest) -> Vec<String> {
    let mut secrets = vec![rig.idp.config().client_secret.clone(), rig.client_secret.clone(), request.verifier.clone()];
    if let Some(callback) = trail.visited_starting_with(&format!("{}/federation/", rig.jit_url)) {
        secrets.extend(query_param(callback, "code"));
        secrets.extend(query_param(callback, "state"));
    }
    if let Some(authorize) = trail.visited_starting_with(&rig.idp.issuer()) {
        secrets.extend(query_param(authorize, "nonce"));
        secrets.extend(query_param(authorize, "state"));
        secrets.extend(query_param(authorize, "code_challenge"));
    }
    secrets
}

async fn assert_federated_sign_in_fails(rig: &mut Rig, case: &str, status: u16, phrase: &str) {
    rig.new_browser();
    let (request, trail) = rig.federated_sign_in().await;
    let secrets = secrets_of(rig, &trail, &request);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_error_page(case, trail.page(), status, phrase, &secrets);
    rig.assert_nothing_written(case).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_id_tokens_are_refused_with_a_page_and_nothing_is_written() {
    let mut rig = Rig::start().await;
    let cases = [
        (Misbehaviour::BadSignature, "its signature is invalid"),
        (Misbehaviour::WrongIssuer, "wrong issuer"),
        (Misbehaviour::WrongAudience, "wrong audience"),
        (Misbehaviour::Expired, "outside its validity period"),
        (Misbehaviour::WrongNonce, "its nonce does not match"),
        (Misbehaviour::AlgNone, "it is not signed (alg none)"),
        (Misbehaviour::HmacWithPublicKey, "signature algorithm is not allowed"),
        (Misbehaviour::UnknownKid, "no key of the identity provider's key set matches"),
        (Misbehaviour::WrongAzp, "wrong authorized party"),
        (Misbehaviour::UserinfoDifferentSub, "token substitution"),
    ];
    for (misbehaviour, phrase) in cases {
        rig.idp.set_misbehaviour(misbehaviour);
        let case = format!("{misbehaviour:?}");
        if misbehaviour == Misbehaviour::UserinfoDifferentSub {
            let mut connection = rig.admin.get("/connections/corp").await;
            connection["oidc"]["fetch_userinfo"] = json!(true);
            rig.admin.put("/connections/corp", connection).await;
        }
        let token_requests = rig.idp.counters().token;
        assert_federated_sign_in_fails(&mut rig, &case, 502, phrase).await;
        assert_eq!(rig.idp.counters().token, token_requests + 1, "{case}: the code was exchanged once");
    }
    // The same rig signs in fine once the IdP behaves.
    rig.idp.set_misbehaviour(Misbehaviour::None);
    rig.new_browser();
    let (request, trail) = rig.federated_sign_in().await;
    rig.code(&request, &trail);
    assert_eq!(rig.users_with_email("alice@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_provider_errors_are_shown_and_nothing_is_written() {
    let mut rig = Rig::start().await;
    // The user declines at the IdP: the application asked, so it gets
    // `error=access_denied` with its state (and no code), and the sign-in
    // is over.
    rig.idp.set_misbehaviour(Misbehaviour::AuthorizeDenied);
    rig.new_browser();
    let (request, trail) = rig.federated_sign_in().await;
    let End::Stopped(url) = &trail.end else { panic!("declining did not return to the application: {:?}", trail.end) };
    let url = url::Url::parse(url).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("error").map(String::as_str), Some("access_denied"), "{url}");
    assert_eq!(query.get("state"), Some(&request.state), "{url}");
    assert!(!query.contains_key("code"), "{url}");
    assert_eq!(rig.idp.counters().token, 0, "no code, so no token request");
    rig.assert_nothing_written("access denied at the IdP").await;

    rig.idp.set_misbehaviour(Misbehaviour::TokenEndpointError);
    assert_federated_sign_in_fails(
        &mut rig,
        "token endpoint error",
        502,
        "token endpoint refused the authorization code: invalid_grant",
    )
    .await;

    // The connection's client secret is wrong: the IdP refuses the client.
    rig.idp.set_misbehaviour(Misbehaviour::None);
    let mut connection = rig.admin.get("/connections/corp").await;
    connection["oidc"]["client_secret"] = json!("a-wrong-secret-for-the-idp");
    rig.admin.put("/connections/corp", connection).await;
    rig.new_browser();
    let (request, trail) = rig.federated_sign_in().await;
    let mut secrets = secrets_of(&rig, &trail, &request);
    secrets.push("a-wrong-secret-for-the-idp".into());
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_error_page("wrong client secret at the IdP", trail.page(), 502, "invalid_client", &secrets);
    rig.assert_nothing_written("wrong client secret at the IdP").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_identity_provider_is_a_clear_page() {
    let mut rig = Rig::start().await;
    // Nothing listens on port 1 (and only root could start something there).
    let closed = "http://127.0.0.1:1".to_owned();
    let mut connection = rig.admin.get("/connections/corp").await;
    connection["oidc"]["issuer"] = json!(closed);
    // A new issuer needs the secret again: the stored one never follows it.
    connection["oidc"]["client_secret"] = json!("a secret for the new issuer");
    rig.admin.put("/connections/corp", connection).await;
    assert_federated_sign_in_fails(&mut rig, "IdP down", 502, "could not reach the identity provider").await;
    let page = rig.walk(&rig.authorization(Some("corp")).url).await;
    assert!(page.page().body.contains(&closed), "the page names the IdP it tried: {}", page.page().body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_identity_provider_times_out_with_a_clear_page() {
    let mut rig = Rig::start_with_env(&[("JIT_IDP_TIMEOUT", "2")]).await;
    // Slow from the start: discovery times out before the browser leaves.
    rig.idp.set_misbehaviour(Misbehaviour::Slow(Duration::from_secs(4)));
    assert_federated_sign_in_fails(&mut rig, "slow discovery", 502, "did not answer within 2s").await;

    // Slow only after the redirect (discovery is cached): the token request
    // times out at the callback.
    rig.idp.set_misbehaviour(Misbehaviour::None);
    rig.new_browser();
    let request = rig.authorization(Some("corp"));
    let at_idp = rig.walk_to_idp(&request.url).await;
    rig.idp.set_misbehaviour(Misbehaviour::Slow(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let trail = rig.walk(&at_idp).await;
    let secrets = secrets_of(&rig, &trail, &request);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_error_page("slow token endpoint", trail.page(), 502, "did not answer within 2s", &secrets);
    assert!(trail.page().body.contains("/token"), "the page names the endpoint: {}", trail.page().body);
    // 3 s at the IdP's authorization endpoint, then at most 2 s more.
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    rig.assert_nothing_written("slow token endpoint").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_forged_state_is_refused_and_the_real_answer_still_works() {
    let rig = Rig::start().await;
    let request = rig.authorization(Some("corp"));
    let at_idp = rig.walk_to_idp(&request.url).await;
    let callback = format!("{}/federation/corp/callback", rig.jit_url);
    let forged = [
        ("missing state", format!("{callback}?code=forged-code")),
        ("forged state", format!("{callback}?code=forged-code&state=forged-state")),
        ("empty state", format!("{callback}?code=forged-code&state=")),
        ("an IdP error without state", format!("{callback}?error=access_denied&error_description=forged-code")),
    ];
    for (case, url) in &forged {
        let trail = rig.walk(url).await;
        assert_error_page(case, trail.page(), 400, UNKNOWN_STATE, &["forged-code", "forged-state"]);
    }
    assert_eq!(rig.idp.counters().token, 0, "no forged code was sent to the IdP");
    rig.assert_nothing_written("forged callbacks").await;

    // The browser's real sign-in was not disturbed.
    let trail = rig.walk(&at_idp).await;
    rig.code(&request, &trail);
    assert_eq!(rig.users_with_email("alice@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_callback_is_refused_and_writes_nothing_more() {
    let mut rig = Rig::start().await;
    let (request, trail) = rig.federated_sign_in().await;
    rig.code(&request, &trail);
    let callback =
        trail.visited_starting_with(&format!("{}/federation/corp/callback", rig.jit_url)).unwrap().to_owned();
    let users = rig.users_with_email("alice@example.com").await;
    assert_eq!(users.len(), 1);
    let audit = rig.audit().await;
    assert_eq!(audit.len(), 1, "{audit:?}");

    // The same browser replays the exact callback URL, then another browser.
    let replayed = rig.walk(&callback).await;
    let secrets = secrets_of(&rig, &trail, &request);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_error_page("replay in the same browser", replayed.page(), 400, UNKNOWN_STATE, &secrets);
    rig.new_browser();
    let replayed = rig.walk(&callback).await;
    assert_error_page("replay in another browser", replayed.page(), 400, UNKNOWN_STATE, &secrets);

    assert_eq!(rig.idp.counters().token, 1, "a replayed callback never reaches the IdP");
    assert_eq!(rig.users_with_email("alice@example.com").await, users);
    assert_eq!(rig.audit().await, audit);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_in_another_browser_is_refused() {
    let mut rig = Rig::start().await;
    let request = rig.authorization(Some("corp"));
    let at_idp = rig.walk_to_idp(&request.url).await;
    // The victim's browser is sent the attacker's IdP answer (login CSRF):
    // it has no sign-in with that state.
    rig.new_browser();
    let trail = rig.walk(&at_idp).await;
    let secrets = secrets_of(&rig, &trail, &request);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_error_page("callback in another browser", trail.page(), 400, UNKNOWN_STATE, &secrets);
    assert_eq!(rig.idp.counters().token, 0, "the code was never exchanged");
    rig.assert_nothing_written("callback in another browser").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_authorization_code_is_refused_and_revokes_its_tokens() {
    let rig = Rig::start().await;
    let (request, trail) = rig.federated_sign_in().await;
    let code = rig.code(&request, &trail);
    let (status, _, tokens) = rig.token(&code, &request.verifier, &rig.client_secret).await;
    assert_eq!(status, 200, "{tokens}");
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(rig.userinfo(access_token).await.0, 200);

    let (status, _, body) = rig.token(&code, &request.verifier, &rig.client_secret).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(!body.to_string().contains(&code), "the error echoes the code: {body}");
    // RFC 6749 §4.1.2: the tokens issued from a code used twice are revoked.
    let (status, body) = rig.userinfo(access_token).await;
    assert_eq!(status, 401, "the access token still works after its code was reused: {body}");
    assert_eq!(rig.users_with_email("alice@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_requests_with_a_wrong_secret_or_verifier_are_refused() {
    let rig = Rig::start().await;
    let (request, trail) = rig.federated_sign_in().await;
    let code = rig.code(&request, &trail);

    let (status, headers, body) = rig.token(&code, &request.verifier, "not-the-client-secret").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert!(headers.contains_key("www-authenticate"));
    assert!(!body.to_string().contains("not-the-client-secret"), "{body}");
    // client_secret_post with a wrong secret too.
    let response = reqwest::Client::new()
        .post(format!("{}/oauth2/token", rig.jit_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", rig.redirect_uri.as_str()),
            ("code_verifier", request.verifier.as_str()),
            ("client_id", rig.client_id.as_str()),
            ("client_secret", "not-the-client-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // An unauthenticated request does not burn the code.
    let (status, _, body) = rig.token(&code, &request.verifier, &rig.client_secret).await;
    assert_eq!(status, 200, "{body}");

    // PKCE: a verifier that does not match the challenge.
    let (request, trail) = rig.federated_sign_in().await;
    let code = rig.code(&request, &trail);
    let wrong_verifier = format!("{:x<64}", "another-verifier");
    let (status, _, body) = rig.token(&code, &wrong_verifier, &rig.client_secret).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("PKCE"), "{body}");
    assert!(!body.to_string().contains(&wrong_verifier), "{body}");
    // The code was spent on the failed attempt.
    let (status, _, body) = rig.token(&code, &request.verifier, &rig.client_secret).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")), "{body}");

    // A redirect_uri that is not the authorization request's.
    let (request, trail) = rig.federated_sign_in().await;
    let code = rig.code(&request, &trail);
    let response = reqwest::Client::new()
        .post(format!("{}/oauth2/token", rig.jit_url))
        .basic_auth(&rig.client_id, Some(&rig.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", request.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unregistered_redirect_uri_is_an_error_page_never_a_redirect() {
    let rig = Rig::start().await;
    let request = rig.authorization(Some("corp"));
    let registered = url::form_urlencoded::byte_serialize(rig.redirect_uri.as_bytes()).collect::<String>();
    let cases = [
        ("another host", "http://evil.example/callback".to_owned()),
        ("a longer path", format!("{}/more", rig.redirect_uri)),
        ("an extra query", format!("{}?next=http://evil.example", rig.redirect_uri)),
        ("another port", rig.redirect_uri.replace(":9/", ":10/")),
    ];
    for (case, uri) in cases {
        let encoded = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>();
        let url = request.url.replace(&format!("redirect_uri={registered}"), &format!("redirect_uri={encoded}"));
        assert_ne!(url, request.url);
        let response = rig.browser.client.get(&url).send().await.unwrap();
        assert!(response.headers().get("location").is_none(), "{case}: redirected to {:?}", response.headers());
        let page = Page { url, status: response.status().as_u16(), body: response.text().await.unwrap() };
        assert_error_page(case, &page, 400, "redirect_uri is not registered", &[]);
    }
    // Also an unknown client: a page, not a redirect.
    let url = request.url.replace(&format!("client_id={}", rig.client_id), "client_id=unknown-client");
    let response = rig.browser.client.get(&url).send().await.unwrap();
    assert!(response.headers().get("location").is_none());
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(rig.idp.counters().authorize, 0, "nothing reached the IdP");
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_posts_to_the_sign_in_forms_are_forbidden() {
    let rig = Rig::start().await;
    rig.admin.post("/users", json!({"username": "bob", "password": "correct horse", "attributes": {}})).await;
    let request = rig.authorization(None);
    let page = rig.walk(&request.url).await;
    let page = page.page();
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = hidden_value(&page.body, "csrf").unwrap();
    let password_url = format!("{}/signin/password", rig.jit_url);
    let form = [("csrf", csrf.as_str()), ("username", "bob"), ("password", "correct horse")];

    let attempts: [(&str, &str, &str); 3] = [
        ("Sec-Fetch-Site: cross-site", "sec-fetch-site", "cross-site"),
        ("Sec-Fetch-Site: same-site", "sec-fetch-site", "same-site"),
        ("foreign Origin", "origin", "http://evil.example"),
    ];
    for (case, header, value) in attempts {
        let response = rig.browser.client.post(&password_url).header(header, value).form(&form).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{case}");
        assert!(response.headers().get("location").is_none(), "{case}");
        let response = rig
            .browser
            .client
            .post(format!("{}/signin/federated", rig.jit_url))
            .header(header, value)
            .form(&[("csrf", csrf.as_str()), ("connection", "corp")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "{case} (federated form)");
    }
    assert_eq!(rig.idp.counters().authorize, 0);

    // A same-site-looking request without the sign-in's token.
    let response = rig
        .browser
        .client
        .post(&password_url)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", "not-the-token"), ("username", "bob"), ("password", "correct horse")])
        .send()
        .await
        .unwrap();
    let page =
        Page { url: password_url.clone(), status: response.status().as_u16(), body: response.text().await.unwrap() };
    assert_error_page("wrong CSRF token", &page, 403, "does not belong to this sign-in", &["correct horse"]);

    // The same sign-in still completes from the page itself.
    let response = rig
        .browser
        .client
        .post(&password_url)
        .header("sec-fetch-site", "same-origin")
        .header("origin", rig.jit_url.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303, "{:?}", response.headers());
    let back = response.headers()["location"].to_str().unwrap();
    assert!(back.starts_with(&rig.redirect_uri), "{back}");
}
