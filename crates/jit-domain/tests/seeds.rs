//! One example per sentence of the seed documents that states a rule. Each
//! test quotes its sentence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use jit_domain::prelude::*;
use jit_domain::schema::USERNAME;
use serde_json::json;
use support::*;

fn policy(sync_method: SyncMethod) -> JitPolicy {
    JitPolicy { sync_method, ..JitPolicy::default() }
}

fn linking(rules: Vec<LinkRule>, skip: bool) -> JitPolicy {
    JitPolicy {
        linking: LinkingPolicy { enabled: true, rules, skip_provisioning_without_match: skip },
        ..JitPolicy::default()
    }
}

#[test]
fn first_login_creates_an_account_with_the_received_attributes() {
    // "JIT user provisioning allows [the server] to automatically create a user
    // account in its internal user store when a user successfully logs in using
    // an external Identity Provider (IdP) for the first time."
    // "creates a user account in its internal user store along with the user
    // attributes obtained from the authentication response."
    let id = identity(json!({"username": "ann", "email": "ann@corp.example", "given_name": "Ann"}), true);
    let decision = decide_in(&JitPolicy::default(), &id, &[], None);
    assert_eq!(
        decision,
        Decision::Create {
            username: Username::new("ann").unwrap(),
            attributes: attrs(json!({"email": "ann@corp.example", "given_name": "Ann"})),
            email_verified: true,
        }
    );
}

#[test]
fn jit_disabled_passes_attributes_to_the_application_and_touches_nothing() {
    // "Since [the server] does not create local user accounts for federated
    // users, those users' attributes will not be stored [...]. Instead,
    // attributes from the external IdP are passed directly to the application."
    let id = identity(json!({"email": "ann@corp.example"}), true);
    let existing = user(1, "ann", json!({"email": "ann@corp.example"}));
    let off = JitPolicy { enabled: false, ..JitPolicy::default() };
    for associated in [None, Some(&existing)] {
        let decision = decide_in(&off, &id, std::slice::from_ref(&existing), associated);
        assert_eq!(decision, Decision::PassThrough { attributes: id.attributes.clone() });
    }
    assert!(plan_lookups(&off, &schema(), &id).is_empty(), "JIT off reads no local accounts");
}

#[test]
fn override_all_makes_local_attributes_those_received() {
    // "Override All - Overrides all attributes of the local user account with
    // the attributes received from the external identity provider each time
    // the user logs in."
    let local = user(1, "ann", json!({"email": "ann@corp.example", "phone_number": "+1 555"}));
    let id = identity(json!({"email": "ann@corp.example", "given_name": "Annie"}), true);
    let Decision::SignIn { update, .. } = decide_in(&policy(SyncMethod::OverrideAll), &id, &[], Some(&local)) else {
        panic!()
    };
    assert_eq!(update.attributes, attrs(json!({"email": "ann@corp.example", "given_name": "Annie"})));
}

#[test]
fn none_retains_local_attributes() {
    // "None - No attributes are synchronized. The local user account retains
    // its attributes."
    let local = user(1, "ann", json!({"email": "ann@corp.example", "phone_number": "+1 555"}));
    let id = identity(json!({"email": "ann@corp.example", "given_name": "Annie"}), true);
    let Decision::SignIn { update, .. } = decide_in(&policy(SyncMethod::None), &id, &[], Some(&local)) else {
        panic!()
    };
    assert_eq!(update.attributes, local.attributes);
    assert!(update.is_empty());
}

#[test]
fn preserve_local_overrides_only_received_attributes() {
    // "Preserve local - Overrides only the attributes that are received from
    // the identity provider. Any additional attributes that exist in the local
    // user account but are not provided by the identity provider are preserved."
    let local = user(1, "ann", json!({"email": "ann@corp.example", "phone_number": "+1 555", "given_name": "A"}));
    let id = identity(json!({"email": "ann@corp.example", "given_name": "Annie"}), true);
    let Decision::SignIn { update, .. } = decide_in(&policy(SyncMethod::PreserveLocal), &id, &[], Some(&local)) else {
        panic!()
    };
    assert_eq!(
        update.attributes,
        attrs(json!({"email": "ann@corp.example", "phone_number": "+1 555", "given_name": "Annie"}))
    );
}

