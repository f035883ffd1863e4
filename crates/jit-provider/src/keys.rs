//! Our signing keys: generated on first start, stored, published at
//! `/oauth2/jwks`, and rotatable. ES256 (ECDSA P-256) by default; RS256
//! (RSA 2048) on request. Keys are generated with aws-lc-rs and stored as
//! PKCS#8; tokens are signed with jsonwebtoken.
//!
//! Which key signs: the oldest *active* key. A rotation adds a key and
//! retires every older active key, so afterwards exactly one key is active
//! and it signs at once. Retired keys stay published, so tokens they signed
//! still verify. Instances that race to create the first key (two active
//! keys) agree because they all pick the oldest.
//!
//! Several instances share the store. Each caches the keys it signs with
//! for [`RELOAD_AFTER`], so after a rotation the other instances keep
//! signing with the (retired, still published) previous key for up to that
//! long. What every instance publishes and verifies is never stale: the
//! JWKS and discovery read the store on every request, and a token naming
//! an unknown key makes the instance reread the store. So a new key is in
//! every instance's JWKS from the moment any instance signs with it, and a
//! relying party that fetches the JWKS again on an unknown `kid` (as
//! jit-idp, openid-client and jose do) never fails on a rotation. A relying
//! party that never refreshes its cached JWKS needs its cache cleared after
//! a rotation: a publish-ahead delay would only help it if the delay
//! exceeded its cache lifetime, which we cannot know.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jit_domain::ports::{SigningKey, SigningKeyStore, StoreError};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::RwLock;

/// How long the keys used for signing are trusted before rereading the
/// store (so a rotation on one instance reaches the others).
pub const RELOAD_AFTER: Duration = Duration::from_secs(60);

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

