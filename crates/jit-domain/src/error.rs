//! Errors of the domain: configuration that does not validate, and claims
//! that cannot be mapped. Messages are written for the administrator who has
//! to fix them.

use crate::attribute::AttributeName;

/// A connection, application or attribute definition that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A name outside the allowed alphabet.
    #[error(
        "invalid attribute name {0:?}: use an ASCII letter followed by letters, digits, '_', '-' or '.', at most 64 characters"
    )]
    InvalidAttributeName(String),
    /// A name the schema does not define.
    #[error("unknown attribute {0:?}: declare it in the attribute schema or use a standard attribute")]
    UnknownAttribute(AttributeName),
    /// A system attribute used where only user attributes may be.
    #[error("attribute {0:?} is a system attribute: it cannot be mapped, declared or set from claims")]
    SystemAttribute(AttributeName),
    /// A standard attribute declared, redefined or deleted.
    #[error("attribute {0:?} is a standard attribute: it is always there and cannot be declared, redefined or deleted")]
    BuiltInAttribute(AttributeName),
    /// An attribute value that is neither a string nor an array of strings.
    #[error("attribute {0:?} takes a string, an array of strings, or null to remove it")]
    NotAStringValue(AttributeName),
    /// An attribute description too long or with control characters.
    #[error("the description of attribute {0:?} must be at most 500 characters without control characters")]
    InvalidDescription(AttributeName),
    /// A value of an email attribute that is not an address.
    #[error("attribute {0:?} holds email addresses: a value must look like name@domain")]
    NotAnEmailAddress(AttributeName),
    /// A unique attribute declared multi-valued.
    #[error("attribute {0:?} cannot be both unique and multi-valued")]
    UniqueMultiValued(AttributeName),
    /// Several values for a single-valued attribute.
    #[error("attribute {0:?} takes a single value")]
    NotSingleValued(AttributeName),
    /// Too many values.
    #[error("attribute {0:?} has more than {max} values", max = crate::attribute::MAX_VALUES)]
    TooManyValues(AttributeName),
    /// A value over the size limit.
    #[error("a value of attribute {0:?} is longer than {max} bytes", max = crate::attribute::MAX_VALUE_LEN)]
    ValueTooLong(AttributeName),
    /// A blank value for a unique attribute.
    #[error("attribute {0:?} is unique and cannot be blank")]
    EmptyUniqueValue(AttributeName),
    /// A linking rule aimed at a local attribute that several users may share.
    #[error(
        "linking rule targets local attribute {0:?}, which is not unique: use username, email, or an attribute declared unique"
    )]
    NonUniqueLinkTarget(AttributeName),
    /// A linking rule on an attribute no IdP proves: only `email` is proven
    /// (by `email_verified` or the connection's `trust_email`); any other
    /// federated attribute must be declared authoritative.
    #[error(
        "linking rule {federated:?} = {local:?} links on a value the identity provider does not prove: only email is proven (by email_verified, or trust_email on the connection). If this IdP is authoritative for {federated:?}, set \"trusted\": true on the rule; otherwise an attacker who controls their own {federated:?} at the IdP could take over the local account that has it"
    )]
    UntrustedLinkRule {
        /// The federated claim.
        federated: String,
        /// The local attribute.
        local: AttributeName,
    },
    /// An application's custom scope that cannot be used.
    #[error("scope {scope:?} cannot be used: {why}")]
    InvalidCustomScope {
        /// The scope.
        scope: String,
        /// Why.
        why: String,
    },
    /// A claim filter that cannot be used.
    #[error("the claim filter on {claim:?} is invalid: {why}")]
    InvalidClaimFilter {
        /// The claim.
        claim: String,
        /// Why.
        why: String,
    },
    /// A username template that does not parse.
    #[error(
        "username template {0:?} is invalid: use text with {{claim}} placeholders (or {{connection}} and {{sub}}), at most 256 characters, every {{ closed by }}"
    )]
    InvalidUsernameTemplate(String),
    /// More than a first and a fallback rule.
    #[error("at most two linking rules are allowed (a first match rule and a fallback rule), got {0}")]
    TooManyLinkRules(usize),
    /// Two claims mapped onto one attribute.
    #[error("claims {first:?} and {second:?} are both mapped to attribute {attribute:?}: map one claim per attribute")]
    DuplicateMappingTarget {
        /// The attribute.
        attribute: AttributeName,
        /// One claim.
        first: String,
        /// The other claim.
        second: String,
    },
    /// A claim name that is empty or too long.
    #[error("invalid claim name {0:?}: it must be 1 to 256 characters")]
    InvalidClaimName(String),
    /// A connection name outside the allowed alphabet.
    #[error(
        "invalid connection name {0:?}: use lowercase ASCII letters, digits and '-' or '_', starting with a letter, at most 64 characters"
    )]
    InvalidConnectionName(String),
    /// A connection name that collides with a built-in step option.
    #[error("connection name {0:?} is reserved")]
    ReservedConnectionName(String),
    /// A federated subject that is empty or too long.
    #[error("invalid subject: it must be 1 to 255 characters")]
    InvalidSubject,
    /// A connection's display name that is blank or too long.
    #[error("display_name must be 1 to {max} characters (it is shown on the sign-in page)", max = crate::connection::MAX_DISPLAY_NAME_LEN)]
    InvalidDisplayName,
    /// An issuer that is not an absolute http(s) URL.
    #[error(
        "oidc.issuer must be an absolute http(s) URL without query or fragment, such as https://idp.example.com, got {0:?}"
    )]
    InvalidIssuer(String),
    /// A plain-http issuer on a host that is not loopback.
    #[error(
        "oidc.issuer {0:?} is plain http on a host that is not loopback: tokens, the client secret and users' attributes would cross the network unencrypted. Use https, or set oidc.allow_insecure_http to true on a test network"
    )]
    InsecureIssuer(String),
    /// An empty client id.
    #[error("oidc.client_id must not be empty: use the client id the IdP gave you")]
    EmptyClientId,
    /// A scope that is empty or holds white space.
    #[error("oidc.scopes holds {0:?}: give each scope as its own non-empty string without spaces")]
    InvalidScope(String),
    /// `none` or a blank algorithm.
    #[error(
        "oidc.allowed_algorithms holds {0:?}: unsigned ID tokens are never accepted; list signature algorithms such as RS256 or ES256, or leave the list empty for the safe default"
    )]
    InvalidAlgorithm(String),
    /// An application name that is blank, too long or not printable.
    #[error("name must be 1 to {max} printable characters", max = crate::application::MAX_NAME_LEN)]
    InvalidApplicationName,
    /// No redirect URI, or too many.
    #[error("redirect_uris must list 1 to {max} URIs the application receives codes at", max = crate::application::MAX_REDIRECT_URIS)]
    RedirectUriCount,
    /// A redirect URI that cannot be registered (the message says why).
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// A username that is empty or too long.
    #[error("invalid username {0:?}: it must be 1 to 320 characters with no surrounding white space")]
    InvalidUsername(String),
    /// A change that would lock administrators out of the console (the
    /// message says which and why).
    #[error("{0}")]
    ConsoleLockout(String),
}

/// Claims from an IdP that cannot be turned into attributes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// A claim of a type that has no attribute form (an object, or an array
    /// holding objects).
    #[error("claim {claim:?} has a value that cannot be stored in attribute {attribute:?} (objects are not supported)")]
    UnsupportedValue {
        /// The claim.
        claim: String,
        /// The attribute it maps to.
        attribute: AttributeName,
    },
    /// The IdP's `sub` is empty or longer than 255 characters.
    #[error("the subject identifier (sub) is empty or longer than 255 characters")]
    InvalidSubject,
    /// A mapped value that breaks the schema (arity, size).
    #[error("claim {claim:?}: {source}")]
    Invalid {
        /// The claim.
        claim: String,
        /// What is wrong.
        #[source]
        source: ConfigError,
    },
}
