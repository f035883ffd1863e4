//! Console sessions under a moving clock (no sleeps): they end after 30
//! minutes without a request and after 8 hours however active.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jit_domain::attribute::Attributes;
use jit_domain::membership::{ADMIN_ROLE, Grant, MembershipKind};
use jit_domain::ports::{MembershipStore, NewLocalUser, UserStore};
use jit_domain::schema::AttributeSchema;
use jit_domain::user::Username;
use jit_flow::idps::{IdpRegistry, IdpSettings};
use jit_flow::{EngineSettings, SignInEngine};
use jit_primitives::clock::{Clock, FixedClock};
use jit_provider::{KeyRing, Provider, ProviderSettings};
use jit_server::console::session::{self, SESSION_IDLE, SESSION_LIFETIME};
use jit_server::{AppState, ServerSettings};
use jit_store::Store;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

const PUBLIC_URL: &str = "http://127.0.0.1:8080";

async fn state(clock: Arc<FixedClock>) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jit.sqlite").display());
    let store = Arc::new(
        Store::connect(&url, AttributeSchema::standard(), jit_store::SealingKeys::generate().unwrap()).await.unwrap(),
    );
    store.migrate().await.unwrap();
    store.prepare_secrets().await.unwrap();
    let clock: Arc<dyn Clock> = clock;
    let keys = Arc::new(KeyRing::open(store.clone(), clock.now()).await.unwrap());
    let engine = SignInEngine::new(
        store.clone(),
        IdpRegistry::new(IdpSettings::default()),
        clock.clone(),
        EngineSettings { public_url: PUBLIC_URL.to_owned(), ..EngineSettings::default() },
    );
    let state = AppState {
        store: store.clone(),
        engine: Arc::new(engine),
        provider: Arc::new(Provider::new(store, keys, ProviderSettings::new(PUBLIC_URL))),
        clock,
        settings: Arc::new(ServerSettings::new(PUBLIC_URL)),
        admin_token: Arc::new("admin-token-for-console-session-tests".to_owned()),
        admin_failures: Arc::default(),
        metrics: None,
    };
    (state, dir)
}

/// The status of `GET /console/keys` with `cookie`.
async fn status(state: &AppState, cookie: &str) -> StatusCode {
    let request = Request::get("/console/keys").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
    let response = jit_server::router(state.clone()).oneshot(request).await.unwrap();
    response.status()
}

#[tokio::test]
async fn a_console_session_ends_when_idle_and_at_its_lifetime_however_active() {
    let clock = Arc::new(FixedClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()));
    let (state, _dir) = state(clock.clone()).await;
    let now = clock.now();
    let user = NewLocalUser {
        username: Username::new("root").unwrap(),
        attributes: Attributes::new(),
        password_hash: None,
        email_verified: false,
    };
    let user = state.store.create_user(user, now).await.unwrap();
    state.store.create_collection(MembershipKind::Role, ADMIN_ROLE, "", now).await.unwrap();
    state.store.grant_membership(MembershipKind::Role, ADMIN_ROLE, user.id, &Grant::Admin, now).await.unwrap();

    // Idle: a request every 29 minutes keeps it; 31 minutes of nothing ends it.
    let cookie = session::start(&state, user.id, now).await.unwrap();
    let cookie = format!("{}={}", cookie.name(), cookie.value());
    assert_eq!(status(&state, &cookie).await, StatusCode::OK);
    for _ in 0..3 {
        clock.advance(SESSION_IDLE - Duration::minutes(1));
        assert_eq!(status(&state, &cookie).await, StatusCode::OK, "used within the idle time");
    }
    clock.advance(SESSION_IDLE + Duration::minutes(1));
    assert_eq!(status(&state, &cookie).await, StatusCode::SEE_OTHER, "idle too long: back to the sign-in page");

    // Active: a request every 20 minutes, and still over after 8 hours.
    let started = clock.now();
    let cookie = session::start(&state, user.id, started).await.unwrap();
    let cookie = format!("{}={}", cookie.name(), cookie.value());
    while clock.now() + Duration::minutes(20) < started + SESSION_LIFETIME {
        clock.advance(Duration::minutes(20));
        assert_eq!(status(&state, &cookie).await, StatusCode::OK);
    }
    clock.advance(Duration::minutes(20));
    assert_eq!(status(&state, &cookie).await, StatusCode::SEE_OTHER, "past the lifetime, however active");
}
