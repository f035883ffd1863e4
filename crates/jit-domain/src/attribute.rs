//! Attributes: named, single- or multi-valued user data, and how values are
//! normalised for comparison.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Longest attribute name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest single attribute value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most values a multi-valued attribute may hold.
pub const MAX_VALUES: usize = 256;

/// The name of a local attribute, such as `email` or `given_name`.
///
/// Names start with an ASCII letter and continue with ASCII letters, digits,
/// `_`, `-` or `.`; at most [`MAX_NAME_LEN`] characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct AttributeName(String);

impl AttributeName {
    /// Parses a name, rejecting anything outside the allowed alphabet.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        let mut chars = name.chars();
        let valid_start = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid_start && valid_rest && name.len() <= MAX_NAME_LEN {
            Ok(Self(name))
        } else {
            Err(ConfigError::InvalidAttributeName(name))
        }
    }

    /// A name known to be valid at compile time (used for the standard schema).
    pub(crate) fn known(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AttributeName {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<AttributeName> for String {
    fn from(value: AttributeName) -> Self {
        value.0
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Ordering, equality and hashing are those of the inner `String`, so
// borrowing as `str` is consistent and maps can be searched by `&str`.
impl std::borrow::Borrow<str> for AttributeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AttributeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// The value of an attribute: one string, or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AttributeValue {
    /// A single-valued attribute.
    Single(String),
    /// A multi-valued attribute, in the order received.
    Multi(Vec<String>),
}

impl AttributeValue {
    /// The values as a slice, whatever the arity.
    pub fn values(&self) -> &[String] {
        match self {
            Self::Single(value) => std::slice::from_ref(value),
            Self::Multi(values) => values,
        }
    }

    /// The value when there is exactly one.
    pub fn single(&self) -> Option<&str> {
        match self.values() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::Single(value.to_owned())
    }
}

/// How values of an attribute are made comparable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Surrounding white space is ignored; case matters.
    #[default]
    Exact,
    /// Surrounding white space and ASCII case are ignored (usernames,
    /// emails). Only ASCII letters fold: `K` and the Kelvin sign `\u{212A}`,
    /// or `ß` and `ss`, stay different, because a mail system may deliver
    /// them to different mailboxes and Unicode folding would let one
    /// address stand in for another.
    CaseInsensitive,
    /// An email address: compared as [`Normalization::CaseInsensitive`],
    /// and a value must look like one (one `@`, something on each side, no
    /// white space).
    Email,
}

impl Normalization {
    /// The comparable form of `value`.
    pub fn apply(self, value: &str) -> String {
        let trimmed = value.trim();
        match self {
            Self::Exact => trimmed.to_owned(),
            Self::CaseInsensitive | Self::Email => trimmed.to_ascii_lowercase(),
        }
    }

    /// Whether `value` is acceptable under this normalisation (only
    /// [`Normalization::Email`] restricts values).
    pub fn accepts(self, value: &str) -> bool {
        match self {
            Self::Exact | Self::CaseInsensitive => true,
            Self::Email => {
                let value = value.trim();
                value
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
                    && !value.chars().any(char::is_whitespace)
            }
        }
    }
}

/// A set of attributes, by name. Ordered, so that output is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attributes(BTreeMap<AttributeName, AttributeValue>);

impl Attributes {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0.get(name)
    }

    /// Sets `name` to `value`, replacing any previous value.
    pub fn insert(&mut self, name: AttributeName, value: AttributeValue) {
        self.0.insert(name, value);
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &AttributeName) -> Option<AttributeValue> {
        self.0.remove(name)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &AttributeName) -> bool {
        self.0.contains_key(name)
    }

    /// The attributes in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&AttributeName, &AttributeValue)> {
        self.0.iter()
    }

    /// The names in order.
    pub fn names(&self) -> impl Iterator<Item = &AttributeName> {
        self.0.keys()
    }

    /// How many attributes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the attributes for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&AttributeName) -> bool) {
        self.0.retain(|name, _| keep(name));
    }

    /// These attributes with a JSON merge patch (RFC 7396) applied: a name
    /// set to `null` is removed, a string or an array of strings replaces
    /// the value. Anything else (a number, an object, an array holding
    /// something but strings) is refused, naming the attribute. The schema
    /// is checked by the caller, on the result.
    pub fn merged(
        &self,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, crate::error::ConfigError> {
        use crate::error::ConfigError;
        use serde_json::Value;
        let mut merged = self.clone();
        for (name, value) in patch {
            let name = AttributeName::new(name).map_err(|_| ConfigError::InvalidAttributeName(name.clone()))?;
            let value = match value {
                Value::Null => {
                    merged.remove(&name);
                    continue;
                }
                Value::String(single) => AttributeValue::Single(single.clone()),
                Value::Array(values) => AttributeValue::Multi(
                    values
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| ConfigError::NotAStringValue(name.clone()))?,
                ),
                _ => return Err(ConfigError::NotAStringValue(name)),
            };
            merged.insert(name, value);
        }
        Ok(merged)
    }
}

impl FromIterator<(AttributeName, AttributeValue)> for Attributes {
    fn from_iter<T: IntoIterator<Item = (AttributeName, AttributeValue)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for Attributes {
    type Item = (AttributeName, AttributeValue);
    type IntoIter = std::collections::btree_map::IntoIter<AttributeName, AttributeValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_name(input: &str, valid: bool) {
        assert_eq!(AttributeName::new(input).is_ok(), valid, "{input:?}");
    }

    #[test]
    fn attribute_names() {
        check_name("email", true);
        check_name("employee.id", true);
        check_name("given_name", true);
        check_name("x", true);
        check_name("", false);
        check_name("1st", false);
        check_name("has space", false);
        check_name("é", false);
        check_name(&"a".repeat(MAX_NAME_LEN), true);
        check_name(&"a".repeat(MAX_NAME_LEN + 1), false);
    }

    #[test]
    fn normalisation_trims_and_folds_case_only_when_asked() {
        assert_eq!(Normalization::CaseInsensitive.apply("  Alice@Example.COM "), "alice@example.com");
        assert_eq!(Normalization::Exact.apply("  Alice "), "Alice");
    }

    #[test]
    fn a_merge_patch_sets_replaces_and_removes() {
        let before: Attributes =
            serde_json::from_str(r#"{"given_name":"Ann","nickname":"annie","groups":["a"]}"#).unwrap_or_default();
        let patch = serde_json::json!({"nickname": null, "given_name": "Anne", "groups": ["a", "b"], "locale": "fr"});
        let after = before.merged(patch.as_object().unwrap_or(&Default::default())).unwrap_or_default();
        assert_eq!(
            serde_json::to_value(&after).unwrap_or_default(),
            serde_json::json!({"given_name": "Anne", "groups": ["a", "b"], "locale": "fr"})
        );
        for bad in [serde_json::json!({"age": 42}), serde_json::json!({"x": {"y": "z"}}), serde_json::json!({"g": [1]})]
        {
            assert!(before.merged(bad.as_object().unwrap_or(&Default::default())).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_serialize_as_string_or_array() -> Result<(), serde_json::Error> {
        let attrs: Attributes = serde_json::from_str(r#"{"email":"a@b.c","groups":["x","y"]}"#)?;
        assert_eq!(attrs.get("email").and_then(AttributeValue::single), Some("a@b.c"));
        assert_eq!(attrs.get("groups").map(AttributeValue::values), Some(&["x".to_owned(), "y".to_owned()][..]));
        assert_eq!(serde_json::to_string(&attrs)?, r#"{"email":"a@b.c","groups":["x","y"]}"#);
        Ok(())
    }
}
