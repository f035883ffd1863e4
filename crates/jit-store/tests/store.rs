//! The store suite. Each test gets a fresh database on the backend named by
//! `JIT_STORE_TEST_URL` (a PostgreSQL or MySQL/MariaDB server URL whose
//! database is used only to create the per-test ones), or a temporary SQLite
//! file when it is unset. `cargo xtask ci` runs it on all three.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use jit_domain::mfa::TotpSecret;
use jit_domain::ports::*;
use jit_domain::prelude::*;
use jit_domain::schema::USERNAME;
use jit_store::{SealingKeys, Store};
use jit_testkit::scratch::ScratchDatabase;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------
// Harness

struct TestDb {
    store: Store,
    url: String,
    key: String,
    scratch: ScratchDatabase,
}

impl TestDb {
    async fn new() -> Self {
        Self::with_schema(schema()).await
    }

    async fn with_schema(schema: AttributeSchema) -> Self {
        let scratch = ScratchDatabase::for_tests().await;
        let url = scratch.url.clone();
        let key = SealingKeys::generate_encoded().unwrap();
        let store = Store::connect(&url, schema, SealingKeys::from_encoded(&[&key]).unwrap()).await.unwrap();
        store.migrate().await.unwrap();
        store.prepare_secrets().await.unwrap();
        Self { store, url, key, scratch }
    }

    async fn finish(self) {
        let Self { store, scratch, .. } = self;
        store.database().clone().close().await.unwrap();
        scratch.remove().await.unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        let db = self.store.database();
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}

fn schema() -> AttributeSchema {
    AttributeSchema::standard()
        .declare(AttributeDefinition {
            name: AttributeName::new("employee_id").unwrap(),
            unique: true,
            multi_valued: false,
            normalization: Normalization::Exact,
            description: String::new(),
            sensitive: false,
        })
        .unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn attrs(value: serde_json::Value) -> Attributes {
    serde_json::from_value(value).unwrap()
}

fn connection(name: &str, jit: JitPolicy) -> Connection {
    Connection {
        name: ConnectionName::new(name).unwrap(),
        display_name: format!("{name} IdP"),
        protocol: Protocol::Oidc,
        oidc: OidcSettings {
            issuer: format!("https://{name}.example"),
            client_id: "jit".into(),
            client_secret: Some("s3cret".into()),
            scopes: vec!["openid".into(), "email".into()],
            ..OidcSettings::default()
        },
        claim_mappings: Default::default(),
        jit,
        claim_filters: Vec::new(),
        groups: None,
        roles: None,
    }
}

/// Who signed in, as if the IdP sent claims named like the attributes
/// (what linking rules look up).
fn identity(connection: &str, subject: &str, attributes: serde_json::Value) -> FederatedIdentity {
    let attributes = attrs(attributes);
    let claims = attributes
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.single()?.to_owned())))
        .collect();
    FederatedIdentity {
        connection: ConnectionName::new(connection).unwrap(),
        subject: Subject::new(subject).unwrap(),
        attributes,
        email_verified: true,
        claims,
        filtered_out: None,
        memberships: Vec::new(),
    }
}

async fn with_connection(db: &TestDb, name: &str, jit: JitPolicy) -> Connection {
    let connection = connection(name, jit);
    db.store.create_connection(&connection, now()).await.unwrap();
    connection
}

async fn sign_in(db: &TestDb, connection: &Connection, identity: &FederatedIdentity) -> ProvisioningOutcome {
    provision(&db.store, &connection.jit, &db.store.schema().await.unwrap(), identity, now()).await.unwrap()
}

fn signed_in_user(outcome: &ProvisioningOutcome) -> &LocalUser {
    match outcome {
        ProvisioningOutcome::SignedIn { user, .. } => user,
        other => panic!("expected a signed-in user, got {other:?}"),
    }
}

/// A user an administrator created, vouching for the email.
async fn local_user(db: &TestDb, username: &str, attributes: serde_json::Value) -> LocalUser {
    create(db, username, attributes, true).await
}

async fn create(db: &TestDb, username: &str, attributes: serde_json::Value, email_verified: bool) -> LocalUser {
    let user = NewLocalUser {
        username: Username::new(username).unwrap(),
        attributes: attrs(attributes),
        password_hash: None,
        email_verified,
    };
    db.store.create_user(user, now()).await.unwrap()
}

// ---------------------------------------------------------------------------
// Schema and plain CRUD

#[tokio::test]
async fn seeded_users_are_ordinary_users() {
    let db = TestDb::new().await;
    db.store.seed_users("seed-", 3, now()).await.unwrap();
    let email = AttributeName::new("email").unwrap();
    let found = db.store.find_users(&email, "SEED-2@seed.example", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].username.as_str(), "seed-2");
    assert!(found[0].email_verified);
    assert_eq!(found[0].attributes, attrs(json!({"email": "seed-2@seed.example", "given_name": "Seed"})));
    assert_eq!(db.count("users").await, 3);
    db.finish().await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await;
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
    assert_eq!(db.count("users").await, 0);
    db.finish().await;
}

#[tokio::test]
async fn users_are_found_by_normalised_unique_values() {
    let db = TestDb::new().await;
    let ann =
        local_user(&db, "Ann", json!({"email": "Ann@Example.com", "groups": ["a", "b"], "given_name": "Ann"})).await;

    let by_email = db.store.find_users(&AttributeName::new("email").unwrap(), " ann@EXAMPLE.com ", 10).await.unwrap();
    assert_eq!(by_email, vec![ann.clone()]);
    assert_eq!(db.store.user_by_username("ANN").await.unwrap(), Some(ann.clone()));
    assert_eq!(db.store.user(ann.id).await.unwrap(), Some(ann.clone()));
    let by_group = db.store.find_users(&AttributeName::new("groups").unwrap(), "b", 10).await.unwrap();
    assert_eq!(by_group.len(), 1);
    // Non-unique values are exact: case matters.
    assert!(db.store.find_users(&AttributeName::new("given_name").unwrap(), "ann", 10).await.unwrap().is_empty());
    db.finish().await;
}

#[tokio::test]
async fn unique_values_are_enforced_by_the_database_and_nothing_is_half_written() {
    let db = TestDb::new().await;
    local_user(&db, "ann", json!({"email": "ann@example.com", "employee_id": "E-1"})).await;
    let attempts = [
        ("ANN", json!({"email": "other@example.com"})),
        ("bob", json!({"email": "ANN@example.com"})),
        ("bob", json!({"employee_id": "E-1"})),
    ];
    for (username, attributes) in attempts {
        let user = NewLocalUser {
            username: Username::new(username).unwrap(),
            attributes: attrs(attributes),
            password_hash: None,
            email_verified: true,
        };
        let error = db.store.create_user(user, now()).await.unwrap_err();
        assert!(matches!(error, StoreError::Taken(_)), "{error:?}");
    }
    assert_eq!(db.count("users").await, 1);
    assert_eq!(db.count("user_attributes").await, 2);

    // Schema violations are refused before any write.
    let bad = NewLocalUser {
        username: Username::new("cy").unwrap(),
        attributes: attrs(json!({"shoe_size": "42"})),
        password_hash: None,
        email_verified: false,
    };
    assert!(matches!(db.store.create_user(bad, now()).await, Err(StoreError::Invalid(_))));
    assert_eq!(db.count("users").await, 1);
    db.finish().await;
}

