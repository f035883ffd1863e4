//! What every console page shares: the navigation, the signed-in
//! administrator, and messages placed next to the field they concern.

use std::collections::BTreeMap;

use askama::Template;
use jit_domain::error::ConfigError;
use serde::Deserialize;

use super::session::Admin;

/// The console's sections: (key, link, label), in navigation order.
pub const SECTIONS: &[(&str, &str, &str)] = &[
    ("connections", "/console/connections", "Connections"),
    ("applications", "/console/applications", "Applications"),
    ("users", "/console/users", "Users"),
    ("attributes", "/console/attributes", "Attributes"),
    ("groups", "/console/groups", "Groups"),
    ("roles", "/console/roles", "Roles"),
    ("audit", "/console/audit", "Audit"),
    ("keys", "/console/keys", "Keys"),
];

/// The frame of a console page.
pub struct Chrome {
    /// Who is signed in.
    pub username: String,
    /// The session's CSRF token (every form carries it).
    pub csrf: String,
    /// The section shown (a key of [`SECTIONS`]).
    pub section: &'static str,
    /// A message about what just happened ("Saved").
    pub notice: Option<String>,
}

impl Chrome {
    /// The frame for `admin` in `section`.
    pub fn new(admin: &Admin, section: &'static str) -> Self {
        Self { username: admin.user.username.to_string(), csrf: admin.csrf.clone(), section, notice: None }
    }

    /// With a notice.
    pub fn with_notice(mut self, notice: Option<impl Into<String>>) -> Self {
        self.notice = notice.map(Into::into);
        self
    }
}

/// Messages by the form field they concern (`form` for the whole form).
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    /// None.
    pub fn none() -> Self {
        Self::default()
    }

    /// One message for `field`.
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        Self([(field, message.into())].into())
    }

    /// A domain error, next to the field it concerns.
    pub fn config(error: &ConfigError) -> Self {
        Self::one(field_of(error), error.to_string())
    }

    /// The message for `field`.
    pub fn get(&self, field: &str) -> Option<&String> {
        self.0.get(field)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The form field a domain error concerns (presentation only: which input
/// the message is shown under).
fn field_of(error: &ConfigError) -> &'static str {
    use ConfigError as E;
    match error {
        E::NonUniqueLinkTarget(_) | E::UntrustedLinkRule { .. } | E::TooManyLinkRules(_) => "link_rules",
        E::InvalidConnectionName(_) | E::ReservedConnectionName(_) | E::InvalidApplicationName => "name",
        E::InvalidDisplayName => "display_name",
        E::InvalidIssuer(_) | E::InsecureIssuer(_) => "issuer",
        E::EmptyClientId => "client_id",
        E::InvalidScope(_) => "scopes",
        E::InvalidAlgorithm(_) => "settings",
        E::UnknownAttribute(_) | E::SystemAttribute(_) | E::InvalidClaimName(_) => "claim_mappings",
        E::InvalidUsernameTemplate(_) => "username_template",
        E::RedirectUriCount | E::InvalidRedirectUri(_) => "redirect_uris",
        _ => "form",
    }
}

/// "Delete X?": every deletion asks first, on its own page (no script
/// needed), and the form it posts carries the CSRF token.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    /// The frame.
    pub chrome: Chrome,
    /// Heading.
    pub title: String,
    /// The question.
    pub question: String,
    /// What deleting does.
    pub consequence: String,
    /// Where the confirmation posts.
    pub action: String,
    /// Where "Cancel" goes.
    pub cancel: String,
}

/// `?saved` after a successful save.
#[derive(Debug, Default, Deserialize)]
pub struct Saved {
    saved: Option<String>,
}

impl Saved {
    /// "Saved." after a save.
    pub fn notice(&self) -> Option<&'static str> {
        self.saved.as_ref().map(|_| "Saved.")
    }
}

/// A dry run's answer as the Test tab and a trial sign-in show it: the
/// decision in words, then the details, then the whole answer.
pub struct DryRunShown {
    /// `create`, `link`, `sign_in`, `pass_through` or `refuse`.
    pub decision: String,
    /// Rows of (what, detail).
    pub rows: Vec<(String, String)>,
    /// Attribute changes: (name, before, after).
    pub changes: Vec<(String, String, String)>,
    /// The answer as JSON.
    pub json: String,
}

impl DryRunShown {
    /// The summary of `answer`.
    pub fn of(answer: &crate::admin::preview::PreviewResponse) -> Self {
        let decision =
            serde_json::to_value(answer.decision).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let mut rows = Vec::new();
        if let Some(refusal) = &answer.refusal {
            rows.push(("Refused".to_owned(), refusal.message.clone()));
        }
        if let Some(matched) = &answer.matched_rule {
            rows.push((
                "Matched rule".to_owned(),
                format!("the {} rule: {} equals {}", matched.label(), matched.rule.federated, matched.rule.local),
            ));
        }
        if let Some(user) = &answer.user {
            rows.push(("Local account".to_owned(), format!("{} ({})", user.username, user.id)));
        }
        if let Some(username) = &answer.username {
            rows.push(("New account's username".to_owned(), username.to_string()));
        }
        if let Some(verified) = answer.email_verified {
            rows.push(("Email verified".to_owned(), if verified { "yes" } else { "no" }.to_owned()));
        }
        for membership in &answer.memberships {
            let plan = &membership.plan;
            let list = |set: &std::collections::BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
            let mut parts = Vec::new();
            for (label, set) in
                [("add", &plan.add), ("remove", &plan.remove), ("create", &plan.create), ("unknown", &plan.unknown)]
            {
                if !set.is_empty() {
                    parts.push(format!("{label} {}", list(set)));
                }
            }
            let detail = if parts.is_empty() { "no change".to_owned() } else { parts.join("; ") };
            rows.push((format!("{} ", membership.kind.plural()).trim().to_owned(), detail));
        }
        let dropped = &answer.mapped.dropped_claims;
        rows.push((
            "Dropped claims".to_owned(),
            if dropped.is_empty() { "none".to_owned() } else { dropped.join(", ") },
        ));
        let shown = |value: &Option<jit_domain::attribute::AttributeValue>| {
            value.as_ref().map_or_else(|| "—".to_owned(), |v| v.values().join(", "))
        };
        let changes = match &answer.changes {
            Some(update) if !update.diff.is_empty() => update
                .diff
                .iter()
                .map(|(name, change)| (name.to_string(), shown(&change.old), shown(&change.new)))
                .collect(),
            Some(update) => update
                .changed
                .iter()
                .map(|name| {
                    let new = update.attributes.get(name.as_str()).map(|v| v.values().join(", ")).unwrap_or_default();
                    (name.to_string(), "—".to_owned(), new)
                })
                .collect(),
            None => Vec::new(),
        };
        Self { decision, rows, changes, json: serde_json::to_string_pretty(answer).unwrap_or_default() }
    }
}
