//! What can go wrong talking to an external identity provider.
//!
//! Every message says what happened and what to do about it. None of them
//! carries a secret (client secret, code, token or PKCE verifier).

use std::time::Duration;

/// An error of the OpenID Connect relying party.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdpError {
    /// The relying party's configuration is unusable.
    #[error("invalid identity provider configuration: {0}; fix the connection's settings")]
    Config(String),
    /// The provider's discovery document or key set could not be read or is invalid.
    #[error(
        "could not use the OpenID configuration of {issuer}: {reason}; check the connection's issuer URL and that the identity provider is an OpenID provider"
    )]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What was wrong.
        reason: String,
    },
    /// An outbound call got no answer in time.
    #[error(
        "the identity provider at {url} did not answer within {timeout:?}; check that it is up and reachable from this server, or raise the timeout"
    )]
    Timeout {
        /// The URL called (without its query string).
        url: String,
        /// The timeout that was exceeded.
        timeout: Duration,
    },
    /// An outbound call failed before an HTTP answer came back.
    #[error(
        "could not reach the identity provider at {url}: {reason}; check the network, DNS and TLS settings between this server and the identity provider"
    )]
    Unreachable {
        /// The URL called (without its query string).
        url: String,
        /// What failed.
        reason: String,
    },
    /// The callback's `state` is not the one of the sign-in that was started.
    #[error(
        "the identity provider's answer does not belong to the sign-in that was started (state mismatch); start the sign-in again"
    )]
    StateMismatch,
    /// A parameter the callback must carry is missing.
    #[error(
        "the identity provider's answer has no `{0}` parameter; start the sign-in again, and if it persists check the identity provider's redirect settings"
    )]
    MissingParameter(&'static str),
    /// The callback's `iss` parameter (RFC 9207) names another issuer.
    #[error(
        "the answer came from issuer `{found}`, not from `{expected}` where the sign-in was sent; start the sign-in again (this can be a mix-up attack)"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `iss` parameter received.
        found: String,
    },
    /// The identity provider answered the authorization request with an error.
    #[error("the identity provider refused the sign-in: {error}{}; try again, or ask the identity provider's administrator", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    IdpRefused {
        /// The OAuth 2.0 error code (e.g. `access_denied`).
        error: String,
        /// The provider's `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint refused to exchange the authorization code.
    #[error("the identity provider's token endpoint refused the authorization code: {error}{}; start the sign-in again, and if it persists check the connection's client id, client secret and token authentication method", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenEndpoint {
        /// The OAuth 2.0 error code (e.g. `invalid_grant`).
        error: String,
        /// The provider's `error_description`, if any.
        description: Option<String>,
    },
    /// The identity provider answered with something that is not valid OpenID Connect.
    #[error(
        "the identity provider at {url} sent an invalid response: {reason}; check that the connection points at an OpenID provider"
    )]
    InvalidResponse {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The ID token failed validation.
    #[error("the identity provider's ID token was rejected: {0}")]
    InvalidIdToken(#[from] IdTokenError),
    /// The userinfo endpoint answered for another user than the ID token.
    #[error(
        "the userinfo endpoint answered for subject `{userinfo}` but the ID token is for `{id_token}`; the sign-in was refused (token substitution?)"
    )]
    UserinfoSubjectMismatch {
        /// The ID token's `sub`.
        id_token: String,
        /// The userinfo response's `sub`.
        userinfo: String,
    },
}

/// Why an ID token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// The token endpoint sent no ID token.
    #[error(
        "the token response has no id_token; make sure the connection requests the `openid` scope from an OpenID provider"
    )]
    Missing,
    /// The token is not a well-formed JWT or has unsupported features (JWE, `crit`, nested JWT...).
    #[error("it is malformed or uses an unsupported feature ({0})")]
    Malformed(String),
    /// `iss` is not the configured issuer.
    #[error("wrong issuer ({0}); check the connection's issuer URL")]
    WrongIssuer(String),
    /// `aud` does not contain our client id, or contains untrusted extra audiences.
    #[error("wrong audience ({0}); check the connection's client id")]
    WrongAudience(String),
    /// `azp` is missing while `aud` has several values, or is not our client id.
    #[error("wrong authorized party (azp): {0}")]
    WrongAuthorizedParty(String),
    /// `exp` is past, or `iat` is in the future (beyond the allowed clock skew).
    #[error(
        "outside its validity period ({0}); if it was just issued, the clocks of this server and the identity provider differ by more than a minute"
    )]
    Expired(String),
    /// `nonce` does not match the one sent with the authorization request.
    #[error("its nonce does not match the sign-in that was started ({0}); start the sign-in again")]
    WrongNonce(String),
    /// The token is unsigned (`alg: none`).
    #[error("it is not signed (alg none); unsigned ID tokens are never accepted")]
    Unsigned,
    /// The token's `alg` is not in the allow-list.
    #[error(
        "its signature algorithm is not allowed ({0}); add the algorithm to the connection's allowed algorithms if it is expected"
    )]
    DisallowedAlgorithm(String),
    /// No key of the provider's JWKS (fetched again once) matches the token's `kid` and `alg`.
    #[error(
        "no key of the identity provider's key set matches the token's key id {kid:?}, even after fetching the key set again; check the identity provider's jwks_uri"
    )]
    UnknownKey {
        /// The token's `kid` header, if any.
        kid: Option<String>,
    },
    /// The signature does not verify.
    #[error("its signature is invalid ({0})")]
    BadSignature(String),
    /// `at_hash` does not match the access token.
    #[error("its at_hash does not match the access token")]
    AccessTokenHash,
}
