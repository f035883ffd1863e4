//! Conversions between domain values and columns.

use jit_domain::ports::StoreError;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch: how every `*_at` column stores time,
/// the same way on all three databases.
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`millis`].
pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The indexed form of a normalised value (fixed length, so that long
/// values can be indexed on every database).
pub(crate) fn lookup_hash(normalized: &str) -> String {
    format!("{:x}", Sha256::digest(normalized.as_bytes()))
}

/// JSON for a text column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend_from(format!("cannot encode: {e}"), e))
}

/// A text column's JSON.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::backend_from(format!("stored {what} is unreadable: {e}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(from_millis(millis(at)), at);
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(lookup_hash("").len(), 64);
        assert_ne!(lookup_hash("a"), lookup_hash("b"));
    }
}
