//! Multi-factor authentication, the pure parts: the TOTP secret as a value
//! that never shows itself, a user's TOTP enrolment as the store keeps it,
//! and the lockout policy (how long repeated wrong codes lock TOTP out, and
//! repeated wrong passwords the account's password sign-in).
//!
//! The code arithmetic itself (RFC 6238) lives in `jit-flow`, on top of a
//! well-kept crate; the store ([`crate::ports::TotpStore`]) makes "a code is
//! accepted once" and the failure counter atomic.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Fewest base32 characters of a TOTP secret: 128 bits, the minimum of
/// RFC 4226 §4 (160 bits are recommended and what jit generates).
pub const MIN_TOTP_SECRET_LEN: usize = 26;
/// Most base32 characters of a TOTP secret (512 bits).
pub const MAX_TOTP_SECRET_LEN: usize = 103;

/// A TOTP shared secret, base32 (RFC 4648 alphabet, upper case, no
/// padding) as in `otpauth://` URIs.
///
/// It is a protected system attribute: it is never synchronised, never
/// returned by the admin API and never logged. `Debug` prints
/// `[redacted]` and there is no `Display`; the only way to the characters is
/// [`TotpSecret::expose`]. It serialises (as its base32 string) only so that
/// a pending enrolment can wait in the server-side flow state between the
/// page that shows it and the page that confirms it; types that the API
/// returns must never contain it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TotpSecret(String);

/// A string that is not a usable TOTP secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a TOTP secret must be {MIN_TOTP_SECRET_LEN} to {MAX_TOTP_SECRET_LEN} base32 characters (A-Z, 2-7) without padding"
)]
pub struct InvalidTotpSecret;

impl TotpSecret {
    /// Validates a base32 secret (upper-case RFC 4648 alphabet, no padding,
    /// 128 to 512 bits).
    pub fn new(base32: impl Into<String>) -> Result<Self, InvalidTotpSecret> {
        let base32 = base32.into();
        let ok = (MIN_TOTP_SECRET_LEN..=MAX_TOTP_SECRET_LEN).contains(&base32.len())
            && base32.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
        if ok { Ok(Self(base32)) } else { Err(InvalidTotpSecret) }
    }

    /// The base32 characters. Call only to compute codes, build the
    /// enrolment URI, or store the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TryFrom<String> for TotpSecret {
    type Error = InvalidTotpSecret;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TotpSecret> for String {
    fn from(value: TotpSecret) -> Self {
        value.0
    }
}

/// A user's TOTP enrolment, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpRecord {
    /// The shared secret.
    pub secret: TotpSecret,
    /// When the user confirmed the enrolment with a first code.
    pub enrolled_at: OffsetDateTime,
    /// The time step (Unix time / 30 s) of the last accepted code; codes of
    /// this step or an earlier one are refused (each code is used once).
    pub last_used_step: i64,
    /// Wrong codes since the last accepted one.
    pub failures: u32,
    /// Until when codes are refused, if locked.
    pub locked_until: Option<OffsetDateTime>,
}

impl TotpRecord {
    /// The lock state.
    pub fn lock(&self) -> Lock {
        Lock { failures: self.failures, locked_until: self.locked_until }
    }

    /// Whether codes are refused at `now` (see [`Lock::is_locked`]).
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.lock().is_locked(now)
    }
}

/// A failure counter and its lock: of a TOTP enrolment after a wrong code,
/// or of an account's password after a sign-in attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Failures since the last success (the one just counted included).
    pub failures: u32,
    /// Until when attempts are refused, if locked.
    pub locked_until: Option<OffsetDateTime>,
}

/// The lock of a TOTP enrolment (the name [`Lock`] had before passwords
/// were locked too).
pub type TotpLock = Lock;

