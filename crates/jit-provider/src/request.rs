//! The application's authorization request (`/oauth2/authorize`) and its
//! rules: which client, which redirect URI (exactly as registered), which
//! response type, scopes, PKCE, and what we do not support.

use std::collections::BTreeMap;

use jit_domain::application::Application;
use jit_domain::ports::StoreError;

use crate::claims::granted_scopes;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::AuthorizationContext;

/// Longest authorization request query accepted, in bytes. Everything a
/// sign-in stores before anybody authenticated comes from it, so it bounds
/// what one unauthenticated request can make jit keep (see the README).
pub const MAX_AUTHORIZE_QUERY: usize = 4096;

/// Parameters scripts never see: credentials a misbehaving client put in
/// the URL, and the PKCE and anti-replay values (a script's `Log` could
/// otherwise write them to the log).
const HIDDEN_FROM_SCRIPTS: &[&str] =
    &["client_secret", "code_verifier", "password", "state", "nonce", "code_challenge"];

/// The parameters we read; each at most once (RFC 6749 §3.1).
const READ: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "fidp",
    "request",
    "request_uri",
    "response_mode",
    "max_age",
];

/// An authorization request as received, not yet checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// Every parameter, the first value of each name.
    params: BTreeMap<String, String>,
}

/// Why an authorization request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted (unknown client,
    /// unregistered redirect URI, a malformed or oversized request): the
    /// browser gets a page, never a redirect.
    #[error("{0}")]
    Page(String),
    /// Anything else goes back to the application's (registered) redirect
    /// URI as an OAuth error.
    #[error("{error}")]
    Redirect {
        /// Where to send it.
        redirect_uri: String,
        /// The application's `state`.
        state: Option<String>,
        /// The error.
        error: OAuthError,
    },
    /// The client could not be looked up.
    #[error("storage failure: {0}")]
    Store(#[source] StoreError),
}

/// A request that passed every rule: the sign-in may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedAuthorization {
    /// The client.
    pub application: Application,
    /// What the sign-in carries into the code.
    pub context: AuthorizationContext,
    /// `fidp`: a connection to go to straight away, if step 1 offers it.
    pub fidp: Option<String>,
}