#[test]
fn a_matching_rule_links_to_the_local_account() {
    // "[The server] evaluates the defined account linking rules to determine
    // whether the federated user matches an existing local user. If a match is
    // found, the federated user is automatically linked to the corresponding
    // local account."
    let local = user(7, "a.smith", json!({"employee_id": "E-42"}));
    let id = identity(json!({"employee_id": "E-42", "given_name": "Ann"}), false);
    let decision = decide_in(&linking(vec![trusted("employee_id", "employee_id")], false), &id, &[local], None);
    let Decision::Link { user, matched, update, .. } = decision else { panic!("{decision:?}") };
    assert_eq!(user, UserId(uuid::Uuid::from_u128(7)));
    assert_eq!(matched.label(), "first");
    assert_eq!(update.attributes, attrs(json!({"employee_id": "E-42", "given_name": "Ann"})));
}

#[test]
fn without_rules_linking_matches_on_email() {
    // "If no rules are defined, [the server] defaults to matching the email
    // address."
    let local = user(3, "ann", json!({"email": "Ann@Corp.Example"}));
    let id = identity(json!({"email": "ann@corp.example"}), true);
    let decision = decide_in(&linking(vec![], false), &id, &[local], None);
    assert!(
        matches!(decision, Decision::Link { ref matched, .. } if matched.rule == LinkRule::default_email()),
        "{decision:?}"
    );
}

#[test]
fn skip_provisioning_refuses_when_no_local_account_is_found() {
    // "Skip user provisioning when no local account is found - [...] This
    // setting prevents [the server] from creating a new local user account."
    let id = identity(json!({"email": "new@corp.example"}), true);
    let decision = decide_in(&linking(vec![], true), &id, &[user(1, "bob", json!({"email": "bob@x"}))], None);
    assert_eq!(decision, Decision::Refuse(Refusal::NoMatchingAccount));
    assert!(Refusal::NoMatchingAccount.to_string().contains("no local account"));
}

#[test]
fn the_fallback_rule_applies_when_the_first_finds_nothing() {
    // "[The server] evaluates the first match rule and if no match is found,
    // applies the fallback match rule."
    let local = user(5, "asmith", json!({"email": "old@corp.example"}));
    let id = identity(json!({"username": "asmith", "email": "ann@corp.example"}), true);
    let rules = vec![rule("email", "email"), trusted("username", "username")];
    let decision = decide_in(&linking(rules, false), &id, &[local], None);
    assert!(matches!(decision, Decision::Link { ref matched, .. } if matched.index == 1), "{decision:?}");
}

#[test]
fn when_no_rule_matches_an_account_is_created_unless_skipped() {
    // "If none of the rules match, [the server] creates a new local user
    // account (unless the Skip user provisioning when no local account is
    // found setting is enabled)."
    let others = [user(1, "bob", json!({"email": "bob@corp.example"}))];
    let id = identity(json!({"username": "ann", "email": "ann@corp.example"}), true);
    let rules = vec![rule("email", "email"), trusted("username", "username")];
    assert!(matches!(decide_in(&linking(rules.clone(), false), &id, &others, None), Decision::Create { .. }));
    assert_eq!(decide_in(&linking(rules, true), &id, &others, None), Decision::Refuse(Refusal::NoMatchingAccount));
}

#[test]
fn rules_must_target_a_unique_local_attribute() {
    // "Ensure you select a local user attribute that is unique for each user
    // to guarantee accurate and consistent user matching."
    let error = linking(vec![rule("given_name", "given_name")], false).validate(&schema());
    assert!(matches!(error, Err(ConfigError::NonUniqueLinkTarget(_))));
}

