//! Property tests of the domain's invariants. Each runs `CASES` generated
//! cases (proptest's default is 256; set `PROPTEST_CASES` to change it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use jit_domain::prelude::*;
use jit_domain::schema::is_sync_protected;
use proptest::prelude::*;
use support::*;

const CASES: u32 = 512;

const NAMES: &[&str] =
    &["email", "given_name", "phone_number", "groups", "employee_id", "username", "totp_secret", "locked"];
const VALUES: &[&str] = &["a@x", "A@X", "b@x", "E-1", "E-2", "ann", "bob", " ann "];

fn name() -> impl Strategy<Value = AttributeName> {
    proptest::sample::select(NAMES).prop_map(|n| AttributeName::new(n).unwrap())
}

fn value() -> impl Strategy<Value = AttributeValue> {
    let single = proptest::sample::select(VALUES).prop_map(AttributeValue::from);
    let multi = proptest::collection::vec(proptest::sample::select(VALUES).prop_map(str::to_owned), 0..3)
        .prop_map(AttributeValue::Multi);
    prop_oneof![4 => single, 1 => multi]
}

fn attributes() -> impl Strategy<Value = Attributes> {
    proptest::collection::btree_map(name(), value(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// Received attributes that are single-valued (as claim mapping produces for
/// single-valued attributes).
fn received() -> impl Strategy<Value = Attributes> {
    proptest::collection::btree_map(name(), proptest::sample::select(VALUES).prop_map(AttributeValue::from), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

fn method() -> impl Strategy<Value = SyncMethod> {
    prop_oneof![Just(SyncMethod::OverrideAll), Just(SyncMethod::PreserveLocal), Just(SyncMethod::None)]
}

fn policy() -> impl Strategy<Value = JitPolicy> {
    let rule_sets = proptest::sample::select(vec![
        vec![],
        vec![("email", "email")],
        vec![("employee_id", "employee_id")],
        vec![("employee_id", "employee_id"), ("email", "email")],
        vec![("username", "username"), ("email", "email")],
    ]);
    // Rules on non-email attributes are trusted or not at random: an
    // untrusted one fails validation, and must be harmless even so.
    (any::<bool>(), method(), any::<bool>(), any::<bool>(), rule_sets, any::<bool>(), any::<bool>()).prop_map(
        |(enabled, sync_method, trust_email, linking, rules, skip, trust_rules)| JitPolicy {
            enabled,
            sync_method,
            trust_email,
            linking: LinkingPolicy {
                enabled: linking,
                rules: rules
                    .into_iter()
                    .map(|(f, l)| LinkRule { trusted: trust_rules && f != "email", ..rule(f, l) })
                    .collect(),
                skip_provisioning_without_match: skip,
            },
            username_template: None,
        },
    )
}

/// A small world of users whose values often collide, so that matches,
/// ambiguity and taken values all occur; some emails are verified, and some
/// users already have an identity at `corp` (the second element).
fn world() -> impl Strategy<Value = (Vec<LocalUser>, Vec<UserId>)> {
    let user = (proptest::sample::select(&["ann", "bob", "cy"][..]), received(), any::<bool>(), any::<bool>());
    proptest::collection::vec(user, 0..4).prop_map(|users| {
        let mut linked = Vec::new();
        let users = users
            .into_iter()
            .enumerate()
            .map(|(i, (username, mut attributes, email_verified, at_corp))| {
                attributes.retain(|n| !is_sync_protected(n.as_str()));
                let id = UserId(uuid::Uuid::from_u128(i as u128 + 1));
                if at_corp {
                    linked.push(id);
                }
                LocalUser { id, username: Username::new(format!("{username}{i}")).unwrap(), attributes, email_verified }
            })
            .collect();
        (users, linked)
    })
}

fn protected(attributes: &Attributes) -> Attributes {
    attributes.iter().filter(|(n, _)| is_sync_protected(n.as_str())).map(|(n, v)| (n.clone(), v.clone())).collect()
}

fn unprotected(attributes: &Attributes) -> Attributes {
    attributes.iter().filter(|(n, _)| !is_sync_protected(n.as_str())).map(|(n, v)| (n.clone(), v.clone())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn override_all_yields_exactly_received_plus_protected(local in attributes(), received in attributes()) {
        let synced = sync_attributes(SyncMethod::OverrideAll, &local, &received);
        let mut expected = unprotected(&received);
        for (n, v) in protected(&local) { expected.insert(n, v); }
        prop_assert_eq!(synced, expected);
    }

    #[test]
    fn preserve_local_keeps_every_local_key_and_takes_every_received_value(
        local in attributes(), received in attributes(),
    ) {
        let synced = sync_attributes(SyncMethod::PreserveLocal, &local, &received);
        for name in local.names() {
            prop_assert!(synced.contains(name));
        }
        for (name, value) in unprotected(&received).iter() {
            prop_assert_eq!(synced.get(name.as_str()), Some(value));
        }
        let names: BTreeSet<_> = local.names().chain(unprotected(&received).names()).cloned().collect();
        prop_assert_eq!(synced.names().cloned().collect::<BTreeSet<_>>(), names);
    }

    #[test]
    fn none_changes_nothing(local in attributes(), received in attributes()) {
        prop_assert_eq!(sync_attributes(SyncMethod::None, &local, &received), local);
    }

    #[test]
    fn every_method_is_idempotent(method in method(), local in attributes(), received in attributes()) {
        let once = sync_attributes(method, &local, &received);
        let twice = sync_attributes(method, &once, &received);
        prop_assert_eq!(&twice, &once);
        prop_assert!(plan_update(method, &once, &received).is_empty());
    }

    #[test]
    fn no_method_changes_a_protected_attribute(method in method(), local in attributes(), received in attributes()) {
        let synced = sync_attributes(method, &local, &received);
        prop_assert_eq!(protected(&synced), protected(&local));
    }

    #[test]
    fn reported_changes_are_exactly_the_differences(method in method(), local in attributes(), received in attributes()) {
        let update = plan_update(method, &local, &received);
        for name in local.names().chain(update.attributes.names()) {
            let differs = local.get(name.as_str()) != update.attributes.get(name.as_str());
            prop_assert_eq!(update.changed.contains(name), differs);
        }
    }

    #[test]
    fn decisions_respect_the_invariants(
        policy in policy(),
        (users, linked) in world(),
        received in received(),
        verified in any::<bool>(),
        associated_index in proptest::option::of(0usize..4),
    ) {
        let identity = identity_with(received, verified);
        let associated = associated_index.and_then(|i| users.get(i));
        let decision = decide_linked(&policy, &identity, &users, associated, &linked);
        let schema = schema();
        let keys = plan_lookups(&policy, &schema, &identity);
        let lookups = lookups(&schema, &users, &keys);
        let proves_email = identity.email_verified || policy.trust_email;

        if !policy.enabled {
            // JIT off never creates or links (or touches anything).
            prop_assert_eq!(&decision, &Decision::PassThrough { attributes: identity.attributes.clone() });
        }
        if let Some(user) = associated.filter(|_| policy.enabled) {
            // An association is never replaced by a new account or a link.
            prop_assert!(matches!(
                &decision,
                Decision::SignIn { user: id, .. } if *id == user.id
            ) || matches!(&decision, Decision::Refuse(Refusal::UniqueValueTaken { .. })), "{:?}", decision);
        }
        match &decision {
            Decision::Link { user, matched, .. } => {
                prop_assert!(policy.linking.enabled && associated.is_none());
                // Linked to the one and only user the rule found.
                let key = LookupKey {
                    attribute: matched.rule.local.clone(),
                    normalized: schema.normalize(
                        matched.rule.local.as_str(),
                        &identity.claims[&matched.rule.federated],
                    ),
                };
                let found: Vec<&LocalUser> = lookups
                    .get(&key)
                    .iter()
                    .filter(|u| !matched.rule.targets_email() || u.email_verified)
                    .collect();
                prop_assert_eq!(found.len(), 1);
                prop_assert_eq!(found[0].id, *user);
                // Never on a value nobody proved.
                prop_assert!(
                    matched.rule.trusted || (matched.rule.federated.as_str() == "email" && proves_email),
                    "linked on an unproven value"
                );
                // Never into an account whose target value is unverified.
                let target = users.iter().find(|u| u.id == *user).unwrap();
                prop_assert!(!matched.rule.targets_email() || target.email_verified, "linked into an unverified email");
                // Never into an account that has an identity at this connection.
                prop_assert!(!linked.contains(user), "linked a second identity of the same connection");
            }
            Decision::Create { attributes, email_verified, .. } => {
                prop_assert!(associated.is_none());
                prop_assert!(!policy.linking.skip_provisioning_without_match);
                prop_assert!(attributes.names().all(|n| !is_sync_protected(n.as_str())));
                prop_assert!(!email_verified || proves_email, "an unproven email marked verified");
                // A created account never takes a value another account holds uniquely.
                let normalized = |name: &AttributeName, v: &AttributeValue| v.single().map(|v| schema.normalize(name.as_str(), v));
                for (name, value) in attributes.iter().filter(|(n, _)| schema.holds_uniquely(n.as_str(), *email_verified)) {
                    prop_assert!(users.iter()
                        .filter(|u| schema.holds_uniquely(name.as_str(), u.email_verified))
                        .all(|u| u.attributes.get(name.as_str()).and_then(|v| normalized(name, v)) != normalized(name, value)));
                }
            }
            Decision::Refuse(refusal) => {
                prop_assert!(!refusal.to_string().trim().is_empty(), "every refusal has a reason");
            }
            Decision::SignIn { .. } | Decision::PassThrough { .. } => {}
        }
        if let Decision::SignIn { user, update, email_verified: true } | Decision::Link { user, update, email_verified: true, .. } = &decision {
            // A verified email is one the IdP proved now, or the one the account had verified.
            let email = |a: &Attributes| a.get("email").and_then(AttributeValue::single).map(|v| schema.normalize("email", v));
            let now = email(&update.attributes);
            let before = users.iter().chain(associated).find(|u| u.id == *user).unwrap();
            prop_assert!(now.is_some());
            prop_assert!(
                (proves_email && email(&identity.attributes) == now) || (before.email_verified && email(&before.attributes) == now),
                "an email marked verified that nobody verified"
            );
        }
    }

    #[test]
    fn deciding_twice_on_the_same_facts_gives_the_same_decision(
        policy in policy(), (users, linked) in world(), received in received(), verified in any::<bool>(),
    ) {
        let identity = identity_with(received, verified);
        prop_assert_eq!(
            decide_linked(&policy, &identity, &users, None, &linked),
            decide_linked(&policy, &identity, &users, None, &linked)
        );
    }

    /// Finding 5: normalisation merges two values only if they differ by
    /// surrounding white space and ASCII case, never by Unicode folding
    /// (the Kelvin sign, dotless i, long s, sharp s, ...).
    #[test]
    fn normalisation_merges_nothing_beyond_ascii_case(
        a in "[ aAkKsSiI\u{212A}\u{0131}\u{0130}\u{017F}\u{00DF}\u{1E9E}@.]{0,6}",
        b in "[ aAkKsSiI\u{212A}\u{0131}\u{0130}\u{017F}\u{00DF}\u{1E9E}@.]{0,6}",
    ) {
        let schema = schema();
        for name in ["email", "username"] {
            if schema.normalize(name, &a) == schema.normalize(name, &b) {
                prop_assert!(a.trim().eq_ignore_ascii_case(b.trim()), "{name}: {a:?} and {b:?} were merged");
            }
        }
        if let (Ok(x), Ok(y)) = (Username::new(a.trim()), Username::new(b.trim())) {
            prop_assert_eq!(x.normalized() == y.normalized(), a.trim().eq_ignore_ascii_case(b.trim()));
        }
    }

    #[test]
    fn email_matching_ignores_case_and_surrounding_space(local in "[a-zA-Z]{1,8}@[a-zA-Z]{1,8}\\.[a-z]{2,3}") {
        let schema = schema();
        let shouted = format!("  {}  ", local.to_uppercase());
        prop_assert_eq!(schema.normalize("email", &local), schema.normalize("email", &shouted));
        let once = schema.normalize("email", &shouted);
        prop_assert_eq!(schema.normalize("email", &once), once.clone());
    }
}

fn identity_with(mut received: Attributes, email_verified: bool) -> FederatedIdentity {
    received.retain(|n| !jit_domain::schema::is_system(n.as_str()));
    FederatedIdentity {
        connection: ConnectionName::new("corp").unwrap(),
        subject: Subject::new("sub-1").unwrap(),
        claims: support::claims_like(&received),
        attributes: received,
        email_verified,
        filtered_out: None,
        memberships: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Group and role memberships (issue 9 §3)

mod memberships {
    use std::collections::BTreeSet;

    use jit_domain::connection::ConnectionName;
    use jit_domain::membership::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &["staff", "hr", "ops", "vpn", "admins"];

    fn connection() -> impl Strategy<Value = ConnectionName> {
        prop::sample::select(vec!["corp", "partner"]).prop_map(|n| ConnectionName::new(n).unwrap())
    }

    fn grant() -> impl Strategy<Value = Grant> {
        prop_oneof![Just(Grant::Admin), connection().prop_map(Grant::Connection)]
    }

    /// A user's memberships: each name at most once, with some grant.
    fn memberships() -> impl Strategy<Value = Vec<Membership>> {
        prop::collection::btree_map(prop::sample::select(NAMES.to_vec()), grant(), 0..5).prop_map(|m| {
            m.into_iter().map(|(name, granted_by)| Membership { name: name.into(), granted_by }).collect()
        })
    }

    fn mapping() -> impl Strategy<Value = MembershipMapping> {
        (
            prop::collection::btree_map(
                prop::sample::select(vec!["Staff", "HR", "Ops", "Nobody"]),
                prop::sample::select(NAMES.to_vec()),
                0..4,
            ),
            prop_oneof![Just(Unmapped::Ignore), Just(Unmapped::Create)],
            prop_oneof![Just(MembershipSync::OverrideAll), Just(MembershipSync::MergeWithExisting)],
        )
            .prop_map(|(mappings, unmapped, sync_method)| MembershipMapping {
                claim: None,
                mappings: mappings.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect(),
                unmapped,
                sync_method,
            })
    }

    fn received() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(prop::sample::select(vec!["Staff", "HR", "Ops", "Nobody", "staff", "new"]), 0..5)
            .prop_map(|values| values.into_iter().map(String::from).collect())
    }

    fn existing() -> impl Strategy<Value = BTreeSet<String>> {
        prop::collection::btree_set(prop::sample::select(NAMES.to_vec()), 0..5)
            .prop_map(|names| names.into_iter().map(String::from).collect())
    }

    proptest! {
        /// A sign-in never removes a membership another source granted.
        #[test]
        fn a_sync_never_removes_what_another_source_granted(
            current in memberships(), received in received(), connection in connection(),
            mapping in mapping(), existing in existing(),
        ) {
            let plan = plan_memberships(&current, &received, &connection, &mapping, &existing);
            let after = apply_plan(&current, &plan, &connection);
            for membership in current.iter().filter(|m| m.granted_by != Grant::Connection(connection.clone())) {
                prop_assert!(after.contains(membership), "{membership:?} was removed: {plan:?}");
            }
            if mapping.sync_method == MembershipSync::MergeWithExisting {
                prop_assert!(plan.remove.is_empty());
            }
        }

        /// Syncing twice with the same claims changes nothing the second
        /// time (after the created groups exist).
        #[test]
        fn a_sync_is_idempotent(
            current in memberships(), received in received(), connection in connection(),
            mapping in mapping(), existing in existing(),
        ) {
            let plan = plan_memberships(&current, &received, &connection, &mapping, &existing);
            let after = apply_plan(&current, &plan, &connection);
            let existing: BTreeSet<String> = existing.union(&plan.create).cloned().collect();
            let again = plan_memberships(&after, &received, &connection, &mapping, &existing);
            prop_assert!(again.is_empty(), "{again:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Declared attributes under every sync method (issue 9)

mod declared_attributes {
    use jit_domain::attribute::{AttributeName, AttributeValue, Attributes};
    use jit_domain::schema::{AttributeDefinition, AttributeSchema};
    use jit_domain::sync::sync_attributes;
    use proptest::prelude::*;

    use super::method;

    /// `skills` is declared multi-valued, `department` single-valued.
    fn schema() -> AttributeSchema {
        let skills = AttributeDefinition {
            multi_valued: true,
            ..AttributeDefinition::new(AttributeName::new("skills").unwrap())
        };
        let department = AttributeDefinition::new(AttributeName::new("department").unwrap());
        AttributeSchema::with_declared([skills, department]).unwrap()
    }

    /// Attributes that fit the schema: several skills, one department.
    fn fitting() -> impl Strategy<Value = Attributes> {
        (
            proptest::option::of(proptest::collection::vec(prop::sample::select(vec!["rust", "sql", "go"]), 1..4)),
            proptest::option::of(prop::sample::select(vec!["Sales", "R&D"])),
        )
            .prop_map(|(skills, department)| {
                let mut attributes = Attributes::new();
                if let Some(skills) = skills {
                    let values = skills.into_iter().map(String::from).collect();
                    attributes.insert(AttributeName::new("skills").unwrap(), AttributeValue::Multi(values));
                }
                if let Some(department) = department {
                    attributes
                        .insert(AttributeName::new("department").unwrap(), AttributeValue::Single(department.into()));
                }
                attributes
            })
    }

    proptest! {
        /// Whatever the method, syncing attributes that fit the schema
        /// gives attributes that fit it: a multi-valued attribute keeps all
        /// its values, a single-valued one stays single.
        #[test]
        fn every_method_keeps_declared_arity(method in method(), local in fitting(), received in fitting()) {
            let schema = schema();
            prop_assert!(schema.check(&local).is_ok() && schema.check(&received).is_ok());
            let synced = sync_attributes(method, &local, &received);
            prop_assert!(schema.check(&synced).is_ok(), "{method:?}: {synced:?}");
            if let Some(skills) = received.get("skills").filter(|_| method != jit_domain::connection::SyncMethod::None) {
                prop_assert_eq!(synced.get("skills"), Some(skills), "all values are taken");
            }
        }
    }
}
