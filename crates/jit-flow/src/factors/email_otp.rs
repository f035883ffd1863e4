//! Email OTP: a short-lived, single-use, 6-digit code sent to the user's
//! email address. The challenge lives in the flow state (server-side, so it
//! serialises); it holds only a keyed hash of the code (HMAC-SHA256 under
//! [`CodeKey`], with a fresh salt per code), never the code: six digits
//! under a bare hash are found in a second, under an unknown key never.
//!
//! Limits, per challenge: the code expires ([`EmailOtpPolicy::lifetime`]),
//! a few wrong tries use it up ([`EmailOtpPolicy::max_attempts`]), and a
//! new code can be asked for a few times ([`EmailOtpPolicy::max_resends`]),
//! not more often than [`EmailOtpPolicy::resend_interval`]. A new code
//! replaces the old one and gets fresh tries, so one sign-in allows at most
//! `(1 + max_resends) × max_attempts` guesses (20 by default) against
//! 10^6 codes.

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use jit_primitives::secret::{random_token, secrets_match};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// 10^[`DIGITS`].
const CODE_SPACE: u32 = 1_000_000;
/// The largest multiple of [`CODE_SPACE`] that fits in a `u32` draw:
/// random values at or above it are drawn again, so that every code is
/// equally likely (no modulo bias).
const UNBIASED_LIMIT: u32 = (u32::MAX / CODE_SPACE) * CODE_SPACE;
/// Draws before giving up on an unbiased value (each draw is rejected with
/// probability 0.02 %).
const MAX_DRAWS: usize = 16;

/// The key of the codes' keyed hashes. The same on every instance (the
/// binary derives it from the secret key); `Debug` shows nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CodeKey([u8; 32]);

impl CodeKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A random key (one process only: codes do not survive a restart or
    /// move to another instance).
    pub fn random() -> Result<Self, EmailOtpError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| EmailOtpError::Internal("the system random generator failed".into()))?;
        Ok(Self(bytes))
    }

    fn hash(&self, salt: &str, code: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        URL_SAFE_NO_PAD.encode(hmac::sign(&key, format!("{salt}.{code}").as_bytes()).as_ref())
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey([redacted])")
    }
}

/// The limits of Email OTP, and the key of the codes' hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmailOtpPolicy {
    /// How long a code is valid after it is sent (10 minutes).
    pub lifetime: Duration,
    /// Tries per code, right or wrong (5).
    pub max_attempts: u32,
    /// New codes a user may ask for after the first (3).
    pub max_resends: u32,
    /// Least time between two codes (30 seconds).
    pub resend_interval: Duration,
    /// The key of the codes' hashes (random per process by default).
    pub code_key: CodeKey,
    /// Codes sent to one account across all its sign-ins: 10 free, then
    /// locks from 1 minute doubling up to 1 hour, cleared when a code is
    /// accepted. Bounds the mail one account can be made to receive however
    /// many sign-ins are started.
    pub account_sends: jit_domain::mfa::LockoutPolicy,
}

impl Default for EmailOtpPolicy {
    fn default() -> Self {
        Self {
            lifetime: Duration::minutes(10),
            max_attempts: 5,
            max_resends: 3,
            resend_interval: Duration::seconds(30),
            // The system generator does not fail on the platforms jit runs
            // on; if it ever did, no sign-in could start either (its ids
            // come from the same generator).
            code_key: CodeKey::random().unwrap_or(CodeKey([0x5a; 32])),
            account_sends: jit_domain::mfa::LockoutPolicy {
                free_failures: 10,
                first_lock: Duration::minutes(1),
                max_lock: Duration::hours(1),
            },
        }
    }
}

/// A code to send. `Debug` redacts it; [`OtpCode::as_str`] gives it to
/// the mailer, and to nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

impl OtpCode {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode([redacted])")
    }
}

/// Why a code was not accepted or cannot be sent. The messages are for the
/// user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailOtpError {
    /// The code's lifetime is over.
    #[error("the code has expired; ask for a new code")]
    Expired,
    /// Wrong code; `remaining` more tries for this code.
    #[error("wrong code; {remaining} more {} for this code", if *remaining == 1 { "try" } else { "tries" })]
    Wrong {
        /// Tries left for this code.
        remaining: u32,
    },
    /// The tries for this code are used up.
    #[error("too many wrong codes; ask for a new code")]
    TooManyAttempts,
    /// The code was already accepted once.
    #[error("this code has already been used")]
    AlreadyUsed,
    /// No more new codes for this sign-in.
    #[error("no more codes can be sent for this sign-in; start again from the application")]
    TooManyResends,
    /// A new code was asked for too soon after the previous one.
    #[error("a code was sent moments ago; wait until {retry_at} before asking for another")]
    TooSoon {
        /// When a new code can be asked for.
        retry_at: OffsetDateTime,
    },
    /// The system's random generator failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The Email OTP state of one sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailOtpChallenge {
    /// HMAC-SHA256 of salt and code under the [`CodeKey`] (base64url).
    code_hash: String,
    /// A random salt, new with each code.
    salt: String,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    attempts: u32,
    max_attempts: u32,
    resends: u32,
    consumed: bool,
}