#[test]
fn default_connection_updates_the_account_with_the_same_email_or_creates_one() {
    // "When JIT is enabled, [the server] updates the existing local account
    // created with the same email address or if a new user, creates a user
    // profile with the user attributes received from the external IdP."
    let policy = JitPolicy::default();
    let local = user(9, "ann", json!({"email": "ann@corp.example", "given_name": "A"}));
    let id = identity(json!({"email": "ann@corp.example", "given_name": "Ann"}), true);
    let Decision::Link { update, .. } = decide_in(&policy, &id, std::slice::from_ref(&local), None) else { panic!() };
    assert_eq!(update.attributes, attrs(json!({"email": "ann@corp.example", "given_name": "Ann"})));
    assert!(matches!(decide_in(&policy, &id, &[], None), Decision::Create { .. }));
}

#[test]
fn mfa_after_a_jit_disabled_connection_is_warned_about() {
    // "If you have disabled JIT provisioning for an IdP, applications that use
    // multi-factor authentication may break as certain MFA mechanisms (such as
    // TOTP and Email OTP) require users to have local accounts."
    let flow: SignInFlow =
        serde_json::from_value(json!({"steps": [{"options": ["LOCAL", "partner"]}, {"options": ["EMAIL_OTP"]}]}))
            .unwrap();
    let warnings = flow.validate(|_| Some(ConnectionFacts { jit_enabled: false })).unwrap();
    assert_eq!(warnings.len(), 1);
    // "you can use the following conditional authentication script to skip the
    // MFA step when using JIT-disabled connectors."
    let with_script = SignInFlow { script: Some(jit_domain::flow::SKIP_MFA_FOR_FEDERATED_SCRIPT.to_owned()), ..flow };
    assert!(with_script.validate(|_| Some(ConnectionFacts { jit_enabled: false })).unwrap().is_empty());
}

// Rules of the design brief that refine the seeds.

#[test]
fn unverified_email_never_links_unless_the_connection_trusts_emails() {
    // The unverified address finds nobody: the sign-in gets its own account,
    // whose email is marked unverified (and holds the address for nobody),
    // whether or not a local account has that address. Nothing tells the
    // visitor that one exists.
    let local = user(1, "ann", json!({"email": "ann@corp.example"}));
    let id = identity(json!({"email": "ANN@corp.example"}), false);
    let decision = decide_in(&JitPolicy::default(), &id, std::slice::from_ref(&local), None);
    assert_eq!(decision, decide_in(&JitPolicy::default(), &id, &[], None), "the same with or without ann");
    assert!(matches!(decision, Decision::Create { email_verified: false, .. }), "{decision:?}");
    let trusting = JitPolicy { trust_email: true, ..JitPolicy::default() };
    assert!(matches!(decide_in(&trusting, &id, &[local], None), Decision::Link { email_verified: true, .. }));
}

/// Finding 2 of the security review (pre-account takeover): an account
/// created with an email nobody verified is never a link target, and does
/// not keep the address's owner from getting an account that holds it.
#[test]
fn an_account_with_an_unverified_email_is_never_linked_into() {
    let squatter = unverified_user(1, "mallory", json!({"email": "newhire@corp.test"}));
    let owner = identity(json!({"email": "newhire@corp.test"}), true);
    let decision = decide_in(&JitPolicy::default(), &owner, std::slice::from_ref(&squatter), None);
    assert!(matches!(decision, Decision::Create { email_verified: true, .. }), "{decision:?}");
    let trusting = JitPolicy { trust_email: true, ..JitPolicy::default() };
    assert!(matches!(decide_in(&trusting, &owner, &[squatter], None), Decision::Create { .. }));
}

/// Finding 2: an account's email stays verified only while it is the
/// address that was verified.
#[test]
fn an_email_changed_by_an_unverifying_idp_is_unverified() {
    let ann = user(1, "ann", json!({"email": "ann@corp.test"}));
    let same = identity(json!({"email": "ANN@corp.test"}), false);
    let changed = identity(json!({"email": "ann@elsewhere.test"}), false);
    let check = |id: &FederatedIdentity, verified: bool| {
        let decision = decide_in(&JitPolicy::default(), id, &[], Some(&ann));
        assert!(
            matches!(decision, Decision::SignIn { email_verified, .. } if email_verified == verified),
            "{decision:?}"
        );
    };
    check(&same, true);
    check(&changed, false);
    check(&identity(json!({"email": "ann@elsewhere.test"}), true), true);
}