impl Lock {
    /// Whether attempts are refused at `now`: the lock ends at
    /// `locked_until` (exclusive).
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// How repeated wrong TOTP codes (or passwords) lock the user out: the
/// first `free_failures` wrong codes in a row cost nothing; each further one locks
/// for `first_lock`, doubled per further failure, at most `max_lock`. An
/// accepted code (or an administrator's reset) clears the count.
///
/// With the defaults (5 free, 30 s, 15 min) the locks are 30 s, 1 min,
/// 2 min, 4 min, 8 min, then 15 min for every further failure: a guesser
/// gets a few hundred tries a day against a 6-digit code (three of them
/// valid at any time), and a user who mistypes is back within seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Wrong codes in a row that do not lock.
    pub free_failures: u32,
    /// The first lock's length.
    pub first_lock: Duration,
    /// The longest lock.
    pub max_lock: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { free_failures: 5, first_lock: Duration::seconds(30), max_lock: Duration::minutes(15) }
    }
}

impl LockoutPolicy {
    /// How long the `failures`-th wrong code in a row locks (none while
    /// within the free ones). Monotone in `failures`, never above
    /// `max_lock` and never negative.
    pub fn lock_for(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.free_failures).filter(|n| *n > 0)?;
        let max = self.max_lock.max(Duration::ZERO);
        let mut lock = self.first_lock.clamp(Duration::ZERO, max);
        // Doubling reaches any cap within 64 rounds (durations are at most
        // 2^63 seconds), so the loop is short however large `failures` is.
        for _ in 1..beyond.min(64) {
            lock = lock.checked_mul(2).map_or(max, |doubled| doubled.min(max));
        }
        Some(lock)
    }

    /// The lock state after one more wrong code, given the failures before
    /// it.
    pub fn after_failure(&self, failures_before: u32, now: OffsetDateTime) -> Lock {
        let failures = failures_before.saturating_add(1);
        let locked_until = self.lock_for(failures).and_then(|d| now.checked_add(d));
        Lock { failures, locked_until }
    }

    /// Counts one attempt *before* it is checked (so that a burst of
    /// guesses cannot outrun the lock), given the counter and lock before
    /// it:
    ///
    /// - while `before` is locked at `now`, the attempt is refused and not
    ///   counted (retrying during a lock does not lengthen it);
    /// - otherwise it is counted as a failure (a success clears the count
    ///   afterwards) and locks as [`LockoutPolicy::after_failure`] says. It
    ///   may be checked unless that count is the first one to lock: after
    ///   `free_failures` failures the next attempt is refused at once, and
    ///   after each lock runs out exactly one attempt is checked (a wrong
    ///   one leaves the next, longer lock in place), so the account is never
    ///   locked for good.
    pub fn attempt(&self, before: Lock, now: OffsetDateTime) -> Attempt {
        if before.is_locked(now) {
            return Attempt { lock: before, allowed: false };
        }
        let lock = self.after_failure(before.failures, now);
        let allowed = !lock.is_locked(now) || before.locked_until.is_some();
        Attempt { lock, allowed }
    }
}

/// One attempt counted by [`LockoutPolicy::attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The counter and lock after it (as stored).
    pub lock: Lock,
    /// Whether the attempt may be checked; false: refused unchecked.
    pub allowed: bool,
}

/// The RFC 6238 time step (30 s, the authenticator-app default) that
/// contains `at`: Unix seconds divided by 30, rounded down.
pub fn totp_step(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(TOTP_PERIOD_SECONDS)
}

