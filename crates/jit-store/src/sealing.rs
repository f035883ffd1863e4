//! Secrets at rest: the key-encryption keys that seal what the database must
//! not hold in clear (TOTP secrets, connections' client secrets, our signing
//! keys' private halves, and every sign-in's state, which may hold a TOTP
//! secret waiting for its first code, PKCE verifiers and nonces).
//!
//! AES-256-GCM from aws-lc-rs, a fresh random 96-bit nonce per value, and
//! the value's place as associated data (`user_totp:<user id>`,
//! `connection:<name>`, ...), so that a sealed value copied into another row
//! does not open there. A sealed value reads `v1.<key id>.<base64url(nonce
//! ‖ ciphertext ‖ tag)>`; the key id is a hash prefix of the key, so several
//! keys can be configured at once: the first seals, all of them open. That
//! is how a key is rotated: put the new key first on every instance, keep
//! the old one, run `jit migrate` (or restart: `Store::prepare_secrets`
//! re-seals what the old key sealed), then drop the old key.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// The format prefix of sealed values.
const VERSION: &str = "v1";

/// Why keys cannot be used, or a value cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealingError {
    /// A configured key is not 32 bytes of base64url.
    #[error(
        "a secret key must be 32 random bytes in base64url ({KEY_LEN} bytes, 43 characters without padding); generate one with `jit generate-secret-key`"
    )]
    InvalidKey,
    /// No key was configured.
    #[error("no secret key is configured")]
    NoKey,
    /// A value sealed with a key that is not configured.
    #[error("a secret in the database is sealed with key {0}, which this instance does not have")]
    UnknownKey(String),
    /// A value that is not sealed, or was tampered with or moved.
    #[error("a secret in the database cannot be opened (not sealed, tampered with, or moved to another row)")]
    Corrupt,
    /// The system's random generator failed.
    #[error("the system random generator failed")]
    Random,
}

struct Key {
    id: String,
    key: LessSafeKey,
    raw: [u8; KEY_LEN],
}

/// The configured keys; the first one seals.
pub struct SealingKeys {
    keys: Vec<Key>,
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys").field("ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>()).finish()
    }
}

impl SealingKeys {
    /// Keys from their base64url forms, the sealing one first.
    pub fn from_encoded<S: AsRef<str>>(encoded: &[S]) -> Result<Self, SealingError> {
        let keys = encoded
            .iter()
            .map(|text| {
                let bytes = URL_SAFE_NO_PAD.decode(text.as_ref().trim()).map_err(|_| SealingError::InvalidKey)?;
                let raw: [u8; KEY_LEN] = bytes.try_into().map_err(|_| SealingError::InvalidKey)?;
                Key::new(raw)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SealingError::NoKey);
        }
        Ok(Self { keys })
    }

    /// Keys from a key file's text: one base64url key per line, the
    /// sealing one first; blank lines and `#` comments are skipped.
    pub fn from_file_text(text: &str) -> Result<Self, SealingError> {
        let lines: Vec<&str> =
            text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
        Self::from_encoded(&lines)
    }

