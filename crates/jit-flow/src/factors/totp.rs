//! TOTP (RFC 6238) with the authenticator-app defaults: HMAC-SHA-1, 6
//! digits, 30-second steps; a code is accepted in the current step ±1 (RFC
//! 6238 §5.2's one step of allowed network delay, each way).
//!
//! The arithmetic is `totp-rs`'s (its token comparison is constant-time).
//! What this module adds: secrets from the system CSPRNG, the enrolment URI
//! and QR code, and [`verify`] returning *which* step matched, so that
//! [`jit_domain::ports::TotpStore::accept_totp_step`] can refuse a code
//! that was already used — across requests and server instances.

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use jit_domain::mfa::{TOTP_PERIOD_SECONDS, TotpSecret};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::error::SignInError;

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a generated secret: 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;
/// The issuer shown in authenticator apps unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "jit";

/// A fresh 160-bit secret from the system's CSPRNG.
pub fn generate_secret() -> Result<TotpSecret, SignInError> {
    let mut bytes = [0u8; SECRET_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SignInError::Internal("the system random generator failed".into()))?;
    let secret = Secret::from(bytes);
    bytes.fill(0);
    TotpSecret::new(secret.to_base32()).map_err(|e| SignInError::Internal(format!("generated TOTP secret: {e}")))
}

/// What the enrolment page shows: the `otpauth://` URI (as text, for
/// copying into an app) and the same URI as a QR code. Both contain the
/// secret: show them to the user being enrolled and nobody else, and never
/// log them (`Debug` redacts).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// `otpauth://totp/<issuer>:<account>?secret=…&issuer=<issuer>`.
    pub uri: String,
    /// The URI as a QR code: a PNG, base64 (standard alphabet, padded).
    pub qr_png_base64: String,
}

impl TotpEnrolment {
    /// The QR code as a `data:` URL for an `<img src>`.
    pub fn qr_data_url(&self) -> String {
        format!("data:image/png;base64,{}", self.qr_png_base64)
    }
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrolment([redacted])")
    }
}

/// The enrolment URI and QR code of `secret` for `account` (the username)
/// at `issuer` (e.g. [`DEFAULT_ISSUER`] or the configured display name).
/// A `:` in either is shown as `_` (the URI format reserves it).
pub fn enrolment(secret: &TotpSecret, issuer: &str, account: &str) -> Result<TotpEnrolment, SignInError> {
    let totp = totp(secret, Some(label(issuer)), label(account))?;
    let uri = totp.to_url().map_err(|e| SignInError::Internal(format!("cannot build the TOTP enrolment URI: {e}")))?;
    let qr_png_base64 =
        totp.to_qr_base64().map_err(|e| SignInError::Internal(format!("cannot draw the TOTP QR code: {e}")))?;
    Ok(TotpEnrolment { uri, qr_png_base64 })
}

/// The time step whose code `code` is, if it is the code of the step
/// containing `now` or of the step just before or after; `None` for a wrong
/// or malformed code (not exactly 6 ASCII digits once spaces are removed).
///
/// A match alone does not sign anyone in: the caller must then win
/// [`jit_domain::ports::TotpStore::accept_totp_step`] for the returned step
/// (and, at enrolment, save it as the used step), which refuses a code
/// used before.
pub fn verify(secret: &TotpSecret, code: &str, now: OffsetDateTime) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let at = u64::try_from(now.unix_timestamp()).ok()?;
    let totp = totp(secret, None, String::new()).ok()?;
    totp.check(&code, at).and_then(|step| i64::try_from(step).ok())
}

/// The code of `secret` at `at` (for tests and diagnostics).
pub fn code_at(secret: &TotpSecret, at: OffsetDateTime) -> Result<String, SignInError> {
    let at = u64::try_from(at.unix_timestamp()).map_err(|_| SignInError::Internal("time before 1970".into()))?;
    Ok(totp(secret, None, String::new())?.generate(at).to_string())
}

