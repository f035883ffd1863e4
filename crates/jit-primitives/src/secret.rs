//! Random tokens, their storage form, and constant-time comparison.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::PrimitiveError;

/// A fresh random token: 32 bytes from the system's CSPRNG, base64url.
pub fn random_token() -> Result<String, PrimitiveError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| PrimitiveError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The form a bearer secret (code, token, client secret) is stored under:
/// SHA-256, base64url. The secrets are 256-bit random, so a fast hash is
/// enough; a database leak does not reveal usable secrets.
pub fn stored_form(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in constant time.
pub fn secrets_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn comparison() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", "abcd"));
        assert_eq!(stored_form("x"), stored_form("x"));
        assert_ne!(stored_form("x"), stored_form("y"));
    }
}