#[tokio::test]
async fn connections_and_applications_round_trip() {
    let db = TestDb::new().await;
    let mut corp = with_connection(&db, "corp", JitPolicy::default()).await;
    assert!(matches!(db.store.create_connection(&corp, now()).await, Err(StoreError::Taken(_))));
    corp.jit.sync_method = SyncMethod::PreserveLocal;
    db.store.update_connection(&corp, now()).await.unwrap();
    assert_eq!(db.store.connection(&corp.name).await.unwrap(), Some(corp.clone()));
    assert_eq!(db.store.connections().await.unwrap(), vec![corp.clone()]);
    let ghost = connection("ghost", JitPolicy::default());
    assert!(matches!(db.store.update_connection(&ghost, now()).await, Err(StoreError::NotFound(_))));

    let app = Application {
        name: "portal".into(),
        client_id: "portal-client".into(),
        client_secret_hash: Some("$argon2id$...".into()),
        redirect_uris: vec![RedirectUri::parse("https://portal.example/cb").unwrap()],
        public: false,
        sign_in: serde_json::from_value(json!({"steps": [{"options": ["LOCAL", "corp"]}, {"options": ["TOTP"]}]}))
            .unwrap(),
        scopes: Vec::new(),
    };
    db.store.create_application(&app, now()).await.unwrap();
    assert!(matches!(db.store.create_application(&app, now()).await, Err(StoreError::Taken(_))));
    let renamed = Application { name: "portal 2".into(), ..app.clone() };
    db.store.update_application(&renamed, now()).await.unwrap();
    assert_eq!(db.store.application("portal-client").await.unwrap(), Some(renamed.clone()));
    assert_eq!(db.store.applications().await.unwrap(), vec![renamed]);
    assert!(db.store.delete_application("portal-client").await.unwrap());
    assert!(!db.store.delete_application("portal-client").await.unwrap());

    assert!(db.store.delete_connection(&corp.name).await.unwrap());
    assert_eq!(db.store.connection(&corp.name).await.unwrap(), None);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_an_application_uses_cannot_be_deleted() {
    let db = TestDb::new().await;
    let corp = with_connection(&db, "corp", JitPolicy::default()).await;
    let flow = |options: serde_json::Value| serde_json::from_value(json!({"steps": [{"options": options}]})).unwrap();
    let app = Application {
        name: "portal".into(),
        client_id: "portal-client".into(),
        client_secret_hash: None,
        redirect_uris: vec![RedirectUri::parse("https://portal.example/cb").unwrap()],
        public: true,
        sign_in: flow(json!(["LOCAL", "corp"])),
        scopes: Vec::new(),
    };
    db.store.create_application(&app, now()).await.unwrap();
    let refused = db.store.delete_connection(&corp.name).await;
    assert!(matches!(&refused, Err(StoreError::InUse(message)) if message.contains("portal-client")), "{refused:?}");
    assert!(db.store.connection(&corp.name).await.unwrap().is_some());

    // A flow naming a connection that does not exist is not saved at all.
    let ghost = Application { sign_in: flow(json!(["ghost"])), ..app.clone() };
    assert!(matches!(db.store.update_application(&ghost, now()).await, Err(StoreError::NotFound(_))));
    assert_eq!(db.store.application("portal-client").await.unwrap(), Some(app.clone()));

    // Once no flow uses it, it goes.
    let local = Application { sign_in: flow(json!(["LOCAL"])), ..app.clone() };
    db.store.update_application(&local, now()).await.unwrap();
    assert!(db.store.delete_connection(&corp.name).await.unwrap());

    // A delete racing an application being saved with the connection: the
    // database decides, so either the connection is gone and the save
    // failed, or the save won and the connection is still there.
    for round in 0..5 {
        let name = format!("race{round}");
        let connection = with_connection(&db, &name, JitPolicy::default()).await;
        let saving = Application { sign_in: flow(json!(["LOCAL", name])), ..local.clone() };
        let store = Arc::new(db.store.clone());
        let (save, delete) = tokio::join!(
            tokio::spawn({
                let store = store.clone();
                async move { store.update_application(&saving, now()).await }
            }),
            tokio::spawn({
                let store = store.clone();
                let name = connection.name.clone();
                async move { store.delete_connection(&name).await }
            }),
        );
        let (save, delete) = (save.unwrap(), delete.unwrap());
        let still_there = db.store.connection(&connection.name).await.unwrap().is_some();
        match (&save, &delete) {
            (Ok(()), Err(StoreError::InUse(_))) => assert!(still_there),
            (Err(_), Ok(true)) => assert!(!still_there),
            // The save went first and the delete was refused, or the
            // delete first and the save found no connection: both above.
            // Transient conflicts aside, nothing else may happen.
            (Err(StoreError::Conflict { .. }), _) | (_, Err(StoreError::Conflict { .. })) => {}
            other => panic!("round {round}: {other:?}, connection still there: {still_there}"),
        }
        let saved = db.store.application("portal-client").await.unwrap().unwrap();
        let uses =
            saved.sign_in.steps.iter().flat_map(|s| &s.options).any(|o| o.to_string() == connection.name.as_str());
        assert!(!uses || still_there, "round {round}: an application uses a deleted connection");
        db.store.update_application(&local, now()).await.unwrap();
    }
    db.finish().await;
}

#[tokio::test]
async fn declared_attributes_live_in_the_database_and_unique_ones_refuse_shared_values() {
    // The standard schema only: what the operator declares comes from the
    // database.
    let db = TestDb::with_schema(AttributeSchema::standard()).await;
    let department = AttributeDefinition {
        description: "Where the user works".into(),
        ..AttributeDefinition::new(AttributeName::new("department").unwrap())
    };
    assert!(db.store.put_attribute(&department, now()).await.unwrap(), "declared");
    let schema = db.store.attribute_schema().await.unwrap();
    assert_eq!(schema.get("department"), Some(&department));
    // Another instance (another Store on the same database) sees it.
    let other = Store::connect(&db.url, AttributeSchema::standard(), SealingKeys::from_encoded(&[&db.key]).unwrap())
        .await
        .unwrap();
    assert_eq!(other.attribute_schema().await.unwrap().get("department"), Some(&department));

    let ann = local_user(&db, "ann", json!({"department": "Sales"})).await;
    let bob = local_user(&db, "bob", json!({"department": " sales"})).await;
    local_user(&db, "cy", json!({"department": "R&D"})).await;
    let refused = db
        .store
        .put_attribute(
            &AttributeDefinition { unique: true, normalization: Normalization::CaseInsensitive, ..department.clone() },
            now(),
        )
        .await;
    match refused {
        Err(StoreError::Collisions { attribute, count, examples }) => {
            assert_eq!((attribute.as_str(), count), ("department", 1));
            assert_eq!(examples.len(), 1, "{examples:?}");
        }
        other => panic!("expected collisions, got {other:?}"),
    }
    assert_eq!(db.store.attribute_schema().await.unwrap().get("department"), Some(&department), "unchanged");

    // Compared exactly (white space aside), "Sales" and "sales" are two
    // values: unique is accepted, and the database holds it from now on.
    let unique = AttributeDefinition { unique: true, ..department.clone() };
    assert!(!db.store.put_attribute(&unique, now()).await.unwrap(), "redefined");
    let twin = NewLocalUser {
        username: Username::new("dee").unwrap(),
        attributes: attrs(json!({"department": "Sales"})),
        password_hash: None,
        email_verified: true,
    };
    assert!(matches!(db.store.create_user(twin, now()).await, Err(StoreError::Taken(_))));
    assert_eq!(db.store.find_users(&unique.name, "Sales", 5).await.unwrap().len(), 1);

    // Standard attributes cannot be redeclared; deleting a declared one
    // removes its values.
    let email = AttributeDefinition::new(AttributeName::new("email").unwrap());
    assert!(matches!(db.store.put_attribute(&email, now()).await, Err(StoreError::Invalid(_))));
    assert!(db.store.delete_attribute(&unique.name).await.unwrap());
    assert!(!db.store.delete_attribute(&unique.name).await.unwrap());
    assert!(db.store.attribute_schema().await.unwrap().get("department").is_none());
    for user in [ann.id, bob.id] {
        let loaded = db.store.user(user).await.unwrap().unwrap();
        assert!(loaded.attributes.get("department").is_none(), "{loaded:?}");
    }
    other.database().clone().close().await.unwrap();
    db.finish().await;
}

#[tokio::test]
async fn groups_and_roles_keep_their_members_and_who_granted_them() {
    use jit_domain::membership::{Grant, Membership, MembershipKind};
    let db = TestDb::new().await;
    let (group, role) = (MembershipKind::Group, MembershipKind::Role);
    db.store.create_collection(group, "staff", "Everyone", now()).await.unwrap();
    db.store.create_collection(role, "staff", "A role of the same name", now()).await.unwrap();
    assert!(matches!(db.store.create_collection(group, "staff", "", now()).await, Err(StoreError::Taken(_))));
    let ann = local_user(&db, "ann", json!({})).await;
    let corp = Grant::Connection(ConnectionName::new("corp").unwrap());
    assert!(db.store.grant_membership(group, "staff", ann.id, &Grant::Admin, now()).await.unwrap());
    assert!(!db.store.grant_membership(group, "staff", ann.id, &corp, now()).await.unwrap(), "the first grant stays");
    assert!(db.store.grant_membership(role, "staff", ann.id, &corp, now()).await.unwrap());
    assert_eq!(
        db.store.memberships(group, ann.id).await.unwrap(),
        vec![Membership { name: "staff".into(), granted_by: Grant::Admin }]
    );
    assert_eq!(db.store.memberships(role, ann.id).await.unwrap()[0].granted_by, corp, "kinds are apart");
    assert_eq!(
        db.store.all_memberships(ann.id).await.unwrap(),
        vec![
            (group, Membership { name: "staff".into(), granted_by: Grant::Admin }),
            (role, Membership { name: "staff".into(), granted_by: corp.clone() }),
        ],
        "groups, then roles, in one query"
    );
    assert_eq!(db.store.collection(group, "staff").await.unwrap().unwrap().members, 1);
    let missing = db.store.grant_membership(group, "nobody", ann.id, &Grant::Admin, now()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");

    assert!(db.store.revoke_membership(group, "staff", ann.id).await.unwrap());
    assert!(!db.store.revoke_membership(group, "staff", ann.id).await.unwrap());
    assert!(db.store.delete_collection(role, "staff").await.unwrap(), "memberships go with it");
    assert!(db.store.memberships(role, ann.id).await.unwrap().is_empty());
    db.store.grant_membership(group, "staff", ann.id, &Grant::Admin, now()).await.unwrap();
    assert!(db.store.delete_user(ann.id).await.unwrap());
    assert_eq!(db.store.collection(group, "staff").await.unwrap().unwrap().members, 0, "and with their user");
    db.finish().await;
}

/// Issue 9 §4: a sync's audit event carries the diff, with the values of
/// attributes declared sensitive redacted.
#[tokio::test]
async fn sync_audit_events_carry_the_diff_and_redact_sensitive_values() {
    let db = TestDb::with_schema(AttributeSchema::standard()).await;
    let salary =
        AttributeDefinition { sensitive: true, ..AttributeDefinition::new(AttributeName::new("salary").unwrap()) };
    db.store.put_attribute(&salary, now()).await.unwrap();
    let mut corp = with_connection(&db, "corp", JitPolicy::default()).await;
    corp.claim_mappings = [("salary".to_owned(), salary.name.clone())].into();
    db.store.update_connection(&corp, now()).await.unwrap();
    let first = identity("corp", "s1", json!({"given_name": "Ann", "salary": "100"}));
    let ann = signed_in_user(&sign_in(&db, &corp, &first).await).clone();
    let again = identity("corp", "s1", json!({"given_name": "Anne", "salary": "200"}));
    sign_in(&db, &corp, &again).await;
    let events = db.store.audit_events(&AuditFilter { user: Some(ann.id), ..Default::default() }).await.unwrap();
    let synced = serde_json::to_value(&events[0].action).unwrap();
    assert_eq!(synced["action"], "synced", "{synced}");
    assert_eq!(synced["diff"]["given_name"], json!({"old": "Ann", "new": "Anne"}));
    assert_eq!(synced["diff"]["salary"], json!({"old": "[redacted]", "new": "[redacted]"}));
    assert!(!synced.to_string().contains("200"), "{synced}");
    // Provenance: each value is the connection's, changed at the second sign-in.
    let provenance = db.store.provenance(ann.id).await.unwrap();
    assert_eq!(provenance["given_name"].source, "connection:corp", "{provenance:?}");
    db.finish().await;
}

/// A uniqueness declared while another instance (its schema cached from
/// before) writes a shared value: the database decides, and a value never
/// escapes the declaration.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unique_declaration_racing_a_write_of_a_shared_value_never_admits_both() {
    let db = TestDb::with_schema(AttributeSchema::standard()).await;
    let badge = AttributeDefinition::new(AttributeName::new("badge").unwrap());
    db.store.put_attribute(&badge, now()).await.unwrap();
    let other = Arc::new(
        Store::connect(&db.url, AttributeSchema::standard(), SealingKeys::from_encoded(&[&db.key]).unwrap())
            .await
            .unwrap(),
    );
    for round in 0..6 {
        let value = format!("B-{round}");
        local_user(&db, &format!("first{round}"), json!({"badge": value})).await;
        other.attribute_schema().await.unwrap(); // cached: badge is not unique
        let unique = AttributeDefinition { unique: true, ..badge.clone() };
        let twin = NewLocalUser {
            username: Username::new(format!("twin{round}")).unwrap(),
            attributes: attrs(json!({"badge": value})),
            password_hash: None,
            email_verified: true,
        };
        let store = Arc::new(db.store.clone());
        let (declared, written) = tokio::join!(
            tokio::spawn({
                let store = store.clone();
                async move { store.put_attribute(&unique, now()).await }
            }),
            tokio::spawn({
                let other = other.clone();
                async move { other.create_user(twin, now()).await }
            }),
        );
        let (declared, written) = (declared.unwrap(), written.unwrap());
        let holders = db.store.find_users(&badge.name, &value, 5).await.unwrap().len();
        match (&declared, &written) {
            (Ok(_), Ok(_)) => {
                panic!("round {round}: both the declaration and the twin went through ({holders} holders)")
            }
            (Ok(_), Err(_)) => assert_eq!(holders, 1, "round {round}"),
            (Err(StoreError::Collisions { .. }), Ok(_)) => assert_eq!(holders, 2, "round {round}"),
            (Err(StoreError::Conflict { .. }), _) | (_, Err(StoreError::Conflict { .. })) => {}
            other => panic!("round {round}: {other:?}"),
        }
        // Back to not unique for the next round.
        db.store.put_attribute(&badge, now()).await.unwrap();
    }
    other.database().clone().close().await.unwrap();
    db.finish().await;
}

#[tokio::test]
async fn records_expire_are_taken_once_and_keep_their_kinds_apart() {
    let db = TestDb::new().await;
    let later = now() + time::Duration::minutes(10);
    let sign_in = RecordKind::SignIn;
    db.store.insert_record(sign_in, "f1", &json!({"step": 1}), later).await.unwrap();
    let twice = db.store.insert_record(sign_in, "f1", &json!({"step": 2}), later).await;
    assert!(matches!(twice, Err(StoreError::Conflict { .. })), "a key is inserted once: {twice:?}");
    let read = db.store.record(sign_in, "f1", now()).await.unwrap();
    assert_eq!(read, Some(Versioned { value: json!({"step": 1}), version: 1 }));
    assert_eq!(db.store.record(sign_in, "f1", later).await.unwrap(), None, "expired at its expiry time");
    // The same key under another kind is another record.
    assert_eq!(db.store.record(RecordKind::AuthorizationGrant, "f1", now()).await.unwrap(), None);
    assert_eq!(db.store.take_record(RecordKind::AccessToken, "f1", now()).await.unwrap(), None);

    let store = Arc::new(db.store.clone());
    let takes = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_record(RecordKind::SignIn, "f1", now()).await.unwrap() })
    });
    let taken: Vec<_> = futures::future::join_all(takes).await.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(taken, vec![json!({"step": 1})], "exactly one taker gets the record");

    db.store.insert_record(RecordKind::PendingFederation, "old", &json!({}), now()).await.unwrap();
    db.store.insert_record(RecordKind::AccessToken, "older", &json!({}), now()).await.unwrap();
    db.store.insert_record(RecordKind::AccessToken, "live", &json!({}), later).await.unwrap();
    assert_eq!(db.store.purge_expired_records(now()).await.unwrap(), 2, "every kind is purged");
    assert!(db.store.record(RecordKind::AccessToken, "live", now()).await.unwrap().is_some());
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_is_replaced_only_at_the_version_that_was_read() {
    let db = TestDb::new().await;
    let later = now() + time::Duration::minutes(10);
    let kind = RecordKind::SignIn;
    let first = json!({"attempts": 0, "name": "Zoë", "nested": {"b": [1, 2], "a": "x"}});
    db.store.insert_record(kind, "f", &first, later).await.unwrap();
    let read = db.store.record(kind, "f", now()).await.unwrap().unwrap();

    // Twelve requests read the same version and each counts one attempt:
    // exactly one replacement wins, the others must read again.
    let store = Arc::new(db.store.clone());
    let attempts = (0..12).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let counted = json!({"attempts": 1, "by": i});
            store.replace_record(RecordKind::SignIn, "f", read.version, &counted, later, now()).await.unwrap()
        })
    });
    let won = futures::future::join_all(attempts).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(won, 1);
    let current = db.store.record(kind, "f", now()).await.unwrap().unwrap();
    assert_eq!((current.value["attempts"].clone(), current.version), (json!(1), 2));

    // From the current version it works again; never for an expired or
    // missing record, and a delete needs the current version too.
    assert!(db.store.replace_record(kind, "f", 2, &json!({"attempts": 2}), later, now()).await.unwrap());
    assert!(!db.store.replace_record(kind, "f", 3, &json!({}), later, later).await.unwrap(), "expired");
    assert!(!db.store.replace_record(kind, "missing", 1, &json!({}), later, now()).await.unwrap());
    assert!(!db.store.delete_record_if(kind, "f", 2, now()).await.unwrap(), "an old version deletes nothing");
    assert!(db.store.delete_record_if(kind, "f", 3, now()).await.unwrap());
    assert_eq!(db.store.record(kind, "f", now()).await.unwrap(), None);
    db.finish().await;
}

