//! The OpenID Connect relying party: discovery, authorization code flow with
//! PKCE, ID token validation and userinfo, on top of `openidconnect`.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, DiscoveryError, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKey, JsonWebKeySet, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::config::{ClientAuthMethod, RelyingPartyConfig};
use crate::error::{IdTokenError, IdpError};
use crate::http::{TransportError, build_client, client_fn};
use crate::jwk::AwsLcJsonWebKey;

/// Allowed clock skew between us and the provider for `exp` and `iat`.
const LEEWAY: TimeDelta = TimeDelta::seconds(60);

/// Query parameters of the authorization request that `begin` sets itself and
/// that `extra` may therefore not override.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// Every claim that `openidconnect` does not model itself, so that nothing the
/// provider sent is lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}
impl AdditionalClaims for OtherClaims {}

type IdToken =
    openidconnect::IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type IdTokenClaims = openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>;
/// A provider's metadata with its keys as [`AwsLcJsonWebKey`]s.
type ProviderMetadata = openidconnect::ProviderMetadata<
    openidconnect::EmptyAdditionalProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    AwsLcJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;
/// A provider's key set.
type JwkSet = JsonWebKeySet<AwsLcJsonWebKey>;
type Verifier = IdTokenVerifier<'static, AwsLcJsonWebKey>;
type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    AwsLcJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A started login: where to send the browser, and what to keep until the callback.
#[derive(Debug, Clone)]
pub struct AuthorizationStart {
    /// The provider's authorization URL, with all query parameters.
    pub url: String,
    /// What [`OidcRelyingParty::finish`] needs back; store it in the flow state.
    pub pending: PendingAuthorization,
}

/// The secrets of a login in progress, kept by the caller between
/// [`OidcRelyingParty::begin`] and [`OidcRelyingParty::finish`] (e.g. in the
/// flow state). Its `Debug` output hides the nonce and PKCE verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The `state` sent to the provider; the callback must carry it back.
    pub state: String,
    /// The `nonce` sent to the provider; the ID token must carry it back.
    pub nonce: String,
    /// The PKCE code verifier whose S256 challenge was sent to the provider.
    pub pkce_verifier: String,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("state", &self.state)
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .finish()
    }
}

/// The query parameters the provider sends to the redirect URI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackParams {
    /// The authorization code (on success).
    #[serde(default)]
    pub code: Option<String>,
    /// The `state` of the authorization request.
    #[serde(default)]
    pub state: Option<String>,
    /// The OAuth 2.0 error code (on failure), e.g. `access_denied`.
    #[serde(default)]
    pub error: Option<String>,
    /// A human-readable description of the error.
    #[serde(default)]
    pub error_description: Option<String>,
    /// The issuer identifier (RFC 9207), sent by providers that support it; when present it
    /// must be the configured issuer.
    #[serde(default)]
    pub iss: Option<String>,
}

/// The outcome of a successful login: who the provider says signed in, and what it says about them.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLogin {
    /// The issuer that authenticated the user.
    pub issuer: String,
    /// The user's subject identifier at that issuer.
    pub subject: String,
    /// The ID token's claims, merged with the userinfo claims when userinfo is fetched
    /// (userinfo wins, except for `sub`, `iss` and `aud`). For display and mapping only:
    /// a claim that vouches for another (`email_verified` for `email`) must be read from
    /// the document it came in, [`id_token_claims`](Self::id_token_claims) or
    /// [`userinfo_claims`](Self::userinfo_claims).
    pub claims: Map<String, Value>,
    /// The validated ID token's claims, as sent.
    pub id_token_claims: Map<String, Value>,
    /// The userinfo response's claims, as sent, when userinfo is fetched (its `sub` is the
    /// ID token's).
    pub userinfo_claims: Option<Map<String, Value>>,
}

impl VerifiedLogin {
    /// The claim documents, most specific first: userinfo (when fetched), then the ID
    /// token.
    pub fn documents(&self) -> Vec<&Map<String, Value>> {
        self.userinfo_claims.iter().chain(std::iter::once(&self.id_token_claims)).collect()
    }
}

/// An OpenID Connect relying party for one provider.
///
/// Cheap to clone (clones share the cache); `Send + Sync`. Discovery happens on
/// first use; the metadata and key set are reused for `metadata_ttl`, and the
/// key set is fetched again once when an ID token names an unknown key.
#[derive(Clone)]
pub struct OidcRelyingParty {
    inner: Arc<Inner>,
}

