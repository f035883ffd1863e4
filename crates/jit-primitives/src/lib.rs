//! # jit-primitives
//!
//! What several layers of jit need and none of them owns: the [`clock`]
//! (time as a parameter), random bearer [`secret`]s with their stored form
//! and constant-time comparison, and Argon2id [`password`] hashing off the
//! async workers. No rules, no storage, no HTTP: the admin API, the sign-in
//! engine and the OpenID provider use them without depending on each other.

pub mod clock;
pub mod password;
pub mod secret;

/// Why a primitive failed: the environment, never the caller's input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrimitiveError {
    /// The system's random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// Argon2 refused to hash (its parameters or the environment).
    #[error("cannot hash the password: {0}")]
    PasswordHash(String),
    /// The blocking pool that runs Argon2 failed or is shutting down.
    #[error("password hashing failed: {0}")]
    Blocking(String),
}