#[tokio::test]
async fn signing_keys_are_listed_newest_first_and_retired() {
    let db = TestDb::new().await;
    for (i, kid) in ["k1", "k2"].iter().enumerate() {
        let key = SigningKey {
            kid: (*kid).into(),
            algorithm: "ES256".into(),
            private_key_der: vec![1, 2, 3, i as u8],
            created_at: now() + time::Duration::seconds(i as i64),
            active: true,
        };
        db.store.add_signing_key(&key).await.unwrap();
    }
    assert!(db.store.retire_signing_key("k1").await.unwrap());
    assert!(!db.store.retire_signing_key("nope").await.unwrap());
    let keys = db.store.signing_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| (k.kid.as_str(), k.active)).collect::<Vec<_>>(), [("k2", true), ("k1", false)]);
    assert_eq!(keys[1].private_key_der, vec![1, 2, 3, 0]);
    db.finish().await;
}

// ---------------------------------------------------------------------------
// Provisioning

#[tokio::test]
async fn first_login_creates_then_returning_logins_sync() {
    let db = TestDb::new().await;
    let corp = with_connection(&db, "corp", JitPolicy::default()).await;

    let first = identity("corp", "s1", json!({"username": "ann", "email": "ann@corp.example", "phone_number": "1"}));
    let outcome = sign_in(&db, &corp, &first).await;
    let ann = signed_in_user(&outcome).clone();
    assert_eq!(ann.username.as_str(), "ann");
    assert_eq!(ann.attributes, attrs(json!({"email": "ann@corp.example", "phone_number": "1"})));
    assert_eq!(db.store.facts(&first, &[]).await.unwrap().associated, Some(ann.clone()));

    let again = identity("corp", "s1", json!({"email": "ann@corp.example", "given_name": "Ann"}));
    let outcome = sign_in(&db, &corp, &again).await;
    assert_eq!(signed_in_user(&outcome).attributes, attrs(json!({"email": "ann@corp.example", "given_name": "Ann"})));
    assert_eq!(db.store.user(ann.id).await.unwrap().unwrap().attributes, signed_in_user(&outcome).attributes);

    // Unchanged claims: a sign-in, no audit event.
    sign_in(&db, &corp, &again).await;
    let events = db.store.audit_events(&AuditFilter { user: Some(ann.id), ..Default::default() }).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.clone()).collect();
    let changed = ["given_name", "phone_number"].map(|n| AttributeName::new(n).unwrap()).into_iter().collect();
    assert!(
        matches!(&actions[..], [AuditAction::Synced { changed: c, diff }, AuditAction::Created]
        if *c == changed && diff.len() == 2),
        "{actions:?}"
    );
    let AuditAction::Synced { diff, .. } = &actions[0] else { unreachable!() };
    assert_eq!(
        serde_json::to_value(&diff[&AttributeName::new("given_name").unwrap()]).unwrap(),
        json!({"old": null, "new": "Ann"})
    );
    let links = db.store.federated_links(ann.id).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].subject.as_str(), "s1");
    db.finish().await;
}