fn totp(secret: &TotpSecret, issuer: Option<String>, account: String) -> Result<Totp, SignInError> {
    let bytes = Secret::try_from_base32(secret.expose())
        .map_err(|_| SignInError::Internal("the TOTP secret is not valid base32".into()))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(1)
        .with_step_duration(TOTP_PERIOD_SECONDS.unsigned_abs())
        .with_secret(bytes)
        .with_issuer(issuer)
        .with_account_name(account)
        .build()
        .map_err(|e| SignInError::Internal(format!("invalid TOTP parameters: {e}")))
}

fn label(value: &str) -> String {
    value.replace(':', "_")
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use jit_domain::mfa::totp_step;

    use super::*;

    /// The RFC 6238 Appendix B SHA-1 seed, "12345678901234567890", base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn secret() -> TotpSecret {
        TotpSecret::new(RFC_SECRET).unwrap()
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn rfc_6238_vectors() {
        // Appendix B, SHA-1, 8-digit values; a 6-digit code is the same
        // number modulo 10^6, i.e. its last six digits.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, eight) in vectors {
            let six = &eight[2..];
            assert_eq!(code_at(&secret(), at(time)).unwrap(), six, "T = {time}");
            assert_eq!(verify(&secret(), six, at(time)), Some(totp_step(at(time))), "T = {time}");
        }
    }

    #[test]
    fn accepts_the_current_step_and_one_each_way() {
        // "287082" is the code of step 1 (30..=59 s).
        let check = |time: i64| verify(&secret(), "287082", at(time));
        assert_eq!(check(0), Some(1), "one step early (clock behind)");
        assert_eq!(check(30), Some(1));
        assert_eq!(check(59), Some(1));
        assert_eq!(check(60), Some(1), "one step late");
        assert_eq!(check(89), Some(1));
        assert_eq!(check(90), None, "two steps late");
        let step_4 = code_at(&secret(), at(120)).unwrap();
        assert_eq!(verify(&secret(), &step_4, at(60)), None, "two steps early");
        assert_eq!(verify(&secret(), &step_4, at(119)), Some(4));
    }

    #[test]
    fn refuses_malformed_and_wrong_codes() {
        for code in ["", "28708", "2870820", "28708a", "+28708", "-287082", "２８７０８２", "287082\u{0}", "000000"]
        {
            assert_eq!(verify(&secret(), code, at(59)), None, "{code:?}");
        }
        assert_eq!(verify(&secret(), " 287 082 ", at(59)), Some(1), "spaces are ignored");
        assert_eq!(verify(&secret(), "287082", at(-30)), None, "before 1970");
    }

    #[test]
    fn secrets_are_random_160_bit_base32() {
        let (a, b) = (generate_secret().unwrap(), generate_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert_eq!(Secret::try_from_base32(a.expose()).unwrap().len(), SECRET_BYTES);
    }

    #[test]
    fn enrolment_uri_and_qr_code() {
        let enrolment = enrolment(&secret(), DEFAULT_ISSUER, "ann").unwrap();
        assert_eq!(enrolment.uri, format!("otpauth://totp/jit:ann?secret={RFC_SECRET}&issuer=jit"));
        let png = STANDARD.decode(&enrolment.qr_png_base64).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(enrolment.qr_data_url().starts_with("data:image/png;base64,iVBOR"));
        assert_eq!(format!("{enrolment:?}"), "TotpEnrolment([redacted])");

        // Names are percent-encoded; colons, which the format reserves, are replaced.
        let odd = super::enrolment(&secret(), "Acme: Corp", "corp:ann smith@x").unwrap();
        assert_eq!(
            odd.uri,
            format!("otpauth://totp/Acme_%20Corp:corp_ann%20smith%40x?secret={RFC_SECRET}&issuer=Acme_%20Corp")
        );
        let parsed = Totp::from_url(&odd.uri).unwrap();
        assert_eq!(parsed.account_name(), "corp_ann smith@x");
        assert_eq!(parsed.generate(59).to_string(), "287082");
    }
}
