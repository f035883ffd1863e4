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
