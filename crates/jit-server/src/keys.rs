//! Our signing keys: generated on first start, stored, published at
//! `/oauth2/jwks`, and rotatable. Every instance signs with the oldest active
//! key, so instances that race to create the first key still agree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jit_domain::ports::{SigningKey, SigningKeyStore, StoreError};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use tokio::sync::RwLock;

/// How long loaded keys are trusted before rereading the store (so a
/// rotation on one instance reaches the others).
const RELOAD_AFTER: Duration = Duration::from_secs(60);

/// Key errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be generated, read or used.
    #[error("signing key error: {0}")]
    Crypto(String),
}

/// A key ready to use.
struct LoadedKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
    active: bool,
}

struct Loaded {
    at: Instant,
    keys: Vec<LoadedKey>,
}

/// The key ring over a store.
pub struct KeyRing {
    store: Arc<dyn SigningKeyStore>,
    loaded: RwLock<Option<Arc<Loaded>>>,
}

impl KeyRing {
    /// Loads the keys, creating an ES256 key if there is no active one.
    pub async fn open(store: Arc<dyn SigningKeyStore>, now: time::OffsetDateTime) -> Result<Self, KeyError> {
        let ring = Self { store, loaded: RwLock::new(None) };
        if !ring.load().await?.keys.iter().any(|k| k.active) {
            ring.generate(now).await?;
        }
        Ok(ring)
    }

    /// Adds a new ES256 key; it becomes the signing key once older active
    /// keys are retired.
    pub async fn generate(&self, now: time::OffsetDateTime) -> Result<String, KeyError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|e| KeyError::Crypto(format!("cannot generate an ES256 key: {e}")))?;
        let der = pkcs8.as_ref().to_vec();
        let (_, jwk) = decode_key("ES256", &der)?;
        let kid = kid_of(&jwk)?;
        self.store
            .add_signing_key(&SigningKey {
                kid: kid.clone(),
                algorithm: "ES256".into(),
                private_key_der: der,
                created_at: now,
                active: true,
            })
            .await?;
        *self.loaded.write().await = None;
        Ok(kid)
    }

    /// Makes a new key the signing key and retires the others (they stay
    /// published so tokens they signed still verify).
    pub async fn rotate(&self, now: time::OffsetDateTime) -> Result<String, KeyError> {
        let new = self.generate(now).await?;
        for key in self.store.signing_keys().await? {
            if key.kid != new && key.active {
                self.store.retire_signing_key(&key.kid).await?;
            }
        }
        *self.loaded.write().await = None;
        Ok(new)
    }

    /// Signs `claims` as a JWT with the current key; `typ` sets the
    /// header's type (`JWT` when `None`).
    pub async fn sign<T: Serialize>(&self, claims: &T, typ: Option<&str>) -> Result<String, KeyError> {
        let loaded = self.current().await?;
        let key = signing_key(&loaded)?;
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// The public keys, for `/oauth2/jwks`.
    pub async fn jwks(&self) -> Result<JwkSet, KeyError> {
        let loaded = self.current().await?;
        Ok(JwkSet { keys: loaded.keys.iter().map(|k| k.jwk.clone()).collect() })
    }

    /// The key that verifies a token signed by us with `kid`.
    pub async fn decoding_key(&self, kid: &str) -> Result<Option<(DecodingKey, Algorithm)>, KeyError> {
        let loaded = self.current().await?;
        let Some(key) = loaded.keys.iter().find(|k| k.kid == kid) else { return Ok(None) };
        let decoding = DecodingKey::from_jwk(&key.jwk).map_err(|e| KeyError::Crypto(e.to_string()))?;
        Ok(Some((decoding, key.algorithm)))
    }

    /// The signing algorithms in use (for discovery).
    pub async fn algorithms(&self) -> Result<Vec<String>, KeyError> {
        let loaded = self.current().await?;
        let mut algorithms: Vec<String> = loaded.keys.iter().map(|k| format!("{:?}", k.algorithm)).collect();
        algorithms.sort();
        algorithms.dedup();
        Ok(algorithms)
    }

    async fn current(&self) -> Result<Arc<Loaded>, KeyError> {
        if let Some(loaded) = self.loaded.read().await.as_ref()
            && loaded.at.elapsed() < RELOAD_AFTER
        {
            return Ok(loaded.clone());
        }
        self.load().await
    }

    async fn load(&self) -> Result<Arc<Loaded>, KeyError> {
        let mut keys = Vec::new();
        for stored in self.store.signing_keys().await? {
            let (encoding, jwk) = decode_key(&stored.algorithm, &stored.private_key_der)?;
            let algorithm = parse_algorithm(&stored.algorithm)?;
            keys.push((
                stored.created_at,
                LoadedKey { kid: stored.kid, algorithm, encoding, jwk, active: stored.active },
            ));
        }
        // Oldest first, so every instance picks the same signing key.
        keys.sort_by(|(a, ka), (b, kb)| a.cmp(b).then_with(|| ka.kid.cmp(&kb.kid)));
        let loaded = Arc::new(Loaded { at: Instant::now(), keys: keys.into_iter().map(|(_, k)| k).collect() });
        *self.loaded.write().await = Some(loaded.clone());
        Ok(loaded)
    }
}

fn signing_key(loaded: &Loaded) -> Result<&LoadedKey, KeyError> {
    loaded.keys.iter().find(|k| k.active).ok_or_else(|| KeyError::Crypto("no active signing key".into()))
}

fn parse_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    match name {
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        other => Err(KeyError::Crypto(format!("unsupported signing algorithm {other}"))),
    }
}

fn decode_key(algorithm: &str, der: &[u8]) -> Result<(EncodingKey, Jwk), KeyError> {
    let alg = parse_algorithm(algorithm)?;
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_der(der),
        _ => EncodingKey::from_ec_der(der),
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| KeyError::Crypto(e.to_string()))?;
    jwk.common.key_id = Some(kid_of(&jwk)?);
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok((encoding, jwk))
}

/// The RFC 7638 thumbprint: stable, derived from the public key.
fn kid_of(jwk: &Jwk) -> Result<String, KeyError> {
    jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Crypto(e.to_string()))
}