struct Inner {
    config: RelyingPartyConfig,
    issuer: IssuerUrl,
    redirect_uri: RedirectUrl,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    allows_hmac: bool,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    metadata: Arc<ProviderMetadata>,
    fetched_at: Instant,
}

impl std::fmt::Debug for OidcRelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcRelyingParty").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl OidcRelyingParty {
    /// Checks `config` and builds the relying party with its own HTTP client
    /// (redirects disabled, `config.timeout` on every call). Makes no network call.
    pub fn new(config: RelyingPartyConfig) -> Result<Self, IdpError> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| IdpError::Config(format!("the issuer {:?} is not a URL ({e})", config.issuer)))?;
        let redirect_uri = RedirectUrl::new(config.redirect_uri.clone())
            .map_err(|e| IdpError::Config(format!("the redirect URI {:?} is not a URL ({e})", config.redirect_uri)))?;
        if config.client_id.is_empty() {
            return Err(IdpError::Config("the client id is empty".into()));
        }
        if config.timeout.is_zero() {
            return Err(IdpError::Config("the timeout is zero".into()));
        }
        let algorithms = parse_algorithms(&config.allowed_algorithms)?;
        let allows_hmac = algorithms.iter().any(is_hmac);
        if allows_hmac && config.client_secret.is_none() {
            return Err(IdpError::Config(
                "HS256/HS384/HS512 are allowed but there is no client secret to verify them with".into(),
            ));
        }
        let http = build_client(config.timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                redirect_uri,
                algorithms,
                allows_hmac,
                http,
                cache: RwLock::new(None),
                config,
            }),
        })
    }

    /// The configuration this relying party was built from.
    pub fn config(&self) -> &RelyingPartyConfig {
        &self.inner.config
    }

    /// Starts a login: builds the authorization URL with `response_type=code`,
    /// PKCE (S256), a random `state` and `nonce`, the configured scopes, and the
    /// `extra` query parameters (e.g. `prompt`, `login_hint`).
    ///
    /// Fetches the provider's metadata on first use.
    pub async fn begin(&self, extra: &[(&str, &str)]) -> Result<AuthorizationStart, IdpError> {
        if let Some((name, _)) = extra.iter().find(|(name, _)| RESERVED_PARAMS.contains(name)) {
            return Err(IdpError::Config(format!(
                "the extra authorization parameter `{name}` is set by the relying party itself"
            )));
        }
        let metadata = self.metadata().await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for scope in self.inner.config.scopes.iter().filter(|s| s.as_str() != "openid" && !s.is_empty()) {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in extra {
            request = request.add_extra_param(*name, *value);
        }
        let (url, state, nonce) = request.url();
        Ok(AuthorizationStart {
            url: url.to_string(),
            pending: PendingAuthorization {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        })
    }

    /// Finishes a login from the provider's callback.
    ///
    /// Checks `state` (constant time) against `pending`, turns a provider error
    /// into [`IdpError::IdpRefused`], exchanges the code (with the PKCE
    /// verifier and the configured client authentication), validates the ID
    /// token at time `now` (signature, `alg` allow-list, `iss`, `aud`, `azp`,
    /// `exp`/`iat` with 60 s leeway, `nonce`, `at_hash`), and when configured
    /// fetches userinfo, whose `sub` must be the ID token's.
    pub async fn finish(
        &self,
        callback: &CallbackParams,
        pending: &PendingAuthorization,
        now: SystemTime,
    ) -> Result<VerifiedLogin, IdpError> {
        let code = self.check_callback(callback, pending)?;
        let metadata = self.metadata().await?;
        let client = self.client(&metadata);
        let http = client_fn(&self.inner.http, self.inner.config.timeout);
        let token_url = metadata.token_endpoint().map(|u| u.to_string()).unwrap_or_default();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| self.discovery_error(format!("{e} (the discovery document has no token_endpoint)")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| token_error(e, &token_url))?;
        let id_token = tokens.id_token().ok_or(IdTokenError::Missing)?;
        let now = DateTime::<Utc>::from(now);
        let (claims, verifier) = self.verify_id_token(id_token, metadata, &pending.nonce, now).await?;
        self.check_authorized_party(&claims)?;
        self.check_access_token_hash(id_token, &claims, &verifier, tokens.access_token())?;

        let subject = claims.subject().to_string();
        let issuer = claims.issuer().to_string();
        let id_token_claims = to_object(&claims)?;
        let mut merged = id_token_claims.clone();
        let mut userinfo_claims = None;
        if self.inner.config.fetch_userinfo {
            let userinfo = self.userinfo(&client, tokens.access_token()).await?;
            let userinfo_sub = userinfo.get("sub").and_then(Value::as_str).unwrap_or_default();
            if userinfo_sub != subject {
                return Err(IdpError::UserinfoSubjectMismatch { id_token: subject, userinfo: userinfo_sub.into() });
            }
            for (name, value) in &userinfo {
                if !matches!(name.as_str(), "sub" | "iss" | "aud") {
                    merged.insert(name.clone(), value.clone());
                }
            }
            userinfo_claims = Some(userinfo);
        }
        tracing::debug!(issuer = %issuer, subject = %subject, "federated login verified");
        Ok(VerifiedLogin { issuer, subject, claims: merged, id_token_claims, userinfo_claims })
    }

    /// The callback checks that need no network: state, provider error, `iss`, code.
    fn check_callback(&self, callback: &CallbackParams, pending: &PendingAuthorization) -> Result<String, IdpError> {
        match &callback.state {
            Some(state) => {
                if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
                    return Err(IdpError::StateMismatch);
                }
            }
            // An error answer without state is reported as the error: it cannot sign anyone in.
            None if callback.error.is_some() => {}
            None => return Err(IdpError::MissingParameter("state")),
        }
        if let Some(error) = &callback.error {
            return Err(IdpError::IdpRefused { error: error.clone(), description: callback.error_description.clone() });
        }
        if let Some(iss) = &callback.iss
            && iss != self.inner.issuer.as_str()
        {
            return Err(IdpError::IssuerMismatch { expected: self.inner.issuer.to_string(), found: iss.clone() });
        }
        callback.code.clone().filter(|c| !c.is_empty()).ok_or(IdpError::MissingParameter("code"))
    }

    /// Reads the provider's discovery document (and caches it): whether the
    /// issuer answers as an OpenID provider, before a connection is saved.
    pub async fn check_discovery(&self) -> Result<(), IdpError> {
        self.metadata().await.map(drop)
    }

    /// The cached discovery metadata (with its key set), fetched when missing or older than `metadata_ttl`.
    async fn metadata(&self) -> Result<Arc<ProviderMetadata>, IdpError> {
        if let Some(cached) = self.cached()
            && cached.fetched_at.elapsed() < self.inner.config.metadata_ttl
        {
            return Ok(cached.metadata);
        }
        let http = client_fn(&self.inner.http, self.inner.config.timeout);
        let metadata = ProviderMetadata::discover_async(self.inner.issuer.clone(), &http)
            .await
            .map_err(|e| self.map_discovery(e))?;
        let metadata = Arc::new(metadata);
        self.store(Cached { metadata: metadata.clone(), fetched_at: Instant::now() });
        tracing::debug!(issuer = %self.inner.issuer.as_str(), "OpenID provider metadata fetched");
        Ok(metadata)
    }

    /// Fetches the key set again (key rotation) and caches it with the metadata it belongs to.
    async fn refetch_jwks(&self, metadata: &ProviderMetadata) -> Result<Arc<ProviderMetadata>, IdpError> {
        let http = client_fn(&self.inner.http, self.inner.config.timeout);
        let jwks = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &http).await.map_err(|e| self.map_discovery(e))?;
        let fetched_at = self.cached().map_or_else(Instant::now, |c| c.fetched_at);
        let metadata = Arc::new(metadata.clone().set_jwks(jwks));
        self.store(Cached { metadata: metadata.clone(), fetched_at });
        tracing::debug!(issuer = %self.inner.issuer.as_str(), "OpenID provider key set fetched again (unknown kid)");
        Ok(metadata)
    }

    fn cached(&self) -> Option<Cached> {
        self.inner.cache.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn store(&self, cached: Cached) {
        *self.inner.cache.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
    }

    fn client(&self, metadata: &ProviderMetadata) -> Client {
        let config = &self.inner.config;
        Client::from_provider_metadata(
            metadata.clone(),
            ClientId::new(config.client_id.clone()),
            config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.inner.redirect_uri.clone())
        .set_auth_type(match config.auth_method {
            ClientAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            ClientAuthMethod::ClientSecretPost => AuthType::RequestBody,
        })
    }

    /// An ID token verifier over `jwks` whose clock is `now`.
    fn verifier(&self, jwks: JwkSet, now: DateTime<Utc>) -> Verifier {
        let config = &self.inner.config;
        let client_id = ClientId::new(config.client_id.clone());
        let issuer = self.inner.issuer.clone();
        let verifier = match (&config.client_secret, self.inner.allows_hmac) {
            (Some(secret), true) => {
                IdTokenVerifier::new_confidential_client(client_id, ClientSecret::new(secret.clone()), issuer, jwks)
            }
            _ => IdTokenVerifier::new_public_client(client_id, issuer, jwks),
        };
        let exp_clock = now.checked_sub_signed(LEEWAY).unwrap_or(now);
        let iat_limit = now.checked_add_signed(LEEWAY).unwrap_or(now);
        verifier
            .set_allowed_algs(self.inner.algorithms.clone())
            .set_time_fn(move || exp_clock)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > iat_limit { Err(format!("issued at {iat}, in the future (now is {now})")) } else { Ok(()) }
            })
            // Extra audiences are accepted only with an `azp` naming us: see `check_authorized_party`.
            .set_other_audience_verifier_fn(|_| true)
    }

    /// Validates the ID token; on an unknown `kid`, fetches the key set again once and retries.
    async fn verify_id_token(
        &self,
        id_token: &IdToken,
        metadata: Arc<ProviderMetadata>,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<(IdTokenClaims, Verifier), IdpError> {
        let nonce = Nonce::new(nonce.to_owned());
        let verifier = self.verifier(metadata.jwks().clone(), now);
        let first = id_token.claims(&verifier, &nonce).cloned();
        let unknown_key = matches!(
            first,
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey))
        );
        if !unknown_key {
            return first.map(|claims| (claims, verifier)).map_err(|e| claims_error(e, id_token).into());
        }
        let metadata = self.refetch_jwks(&metadata).await?;
        let verifier = self.verifier(metadata.jwks().clone(), now);
        let claims = id_token.claims(&verifier, &nonce).cloned().map_err(|e| claims_error(e, id_token))?;
        Ok((claims, verifier))
    }

    /// `azp`: when present it must be our client id; with several audiences it is required.
    fn check_authorized_party(&self, claims: &IdTokenClaims) -> Result<(), IdTokenError> {
        let client_id = self.inner.config.client_id.as_str();
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != client_id => Err(IdTokenError::WrongAuthorizedParty(format!(
                "the token was issued to `{}`, not to this client `{client_id}`",
                azp.as_str()
            ))),
            None if claims.audiences().len() > 1 => Err(IdTokenError::WrongAuthorizedParty(
                "the token has several audiences but no azp claim naming this client".into(),
            )),
            _ => Ok(()),
        }
    }

    /// `at_hash`, when present, must match the access token it came with.
    fn check_access_token_hash(
        &self,
        id_token: &IdToken,
        claims: &IdTokenClaims,
        verifier: &Verifier,
        access_token: &AccessToken,
    ) -> Result<(), IdTokenError> {
        let Some(expected) = claims.access_token_hash() else { return Ok(()) };
        let alg = id_token.signing_alg().map_err(|_| IdTokenError::Unsigned)?;
        let actual = if is_hmac(alg) {
            let key = AwsLcJsonWebKey::new_symmetric(Vec::new());
            AccessTokenHash::from_token(access_token, alg, &key)
        } else {
            let key = id_token.signing_key(verifier).map_err(|e| IdTokenError::BadSignature(e.to_string()))?;
            AccessTokenHash::from_token(access_token, alg, key)
        }
        .map_err(|e| IdTokenError::Malformed(e.to_string()))?;
        if actual.as_str() == expected.as_str() { Ok(()) } else { Err(IdTokenError::AccessTokenHash) }
    }

    /// The userinfo claims as the provider sent them: a JSON object, read as
    /// plain JSON rather than through `openidconnect`'s typed claims, so that
    /// providers that send `email_verified` as the string `"true"` (Cognito)
    /// do not fail the whole sign-in; the claim mapping reads such values.
    async fn userinfo(&self, client: &Client, access_token: &AccessToken) -> Result<Map<String, Value>, IdpError> {
        let Some(endpoint) = client.user_info_url() else {
            return Err(self.discovery_error(
                "the provider has no userinfo_endpoint; turn off fetching userinfo for this connection".into(),
            ));
        };
        let url = endpoint.to_string();
        let invalid = |reason: String| IdpError::InvalidResponse { url: url.clone(), reason };
        let request = openidconnect::http::Request::builder()
            .method(openidconnect::http::Method::GET)
            .uri(url.as_str())
            .header(openidconnect::http::header::ACCEPT, "application/json")
            .header(openidconnect::http::header::AUTHORIZATION, format!("Bearer {}", access_token.secret()))
            .body(Vec::new())
            .map_err(|e| invalid(e.to_string()))?;
        let http = client_fn(&self.inner.http, self.inner.config.timeout);
        let response = http(request).await.map_err(TransportError::into_idp)?;
        if !response.status().is_success() {
            return Err(invalid(format!("the userinfo endpoint answered HTTP {}", response.status().as_u16())));
        }
        let content_type = response
            .headers()
            .get(openidconnect::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/jwt") {
            return Err(invalid(
                "the userinfo response is a signed JWT, which jit does not accept; configure the provider to answer \
                 userinfo with plain JSON"
                    .into(),
            ));
        }
        if !content_type.starts_with("application/json") {
            return Err(invalid(format!("the userinfo response is {content_type:?}, not application/json")));
        }
        match serde_json::from_slice(response.body()) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(invalid("the userinfo claims are not a JSON object".into())),
            Err(e) => Err(invalid(format!("the userinfo response is not valid JSON: {e}"))),
        }
    }

    fn discovery_error(&self, reason: String) -> IdpError {
        IdpError::Discovery { issuer: self.inner.config.issuer.clone(), reason }
    }

    fn map_discovery(&self, error: DiscoveryError<TransportError>) -> IdpError {
        match error {
            DiscoveryError::Request(transport) => transport.into_idp(),
            DiscoveryError::Response(status, _, message) => self.discovery_error(format!("HTTP {status}: {message}")),
            DiscoveryError::Parse(e) => self.discovery_error(format!("unreadable JSON: {e}")),
            other => self.discovery_error(other.to_string()),
        }
    }
}