impl fmt::Debug for EmailOtpChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Six digits are quickly found from their hash: leave it out.
        f.debug_struct("EmailOtpChallenge")
            .field("sent_at", &self.sent_at)
            .field("expires_at", &self.expires_at)
            .field("attempts", &self.attempts)
            .field("max_attempts", &self.max_attempts)
            .field("resends", &self.resends)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl EmailOtpChallenge {
    /// A new challenge and its code, sent at `now`.
    pub fn issue(now: OffsetDateTime, policy: &EmailOtpPolicy) -> Result<(Self, OtpCode), EmailOtpError> {
        let code = random_code()?;
        let salt = random_token().map_err(|e| EmailOtpError::Internal(e.to_string()))?;
        let challenge = Self {
            code_hash: policy.code_key.hash(&salt, code.as_str()),
            salt,
            sent_at: now,
            expires_at: now + policy.lifetime,
            attempts: 0,
            max_attempts: policy.max_attempts,
            resends: 0,
            consumed: false,
        };
        Ok((challenge, code))
    }

    /// Checks a code the user entered at `now` (spaces ignored):
    /// [`count_attempt`](Self::count_attempt), then [`check`](Self::check).
    /// Every try on a live code counts, right or wrong; the right one is
    /// accepted once.
    pub fn verify(&mut self, code: &str, now: OffsetDateTime, key: &CodeKey) -> Result<(), EmailOtpError> {
        self.count_attempt(now)?;
        self.check(code, key)
    }

    /// Counts one try at `now`, before the code is compared, or refuses it
    /// unchecked (used, expired, or out of tries). A caller that stores the
    /// challenge stores the counted try first and compares only once that
    /// write succeeded, so parallel guesses cannot share a try.
    pub fn count_attempt(&mut self, now: OffsetDateTime) -> Result<(), EmailOtpError> {
        if self.consumed {
            return Err(EmailOtpError::AlreadyUsed);
        }
        if self.attempts >= self.max_attempts {
            return Err(EmailOtpError::TooManyAttempts);
        }
        if now >= self.expires_at {
            return Err(EmailOtpError::Expired);
        }
        self.attempts += 1;
        Ok(())
    }

    /// Compares `code` (spaces ignored) for a try already counted by
    /// [`count_attempt`](Self::count_attempt); the right code is consumed.
    pub fn check(&mut self, code: &str, key: &CodeKey) -> Result<(), EmailOtpError> {
        if self.consumed {
            return Err(EmailOtpError::AlreadyUsed);
        }
        let entered: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if self.attempts > 0 && secrets_match(&key.hash(&self.salt, &entered), &self.code_hash) {
            self.consumed = true;
            return Ok(());
        }
        match self.max_attempts.saturating_sub(self.attempts) {
            0 => Err(EmailOtpError::TooManyAttempts),
            remaining => Err(EmailOtpError::Wrong { remaining }),
        }
    }

    /// Replaces the code with a new one sent at `now` (fresh lifetime and
    /// tries), within the resend limit and interval of `policy`.
    pub fn resend(&mut self, now: OffsetDateTime, policy: &EmailOtpPolicy) -> Result<OtpCode, EmailOtpError> {
        if self.consumed {
            return Err(EmailOtpError::AlreadyUsed);
        }
        if self.resends >= policy.max_resends {
            return Err(EmailOtpError::TooManyResends);
        }
        let retry_at = self.sent_at + policy.resend_interval;
        if now < retry_at {
            return Err(EmailOtpError::TooSoon { retry_at });
        }
        let (fresh, code) = Self::issue(now, policy)?;
        *self = Self { resends: self.resends + 1, ..fresh };
        Ok(code)
    }

    /// When the current code was sent.
    pub fn sent_at(&self) -> OffsetDateTime {
        self.sent_at
    }

    /// When the current code expires.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// Tries left for the current code.
    pub fn attempts_left(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }

    /// New codes sent so far, after the first.
    pub fn resends(&self) -> u32 {
        self.resends
    }

    /// Whether the code was accepted.
    pub fn is_consumed(&self) -> bool {
        self.consumed
    }
}

/// A uniformly random code of [`DIGITS`] digits.
fn random_code() -> Result<OtpCode, EmailOtpError> {
    let random = SystemRandom::new();
    for _ in 0..MAX_DRAWS {
        let mut bytes = [0u8; 4];
        random.fill(&mut bytes).map_err(|_| EmailOtpError::Internal("the system random generator failed".into()))?;
        if let Some(value) = unbiased(u32::from_le_bytes(bytes)) {
            return Ok(OtpCode(format!("{value:0width$}", width = DIGITS)));
        }
    }
    Err(EmailOtpError::Internal("the system random generator keeps returning out-of-range values".into()))
}