impl AuthorizationRequest {
    /// Parses the query string. Refused as a page: longer than
    /// [`MAX_AUTHORIZE_QUERY`], or one of the parameters we read given
    /// twice.
    pub fn parse(query: &str) -> Result<Self, AuthorizeError> {
        if query.len() > MAX_AUTHORIZE_QUERY {
            return Err(AuthorizeError::Page(format!(
                "The authorization request is longer than {MAX_AUTHORIZE_QUERY} bytes."
            )));
        }
        let mut params = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if params.contains_key(name.as_ref()) {
                if READ.contains(&name.as_ref()) {
                    return Err(AuthorizeError::Page(format!("The request has {name} more than once.")));
                }
                continue;
            }
            params.insert(name.into_owned(), value.into_owned());
        }
        Ok(Self { params })
    }

    /// A parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The client the request names.
    pub fn client_id(&self) -> Result<&str, AuthorizeError> {
        self.get("client_id").ok_or_else(|| AuthorizeError::Page("The request has no client_id.".into()))
    }

    /// Checks the request for `application` (the client it names, if it is
    /// registered). Client and redirect URI come first: until both are
    /// known, nothing redirects anywhere.
    pub fn validate(&self, application: Option<Application>) -> Result<ValidatedAuthorization, AuthorizeError> {
        let page = |message: &str| AuthorizeError::Page(message.into());
        let application = application.ok_or_else(|| page("No application is registered with this client_id."))?;
        let redirect_uri = self.get("redirect_uri").ok_or_else(|| page("The request has no redirect_uri."))?;
        if !application.redirect_uris.iter().any(|registered| registered.matches(redirect_uri)) {
            return Err(page("The redirect_uri is not registered for this application (it must match exactly)."));
        }
        let state = self.get("state").map(str::to_owned);
        let back = |code: ErrorCode, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            error: OAuthError::new(code, description),
        };
        if self.get("response_type") != Some("code") {
            return Err(back(ErrorCode::UnsupportedResponseType, "only response_type=code is supported"));
        }
        if self.get("request").is_some() {
            return Err(back(
                ErrorCode::RequestNotSupported,
                "request objects (the request parameter) are not supported",
            ));
        }
        if self.get("request_uri").is_some() {
            return Err(back(ErrorCode::RequestUriNotSupported, "the request_uri parameter is not supported"));
        }
        if self.get("response_mode").is_some_and(|mode| mode != "query") {
            return Err(back(ErrorCode::InvalidRequest, "only response_mode=query is supported"));
        }
        // Every sign-in authenticates the user afresh (there is no session
        // to reuse), so any max_age is met; auth_time is always in the ID
        // token.
        if self.get("max_age").is_some_and(|age| age.parse::<u64>().is_err()) {
            return Err(back(ErrorCode::InvalidRequest, "max_age must be a number of seconds"));
        }
        let scope = granted_scopes(self.get("scope").unwrap_or_default(), &application);
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(back(ErrorCode::InvalidScope, "the openid scope is required"));
        }
        let code_challenge = self.get("code_challenge");
        match (code_challenge, self.get("code_challenge_method")) {
            (Some(challenge), Some("S256")) if is_pkce_value(challenge) => {}
            (Some(_), _) => {
                return Err(back(
                    ErrorCode::InvalidRequest,
                    "PKCE requires code_challenge_method=S256 and a valid challenge",
                ));
            }
            (None, _) if application.public => {
                return Err(back(ErrorCode::InvalidRequest, "public clients must use PKCE (S256)"));
            }
            (None, _) => {}
        }
        if self.get("prompt").is_some_and(|p| p.split(' ').any(|p| p == "none")) {
            return Err(back(ErrorCode::LoginRequired, "the user must sign in"));
        }
        let context = AuthorizationContext {
            client_id: application.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            nonce: self.get("nonce").map(str::to_owned),
            scope,
            code_challenge: code_challenge.map(str::to_owned),
            request_params: self.script_params(),
        };
        Ok(ValidatedAuthorization { application, context, fidp: self.get("fidp").map(str::to_owned) })
    }

    /// The parameters as received, the first value of each name, less
    /// [`HIDDEN_FROM_SCRIPTS`]: what conditional authentication scripts
    /// see as `context.request.params`.
    fn script_params(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .filter(|(name, _)| !HIDDEN_FROM_SCRIPTS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// A PKCE challenge or verifier: 43 to 128 unreserved characters.
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_see_the_first_value_of_each_name_and_no_secrets() {
        let request =
            AuthorizationRequest::parse("client_id=app&scope=openid+email&x=1&x=2&acr_values=mfa%20strong&empty=")
                .unwrap();
        let params = request.script_params();
        assert_eq!(params.get("scope").map(String::as_str), Some("openid email"));
        assert_eq!(params.get("x").map(String::as_str), Some("1"));
        assert_eq!(params.get("acr_values").map(String::as_str), Some("mfa strong"));
        assert_eq!(params.get("empty").map(String::as_str), Some(""));
        assert_eq!(params.len(), 5);
        assert!(AuthorizationRequest::parse("").unwrap().script_params().is_empty());
        let hidden = AuthorizationRequest::parse(
            "client_secret=s&code_verifier=v&state=st&nonce=n&code_challenge=c&prompt=login",
        )
        .unwrap();
        assert_eq!(hidden.script_params().keys().collect::<Vec<_>>(), ["prompt"]);
    }

    #[test]
    fn a_parameter_we_read_given_twice_is_refused_before_anything_else() {
        let twice = AuthorizationRequest::parse("client_id=app&redirect_uri=https://a/cb&redirect_uri=https://b/cb");
        assert!(matches!(twice, Err(AuthorizeError::Page(message)) if message.contains("redirect_uri")));
        let long = "x=".to_owned() + &"a".repeat(MAX_AUTHORIZE_QUERY);
        assert!(matches!(AuthorizationRequest::parse(&long), Err(AuthorizeError::Page(_))));
    }
}
