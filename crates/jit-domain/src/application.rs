//! Applications: the OpenID Connect clients that send users to jit.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::error::ConfigError;
use crate::flow::SignInFlow;

/// Longest application name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Most redirect URIs per application.
pub const MAX_REDIRECT_URIS: usize = 32;
/// Longest redirect URI, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;
/// Schemes that can never receive an authorization code.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// A registered application (an OpenID Connect client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Unique name.
    pub name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret's hash (confidential clients only); the secret
    /// itself is shown once and never stored.
    pub client_secret_hash: Option<String>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Whether the client is public (no secret; PKCE required).
    pub public: bool,
    /// How its users sign in.
    pub sign_in: SignInFlow,
}

impl Application {
    /// The name to store: trimmed, 1 to [`MAX_NAME_LEN`] printable
    /// characters.
    pub fn checked_name(name: &str) -> Result<String, ConfigError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(ConfigError::InvalidApplicationName);
        }
        Ok(name.to_owned())
    }

    /// The redirect URIs to store: 1 to [`MAX_REDIRECT_URIS`], each valid
    /// ([`check_redirect_uri`]), repeats dropped (first kept).
    pub fn checked_redirect_uris(mut uris: Vec<String>) -> Result<Vec<String>, ConfigError> {
        if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
            return Err(ConfigError::RedirectUriCount);
        }
        for uri in &uris {
            check_redirect_uri(uri)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        uris.retain(|uri| seen.insert(uri.clone()));
        Ok(uris)
    }
}

/// A redirect URI that may be registered: absolute, no fragment, no white
/// space; `https`, `http` only on loopback hosts, or a native app's
/// private-use scheme (RFC 8252 §7.1), never `javascript:`, `data:` and
/// the like. Redirects then match the registered URI exactly.
pub fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let refuse = |why: String| Err(ConfigError::InvalidRedirectUri(why));
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return refuse(format!("redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters"));
    }
    let Ok(url) = Url::parse(uri) else {
        return refuse(format!(
            "redirect URI {uri:?} is not an absolute URL (such as https://app.example.com/callback)"
        ));
    };
    if uri.contains('#') {
        return refuse(format!("redirect URI {uri:?} has a fragment (#...), which redirect URIs must not have"));
    }
    if url.as_str().chars().any(char::is_whitespace) || uri.chars().any(char::is_whitespace) {
        return refuse(format!("redirect URI {uri:?} contains white space"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "https" => refuse(format!("redirect URI {uri:?} has no host")),
        "http" => {
            let loopback = match url.host() {
                Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
                Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                refuse(format!(
                    "redirect URI {uri:?} uses http on a host other than 127.0.0.1, localhost or [::1]: use https"
                ))
            }
        }
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => {
            refuse(format!("redirect URI {uri:?} uses the {scheme}: scheme, which cannot receive authorization codes"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        let ok = |uri: &str| check_redirect_uri(uri).is_ok();
        assert!(ok("https://app.example.com/callback"));
        assert!(ok("https://app.example.com/callback?x=1"));
        assert!(ok("http://127.0.0.1:8080/cb"));
        assert!(ok("http://localhost/cb"));
        assert!(ok("http://[::1]:9000/cb"));
        assert!(ok("com.example.app:/cb"));
        assert!(!ok("http://app.example.com/cb"));
        assert!(!ok("https://app.example.com/cb#frag"));
        assert!(!ok("/relative/cb"));
        assert!(!ok("app.example.com/cb"));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("data:text/html,x"));
        assert!(!ok("https://app.example.com/c b"));
    }

    #[test]
    fn names_and_uri_lists() {
        assert_eq!(Application::checked_name("  Demo ").unwrap(), "Demo");
        assert!(Application::checked_name(" ").is_err() && Application::checked_name("a\nb").is_err());
        let uris = vec!["https://a.example/cb".to_owned(), "https://a.example/cb".to_owned()];
        assert_eq!(Application::checked_redirect_uris(uris).unwrap().len(), 1, "repeats dropped");
        assert_eq!(Application::checked_redirect_uris(Vec::new()), Err(ConfigError::RedirectUriCount));
    }
}