/// The length of a TOTP time step, in seconds.
pub const TOTP_PERIOD_SECONDS: i64 = 30;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn secrets_are_validated_and_never_shown() {
        let secret = TotpSecret::new(SECRET).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(secret.expose(), SECRET);
        assert_eq!(format!("{secret:?}"), "TotpSecret([redacted])");
        let record = TotpRecord {
            secret: secret.clone(),
            enrolled_at: at(0),
            last_used_step: 0,
            failures: 0,
            locked_until: None,
        };
        assert!(!format!("{record:?}").contains(SECRET));
        for bad in
            ["", "gezdgnbvgy3tqojqgezdgnbvgy3tqojq", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", "GEZDGNBVGY3TQOJQ====", "ABC"]
        {
            assert_eq!(TotpSecret::new(bad), Err(InvalidTotpSecret), "{bad}");
        }
        assert!(TotpSecret::new("A".repeat(MAX_TOTP_SECRET_LEN + 1)).is_err());
        let json = serde_json::to_string(&secret).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(serde_json::from_str::<TotpSecret>(&json).ok(), Some(secret));
        assert!(serde_json::from_str::<TotpSecret>("\"x\"").is_err());
    }

    #[test]
    fn default_lockout_schedule() {
        let policy = LockoutPolicy::default();
        let locks: Vec<Option<i64>> = (0..=12).map(|n| policy.lock_for(n).map(|d| d.whole_seconds())).collect();
        assert_eq!(
            locks,
            [
                None,
                None,
                None,
                None,
                None,
                None,
                Some(30),
                Some(60),
                Some(120),
                Some(240),
                Some(480),
                Some(900),
                Some(900)
            ]
        );
        assert_eq!(policy.lock_for(u32::MAX), Some(Duration::minutes(15)));
    }

    #[test]
    fn failures_count_up_and_lock_from_now() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.after_failure(0, at(100)), Lock { failures: 1, locked_until: None });
        let lock = policy.after_failure(5, at(100));
        assert_eq!(lock, Lock { failures: 6, locked_until: Some(at(130)) });
        assert!(lock.is_locked(at(129)));
        assert!(!lock.is_locked(at(130)), "the lock ends at locked_until");
        assert_eq!(policy.after_failure(u32::MAX, at(0)).failures, u32::MAX);
    }

    #[test]
    fn attempts_are_counted_before_they_are_checked_and_each_lock_lets_one_through() {
        let policy = LockoutPolicy::default();
        let mut lock = Lock { failures: 0, locked_until: None };
        for n in 1..=5 {
            let attempt = policy.attempt(lock, at(100));
            assert_eq!(attempt, Attempt { lock: Lock { failures: n, locked_until: None }, allowed: true });
            lock = attempt.lock;
        }
        // The sixth is refused at once and locks.
        let sixth = policy.attempt(lock, at(100));
        assert_eq!(sixth, Attempt { lock: Lock { failures: 6, locked_until: Some(at(130)) }, allowed: false });
        // During the lock: refused, not counted.
        assert_eq!(policy.attempt(sixth.lock, at(129)), Attempt { lock: sixth.lock, allowed: false });
        // After it: one attempt is checked, and locks the next ones longer.
        let after = policy.attempt(sixth.lock, at(130));
        assert_eq!(after, Attempt { lock: Lock { failures: 7, locked_until: Some(at(190)) }, allowed: true });
        assert!(!policy.attempt(after.lock, at(150)).allowed);
    }

    #[test]
    fn steps_are_thirty_seconds() {
        assert_eq!(totp_step(at(59)), 1);
        assert_eq!(totp_step(at(60)), 2);
        assert_eq!(totp_step(at(1_111_111_109)), 37_037_036);
        assert_eq!(totp_step(at(-1)), -1);
    }

    proptest! {
        #[test]
        fn locks_are_monotone_and_capped(
            free in 0u32..10,
            first in 0i64..3_600,
            max in 0i64..100_000,
            n in 0u32..200,
        ) {
            let policy = LockoutPolicy {
                free_failures: free,
                first_lock: Duration::seconds(first),
                max_lock: Duration::seconds(max),
            };
            let (this, next) = (policy.lock_for(n), policy.lock_for(n + 1));
            prop_assert!(next >= this, "monotone: {this:?} then {next:?}");
            prop_assert_eq!(this.is_some(), n > free, "locks exactly beyond the free failures");
            if let Some(lock) = this {
                prop_assert!(lock >= Duration::ZERO);
                prop_assert!(lock <= Duration::seconds(max));
            }
        }
    }
}
