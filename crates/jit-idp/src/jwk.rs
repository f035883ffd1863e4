//! The IdP's signing keys, verified through aws-lc-rs.
//!
//! openidconnect verifies ID token signatures with the pure-Rust `p256`,
//! `p384` and `rsa` crates: measured under the benchmark, verifying one
//! ES256 ID token that way was about 45% of the instructions jit spends on
//! a whole federated login. [`AwsLcJsonWebKey`] is openidconnect's own
//! [`CoreJsonWebKey`] (the same JSON, the same key-use and algorithm
//! checks) whose signature check runs in aws-lc-rs, which jit already uses
//! for its own keys, for the algorithms jit accepts by default (ES256,
//! ES384, RS256, RS384, RS512, PS256, PS384, PS512). Any other algorithm,
//! and any key that does not fit its algorithm, goes to openidconnect's
//! check unchanged (which refuses a key of the wrong type).

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, SignatureVerificationError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON Web Key whose signatures are checked by aws-lc-rs.
#[derive(Clone, Debug)]
pub struct AwsLcJsonWebKey {
    inner: CoreJsonWebKey,
    public: Option<PublicKey>,
}

/// The key material aws-lc-rs checks signatures with, read once when the
/// key set is read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PublicKey {
    /// An uncompressed point (`0x04 || x || y`) on P-256 or P-384.
    Ec { curve: Curve, point: Vec<u8> },
    /// An RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl PublicKey {
    /// The key of a JWK's JSON, when it is one aws-lc-rs takes.
    fn of(jwk: &Value) -> Option<Self> {
        let field = |name: &str| jwk.get(name)?.as_str().and_then(|text| URL_SAFE_NO_PAD.decode(text).ok());
        match jwk.get("kty")?.as_str()? {
            "EC" => {
                let (curve, size) = match jwk.get("crv")?.as_str()? {
                    "P-256" => (Curve::P256, 32),
                    "P-384" => (Curve::P384, 48),
                    _ => return None,
                };
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != size || y.len() != size {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Some(Self::Ec { curve, point })
            }
            "RSA" => Some(Self::Rsa { n: field("n")?, e: field("e")? }),
            _ => None,
        }
    }

    /// Checks `signature` over `message` for `alg`; `None` when this key
    /// does not go with `alg` (the caller falls back).
    fn verify(&self, alg: &CoreJwsSigningAlgorithm, message: &[u8], signature: &[u8]) -> Option<bool> {
        use CoreJwsSigningAlgorithm as A;
        match (self, alg) {
            (Self::Ec { curve: Curve::P256, point }, A::EcdsaP256Sha256) => {
                Some(ec(&signature::ECDSA_P256_SHA256_FIXED, point, message, signature))
            }
            (Self::Ec { curve: Curve::P384, point }, A::EcdsaP384Sha384) => {
                Some(ec(&signature::ECDSA_P384_SHA384_FIXED, point, message, signature))
            }
            (Self::Rsa { n, e }, alg) => {
                let params = match alg {
                    A::RsaSsaPkcs1V15Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    A::RsaSsaPkcs1V15Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    A::RsaSsaPkcs1V15Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    A::RsaSsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
                    A::RsaSsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
                    A::RsaSsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                };
                Some(RsaPublicKeyComponents { n, e }.verify(params, message, signature).is_ok())
            }
            _ => None,
        }
    }
}

fn ec(algorithm: &'static dyn VerificationAlgorithm, point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(algorithm, point).verify(message, signature).is_ok()
}

impl Serialize for AwsLcJsonWebKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AwsLcJsonWebKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let public = PublicKey::of(&value);
        let inner = CoreJsonWebKey::deserialize(value).map_err(serde::de::Error::custom)?;
        Ok(Self { inner, public })
    }
}

impl JsonWebKey for AwsLcJsonWebKey {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.inner.key_id()
    }

    fn key_type(&self) -> &<Self::SigningAlgorithm as openidconnect::JwsSigningAlgorithm>::KeyType {
        self.inner.key_type()
    }

    fn key_use(&self) -> Option<&Self::KeyUse> {
        self.inner.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&Self::SigningAlgorithm> {
        self.inner.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        Self { inner: CoreJsonWebKey::new_symmetric(key), public: None }
    }

    fn verify_signature(
        &self,
        signature_alg: &Self::SigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        match self.public.as_ref().and_then(|public| public.verify(signature_alg, message, signature)) {
            Some(true) => Ok(()),
            Some(false) => Err(SignatureVerificationError::CryptoError("bad signature".to_owned())),
            None => self.inner.verify_signature(signature_alg, message, signature),
        }
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &Self::SigningAlgorithm) -> Result<Vec<u8>, String> {
        self.inner.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    /// A P-256 key as a JWK, and its key pair.
    fn p256() -> (AwsLcJsonWebKey, EcdsaKeyPair) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        (serde_json::from_value(jwk).unwrap(), pair)
    }

    #[test]
    fn es256_signatures_are_checked_by_aws_lc() {
        let (key, pair) = p256();
        assert!(matches!(key.public, Some(PublicKey::Ec { curve: Curve::P256, .. })));
        let signature = pair.sign(&SystemRandom::new(), b"header.payload").unwrap();
        let alg = CoreJwsSigningAlgorithm::EcdsaP256Sha256;
        assert!(key.verify_signature(&alg, b"header.payload", signature.as_ref()).is_ok());
        assert!(key.verify_signature(&alg, b"header.payload!", signature.as_ref()).is_err(), "another message");
        let mut forged = signature.as_ref().to_vec();
        forged[10] ^= 1;
        assert!(key.verify_signature(&alg, b"header.payload", &forged).is_err(), "a changed signature");
        // A key of the wrong type for the algorithm: refused (by openidconnect's own check).
        assert!(
            key.verify_signature(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, b"x", signature.as_ref()).is_err()
        );
        assert!(key.verify_signature(&CoreJwsSigningAlgorithm::EcdsaP384Sha384, b"x", signature.as_ref()).is_err());
    }

    #[test]
    fn the_key_reads_and_writes_as_openidconnect_would() {
        let (key, _) = p256();
        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(json["kty"], "EC");
        assert_eq!(key.key_id().map(|k| k.as_str()), Some("k1"));
        let again: AwsLcJsonWebKey = serde_json::from_value(json).unwrap();
        assert_eq!(again.public, key.public);
        let odd: AwsLcJsonWebKey =
            serde_json::from_value(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})).unwrap();
        assert_eq!(odd.public, None, "a point of the wrong size is left to openidconnect");
    }
}