fn token_error(
    error: RequestTokenError<TransportError, StandardErrorResponse<CoreErrorResponseType>>,
    url: &str,
) -> IdpError {
    match error {
        RequestTokenError::ServerResponse(response) => IdpError::TokenEndpoint {
            error: response.error().as_ref().to_owned(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(transport) => transport.into_idp(),
        RequestTokenError::Parse(e, _) => IdpError::InvalidResponse { url: url.into(), reason: e.to_string() },
        other => IdpError::InvalidResponse { url: url.into(), reason: other.to_string() },
    }
}

fn claims_error(error: ClaimsVerificationError, id_token: &IdToken) -> IdTokenError {
    use ClaimsVerificationError as C;
    use SignatureVerificationError as S;
    match error {
        C::Expired(m) => IdTokenError::Expired(m),
        C::InvalidAudience(m) => IdTokenError::WrongAudience(m),
        C::InvalidIssuer(m) => IdTokenError::WrongIssuer(m),
        C::InvalidNonce(m) => IdTokenError::WrongNonce(m),
        C::SignatureVerification(S::NoSignature) => IdTokenError::Unsigned,
        C::SignatureVerification(S::DisallowedAlg(m) | S::UnsupportedAlg(m)) => IdTokenError::DisallowedAlgorithm(m),
        C::SignatureVerification(S::NoMatchingKey) => IdTokenError::UnknownKey { kid: key_id(id_token) },
        C::SignatureVerification(e) => IdTokenError::BadSignature(e.to_string()),
        other => IdTokenError::Malformed(other.to_string()),
    }
}

/// The token's `kid` header, read for error messages only (the token is rejected anyway).
fn key_id(id_token: &IdToken) -> Option<String> {
    use base64::Engine as _;
    let raw = serde_json::to_value(id_token).ok()?;
    let header = raw.as_str()?.split('.').next()?;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

fn to_object(claims: &IdTokenClaims) -> Result<Map<String, Value>, IdpError> {
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(IdTokenError::Malformed("its claims are not a JSON object".into()).into()),
    }
}

fn is_hmac(alg: &CoreJwsSigningAlgorithm) -> bool {
    matches!(
        alg,
        CoreJwsSigningAlgorithm::HmacSha256 | CoreJwsSigningAlgorithm::HmacSha384 | CoreJwsSigningAlgorithm::HmacSha512
    )
}

fn parse_algorithms(names: &[String]) -> Result<Vec<CoreJwsSigningAlgorithm>, IdpError> {
    if names.is_empty() {
        return Err(IdpError::Config("no ID token signing algorithm is allowed".into()));
    }
    names
        .iter()
        .map(|name| {
            if name.eq_ignore_ascii_case("none") {
                return Err(IdpError::Config("the algorithm `none` (unsigned tokens) can never be allowed".into()));
            }
            match serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::String(name.clone())) {
                Ok(CoreJwsSigningAlgorithm::None) | Err(_) => {
                    Err(IdpError::Config(format!("unknown ID token signing algorithm `{name}`")))
                }
                Ok(alg) => Ok(alg),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RelyingPartyConfig {
        let mut config = RelyingPartyConfig::new("https://idp.example", "jit", "https://jit.example/cb");
        config.client_secret = Some("s3cret".into());
        config
    }

    fn config_error(tweak: impl FnOnce(&mut RelyingPartyConfig)) -> String {
        let mut config = config();
        tweak(&mut config);
        match OidcRelyingParty::new(config) {
            Err(IdpError::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn default_configuration_is_accepted() {
        assert!(OidcRelyingParty::new(config()).is_ok());
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        assert!(config_error(|c| c.allowed_algorithms = vec!["none".into()]).contains("none"));
        assert!(config_error(|c| c.allowed_algorithms.push("NONE".into())).contains("none"));
        assert!(config_error(|c| c.allowed_algorithms.clear()).contains("no ID token signing algorithm"));
        assert!(config_error(|c| c.allowed_algorithms.push("RS999".into())).contains("RS999"));
        assert!(
            config_error(|c| {
                c.allowed_algorithms.push("HS256".into());
                c.client_secret = None;
            })
            .contains("client secret")
        );
        assert!(config_error(|c| c.issuer = "not a url".into()).contains("issuer"));
        assert!(config_error(|c| c.redirect_uri = "/relative".into()).contains("redirect URI"));
        assert!(config_error(|c| c.client_id.clear()).contains("client id"));
        assert!(config_error(|c| c.timeout = std::time::Duration::ZERO).contains("timeout"));
    }

    #[test]
    fn hmac_is_allowed_only_when_listed_with_a_secret() {
        let mut with_hmac = config();
        with_hmac.allowed_algorithms.push("HS256".into());
        assert!(OidcRelyingParty::new(with_hmac).is_ok_and(|rp| rp.inner.allows_hmac));
        assert!(OidcRelyingParty::new(config()).is_ok_and(|rp| !rp.inner.allows_hmac));
    }

    #[tokio::test]
    async fn extra_parameters_cannot_override_the_protocol_ones() {
        let rp = OidcRelyingParty::new(config()).unwrap();
        for name in ["state", "nonce", "redirect_uri", "code_challenge"] {
            let result = rp.begin(&[(name, "x")]).await;
            assert!(matches!(&result, Err(IdpError::Config(m)) if m.contains(name)), "{name}: {result:?}");
        }
    }

    #[test]
    fn pending_authorization_round_trips_and_hides_its_secrets() {
        let pending =
            PendingAuthorization { state: "st".into(), nonce: "secret-nonce".into(), pkce_verifier: "secret-v".into() };
        let json = serde_json::to_string(&pending).unwrap();
        assert_eq!(serde_json::from_str::<PendingAuthorization>(&json).unwrap(), pending);
        let debug = format!("{pending:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn callback_params_read_a_query_with_unknown_fields() {
        let params: CallbackParams =
            serde_json::from_value(serde_json::json!({ "code": "c", "state": "s", "session_state": "x" })).unwrap();
        assert_eq!((params.code.as_deref(), params.state.as_deref(), params.error), (Some("c"), Some("s"), None));
    }

    #[test]
    fn config_debug_hides_the_client_secret() {
        assert!(!format!("{:?}", config()).contains("s3cret"));
    }
}
