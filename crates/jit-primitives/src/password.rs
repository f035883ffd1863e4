//! Local passwords: Argon2id with the crate's defaults (the OWASP baseline).
//!
//! Argon2 is tens of milliseconds of CPU and 19 MiB of memory per call by
//! design. [`hash_password_off_thread`] and [`verify_password_off_thread`]
//! run it on tokio's blocking pool, at most one call per core at a time: a
//! burst of password posts waits its turn there instead of occupying the
//! async workers that serve every other request.

use std::sync::{LazyLock, OnceLock};

use tokio::sync::Semaphore;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

use crate::PrimitiveError;

/// Hashes a password into PHC string form.
pub fn hash_password(password: &str) -> Result<String, PrimitiveError> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| PrimitiveError::PasswordHash(e.to_string()))?;
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

/// Argon2 calls running at once: one per core.
static ARGON2_SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get)));

/// Runs `work` on the blocking pool once an Argon2 slot is free.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, PrimitiveError> {
    let _slot = ARGON2_SLOTS.acquire().await.map_err(|e| PrimitiveError::Blocking(e.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| PrimitiveError::Blocking(e.to_string()))
}

/// [`hash_password`], off the async workers.
pub async fn hash_password_off_thread(password: String) -> Result<String, PrimitiveError> {
    off_thread(move || hash_password(&password)).await?
}

/// [`verify_password`], off the async workers.
pub async fn verify_password_off_thread(password: String, hash: Option<String>) -> Result<bool, PrimitiveError> {
    off_thread(move || verify_password(&password, hash.as_deref())).await
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
