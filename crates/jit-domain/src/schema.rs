//! The local attribute schema: which attributes exist, which are unique, and
//! which are protected from synchronisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attribute::{AttributeName, AttributeValue, Attributes, Normalization};
use crate::claims::STANDARD_CLAIMS;
use crate::error::ConfigError;

/// The attribute that holds a local account's login name.
pub const USERNAME: &str = "username";
/// The attribute that holds a user's email address.
pub const EMAIL: &str = "email";

/// System attributes: owned by jit itself, never mapped from claims, never
/// changed by any sync method.
pub const SYSTEM_ATTRIBUTES: &[&str] = &[
    "id",
    "password",
    "password_hash",
    "email_verified",
    "totp_secret",
    "locked",
    "locked_until",
    "failed_logins",
    "created_at",
    "updated_at",
    "last_login_at",
];

/// Whether sync must leave `name` alone: the system attributes, plus
/// `username`, which is chosen once when an account is created (from the
/// mapped `username` if any) and afterwards changed only by an administrator,
/// so that an IdP can never rename an account into another one's name.
pub fn is_sync_protected(name: &str) -> bool {
    name == USERNAME || is_system(name)
}

/// Whether `name` is a system attribute.
pub fn is_system(name: &str) -> bool {
    SYSTEM_ATTRIBUTES.contains(&name)
}

/// One attribute the local user store knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDefinition {
    /// The attribute's name.
    pub name: AttributeName,
    /// At most one user may hold a given (normalised) value. Unique
    /// attributes are single-valued and enforced by the database.
    pub unique: bool,
    /// Whether the attribute holds several values.
    pub multi_valued: bool,
    /// How values compare.
    pub normalization: Normalization,
    /// What it holds, for administrators.
    #[serde(default)]
    pub description: String,
    /// Its values never appear in the audit trail (`[redacted]`).
    #[serde(default)]
    pub sensitive: bool,
}

/// How soon a schema change made on one instance is seen by the others.
pub const SCHEMA_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest attribute description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 500;

impl AttributeDefinition {
    /// A single-valued, non-unique attribute compared exactly.
    pub fn new(name: AttributeName) -> Self {
        Self {
            name,
            unique: false,
            multi_valued: false,
            normalization: Normalization::Exact,
            description: String::new(),
            sensitive: false,
        }
    }

    fn standard(name: &'static str) -> Self {
        Self::new(AttributeName::known(name))
    }
}

/// Whether `name` is a standard attribute: `username`, or one a standard
/// OpenID Connect claim maps onto ([`STANDARD_CLAIMS`]). Standard
/// attributes are always there: they cannot be declared, redefined or
/// deleted.
pub fn is_standard(name: &str) -> bool {
    name == USERNAME || STANDARD_CLAIMS.iter().any(|claim| claim.attribute == Some(name))
}

/// A value as it is indexed for lookups: the stored form, the comparable
/// form, and whether the database must keep it unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedValue {
    /// The attribute.
    pub name: AttributeName,
    /// Position among the attribute's values (0 for single-valued ones).
    pub position: usize,
    /// The value as received or entered.
    pub value: String,
    /// The comparable form (see [`Normalization`]).
    pub normalized: String,
    /// Whether the database enforces that no two users share `normalized`.
    pub unique: bool,
}

/// The set of local attributes: the standard OpenID Connect profile
/// attributes plus any the operator declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeSchema {
    definitions: BTreeMap<AttributeName, AttributeDefinition>,
}

impl Default for AttributeSchema {
    fn default() -> Self {
        Self::standard()
    }
}

impl AttributeSchema {
    /// The standard attributes: `username` and `email` are unique and
    /// case-insensitive; `groups` and `roles` are multi-valued; the other
    /// OpenID Connect profile claims are plain single values.
    pub fn standard() -> Self {
        let special = [USERNAME, EMAIL, "groups", "roles"];
        let plain = STANDARD_CLAIMS.iter().filter_map(|c| c.attribute).filter(|a| !special.contains(a));
        let mut definitions: BTreeMap<AttributeName, AttributeDefinition> =
            plain.map(AttributeDefinition::standard).map(|d| (d.name.clone(), d)).collect();
        for name in [USERNAME, EMAIL] {
            let definition = AttributeDefinition {
                unique: true,
                normalization: Normalization::CaseInsensitive,
                ..AttributeDefinition::standard(name)
            };
            definitions.insert(definition.name.clone(), definition);
        }
        for name in ["groups", "roles"] {
            let definition = AttributeDefinition { multi_valued: true, ..AttributeDefinition::standard(name) };
            definitions.insert(definition.name.clone(), definition);
        }
        Self { definitions }
    }

    /// Adds (or redefines) an operator-declared attribute: not a system or
    /// standard one, not both unique and multi-valued, a description of at
    /// most [`MAX_DESCRIPTION_LEN`] characters.
    pub fn declare(mut self, definition: AttributeDefinition) -> Result<Self, ConfigError> {
        check_declaration(&definition)?;
        self.definitions.insert(definition.name.clone(), definition);
        Ok(self)
    }

