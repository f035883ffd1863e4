//! The relying party against the in-process test provider, over real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use jit_idp::{
    CallbackParams, ClientAuthMethod, IdTokenError, IdpError, OidcRelyingParty, PendingAuthorization,
    RelyingPartyConfig, VerifiedLogin,
};
use jit_testkit::{ClientAuth, KeyAlgorithm, Misbehaviour, TestIdp, TestIdpConfig};
use serde_json::json;

const REDIRECT_URI: &str = "http://127.0.0.1:9/federation/corp/callback";

struct Setup {
    idp: TestIdp,
    rp: OidcRelyingParty,
}

fn rp_config(idp: &TestIdp) -> RelyingPartyConfig {
    let idp_config = idp.config();
    let mut config = RelyingPartyConfig::new(idp.issuer(), &idp_config.client_id, &idp_config.redirect_uri);
    config.client_secret = Some(idp_config.client_secret.clone());
    config.timeout = Duration::from_secs(5);
    config
}

async fn setup_with(idp_config: TestIdpConfig, tweak: impl FnOnce(&mut RelyingPartyConfig)) -> Setup {
    let idp = TestIdp::start(TestIdpConfig { redirect_uri: REDIRECT_URI.into(), ..idp_config }).await.unwrap();
    let mut config = rp_config(&idp);
    tweak(&mut config);
    let rp = OidcRelyingParty::new(config).unwrap();
    Setup { idp, rp }
}

async fn setup() -> Setup {
    setup_with(TestIdpConfig::default(), |_| {}).await
}

/// `begin`, then what a browser does: GET the authorization URL without following the
/// redirect, and read the callback parameters from `Location`.
async fn authorize(rp: &OidcRelyingParty) -> (CallbackParams, PendingAuthorization) {
    let start = rp.begin(&[]).await.unwrap();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = browser.get(&start.url).send().await.unwrap();
    assert!(response.status().is_redirection(), "authorize answered {}", response.status());
    let location = response.headers()[reqwest::header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT_URI), "redirected to {location}");
    let query: HashMap<String, String> = reqwest::Url::parse(location).unwrap().query_pairs().into_owned().collect();
    let callback = CallbackParams {
        code: query.get("code").cloned(),
        state: query.get("state").cloned(),
        error: query.get("error").cloned(),
        error_description: query.get("error_description").cloned(),
        iss: query.get("iss").cloned(),
    };
    (callback, start.pending)
}

async fn login(setup: &Setup) -> Result<VerifiedLogin, IdpError> {
    let (callback, pending) = authorize(&setup.rp).await;
    setup.rp.finish(&callback, &pending, SystemTime::now()).await
}

/// One login against a provider misbehaving in one way.
async fn login_when(misbehaviour: Misbehaviour) -> Result<VerifiedLogin, IdpError> {
    let setup = setup().await;
    setup.idp.set_misbehaviour(misbehaviour);
    login(&setup).await
}

fn id_token_error(result: Result<VerifiedLogin, IdpError>) -> IdTokenError {
    match result {
        Err(IdpError::InvalidIdToken(e)) => e,
        other => panic!("expected an invalid ID token, got {other:?}"),
    }
}

#[tokio::test]
async fn happy_login_yields_subject_and_claims() {
    let setup = setup().await;
    setup.idp.set_user(
        "alice-123",
        json!({ "email": "Alice@Example.com", "email_verified": true, "name": "Alice", "groups": ["admins", "staff"] }),
    );

    let start = setup.rp.begin(&[("login_hint", "alice"), ("prompt", "login")]).await.unwrap();
    let url = reqwest::Url::parse(&start.url).unwrap();
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/authorize");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["state"], start.pending.state);
    assert_eq!(query["nonce"], start.pending.nonce);
    assert_eq!(query["login_hint"], "alice");
    assert_eq!(query["prompt"], "login");
    let scopes: Vec<&str> = query["scope"].split(' ').collect();
    assert!(scopes.contains(&"openid") && scopes.contains(&"email"), "scope = {scopes:?}");

    let login = login(&setup).await.unwrap();
    assert_eq!(login.subject, "alice-123");
    assert_eq!(login.issuer, setup.idp.issuer());
    assert_eq!(login.claims["email"], "Alice@Example.com");
    assert_eq!(login.claims["email_verified"], true);
    assert_eq!(login.claims["groups"], json!(["admins", "staff"]));
    assert_eq!(login.claims["sub"], "alice-123");
    assert!(login.claims.contains_key("at_hash"), "ID token claims are kept: {:?}", login.claims);
    let counters = setup.idp.counters();
    assert_eq!((counters.discovery, counters.jwks, counters.token, counters.userinfo), (1, 1, 1, 1));
}