#[tokio::test]
async fn linking_by_email_and_refusals_write_only_the_audit_event() {
    let db = TestDb::new().await;
    let corp = with_connection(&db, "corp", JitPolicy::default()).await;
    let ann = local_user(&db, "ann", json!({"email": "ann@corp.example", "phone_number": "1"})).await;

    // An unverified email does not link: the sign-in gets its own account,
    // whose email is unverified and holds the address for nobody.
    let mut unverified = identity("corp", "s1", json!({"email": "ANN@corp.example"}));
    unverified.email_verified = false;
    let outcome = sign_in(&db, &corp, &unverified).await;
    let other = signed_in_user(&outcome).clone();
    assert!(other.id != ann.id && !other.email_verified, "{outcome:?}");
    assert!(matches!(outcome, ProvisioningOutcome::SignedIn { decision: Decision::Create { .. }, .. }));

    let verified =
        FederatedIdentity { email_verified: true, ..identity("corp", "s2", json!({"email": "ANN@corp.example"})) };
    let outcome = sign_in(&db, &corp, &verified).await;
    assert_eq!(signed_in_user(&outcome).id, ann.id);
    assert!(matches!(outcome, ProvisioningOutcome::SignedIn { decision: Decision::Link { .. }, .. }));

    let strict = JitPolicy {
        linking: LinkingPolicy { skip_provisioning_without_match: true, ..LinkingPolicy::default() },
        ..JitPolicy::default()
    };
    let partner = with_connection(&db, "partner", strict).await;
    let stranger = identity("partner", "x", json!({"email": "nobody@partner.example"}));
    assert_eq!(sign_in(&db, &partner, &stranger).await, ProvisioningOutcome::Refused(Refusal::NoMatchingAccount));
    assert_eq!(db.count("users").await, 2);

    let events = db
        .store
        .audit_events(&AuditFilter { connection: Some(partner.name.clone()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, AuditAction::Refused { refusal: Refusal::NoMatchingAccount });
    assert_eq!(events[0].user, None);
    assert_eq!(db.count("audit_events").await, 3, "created, linked, refused");
    db.finish().await;
}

/// Findings 2 and 6 of the security review, in the database: only a
/// verified email holds its address (so nobody squats one by signing in
/// where it is not verified), the verified holder is found first however
/// many unverified ones there are, and the facts say which accounts already
/// have an identity at the connection.
#[tokio::test]
async fn only_verified_emails_hold_their_address() {
    let db = TestDb::new().await;
    let corp = with_connection(&db, "corp", JitPolicy::default()).await;
    for i in 0..9 {
        create(&db, &format!("squatter{i}"), json!({"email": "kim@corp.example"}), false).await;
    }
    let kim = create(&db, "kim", json!({"email": "KIM@corp.example"}), true).await;
    let twin = NewLocalUser {
        username: Username::new("kim2").unwrap(),
        attributes: attrs(json!({"email": "kim@corp.example"})),
        password_hash: None,
        email_verified: true,
    };
    assert!(matches!(db.store.create_user(twin, now()).await, Err(StoreError::Taken(_))), "one verified holder");

    let who =
        FederatedIdentity { email_verified: true, ..identity("corp", "k1", json!({"email": "kim@corp.example"})) };
    let outcome = sign_in(&db, &corp, &who).await;
    assert_eq!(signed_in_user(&outcome).id, kim.id, "linked to the verified holder past nine unverified ones");

    // Another subject of the same IdP with the same address: refused.
    let recycled =
        FederatedIdentity { email_verified: true, ..identity("corp", "k2", json!({"email": "kim@corp.example"})) };
    let outcome = sign_in(&db, &corp, &recycled).await;
    assert!(matches!(outcome, ProvisioningOutcome::Refused(Refusal::AlreadyLinked { .. })), "{outcome:?}");
    assert_eq!(db.count("federated_identities").await, 1);
    db.finish().await;
}

/// Finding 12 of the security review: TOTP secrets, client secrets,
/// signing keys and sign-in state are sealed in the database; an instance
/// with another key refuses to start; a new key put first re-seals all.
#[tokio::test]
async fn secrets_are_sealed_at_rest_and_need_their_key() {
    let db = TestDb::new().await;
    let corp = with_connection(&db, "corp", JitPolicy::default()).await;
    let ann = local_user(&db, "ann", json!({})).await;
    let totp = TotpSecret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
    db.store.enrol_totp(ann.id, &totp, 1, now()).await.unwrap();
    let key = SigningKey {
        kid: "k1".into(),
        algorithm: "ES256".into(),
        private_key_der: b"PRIVATE-KEY-DER-BYTES".to_vec(),
        created_at: now(),
        active: true,
    };
    db.store.add_signing_key(&key).await.unwrap();
    let flow = json!({"pending_totp": "FLOWSECRETFLOWSECRET"});
    db.store.insert_record(RecordKind::SignIn, "x", &flow, now() + time::Duration::hours(1)).await.unwrap();

    let raw = |sql: &'static str, column: &'static str, binary: bool| {
        let database = db.store.database().clone();
        async move {
            let rows =
                database.query_all_raw(Statement::from_string(database.get_database_backend(), sql)).await.unwrap();
            rows.iter()
                .map(|row| match binary {
                    true => String::from_utf8_lossy(&row.try_get::<Vec<u8>>("", column).unwrap()).into_owned(),
                    false => row.try_get::<String>("", column).unwrap(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let stored = [
        (raw("SELECT secret FROM user_totp", "secret", false).await, "JBSWY3DP"),
        (raw("SELECT config FROM connections", "config", false).await, "s3cret"),
        (raw("SELECT private_key FROM signing_keys", "private_key", true).await, "PRIVATE-KEY"),
        (raw("SELECT value FROM expiring_records", "value", false).await, "FLOWSECRET"),
    ];
    for (text, secret) in &stored {
        assert!(text.starts_with("v1.") && !text.contains(secret), "{secret} is stored in clear: {text}");
    }
    assert_eq!(db.store.totp(ann.id).await.unwrap().unwrap().secret, totp);
    assert_eq!(db.store.connection(&corp.name).await.unwrap().unwrap().oidc.client_secret.as_deref(), Some("s3cret"));
    assert_eq!(db.store.signing_keys().await.unwrap()[0].private_key_der, key.private_key_der);
    assert_eq!(db.store.record(RecordKind::SignIn, "x", now()).await.unwrap().map(|r| r.value), Some(flow.clone()));

    // Another key: refused at start, before anything is served.
    let stranger = Store::connect(&db.url, schema(), SealingKeys::generate().unwrap()).await.unwrap();
    assert!(matches!(stranger.prepare_secrets().await, Err(jit_store::Error::WrongKey(_))));
    stranger.database().clone().close().await.unwrap();

    // Rotation: the new key first, the old one still there.
    let new = SealingKeys::generate_encoded().unwrap();
    let rotating =
        Store::connect(&db.url, schema(), SealingKeys::from_encoded(&[&new, &db.key]).unwrap()).await.unwrap();
    rotating.prepare_secrets().await.unwrap();
    rotating.database().clone().close().await.unwrap();
    let rotated = Store::connect(&db.url, schema(), SealingKeys::from_encoded(&[&new]).unwrap()).await.unwrap();
    rotated.prepare_secrets().await.unwrap();
    assert_eq!(rotated.totp(ann.id).await.unwrap().unwrap().secret, totp);
    assert_eq!(rotated.signing_keys().await.unwrap()[0].private_key_der, key.private_key_der);
    assert_eq!(rotated.connection(&corp.name).await.unwrap().unwrap().oidc.client_secret.as_deref(), Some("s3cret"));
    assert_eq!(rotated.record(RecordKind::SignIn, "x", now()).await.unwrap().map(|r| r.value), Some(flow));
    rotated.database().clone().close().await.unwrap();
    db.finish().await;
}

#[tokio::test]
async fn jit_disabled_writes_nothing() {
    let db = TestDb::new().await;
    let off = with_connection(&db, "partner", JitPolicy { enabled: false, ..JitPolicy::default() }).await;
    let visitor = identity("partner", "v", json!({"email": "v@partner.example"}));
    assert_eq!(sign_in(&db, &off, &visitor).await, ProvisioningOutcome::PassThrough(visitor.clone()));
    for table in ["users", "federated_identities", "audit_events"] {
        assert_eq!(db.count(table).await, 0, "{table}");
    }
    db.finish().await;
}

#[tokio::test]
async fn a_colliding_write_rolls_back_whole() {
    let db = TestDb::new().await;
    with_connection(&db, "corp", JitPolicy::default()).await;
    local_user(&db, "ann", json!({"email": "ann@corp.example"})).await;
    // A decision taken on stale data: the email was taken after the lookup.
    let stale = Decision::Create {
        username: Username::new("newcomer").unwrap(),
        attributes: attrs(json!({"given_name": "N", "email": "ANN@corp.example"})),
        email_verified: true,
    };
    let who = identity("corp", "s9", json!({}));
    let error = db.store.apply(&who, &stale, now()).await.unwrap_err();
    assert!(error.is_conflict(ConflictKind::Unique), "{error:?}");
    assert_eq!(db.count("users").await, 1);
    assert_eq!(db.count("user_attributes").await, 1);
    assert_eq!(db.count("federated_identities").await, 0);
    assert_eq!(db.count("audit_events").await, 0);
    db.finish().await;
}

#[tokio::test]
async fn deleting_a_user_removes_attributes_and_associations_but_not_the_audit_trail() {
    let db = TestDb::new().await;
    let corp = with_connection(&db, "corp", JitPolicy::default()).await;
    let who = identity("corp", "s1", json!({"email": "ann@corp.example", "groups": ["x", "y"]}));
    let ann = signed_in_user(&sign_in(&db, &corp, &who).await).clone();
    assert!(db.store.delete_user(ann.id).await.unwrap());
    assert!(!db.store.delete_user(ann.id).await.unwrap());
    assert_eq!(db.count("user_attributes").await, 0);
    assert_eq!(db.count("federated_identities").await, 0);
    assert_eq!(db.count("audit_events").await, 1);
    // The next sign-in provisions a new account.
    let again = signed_in_user(&sign_in(&db, &corp, &who).await).clone();
    assert_ne!(again.id, ann.id);
    db.finish().await;
}

// ---------------------------------------------------------------------------
// Races

const RACERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_logins_create_exactly_one_account() {
    let db = TestDb::new().await;
    let corp = Arc::new(with_connection(&db, "corp", JitPolicy::default()).await);
    let store = Arc::new(db.store.clone());
    let who = Arc::new(identity("corp", "racer", json!({"username": "racer", "email": "racer@corp.example"})));
    let logins = (0..RACERS).map(|_| {
        let (store, corp, who) = (store.clone(), corp.clone(), who.clone());
        tokio::spawn(async move { provision(&*store, &corp.jit, &store.schema().await.unwrap(), &who, now()).await })
    });
    let outcomes: Vec<ProvisioningOutcome> =
        futures::future::join_all(logins).await.into_iter().map(|r| r.unwrap().unwrap()).collect();

    let ids: std::collections::BTreeSet<UserId> = outcomes.iter().map(|o| signed_in_user(o).id).collect();
    assert_eq!(ids.len(), 1, "every login signed in as the same user");
    assert_eq!(db.count("users").await, 1);
    assert_eq!(db.count("federated_identities").await, 1);
    let created = db.store.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(created.iter().filter(|e| e.action == AuditAction::Created).count(), 1);
    db.finish().await;
}

/// Issue 9: a linking rule on a declared unique attribute (the IdP's
/// `employee_id` claim, trusted) under concurrent first logins through two
/// connections still makes one account: one creates, the others link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_logins_linking_on_a_declared_unique_attribute_make_one_account() {
    let db = TestDb::new().await;
    let store = Arc::new(db.store.clone());
    let mut policy = JitPolicy::default();
    policy.linking.rules = vec![LinkRule {
        federated: "employee_id".into(),
        local: AttributeName::new("employee_id").unwrap(),
        trusted: true,
    }];
    let mut connections = Vec::new();
    for name in ["corp", "partner"] {
        connections.push(Arc::new(with_connection(&db, name, policy.clone()).await));
    }
    let logins = (0..RACERS).map(|i| {
        let store = store.clone();
        let connection = connections[i % 2].clone();
        let who = identity(connection.name.as_str(), "same-employee", json!({"employee_id": "E-77"}));
        tokio::spawn(
            async move { provision(&*store, &connection.jit, &store.schema().await.unwrap(), &who, now()).await },
        )
    });
    let outcomes: Vec<ProvisioningOutcome> =
        futures::future::join_all(logins).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let ids: std::collections::BTreeSet<UserId> = outcomes.iter().map(|o| signed_in_user(o).id).collect();
    assert_eq!(ids.len(), 1, "{outcomes:?}");
    assert_eq!(db.count("users").await, 1);
    assert_eq!(db.count("federated_identities").await, 2);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_racing_a_create_on_the_same_email_ends_with_one_account() {
    let db = TestDb::new().await;
    let store = Arc::new(db.store.clone());
    // Two IdPs assert the same verified email for different subjects: whoever
    // wins creates the account, the other links to it.
    let mut connections = Vec::new();
    for name in ["corp", "partner"] {
        connections.push(Arc::new(with_connection(&db, name, JitPolicy::default()).await));
    }
    let logins = (0..RACERS).map(|i| {
        let store = store.clone();
        let connection = connections[i % 2].clone();
        let who = identity(connection.name.as_str(), "same-person", json!({"email": "Same@Example.com"}));
        tokio::spawn(
            async move { provision(&*store, &connection.jit, &store.schema().await.unwrap(), &who, now()).await },
        )
    });
    let outcomes: Vec<ProvisioningOutcome> =
        futures::future::join_all(logins).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let ids: std::collections::BTreeSet<UserId> = outcomes.iter().map(|o| signed_in_user(o).id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(db.count("users").await, 1);
    assert_eq!(db.count("federated_identities").await, 2);

    // An administrator creating a user with an email a federated login is
    // provisioning at the same moment: one account either way.
    let admin = NewLocalUser {
        username: Username::new("admin-made").unwrap(),
        attributes: attrs(json!({"email": "race@example.com"})),
        password_hash: None,
        email_verified: true,
    };
    let federated = identity("corp", "racer-2", json!({"email": "RACE@example.com"}));
    let corp = connections[0].clone();
    let schema = store.schema().await.unwrap();
    let (created, provisioned) =
        tokio::join!(store.create_user(admin, now()), provision(&*store, &corp.jit, &schema, &federated, now()));
    let provisioned = signed_in_user(&provisioned.unwrap()).clone();
    match created {
        Ok(user) => assert_eq!(user.id, provisioned.id, "the federated login linked to the admin's user"),
        Err(StoreError::Taken(_)) => {}
        Err(other) => panic!("{other:?}"),
    }
    let holders = store.find_users(&AttributeName::new("email").unwrap(), "race@example.com", 10).await.unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(db.count("users").await, 2);
    db.finish().await;
}

#[tokio::test]
async fn username_is_unique_case_insensitively_across_provisioning() {
    let db = TestDb::new().await;
    let corp = with_connection(
        &db,
        "corp",
        JitPolicy { linking: LinkingPolicy { enabled: false, ..Default::default() }, ..JitPolicy::default() },
    )
    .await;
    local_user(&db, "Ann", json!({})).await;
    let who = identity("corp", "s1", json!({USERNAME: "ann"}));
    let user = signed_in_user(&sign_in(&db, &corp, &who).await).clone();
    assert_eq!(user.username.as_str(), "corp.s1");
    db.finish().await;
}

// ---------------------------------------------------------------------------
// TOTP enrolments

const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn totp_secret() -> jit_domain::mfa::TotpSecret {
    jit_domain::mfa::TotpSecret::new(TOTP_SECRET).unwrap()
}

#[tokio::test]
async fn totp_enrolment_is_saved_once_and_read_back() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    assert_eq!(db.store.totp(ann.id).await.unwrap(), None);
    db.store.enrol_totp(ann.id, &totp_secret(), 100, now()).await.unwrap();
    let record = db.store.totp(ann.id).await.unwrap().unwrap();
    assert_eq!(record.secret.expose(), TOTP_SECRET);
    assert_eq!(record.enrolled_at, now());
    assert_eq!(record.last_used_step, 100);
    assert_eq!((record.failures, record.locked_until), (0, None));

    // A second enrolment does not replace the first.
    let other = jit_domain::mfa::TotpSecret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    let error = db.store.enrol_totp(ann.id, &other, 200, now()).await.unwrap_err();
    assert!(matches!(error, StoreError::Taken(_)), "{error:?}");
    assert_eq!(db.store.totp(ann.id).await.unwrap().unwrap().secret.expose(), TOTP_SECRET);

    // Nobody to enrol.
    let ghost = UserId(uuid::Uuid::now_v7());
    let error = db.store.enrol_totp(ghost, &totp_secret(), 1, now()).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    assert_eq!(db.count("user_totp").await, 1);
    db.finish().await;
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_never_an_earlier_one() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    db.store.enrol_totp(ann.id, &totp_secret(), 100, now()).await.unwrap();
    assert!(!db.store.accept_totp_step(ann.id, 100, now()).await.unwrap(), "the enrolment code is used");
    assert!(db.store.accept_totp_step(ann.id, 102, now()).await.unwrap());
    assert!(!db.store.accept_totp_step(ann.id, 102, now()).await.unwrap(), "same code twice");
    assert!(!db.store.accept_totp_step(ann.id, 101, now()).await.unwrap(), "an earlier step after a later one");
    assert!(db.store.accept_totp_step(ann.id, 103, now()).await.unwrap());
    assert_eq!(db.store.totp(ann.id).await.unwrap().unwrap().last_used_step, 103);
    let ghost = UserId(uuid::Uuid::now_v7());
    assert!(!db.store.accept_totp_step(ghost, 1, now()).await.unwrap(), "no enrolment, no acceptance");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_of_one_totp_code_succeed_exactly_once() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    db.store.enrol_totp(ann.id, &totp_secret(), 100, now()).await.unwrap();
    let store = Arc::new(db.store.clone());
    let uses = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.accept_totp_step(ann.id, 101, now()).await.unwrap() })
    });
    let accepted = futures::future::join_all(uses).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(accepted, 1);
    db.finish().await;
}

#[tokio::test]
async fn wrong_totp_codes_lock_with_backoff_and_a_good_code_clears_the_count() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    let policy = jit_domain::mfa::LockoutPolicy::default();
    let ghost = UserId(uuid::Uuid::now_v7());
    assert!(matches!(db.store.record_totp_attempt(ghost, now(), &policy).await, Err(StoreError::NotFound(_))));
    db.store.enrol_totp(ann.id, &totp_secret(), 100, now()).await.unwrap();

    for n in 1..=5 {
        let attempt = db.store.record_totp_attempt(ann.id, now(), &policy).await.unwrap();
        assert!(attempt.allowed, "attempt {n} is checked");
        assert_eq!((attempt.lock.failures, attempt.lock.locked_until), (n, None));
    }
    // The sixth is refused unchecked and locks.
    let attempt = db.store.record_totp_attempt(ann.id, now(), &policy).await.unwrap();
    assert!(!attempt.allowed);
    assert_eq!((attempt.lock.failures, attempt.lock.locked_until), (6, Some(now() + time::Duration::seconds(30))));
    let record = db.store.totp(ann.id).await.unwrap().unwrap();
    assert_eq!(record.lock(), attempt.lock);
    assert!(record.is_locked(now()));
    // While locked, attempts are refused and not counted.
    let attempt = db.store.record_totp_attempt(ann.id, now(), &policy).await.unwrap();
    assert!(!attempt.allowed);
    assert_eq!(attempt.lock.failures, 6);

    // After the lock, one attempt is checked (a longer lock waits behind
    // it), and a good code clears count and lock: never locked for good.
    let later = now() + time::Duration::seconds(30);
    let attempt = db.store.record_totp_attempt(ann.id, later, &policy).await.unwrap();
    assert!(attempt.allowed);
    assert_eq!((attempt.lock.failures, attempt.lock.locked_until), (7, Some(later + time::Duration::seconds(60))));
    assert!(db.store.accept_totp_step(ann.id, 101, later).await.unwrap());
    let record = db.store.totp(ann.id).await.unwrap().unwrap();
    assert_eq!((record.failures, record.locked_until, record.last_used_step), (0, None, 101));
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_totp_attempts_count_once_and_lock_past_the_threshold() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    db.store.enrol_totp(ann.id, &totp_secret(), 100, now()).await.unwrap();
    let store = Arc::new(db.store.clone());
    let failures = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store.record_totp_attempt(ann.id, now(), &jit_domain::mfa::LockoutPolicy::default()).await.unwrap()
        })
    });
    let attempts: Vec<_> = futures::future::join_all(failures).await.into_iter().map(Result::unwrap).collect();
    // Five are counted and checked, the sixth counts and locks, the rest
    // are refused unchecked while locked.
    assert_eq!(attempts.iter().filter(|a| a.allowed).count(), 5, "{attempts:?}");
    let mut counts: Vec<u32> = attempts.iter().map(|a| a.lock.failures).collect();
    counts.sort_unstable();
    assert_eq!(&counts[..6], &[1, 2, 3, 4, 5, 6], "each counted attempt counted once: {counts:?}");
    let record = db.store.totp(ann.id).await.unwrap().unwrap();
    assert_eq!(record.failures, 6);
    assert_eq!(record.locked_until, Some(now() + time::Duration::seconds(30)));
    db.finish().await;
}

