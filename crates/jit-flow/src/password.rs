//! Local passwords: Argon2id with the crate's defaults (the OWASP baseline).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

use crate::error::FlowError;

/// Hashes a password into PHC string form.
pub fn hash_password(password: &str) -> Result<String, FlowError> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| FlowError::Internal(format!("cannot hash password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `hash`. With no hash (unknown user, or a user
/// without a password) a dummy hash with the same parameters is checked
/// anyway and the answer is no, so that response times do not tell which
/// usernames exist.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(hash) => matches(password, hash),
        None => {
            static DUMMY: OnceLock<Option<String>> = OnceLock::new();
            if let Some(dummy) = DUMMY.get_or_init(|| hash_password("jit dummy password").ok()) {
                let _ = matches(password, dummy);
            }
            false
        }
    }
}

fn matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("wrong", Some(&hash)));
        assert!(!verify_password("jit dummy password", None));
        assert!(!verify_password("x", Some("not a hash")));
    }
}