/// Finding 5: only ASCII letters fold. The Kelvin sign is not a K.
#[test]
fn unicode_look_alikes_do_not_match() {
    let kate = user(1, "kate", json!({"email": "kate@corp.test"}));
    let kelvin = identity(json!({"email": "\u{212A}ate@corp.test"}), true);
    let decision = decide_in(&JitPolicy::default(), &kelvin, &[kate], None);
    assert!(matches!(decision, Decision::Create { .. }), "{decision:?}");
}

/// Finding 6 (email recycling): an account that already has an identity at
/// this connection is not linked to a second subject of the same IdP.
#[test]
fn an_account_linked_at_the_connection_is_not_linked_again() {
    let old = user(1, "kim", json!({"email": "kim@corp.test"}));
    let recycled = identity(json!({"email": "kim@corp.test", "given_name": "Other"}), true);
    let decision = decide_linked(&JitPolicy::default(), &recycled, &[old], None, &[UserId(uuid::Uuid::from_u128(1))]);
    assert!(matches!(decision, Decision::Refuse(Refusal::AlreadyLinked { .. })), "{decision:?}");
    assert!(!Refusal::AlreadyLinked { rule: LinkRule::default_email() }.to_string().is_empty());
}

/// Finding 7: a rule on an attribute the IdP does not prove links nobody,
/// even if an invalid policy slipped past validation.
#[test]
fn an_untrusted_rule_never_links() {
    let admin = user(1, "admin", json!({}));
    let id = identity(json!({"username": "admin"}), true);
    let decision = decide_in(&linking(vec![rule("username", "username")], false), &id, &[admin], None);
    assert!(
        matches!(decision, Decision::Create { ref username, .. } if username.as_str() == "corp.sub-1"),
        "{decision:?}"
    );
}

#[test]
fn a_rule_matching_several_accounts_links_none() {
    let twins = [user(1, "a", json!({"employee_id": "E-1"})), user(2, "b", json!({"employee_id": "E-1"}))];
    let id = identity(json!({"employee_id": "E-1"}), true);
    let decision = decide_in(&linking(vec![trusted("employee_id", "employee_id")], false), &id, &twins, None);
    assert!(matches!(decision, Decision::Refuse(Refusal::AmbiguousMatch { matches: 2, .. })), "{decision:?}");
}

#[test]
fn a_taken_email_is_refused_when_linking_is_off() {
    let local = user(1, "ann", json!({"email": "ann@corp.example"}));
    let id = identity(json!({"email": "ann@corp.example"}), true);
    let no_linking =
        JitPolicy { linking: LinkingPolicy { enabled: false, ..LinkingPolicy::default() }, ..JitPolicy::default() };
    let decision = decide_in(&no_linking, &id, &[local], None);
    assert!(
        matches!(decision, Decision::Refuse(Refusal::UniqueValueTaken { ref attribute }) if attribute.as_str() == "email")
    );
}

#[test]
fn a_taken_username_falls_back_to_connection_and_subject() {
    let local = user(1, "ann", json!({}));
    let id = identity(json!({"username": "Ann"}), true);
    let Decision::Create { username, .. } = decide_in(&JitPolicy::default(), &id, &[local], None) else { panic!() };
    assert_eq!(username.as_str(), "corp.sub-1");
}

#[test]
fn sync_never_renames_an_account() {
    let local = user(1, "ann", json!({"email": "ann@x"}));
    let id = identity(json!({USERNAME: "root", "email": "ann@x"}), true);
    let Decision::SignIn { update, .. } = decide_in(&JitPolicy::default(), &id, &[], Some(&local)) else { panic!() };
    assert!(update.attributes.get(USERNAME).is_none() && update.is_empty());
}

#[test]
fn a_returning_user_cannot_take_another_accounts_email() {
    let ann = user(1, "ann", json!({"email": "ann@x"}));
    let bob = user(2, "bob", json!({"email": "bob@x"}));
    let id = identity(json!({"email": "BOB@x"}), true);
    let decision = decide_in(&JitPolicy::default(), &id, std::slice::from_ref(&bob), Some(&ann));
    assert!(matches!(decision, Decision::Refuse(Refusal::UniqueValueTaken { .. })), "{decision:?}");
}