#[tokio::test]
async fn totp_reset_and_user_deletion_remove_the_enrolment() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    let bob = local_user(&db, "bob", json!({})).await;
    for user in [ann.id, bob.id] {
        db.store.enrol_totp(user, &totp_secret(), 100, now()).await.unwrap();
    }
    assert!(db.store.reset_totp(ann.id).await.unwrap());
    assert!(!db.store.reset_totp(ann.id).await.unwrap());
    assert_eq!(db.store.totp(ann.id).await.unwrap(), None);
    // Enrolling again after a reset starts afresh.
    db.store.enrol_totp(ann.id, &totp_secret(), 50, now()).await.unwrap();
    assert_eq!(db.store.totp(ann.id).await.unwrap().unwrap().last_used_step, 50);

    assert!(db.store.delete_user(bob.id).await.unwrap());
    assert_eq!(db.store.totp(bob.id).await.unwrap(), None);
    assert_eq!(db.count("user_totp").await, 1);
    db.finish().await;
}

// ---------------------------------------------------------------------------
// Password lockout

/// The password failure count and lock of user `username` as stored.
async fn password_lock_columns(db: &TestDb, username: &str) -> (i64, Option<i64>) {
    let sql = format!(
        "SELECT password_failures AS f, password_locked_until AS u FROM users WHERE username_normalized = '{username}'"
    );
    let conn = db.store.database();
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap();
    let row = row.unwrap_or_else(|| panic!("no user {username}"));
    (row.try_get::<i32>("", "f").unwrap().into(), row.try_get::<Option<i64>>("", "u").unwrap())
}

