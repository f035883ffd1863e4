//! Signing keys of the test provider (generated with aws-lc-rs) and the JWTs it signs.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use crate::{KeyAlgorithm, TestIdpError};

/// A private signing key with its public JWK.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as published in the JWKS.
    pub(crate) jwk: Value,
    /// Public key bytes (SubjectPublicKeyInfo for RSA, the EC point for ES256): the
    /// "secret" of the HMAC-with-public-key attack.
    pub(crate) public_bytes: Vec<u8>,
}

fn key_error(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> TestIdpError + '_ {
    move |_| TestIdpError::Key(format!("cannot {what}"))
}

impl SigningKey {
    /// A fresh key; its `kid` is its JWK thumbprint.
    pub(crate) fn generate(algorithm: KeyAlgorithm) -> Result<Self, TestIdpError> {
        let (alg, encoding, public_bytes) = match algorithm {
            KeyAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(key_error("generate an ES256 key"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(key_error("encode an ES256 key"))?;
                (Algorithm::ES256, EncodingKey::from_ec_der(pkcs8.as_ref()), pair.public_key().as_ref().to_vec())
            }
            KeyAlgorithm::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(key_error("generate an RS256 key"))?;
                let pkcs8: Pkcs8V1Der<'_> = pair.as_der().map_err(key_error("encode an RS256 key"))?;
                let public: PublicKeyX509Der<'_> =
                    pair.public_key().as_der().map_err(key_error("encode an RS256 public key"))?;
                // jsonwebtoken's aws-lc backend reads RSA keys as PKCS#1; its PEM reader unwraps PKCS#8.
                let pem = format!(
                    "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                    STANDARD.encode(pkcs8.as_ref())
                );
                let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| TestIdpError::Key(format!("cannot load an RS256 key: {e}")))?;
                (Algorithm::RS256, encoding, public.as_ref().to_vec())
            }
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg)
            .map_err(|e| TestIdpError::Key(format!("cannot build a JWK: {e}")))?;
        let kid =
            jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| TestIdpError::Key(format!("cannot hash a JWK: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let jwk = serde_json::to_value(&jwk).map_err(|e| TestIdpError::Key(format!("cannot serialize a JWK: {e}")))?;
        Ok(Self { kid, alg, encoding, jwk, public_bytes })
    }

    /// Signs `claims` with this key, announcing `kid` in the header.
    pub(crate) fn sign_as(&self, kid: &str, claims: &Value) -> Result<String, TestIdpError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| TestIdpError::Key(format!("cannot sign: {e}")))
    }

    /// Signs `claims` with this key under its own `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, TestIdpError> {
        self.sign_as(&self.kid, claims)
    }
}

/// HS256 over `claims`, keyed with `secret` (the algorithm-confusion attack when the secret is a public key).
pub(crate) fn sign_hs256(secret: &[u8], kid: &str, claims: &Value) -> Result<String, TestIdpError> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret))
        .map_err(|e| TestIdpError::Key(format!("cannot sign: {e}")))
}

/// An unsigned JWT (`alg: none`, empty signature).
pub(crate) fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// `BASE64URL(SHA-256(value))`: the PKCS S256 challenge of a verifier.
pub(crate) fn s256(value: &str) -> String {
    use sha2::Digest as _;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(value.as_bytes()))
}

/// `at_hash` of an access token for a SHA-256 algorithm: the left half of its hash.
pub(crate) fn at_hash(access_token: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash[..hash.len() / 2])
}

/// 32 random bytes, base64url: codes and access tokens.
pub(crate) fn random_token() -> Result<String, TestIdpError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(key_error("draw random bytes"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