    /// The standard schema with `declared` added, in order: what the store
    /// reads back (each declaration was checked when it was made).
    pub fn with_declared(declared: impl IntoIterator<Item = AttributeDefinition>) -> Result<Self, ConfigError> {
        declared.into_iter().try_fold(Self::standard(), Self::declare)
    }

    /// The operator-declared definitions, in name order.
    pub fn declared(&self) -> impl Iterator<Item = &AttributeDefinition> {
        self.definitions.values().filter(|definition| !is_standard(definition.name.as_str()))
    }

    /// The definition of `name`, if the schema knows it.
    pub fn get(&self, name: &str) -> Option<&AttributeDefinition> {
        self.definitions.get(name)
    }

    /// The definition of `name`, or an error naming it.
    pub fn require(&self, name: &AttributeName) -> Result<&AttributeDefinition, ConfigError> {
        self.get(name.as_str()).ok_or_else(|| ConfigError::UnknownAttribute(name.clone()))
    }

    /// Whether `name` is unique.
    pub fn is_unique(&self, name: &str) -> bool {
        self.get(name).is_some_and(|d| d.unique)
    }

    /// Whether an account's value of `name` holds that value exclusively:
    /// the attribute is unique, and for `email`, the account's email is
    /// verified. An unverified email claims nothing, so that nobody can
    /// squat an address (and block or later take over its owner's account)
    /// by signing in somewhere that does not verify it.
    pub fn holds_uniquely(&self, name: &str, email_verified: bool) -> bool {
        self.is_unique(name) && (name != EMAIL || email_verified)
    }

    /// All definitions in name order.
    pub fn definitions(&self) -> impl Iterator<Item = &AttributeDefinition> {
        self.definitions.values()
    }

    /// The comparable form of a value of `name` (exact for unknown names).
    pub fn normalize(&self, name: &str, value: &str) -> String {
        self.get(name).map_or(Normalization::Exact, |d| d.normalization).apply(value)
    }

    /// Checks that `attributes` fit the schema: known names, no system
    /// attributes, single values where the attribute is single-valued, and
    /// values within the size limits.
    pub fn check(&self, attributes: &Attributes) -> Result<(), ConfigError> {
        for (name, value) in attributes.iter() {
            if is_system(name.as_str()) {
                return Err(ConfigError::SystemAttribute(name.clone()));
            }
            let definition = self.require(name)?;
            check_value(definition, value)?;
        }
        Ok(())
    }

    /// The index entries for `attributes` of an account whose email is
    /// verified or not, one per value. Attributes the schema does not know
    /// are indexed as exact, non-unique values; an unverified `email` is
    /// not unique either (see [`holds_uniquely`](Self::holds_uniquely)).
    pub fn index(&self, attributes: &Attributes, email_verified: bool) -> Vec<IndexedValue> {
        attributes
            .iter()
            .flat_map(|(name, value)| {
                let unique = self.holds_uniquely(name.as_str(), email_verified);
                let normalization = self.get(name.as_str()).map_or(Normalization::Exact, |d| d.normalization);
                value.values().iter().enumerate().map(move |(position, v)| IndexedValue {
                    name: name.clone(),
                    position,
                    value: v.clone(),
                    normalized: normalization.apply(v),
                    unique,
                })
            })
            .collect()
    }
}

/// Whether `description` may describe an attribute, a group or a role: at
/// most [`MAX_DESCRIPTION_LEN`] characters, no control characters.
pub fn valid_description(description: &str) -> bool {
    description.chars().count() <= MAX_DESCRIPTION_LEN && !description.chars().any(char::is_control)
}

/// Whether `name` is the operator's to declare, redefine or delete: not a
/// system or standard attribute.
pub fn check_operator_attribute(name: &AttributeName) -> Result<(), ConfigError> {
    if is_system(name.as_str()) {
        return Err(ConfigError::SystemAttribute(name.clone()));
    }
    if is_standard(name.as_str()) {
        return Err(ConfigError::BuiltInAttribute(name.clone()));
    }
    Ok(())
}

/// The rules of a declaration (see [`AttributeSchema::declare`]).
pub fn check_declaration(definition: &AttributeDefinition) -> Result<(), ConfigError> {
    let name = &definition.name;
    check_operator_attribute(name)?;
    if definition.unique && definition.multi_valued {
        return Err(ConfigError::UniqueMultiValued(name.clone()));
    }
    if !valid_description(&definition.description) {
        return Err(ConfigError::InvalidDescription(name.clone()));
    }
    Ok(())
}