    /// A new random key, in its base64url form (for a key file, or for
    /// `JIT_SECRET_KEY`).
    pub fn generate_encoded() -> Result<String, SealingError> {
        let mut raw = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut raw).map_err(|_| SealingError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// A single new random key (tests and tools).
    pub fn generate() -> Result<Self, SealingError> {
        Self::from_encoded(&[Self::generate_encoded()?])
    }

    /// The id of the sealing key.
    pub fn current_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Seals `plaintext` for the place `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SealingError> {
        let key = self.keys.first().ok_or(SealingError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealingError::Random)?;
        let mut data = plaintext.to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SealingError::Corrupt)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok(format!("{VERSION}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a value [`seal`](Self::seal)ed for the place `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealingError> {
        let (id, body) = parse(sealed).ok_or(SealingError::Corrupt)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| SealingError::UnknownKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealingError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealingError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealingError::Corrupt)?;
        let mut data = ciphertext.to_vec();
        let opened = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SealingError::Corrupt)?;
        Ok(opened.to_vec())
    }

    /// Opens a sealed UTF-8 string.
    pub fn open_string(&self, sealed: &str, context: &str) -> Result<String, SealingError> {
        String::from_utf8(self.open(sealed, context)?).map_err(|_| SealingError::Corrupt)
    }

    /// Whether `value` is sealed with the current key (so re-sealing it
    /// would change nothing).
    pub fn is_current(&self, value: &str) -> bool {
        parse(value).is_some_and(|(id, _)| id == self.current_id())
    }

    /// A 32-byte key for `purpose` (e.g. keyed hashes of email codes),
    /// derived from the sealing key with HKDF-SHA256: the same on every
    /// instance with the same key, independent of the key itself.
    pub fn derive(&self, purpose: &str) -> Result<[u8; KEY_LEN], SealingError> {
        struct Len;
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                KEY_LEN
            }
        }
        let key = self.keys.first().ok_or(SealingError::NoKey)?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"jit key derivation").extract(&key.raw);
        let info = [purpose.as_bytes()];
        let okm = prk.expand(&info, Len).map_err(|_| SealingError::Corrupt)?;
        let mut out = [0u8; KEY_LEN];
        okm.fill(&mut out).map_err(|_| SealingError::Corrupt)?;
        Ok(out)
    }
}

impl Key {
    fn new(raw: [u8; KEY_LEN]) -> Result<Self, SealingError> {
        let digest = Sha256::digest(raw);
        let id: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| SealingError::InvalidKey)?;
        Ok(Self { id, key: LessSafeKey::new(unbound), raw })
    }
}

/// `v1.<id>.<body>` → (id, body).
fn parse(sealed: &str) -> Option<(&str, &str)> {
    let rest = sealed.strip_prefix(VERSION)?.strip_prefix('.')?;
    rest.split_once('.')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_and_with_their_key() {
        let keys = SealingKeys::generate().unwrap();
        let sealed = keys.seal(b"JBSWY3DPEHPK3PXP", "user_totp:1").unwrap();
        assert!(!sealed.contains("JBSWY3DP") && sealed.starts_with("v1."), "{sealed}");
        assert_eq!(keys.open(&sealed, "user_totp:1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(keys.open(&sealed, "user_totp:2"), Err(SealingError::Corrupt), "moved to another row");
        assert_ne!(sealed, keys.seal(b"JBSWY3DPEHPK3PXP", "user_totp:1").unwrap(), "a fresh nonce each time");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(keys.open(&tampered, "user_totp:1"), Err(SealingError::Corrupt));
        assert_eq!(keys.open("JBSWY3DPEHPK3PXP", "user_totp:1"), Err(SealingError::Corrupt), "plaintext");
        let other = SealingKeys::generate().unwrap();
        assert!(matches!(other.open(&sealed, "user_totp:1"), Err(SealingError::UnknownKey(_))));
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_old_one_sealed() {
        let old = SealingKeys::generate_encoded().unwrap();
        let new = SealingKeys::generate_encoded().unwrap();
        let before = SealingKeys::from_encoded(&[&old]).unwrap();
        let sealed = before.seal(b"secret", "x").unwrap();
        let after = SealingKeys::from_file_text(&format!("# jit secret keys\n{new}\n\n{old}\n")).unwrap();
        assert_eq!(after.open(&sealed, "x").unwrap(), b"secret");
        assert!(!after.is_current(&sealed) && after.is_current(&after.seal(b"secret", "x").unwrap()));
        assert_ne!(before.derive("email-otp").unwrap(), after.derive("email-otp").unwrap());
        assert_eq!(
            before.derive("email-otp").unwrap(),
            SealingKeys::from_encoded(&[&old]).unwrap().derive("email-otp").unwrap()
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64url() {
        assert_eq!(SealingKeys::from_encoded(&["short"]).unwrap_err(), SealingError::InvalidKey);
        assert_eq!(SealingKeys::from_encoded::<&str>(&[]).unwrap_err(), SealingError::NoKey);
        assert_eq!(SealingKeys::from_file_text("# nothing\n").unwrap_err(), SealingError::NoKey);
        assert!(!format!("{:?}", SealingKeys::generate().unwrap()).contains("raw"));
    }
}