/// A draw as a code number, or `None` if it must be drawn again.
fn unbiased(draw: u32) -> Option<u32> {
    (draw < UNBIASED_LIMIT).then_some(draw % CODE_SPACE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    fn policy() -> EmailOtpPolicy {
        EmailOtpPolicy { code_key: key(), ..EmailOtpPolicy::default() }
    }

    fn key() -> CodeKey {
        CodeKey::from_bytes([7; 32])
    }

    fn issue() -> (EmailOtpChallenge, OtpCode) {
        EmailOtpChallenge::issue(at(0), &policy()).unwrap()
    }

    /// A code that is not `code`.
    fn other(code: &OtpCode) -> String {
        if code.as_str() == "000000" { "000001".into() } else { "000000".into() }
    }

    #[test]
    fn codes_are_six_uniform_digits() {
        let (_, a) = issue();
        assert_eq!(a.as_str().len(), DIGITS);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(format!("{a:?}"), "OtpCode([redacted])");
        // Rejection sampling: the top of the u32 range is drawn again.
        assert_eq!(UNBIASED_LIMIT, 4_294_000_000);
        assert_eq!(unbiased(0), Some(0));
        assert_eq!(unbiased(4_293_999_999), Some(999_999));
        assert_eq!(unbiased(4_294_000_000), None);
        assert_eq!(unbiased(u32::MAX), None);
        let distinct: std::collections::BTreeSet<String> =
            (0..50).map(|_| random_code().unwrap().as_str().to_owned()).collect();
        assert!(distinct.len() > 45, "random codes rarely repeat");
    }

    #[test]
    fn the_right_code_is_accepted_once() {
        let (mut challenge, code) = issue();
        assert_eq!(challenge.verify(&format!(" {} ", code.as_str()), at(599), &key()), Ok(()));
        assert!(challenge.is_consumed());
        assert_eq!(challenge.verify(code.as_str(), at(599), &key()), Err(EmailOtpError::AlreadyUsed));
        assert_eq!(challenge.resend(at(60), &policy()), Err(EmailOtpError::AlreadyUsed));
    }

    #[test]
    fn codes_expire() {
        let (mut challenge, code) = issue();
        assert_eq!(challenge.expires_at(), at(600));
        assert_eq!(challenge.verify(code.as_str(), at(600), &key()), Err(EmailOtpError::Expired));
        assert_eq!(challenge.attempts_left(), 5, "a try on an expired code does not count");
    }

    #[test]
    fn wrong_codes_use_up_the_tries() {
        let (mut challenge, code) = issue();
        let wrong = other(&code);
        for remaining in (1..=4).rev() {
            assert_eq!(challenge.verify(&wrong, at(1), &key()), Err(EmailOtpError::Wrong { remaining }));
        }
        assert_eq!(challenge.verify("12", at(1), &key()), Err(EmailOtpError::TooManyAttempts), "the fifth try");
        assert_eq!(
            challenge.verify(code.as_str(), at(1), &key()),
            Err(EmailOtpError::TooManyAttempts),
            "even the right one"
        );
        assert_eq!(EmailOtpError::Wrong { remaining: 1 }.to_string(), "wrong code; 1 more try for this code");
    }

    #[test]
    fn resends_are_limited_and_spaced() {
        let policy = policy();
        let (mut challenge, first) = issue();
        assert_eq!(challenge.resend(at(29), &policy), Err(EmailOtpError::TooSoon { retry_at: at(30) }));
        for _ in 0..2 {
            assert!(challenge.verify(&other(&first), at(29), &key()).is_err());
        }

        let second = challenge.resend(at(30), &policy).unwrap();
        assert_eq!((challenge.resends(), challenge.sent_at(), challenge.expires_at()), (1, at(30), at(630)));
        assert_eq!(challenge.attempts_left(), 5, "a new code gets fresh tries");
        if first != second {
            assert!(challenge.verify(first.as_str(), at(31), &key()).is_err(), "the old code is replaced");
        }
        challenge.resend(at(60), &policy).unwrap();
        challenge.resend(at(90), &policy).unwrap();
        assert_eq!(challenge.resend(at(120), &policy), Err(EmailOtpError::TooManyResends));
    }

    /// Finding 12 of the security review: a stored code hash is keyed, so
    /// trying the million codes needs the key.
    #[test]
    fn code_hashes_are_keyed() {
        let (challenge, code) = issue();
        let other_key = CodeKey::from_bytes([8; 32]);
        assert_ne!(other_key.hash(&challenge.salt, code.as_str()), challenge.code_hash);
        assert_eq!(key().hash(&challenge.salt, code.as_str()), challenge.code_hash);
        let mut copy = challenge.clone();
        assert!(copy.verify(code.as_str(), at(1), &other_key).is_err(), "the right code under another key");
        assert!(!format!("{:?}", key()).contains('7'));
    }

    #[test]
    fn the_challenge_survives_the_flow_state_and_hides_the_code() {
        let (challenge, code) = issue();
        let json = serde_json::to_string(&challenge).unwrap();
        assert!(!json.contains(code.as_str()));
        assert!(!format!("{challenge:?}").contains("code_hash"));
        let mut back: EmailOtpChallenge = serde_json::from_str(&json).unwrap();
        assert_eq!(back, challenge);
        assert_eq!(back.verify(code.as_str(), at(1), &key()), Ok(()));
    }
}
