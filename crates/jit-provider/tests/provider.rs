//! The provider's rules in process: a real SQLite store, a moving clock, no
//! HTTP. Over HTTP against openid-client, `crates/jit/tests` prove the wiring.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use jit_domain::application::{Application, RedirectUri};
use jit_domain::connection::ConnectionName;
use jit_domain::flow::{SignInFlow, Step, StepOption};
use jit_domain::ports::{ApplicationStore, ExpiringRecordStore};
use jit_domain::schema::AttributeSchema;
use jit_domain::user::Subject;
use jit_primitives::clock::{Clock, FixedClock};
use jit_primitives::secret::stored_form;
use jit_provider::{
    AuthorizationContext, AuthorizationGrant, AuthorizeError, ClientCredentials, CodeExchange, ErrorCode, KeyRing,
    Provider, ProviderSettings, SignedInSubject, issue_code,
};
use jit_store::{SealingKeys, Store};
use time::{Duration, OffsetDateTime};

const REDIRECT: &str = "https://app.test/cb";
const SECRET: &str = "app-secret-app-secret-app-secret";

struct Bench {
    provider: Provider<Store>,
    store: Arc<Store>,
    clock: FixedClock,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
        let store = Arc::new(
            Store::connect(&url, AttributeSchema::standard(), SealingKeys::generate().unwrap()).await.unwrap(),
        );
        store.migrate().await.unwrap();
        let clock = FixedClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        for (client_id, secret) in [("app", Some(SECRET)), ("other", Some("other-secret-other-secret-other-s"))] {
            let application = Application {
                name: client_id.into(),
                client_id: client_id.into(),
                client_secret_hash: secret.map(stored_form),
                redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
                public: false,
                sign_in: SignInFlow { steps: vec![Step { options: vec![StepOption::Local] }], script: None },
                scopes: Vec::new(),
            };
            store.create_application(&application, clock.now()).await.unwrap();
        }
        let keys = Arc::new(KeyRing::open(store.clone(), clock.now()).await.unwrap());
        let provider = Provider::new(store.clone(), keys, ProviderSettings::new("https://jit.test"));
        Self { provider, store, clock, _dir: dir }
    }

    /// A code of `app` for a pass-through user (no local account needed).
    async fn code(&self) -> String {
        let grant = AuthorizationGrant {
            authorization: AuthorizationContext {
                client_id: "app".into(),
                redirect_uri: REDIRECT.into(),
                state: None,
                nonce: Some("n-0S6_WzA2Mj".into()),
                scope: "openid".into(),
                code_challenge: None,
                request_params: Default::default(),
            },
            subject: SignedInSubject::PassThrough {
                connection: ConnectionName::new("corp").unwrap(),
                subject: Subject::new("alice").unwrap(),
                attributes: Default::default(),
                email_verified: false,
            },
            auth_time: self.clock.now(),
            methods: vec!["corp".into()],
        };
        issue_code(&*self.store, &grant, self.clock.now() + Duration::seconds(60)).await.unwrap()
    }

    async fn exchange(
        &self,
        client: &str,
        secret: &str,
        code: &str,
    ) -> Result<jit_provider::TokenResponse, jit_provider::OAuthError> {
        let client = ClientCredentials { client_id: Some(client.into()), secret: Some(secret.into()) };
        let exchange = CodeExchange {
            grant_type: Some("authorization_code".into()),
            code: Some(code.into()),
            redirect_uri: Some(REDIRECT.into()),
            code_verifier: None,
        };
        self.provider.exchange_code(&client, &exchange, self.clock.now()).await
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_and_its_reuse_revokes_the_access_token() {
    let bench = Bench::new().await;
    let code = bench.code().await;
    let tokens = bench.exchange("app", SECRET, &code).await.unwrap();
    let claims = bench.provider.userinfo(&tokens.access_token, bench.clock.now()).await.unwrap();
    assert!(claims.contains_key("sub"), "{claims:?}");

    let again = bench.exchange("app", SECRET, &code).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::InvalidGrant);
    let revoked = bench.provider.userinfo(&tokens.access_token, bench.clock.now()).await.unwrap_err();
    assert_eq!(revoked.code, ErrorCode::InvalidToken, "the reused code's access token is revoked");
}