#[tokio::test]
async fn rs256_keys_and_client_secret_post_work() {
    let setup = setup_with(
        TestIdpConfig {
            algorithm: KeyAlgorithm::Rs256,
            auth_method: ClientAuth::ClientSecretPost,
            ..Default::default()
        },
        |config| config.auth_method = ClientAuthMethod::ClientSecretPost,
    )
    .await;
    assert_eq!(login(&setup).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn wrong_client_authentication_method_is_a_token_endpoint_error() {
    // The provider wants client_secret_post, the relying party sends client_secret_basic.
    let setup =
        setup_with(TestIdpConfig { auth_method: ClientAuth::ClientSecretPost, ..Default::default() }, |_| {}).await;
    match login(&setup).await {
        Err(IdpError::TokenEndpoint { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn userinfo_is_skipped_when_not_configured() {
    let setup = setup_with(TestIdpConfig::default(), |config| config.fetch_userinfo = false).await;
    login(&setup).await.unwrap();
    assert_eq!(setup.idp.counters().userinfo, 0);
}

#[tokio::test]
async fn metadata_is_cached_for_its_ttl() {
    let cached = setup().await;
    login(&cached).await.unwrap();
    login(&cached).await.unwrap();
    assert_eq!((cached.idp.counters().discovery, cached.idp.counters().jwks), (1, 1));

    let uncached = setup_with(TestIdpConfig::default(), |config| config.metadata_ttl = Duration::ZERO).await;
    login(&uncached).await.unwrap();
    login(&uncached).await.unwrap();
    // One discovery per begin and per finish.
    assert_eq!(uncached.idp.counters().discovery, 4);
}

#[tokio::test]
async fn forged_state_is_refused_before_the_code_is_used() {
    let setup = setup().await;
    let (mut callback, pending) = authorize(&setup.rp).await;
    callback.state = Some("forged".into());
    let result = setup.rp.finish(&callback, &pending, SystemTime::now()).await;
    assert!(matches!(result, Err(IdpError::StateMismatch)), "{result:?}");
    assert_eq!(setup.idp.counters().token, 0);
}

#[tokio::test]
async fn missing_state_is_refused() {
    let setup = setup().await;
    let (mut callback, pending) = authorize(&setup.rp).await;
    callback.state = None;
    let result = setup.rp.finish(&callback, &pending, SystemTime::now()).await;
    assert!(matches!(result, Err(IdpError::MissingParameter("state"))), "{result:?}");
}

#[tokio::test]
async fn missing_code_is_refused() {
    let setup = setup().await;
    let (mut callback, pending) = authorize(&setup.rp).await;
    callback.code = None;
    let result = setup.rp.finish(&callback, &pending, SystemTime::now()).await;
    assert!(matches!(result, Err(IdpError::MissingParameter("code"))), "{result:?}");
}

#[tokio::test]
async fn callback_from_another_issuer_is_refused() {
    let setup = setup().await;
    let (mut callback, pending) = authorize(&setup.rp).await;
    assert_eq!(callback.iss.as_deref(), Some(setup.idp.issuer().as_str()));
    callback.iss = Some("https://evil.example".into());
    let result = setup.rp.finish(&callback, &pending, SystemTime::now()).await;
    assert!(matches!(result, Err(IdpError::IssuerMismatch { .. })), "{result:?}");
}

#[tokio::test]
async fn idp_error_response_is_idp_refused() {
    match login_when(Misbehaviour::AuthorizeDenied).await {
        Err(IdpError::IdpRefused { error, description }) => {
            assert_eq!(error, "access_denied");
            assert_eq!(description.as_deref(), Some("the user declined the sign-in"));
        }
        other => panic!("expected IdpRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    assert!(matches!(id_token_error(login_when(Misbehaviour::WrongIssuer).await), IdTokenError::WrongIssuer(_)));
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    assert!(matches!(id_token_error(login_when(Misbehaviour::WrongAudience).await), IdTokenError::WrongAudience(_)));
}

#[tokio::test]
async fn expired_token_is_rejected() {
    assert!(matches!(id_token_error(login_when(Misbehaviour::Expired).await), IdTokenError::Expired(_)));
}

#[tokio::test]
async fn clock_is_the_now_parameter_with_a_minute_of_leeway() {
    // The provider's tokens live 300 s.
    let setup = setup().await;
    let (callback, pending) = authorize(&setup.rp).await;
    let within_leeway = SystemTime::now() + Duration::from_secs(330);
    setup.rp.finish(&callback, &pending, within_leeway).await.unwrap();

    let (callback, pending) = authorize(&setup.rp).await;
    let after_leeway = SystemTime::now() + Duration::from_secs(420);
    let result = setup.rp.finish(&callback, &pending, after_leeway).await;
    assert!(matches!(id_token_error(result), IdTokenError::Expired(_)));

    // Issued two minutes after "now": more skew than allowed.
    let (callback, pending) = authorize(&setup.rp).await;
    let before_issue = SystemTime::now() - Duration::from_secs(120);
    let result = setup.rp.finish(&callback, &pending, before_issue).await;
    assert!(matches!(id_token_error(result), IdTokenError::Expired(m) if m.contains("future")));
}

#[tokio::test]
async fn wrong_nonce_is_rejected() {
    assert!(matches!(id_token_error(login_when(Misbehaviour::WrongNonce).await), IdTokenError::WrongNonce(_)));
}

#[tokio::test]
async fn bad_signature_is_rejected() {
    assert!(matches!(id_token_error(login_when(Misbehaviour::BadSignature).await), IdTokenError::BadSignature(_)));
}

#[tokio::test]
async fn bad_rs256_signature_is_rejected() {
    // RS256 is checked by aws-lc-rs (`jit_idp::jwk`), like ES256.
    let setup = setup_with(TestIdpConfig { algorithm: KeyAlgorithm::Rs256, ..Default::default() }, |_| {}).await;
    setup.idp.set_misbehaviour(Misbehaviour::BadSignature);
    assert!(matches!(id_token_error(login(&setup).await), IdTokenError::BadSignature(_)));
}

#[tokio::test]
async fn unsigned_token_is_rejected() {
    assert_eq!(id_token_error(login_when(Misbehaviour::AlgNone).await), IdTokenError::Unsigned);
}

#[tokio::test]
async fn unsigned_token_is_rejected_even_if_none_is_configured() {
    let idp = TestIdp::start(TestIdpConfig::default()).await.unwrap();
    let mut config = rp_config(&idp);
    config.allowed_algorithms.push("none".into());
    assert!(matches!(OidcRelyingParty::new(config), Err(IdpError::Config(_))));
}

#[tokio::test]
async fn hmac_keyed_with_the_public_key_is_rejected() {
    let result = login_when(Misbehaviour::HmacWithPublicKey).await;
    assert!(matches!(id_token_error(result), IdTokenError::DisallowedAlgorithm(_)));

    // Even with HS256 allowed, only the client secret is an HMAC key.
    let setup = setup_with(TestIdpConfig::default(), |config| config.allowed_algorithms.push("HS256".into())).await;
    setup.idp.set_misbehaviour(Misbehaviour::HmacWithPublicKey);
    assert!(matches!(id_token_error(login(&setup).await), IdTokenError::BadSignature(_)));
}

#[tokio::test]
async fn multiple_audiences_need_azp_naming_us() {
    let result = login_when(Misbehaviour::MultipleAudiencesWithoutAzp).await;
    assert!(matches!(id_token_error(result), IdTokenError::WrongAuthorizedParty(_)));

    let login = login_when(Misbehaviour::MultipleAudiencesWithAzp).await.unwrap();
    assert_eq!(login.claims["aud"], json!(["jit-test-client", "another-client"]));

    let result = login_when(Misbehaviour::WrongAzp).await;
    assert!(matches!(id_token_error(result), IdTokenError::WrongAuthorizedParty(m) if m.contains("another-client")));
}

#[tokio::test]
async fn access_token_hash_must_match() {
    assert_eq!(id_token_error(login_when(Misbehaviour::WrongAccessTokenHash).await), IdTokenError::AccessTokenHash);
}

#[tokio::test]
async fn userinfo_for_another_subject_is_refused() {
    match login_when(Misbehaviour::UserinfoDifferentSub).await {
        Err(IdpError::UserinfoSubjectMismatch { id_token, userinfo }) => {
            assert_eq!((id_token.as_str(), userinfo.as_str()), ("alice", "mallory"));
        }
        other => panic!("expected UserinfoSubjectMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn token_endpoint_error_is_reported() {
    match login_when(Misbehaviour::TokenEndpointError).await {
        Err(IdpError::TokenEndpoint { error, description }) => {
            assert_eq!(error, "invalid_grant");
            assert_eq!(description.as_deref(), Some("the authorization code has expired"));
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
}

#[tokio::test]
async fn authorization_code_is_single_use() {
    let setup = setup().await;
    let (callback, pending) = authorize(&setup.rp).await;
    setup.rp.finish(&callback, &pending, SystemTime::now()).await.unwrap();
    let replay = setup.rp.finish(&callback, &pending, SystemTime::now()).await;
    assert!(matches!(replay, Err(IdpError::TokenEndpoint { ref error, .. }) if error == "invalid_grant"), "{replay:?}");
}

#[tokio::test]
async fn slow_idp_times_out_naming_the_url() {
    let setup = setup_with(TestIdpConfig::default(), |config| config.timeout = Duration::from_millis(300)).await;
    let (callback, pending) = authorize(&setup.rp).await;
    setup.idp.set_misbehaviour(Misbehaviour::Slow(Duration::from_secs(2)));

    let started = Instant::now();
    let result = setup.rp.finish(&callback, &pending, SystemTime::now()).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    let Err(error @ IdpError::Timeout { .. }) = result else { panic!("expected a timeout, got {result:?}") };
    let message = error.to_string();
    assert!(message.contains(&format!("{}/token", setup.idp.issuer())), "{message}");
    assert!(!message.contains(&setup.idp.config().client_secret), "{message}");

    // Discovery too.
    let fresh = OidcRelyingParty::new(setup.rp.config().clone()).unwrap();
    let result = fresh.begin(&[]).await;
    let Err(IdpError::Timeout { url, .. }) = result else { panic!("expected a timeout, got {result:?}") };
    assert!(url.ends_with("/.well-known/openid-configuration"), "{url}");
}

#[tokio::test]
async fn unknown_kid_refetches_the_jwks_once_and_succeeds() {
    let setup = setup().await;
    setup.idp.set_misbehaviour(Misbehaviour::UnknownKidThenRotate);
    let old_kid = setup.idp.current_kid();
    let (callback, pending) = authorize(&setup.rp).await;
    assert_eq!(setup.idp.counters().jwks, 1);

    let verified = setup.rp.finish(&callback, &pending, SystemTime::now()).await.unwrap();
    assert_eq!(verified.subject, "alice");
    assert_ne!(setup.idp.current_kid(), old_kid, "the provider rotated");
    assert_eq!(setup.idp.counters().jwks, 2);

    // The refetched key set is cached: the next login needs no fetch.
    login(&setup).await.unwrap();
    assert_eq!(setup.idp.counters().jwks, 2);
}

#[tokio::test]
async fn unknown_kid_is_refetched_only_once_then_rejected() {
    let setup = setup().await;
    setup.idp.set_misbehaviour(Misbehaviour::UnknownKid);
    let result = login(&setup).await;
    assert_eq!(id_token_error(result), IdTokenError::UnknownKey { kid: Some("never-published".into()) });
    assert_eq!(setup.idp.counters().jwks, 2);
}

#[tokio::test]
async fn finish_is_send_so_axum_handlers_can_await_it() {
    fn assert_send<T: Send>(_: &T) {}
    let setup = setup().await;
    let (callback, pending) = authorize(&setup.rp).await;
    let future = setup.rp.finish(&callback, &pending, SystemTime::now());
    assert_send(&future);
    assert_send(&setup.rp.begin(&[]));
    future.await.unwrap();
}