/// The algorithms jit signs tokens with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SigningAlgorithm {
    /// ECDSA with P-256 and SHA-256: small, fast keys and signatures (the
    /// default).
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit RSA key: for relying
    /// parties that accept nothing else (OpenID Connect's baseline
    /// algorithm).
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    /// The JOSE name (`ES256`, `RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    fn jose(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    fn parse(name: &str) -> Result<Self, KeyError> {
        match name {
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            other => Err(KeyError::Crypto(format!("unsupported signing algorithm {other}"))),
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's parsed material; parsed once per process (the kid is the public
/// key's thumbprint, so a kid's material never changes).
struct KeyMaterial {
    algorithm: SigningAlgorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

/// A stored key ready to use.
struct LoadedKey {
    kid: String,
    active: bool,
    material: Arc<KeyMaterial>,
}

struct Loaded {
    at: Instant,
    /// Oldest first.
    keys: Vec<LoadedKey>,
}

impl Loaded {
    fn find(&self, kid: &str) -> Option<&LoadedKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The key ring over a store.
pub struct KeyRing {
    store: Arc<dyn SigningKeyStore>,
    loaded: RwLock<Option<Arc<Loaded>>>,
}

impl KeyRing {
    /// Loads the keys, creating an ES256 key if there is no active one.
    pub async fn open(store: Arc<dyn SigningKeyStore>, now: OffsetDateTime) -> Result<Self, KeyError> {
        let ring = Self { store, loaded: RwLock::new(None) };
        if !ring.load().await?.keys.iter().any(|k| k.active) {
            ring.generate(now, SigningAlgorithm::default()).await?;
        }
        Ok(ring)
    }

    /// Adds a new active key of `algorithm`, published at once; it becomes
    /// the signing key once older active keys are retired (see
    /// [`KeyRing::rotate`]). Returns its kid.
    pub async fn generate(&self, now: OffsetDateTime, algorithm: SigningAlgorithm) -> Result<String, KeyError> {
        let der = generate_pkcs8(algorithm)?;
        let kid = kid_of(&parse_key(algorithm, &der)?.jwk)?;
        self.store
            .add_signing_key(&SigningKey {
                kid: kid.clone(),
                algorithm: algorithm.as_str().into(),
                private_key_der: der,
                created_at: now,
                active: true,
            })
            .await?;
        *self.loaded.write().await = None;
        Ok(kid)
    }

    /// Makes a new key of `algorithm` the signing key and retires the
    /// active keys older than it (they stay published so tokens they signed
    /// still verify). Two rotations racing on two instances leave one
    /// active key, the newer. Returns the new key's kid.
    pub async fn rotate(&self, now: OffsetDateTime, algorithm: SigningAlgorithm) -> Result<String, KeyError> {
        let new = self.generate(now, algorithm).await?;
        let keys = self.store.signing_keys().await?;
        let created_at = keys
            .iter()
            .find(|k| k.kid == new)
            .map(|k| k.created_at)
            .ok_or_else(|| KeyError::Crypto(format!("the new key {new} is not in the store")))?;
        let older = |k: &SigningKey| (k.created_at, k.kid.as_str()) < (created_at, new.as_str());
        for key in keys.iter().filter(|k| k.active && older(k)) {
            self.store.retire_signing_key(&key.kid).await?;
        }
        *self.loaded.write().await = None;
        Ok(new)
    }

    /// Signs `claims` as a JWT with the current key; `typ` sets the
    /// header's type (`JWT` when `None`).
    pub async fn sign<T: Serialize>(&self, claims: &T, typ: Option<&str>) -> Result<String, KeyError> {
        let loaded = self.current().await?;
        let key = signing_key(&loaded)?;
        let mut header = Header::new(key.material.algorithm.jose());
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &key.material.encoding).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// The public keys, for `/oauth2/jwks`: every stored key, active or
    /// retired, read from the store now.
    pub async fn jwks(&self) -> Result<JwkSet, KeyError> {
        let loaded = self.load().await?;
        Ok(JwkSet { keys: loaded.keys.iter().map(|k| k.material.jwk.clone()).collect() })
    }

    /// The key that verifies a token signed by us with `kid`. An unknown
    /// kid rereads the store (one small query; keys already parsed are not
    /// parsed again), so a key another instance has just created is found.
    pub async fn decoding_key(&self, kid: &str) -> Result<Option<(DecodingKey, Algorithm)>, KeyError> {
        let mut loaded = self.current().await?;
        if loaded.find(kid).is_none() {
            loaded = self.load().await?;
        }
        Ok(loaded.find(kid).map(|k| (k.material.decoding.clone(), k.material.algorithm.jose())))
    }

    /// The algorithms of the published keys (for discovery's
    /// `id_token_signing_alg_values_supported`), read from the store now.
    pub async fn algorithms(&self) -> Result<Vec<String>, KeyError> {
        let loaded = self.load().await?;
        let mut algorithms: Vec<String> = loaded.keys.iter().map(|k| k.material.algorithm.to_string()).collect();
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

    /// Rereads the store; keys already parsed are reused.
    async fn load(&self) -> Result<Arc<Loaded>, KeyError> {
        let known: HashMap<String, Arc<KeyMaterial>> = match self.loaded.read().await.as_ref() {
            Some(loaded) => loaded.keys.iter().map(|k| (k.kid.clone(), k.material.clone())).collect(),
            None => HashMap::new(),
        };
        let mut keys = Vec::new();
        for stored in self.store.signing_keys().await? {
            let material = match known.get(&stored.kid) {
                Some(material) => material.clone(),
                None => Arc::new(parse_key(SigningAlgorithm::parse(&stored.algorithm)?, &stored.private_key_der)?),
            };
            keys.push((stored.created_at, LoadedKey { kid: stored.kid, active: stored.active, material }));
        }
        // Oldest first, so every instance picks the same signing key.
        keys.sort_by(|(a, ka), (b, kb)| a.cmp(b).then_with(|| ka.kid.cmp(&kb.kid)));
        let loaded = Arc::new(Loaded { at: Instant::now(), keys: keys.into_iter().map(|(_, k)| k).collect() });
        *self.loaded.write().await = Some(loaded.clone());
        Ok(loaded)
    }
}

fn signing_key(loaded: &Loaded) -> Result<&LoadedKey, KeyError> {
    loaded.keys.iter().find(|k| k.active).ok_or_else(|| {
        KeyError::Crypto("no active signing key; rotate the keys (POST /api/v1/keys/rotate) to create one".into())
    })
}

/// A new private key of `algorithm` as PKCS#8 DER.
fn generate_pkcs8(algorithm: SigningAlgorithm) -> Result<Vec<u8>, KeyError> {
    let failed =
        |e: aws_lc_rs::error::Unspecified| KeyError::Crypto(format!("cannot generate an {algorithm} key: {e}"));
    match algorithm {
        SigningAlgorithm::Es256 => {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).map_err(failed)?;
            Ok(pkcs8.as_ref().to_vec())
        }
        SigningAlgorithm::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            Ok(pkcs8.as_ref().to_vec())
        }
    }
}

/// Parses a stored PKCS#8 key into what signs, verifies and is published.
fn parse_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<KeyMaterial, KeyError> {
    let crypto = |e: jsonwebtoken::errors::Error| KeyError::Crypto(format!("unusable {algorithm} key: {e}"));
    let encoding = match algorithm {
        SigningAlgorithm::Es256 => EncodingKey::from_ec_der(pkcs8),
        // jsonwebtoken's aws-lc backend reads RSA private keys as PKCS#1;
        // its PEM reader unwraps the PKCS#1 key from a PKCS#8 document.
        SigningAlgorithm::Rs256 => {
            let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(pkcs8));
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(crypto)?
        }
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jose()).map_err(crypto)?;
    jwk.common.key_id = Some(kid_of(&jwk)?);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(crypto)?;
    Ok(KeyMaterial { algorithm, encoding, decoding, jwk })
}

/// The RFC 7638 thumbprint: stable, derived from the public key.
fn kid_of(jwk: &Jwk) -> Result<String, KeyError> {
    jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Crypto(e.to_string()))
}