#[tokio::test]
async fn another_client_presenting_a_code_finds_nothing_and_leaves_it_to_its_owner() {
    let bench = Bench::new().await;
    let code = bench.code().await;
    let stolen = bench.exchange("other", "other-secret-other-secret-other-s", &code).await.unwrap_err();
    assert_eq!(stolen.code, ErrorCode::InvalidGrant);
    let wrong_secret = bench.exchange("app", "wrong", &code).await.unwrap_err();
    assert_eq!(wrong_secret.code, ErrorCode::InvalidClient);
    assert!(bench.exchange("app", SECRET, &code).await.is_ok(), "the owner still gets its tokens");
}

#[tokio::test]
async fn a_code_gets_one_try_and_expires() {
    let bench = Bench::new().await;
    let code = bench.code().await;
    let client = ClientCredentials { client_id: Some("app".into()), secret: Some(SECRET.into()) };
    let wrong_uri = CodeExchange {
        grant_type: Some("authorization_code".into()),
        code: Some(code.clone()),
        redirect_uri: Some("https://evil.test/cb".into()),
        code_verifier: None,
    };
    let refused = bench.provider.exchange_code(&client, &wrong_uri, bench.clock.now()).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidGrant);
    assert!(bench.exchange("app", SECRET, &code).await.is_err(), "a failed exchange used the code up");

    let late = bench.code().await;
    bench.clock.advance(Duration::seconds(60));
    assert_eq!(bench.exchange("app", SECRET, &late).await.unwrap_err().code, ErrorCode::InvalidGrant);
    // The janitor's purge takes expired grants of every kind.
    assert_eq!(bench.store.purge_expired_records(bench.clock.now()).await.unwrap(), 1, "the late code's grant");
    // The exchanged one is kept as long as an access token it gave could
    // live, then purged too.
    bench.clock.advance(Duration::minutes(10));
    assert_eq!(bench.store.purge_expired_records(bench.clock.now()).await.unwrap(), 1, "the exchanged grant");
}

#[tokio::test]
async fn an_access_token_works_until_it_expires() {
    let bench = Bench::new().await;
    let tokens = bench.exchange("app", SECRET, &bench.code().await).await.unwrap();
    bench.clock.advance(Duration::minutes(10) - Duration::seconds(1));
    assert!(bench.provider.userinfo(&tokens.access_token, bench.clock.now()).await.is_ok());
    bench.clock.advance(Duration::seconds(1));
    let expired = bench.provider.userinfo(&tokens.access_token, bench.clock.now()).await.unwrap_err();
    assert_eq!(expired.code, ErrorCode::InvalidToken);
}

#[tokio::test]
async fn authorization_requests_are_checked_client_and_redirect_uri_first() {
    let bench = Bench::new().await;
    let page = |result: Result<_, AuthorizeError>| matches!(result, Err(AuthorizeError::Page(_)));
    assert!(page(bench.provider.authorization("client_id=nobody&redirect_uri=https://app.test/cb").await));
    assert!(page(bench.provider.authorization("client_id=app&redirect_uri=https://evil.test/cb").await));
    let no_openid = bench
        .provider
        .authorization("client_id=app&redirect_uri=https://app.test/cb&response_type=code&scope=email&state=s")
        .await;
    match no_openid {
        Err(AuthorizeError::Redirect { redirect_uri, state, error }) => {
            assert_eq!(
                (redirect_uri.as_str(), state.as_deref(), error.code),
                (REDIRECT, Some("s"), ErrorCode::InvalidScope)
            );
        }
        other => panic!("expected a redirect with invalid_scope, got {other:?}"),
    }
    let ok = bench
        .provider
        .authorization(
            "client_id=app&redirect_uri=https://app.test/cb&response_type=code&scope=openid+email+admin&fidp=corp",
        )
        .await
        .unwrap();
    assert_eq!((ok.context.scope.as_str(), ok.fidp.as_deref()), ("openid email", Some("corp")));
}