#[tokio::test]
async fn password_attempts_lock_with_backoff_and_a_right_password_clears_the_count() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    local_user(&db, "bob", json!({})).await;
    let policy = jit_domain::mfa::LockoutPolicy::default();
    let ghost = UserId(uuid::Uuid::now_v7());
    let error = db.store.record_password_attempt(ghost, now(), &policy).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");

    for n in 1..=5 {
        let attempt = db.store.record_password_attempt(ann.id, now(), &policy).await.unwrap();
        assert!(attempt.allowed, "attempt {n}");
        assert_eq!((attempt.lock.failures, attempt.lock.locked_until), (n, None));
    }
    // The sixth is refused unchecked and locks.
    let sixth = db.store.record_password_attempt(ann.id, now(), &policy).await.unwrap();
    assert!(!sixth.allowed);
    assert_eq!((sixth.lock.failures, sixth.lock.locked_until), (6, Some(now() + time::Duration::seconds(30))));
    assert_eq!(password_lock_columns(&db, "ann").await, (6, Some(millis(now() + time::Duration::seconds(30)))));

    // While locked, attempts are refused without being counted: the lock
    // does not grow.
    let during = now() + time::Duration::seconds(29);
    let refused = db.store.record_password_attempt(ann.id, during, &policy).await.unwrap();
    assert_eq!((refused.allowed, refused.lock), (false, sixth.lock));
    // After it, one attempt is checked and the next lock is longer.
    let later = now() + time::Duration::seconds(30);
    let attempt = db.store.record_password_attempt(ann.id, later, &policy).await.unwrap();
    assert!(attempt.allowed);
    assert_eq!((attempt.lock.failures, attempt.lock.locked_until), (7, Some(later + time::Duration::seconds(60))));
    assert!(!db.store.record_password_attempt(ann.id, later, &policy).await.unwrap().allowed);

    // Another account is untouched.
    assert_eq!(password_lock_columns(&db, "bob").await, (0, None));

    // A right password clears count and lock.
    db.store.clear_password_failures(ann.id).await.unwrap();
    assert_eq!(password_lock_columns(&db, "ann").await, (0, None));
    let attempt = db.store.record_password_attempt(ann.id, later, &policy).await.unwrap();
    assert!(attempt.allowed);
    assert_eq!((attempt.lock.failures, attempt.lock.locked_until), (1, None));
    db.store.clear_password_failures(ghost).await.unwrap();

    // Deleting the user deletes the counter with it.
    assert!(db.store.delete_user(ann.id).await.unwrap());
    let error = db.store.record_password_attempt(ann.id, later, &policy).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_password_attempts_all_count() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    let store = Arc::new(db.store.clone());
    // A policy that locks only at the burst's last attempt: every attempt
    // counts once.
    let lenient = jit_domain::mfa::LockoutPolicy { free_failures: 9, ..Default::default() };
    let attempts = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.record_password_attempt(ann.id, now(), &lenient).await.unwrap() })
    });
    let mut counts: Vec<u32> =
        futures::future::join_all(attempts).await.into_iter().map(|r| r.unwrap().lock.failures).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=10).collect::<Vec<_>>(), "each attempt counted once");
    assert_eq!(password_lock_columns(&db, "ann").await, (10, Some(millis(now() + time::Duration::seconds(30)))));
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_password_attempts_cannot_outrun_the_lock() {
    let db = TestDb::new().await;
    let ann = local_user(&db, "ann", json!({})).await;
    let store = Arc::new(db.store.clone());
    let attempts = (0..12).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store.record_password_attempt(ann.id, now(), &jit_domain::mfa::LockoutPolicy::default()).await.unwrap()
        })
    });
    let attempts: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(|r| r.unwrap()).collect();
    let allowed = attempts.iter().filter(|attempt| attempt.allowed).count();
    assert_eq!(allowed, 5, "only the free attempts go on to a password check: {attempts:?}");
    assert_eq!(password_lock_columns(&db, "ann").await, (6, Some(millis(now() + time::Duration::seconds(30)))));
    db.finish().await;
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap()
}
