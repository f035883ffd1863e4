//! An application's authorization request to jit, as the end-to-end tests
//! and the benchmark make it: the code flow with PKCE (S256), a fresh
//! `state` and `nonce` each time.

// Test support: a failure here is a broken test set-up, reported by panicking.
#![allow(clippy::panic)]

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::harness::pkce_challenge;

/// One authorization request and the secrets its answer is checked with.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// `<jit>/oauth2/authorize?...`.
    pub url: String,
    /// Its `state`.
    pub state: String,
    /// Its `nonce`.
    pub nonce: String,
    /// The PKCE verifier of its `code_challenge`.
    pub verifier: String,
}

impl AuthorizationRequest {
    /// A request of `client_id` for `scope`, answered at `redirect_uri`,
    /// straight to connection `fidp` if given.
    pub fn new(jit_url: &str, client_id: &str, redirect_uri: &str, scope: &str, fidp: Option<&str>) -> Self {
        let (state, nonce, verifier) = (random(), random(), format!("{}{}", random(), random()));
        let mut url = url::Url::parse(&format!("{}/oauth2/authorize", jit_url.trim_end_matches('/')))
            .unwrap_or_else(|e| panic!("jit's URL {jit_url:?}: {e}"));
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(fidp) = fidp {
            url.query_pairs_mut().append_pair("fidp", fidp);
        }
        Self { url: url.to_string(), state, nonce, verifier }
    }
}

/// 24 random bytes, base64url (32 characters).
fn random() -> String {
    let mut bytes = [0u8; 24];
    SystemRandom::new().fill(&mut bytes).unwrap_or_else(|_| panic!("the system random generator failed"));
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_has_fresh_secrets_and_a_valid_pkce_verifier() {
        let a = AuthorizationRequest::new("http://jit.test/", "app", "https://app.test/cb", "openid", Some("corp"));
        let b = AuthorizationRequest::new("http://jit.test", "app", "https://app.test/cb", "openid", None);
        assert!((43..=128).contains(&a.verifier.len()), "{}", a.verifier);
        assert!(a.verifier.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')));
        assert_ne!((&a.state, &a.nonce, &a.verifier), (&b.state, &b.nonce, &b.verifier));
        assert!(a.url.starts_with("http://jit.test/oauth2/authorize?response_type=code&client_id=app"), "{}", a.url);
        assert!(a.url.ends_with("&fidp=corp") && !b.url.contains("fidp"), "{} {}", a.url, b.url);
    }
}