fn check_value(definition: &AttributeDefinition, value: &AttributeValue) -> Result<(), ConfigError> {
    let name = &definition.name;
    if !definition.multi_valued && value.single().is_none() {
        return Err(ConfigError::NotSingleValued(name.clone()));
    }
    if value.values().len() > crate::attribute::MAX_VALUES {
        return Err(ConfigError::TooManyValues(name.clone()));
    }
    if value.values().iter().any(|v| v.len() > crate::attribute::MAX_VALUE_LEN) {
        return Err(ConfigError::ValueTooLong(name.clone()));
    }
    if definition.unique && value.single().is_some_and(|v| v.trim().is_empty()) {
        return Err(ConfigError::EmptyUniqueValue(name.clone()));
    }
    if !value.values().iter().all(|v| definition.normalization.accepts(v)) {
        return Err(ConfigError::NotAnEmailAddress(name.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> AttributeName {
        AttributeName::new(n).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn standard_schema_has_unique_username_and_email() {
        let schema = AttributeSchema::standard();
        assert!(schema.is_unique(USERNAME));
        assert!(schema.is_unique(EMAIL));
        assert!(!schema.is_unique("given_name"));
        assert!(schema.get("groups").is_some_and(|d| d.multi_valued));
        assert_eq!(schema.normalize(EMAIL, " Bob@Example.org"), "bob@example.org");
    }

    #[test]
    fn declaring_attributes() {
        let unique_id = AttributeDefinition {
            name: name("employee_id"),
            unique: true,
            multi_valued: false,
            normalization: Normalization::Exact,
            description: "The HR system's id".into(),
            sensitive: false,
        };
        let schema = AttributeSchema::standard().declare(unique_id.clone());
        assert!(schema.is_ok_and(|s| s.is_unique("employee_id")));

        let system = AttributeDefinition { name: name("totp_secret"), ..unique_id.clone() };
        assert!(matches!(AttributeSchema::standard().declare(system), Err(ConfigError::SystemAttribute(_))));

        let multi = AttributeDefinition { multi_valued: true, ..unique_id.clone() };
        assert!(matches!(AttributeSchema::standard().declare(multi), Err(ConfigError::UniqueMultiValued(_))));

        for standard in ["username", "email", "given_name", "groups", "phone_number"] {
            let redefined = AttributeDefinition { name: name(standard), ..unique_id.clone() };
            assert!(matches!(check_declaration(&redefined), Err(ConfigError::BuiltInAttribute(_))), "{standard}");
        }
        let long = AttributeDefinition { description: "x".repeat(MAX_DESCRIPTION_LEN + 1), ..unique_id.clone() };
        assert!(matches!(check_declaration(&long), Err(ConfigError::InvalidDescription(_))));

        let schema = AttributeSchema::with_declared([unique_id.clone()]).unwrap();
        assert_eq!(schema.declared().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["employee_id"]);
        assert!(schema.get("given_name").is_some(), "the standard ones stay");
    }

    #[test]
    fn an_email_attribute_takes_only_addresses() {
        let work_email =
            AttributeDefinition { normalization: Normalization::Email, ..AttributeDefinition::new(name("work_email")) };
        let schema = AttributeSchema::standard().declare(work_email).unwrap();
        let attrs = |json: &str| -> Attributes { serde_json::from_str(json).unwrap_or_else(|e| unreachable!("{e}")) };
        assert!(schema.check(&attrs(r#"{"work_email":"Ann@Corp.example"}"#)).is_ok());
        assert_eq!(schema.normalize("work_email", " Ann@Corp.example"), "ann@corp.example");
        for bad in ["ann", "@corp.example", "ann@", "a@b@c", "ann @corp.example"] {
            let json = serde_json::json!({ "work_email": bad }).to_string();
            assert!(matches!(schema.check(&attrs(&json)), Err(ConfigError::NotAnEmailAddress(_))), "{bad}");
        }
    }

    #[test]
    fn check_rejects_what_does_not_fit() {
        let schema = AttributeSchema::standard();
        let check = |json: &str| {
            let attrs: Attributes = serde_json::from_str(json).unwrap_or_else(|e| unreachable!("{e}"));
            schema.check(&attrs).map_err(|e| e.to_string())
        };
        assert!(check(r#"{"email":"a@b.c","groups":["x"]}"#).is_ok());
        assert!(check(r#"{"shoe_size":"42"}"#).is_err_and(|e| e.contains("shoe_size")));
        assert!(check(r#"{"email":["a@b.c","d@e.f"]}"#).is_err());
        assert!(check(r#"{"totp_secret":"x"}"#).is_err());
        assert!(check(r#"{"email":"  "}"#).is_err());
    }

    #[test]
    fn index_marks_unique_values_and_normalises() {
        let schema = AttributeSchema::standard();
        let attrs: Attributes =
            serde_json::from_str(r#"{"email":"A@B.c","groups":["x","y"]}"#).unwrap_or_else(|e| unreachable!("{e}"));
        let index = schema.index(&attrs, true);
        assert_eq!(index.len(), 3);
        assert!(index[0].unique && index[0].normalized == "a@b.c" && index[0].value == "A@B.c");
        assert!(!index[1].unique && index[2].position == 1);
        assert!(!schema.index(&attrs, false)[0].unique, "an unverified email holds nothing");
    }
}
