//! The second-factor authenticators' primitives, used by the sign-in steps
//! `TOTP` and `EMAIL_OTP`:
//!
//! - [`totp`]: secrets, the enrolment URI and QR code, and verifying a code
//!   (RFC 6238 through `totp-rs`: SHA-1, 6 digits, 30 s, current step ±1),
//!   returning the matched step so that the store can accept each step once
//!   ([`jit_domain::ports::TotpStore`]);
//! - [`email_otp`]: a short-lived, single-use numeric code kept (hashed) in
//!   the flow state, with expiry, an attempt limit and a resend limit;
//! - [`mailer`]: sending the code over SMTP (`lettre`), or — when no SMTP
//!   server is configured — writing it to the server log as a clearly marked
//!   development fallback.
//!
//! Nothing here reads the clock: every check takes `now`.

pub mod email_otp;
pub mod mailer;
pub mod totp;
