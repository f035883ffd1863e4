//! The token endpoint's authorization code grant: client authentication,
//! the single exchange of a code, PKCE, revocation on reuse, and the
//! tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jit_domain::application::Application;
use jit_domain::ports::{RecordKind, StoreError};
use jit_primitives::secret::{random_token, secrets_match, stored_form};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::claims::{Release, local_user_claims, pass_through_claims};
use crate::error::{ErrorCode, OAuthError};
use crate::grant::{AuthorizationGrant, SignedInSubject, StoredGrant, grant_key, load};
use crate::request::is_pkce_value;
use crate::{ACCESS_TOKEN_TYPE, Provider, ProviderStore};

/// How the client authenticated: `client_secret_basic` or
/// `client_secret_post` (with a secret), or a public client (none).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id (`None`: the client did not authenticate at all).
    pub client_id: Option<String>,
    /// The secret, for confidential clients.
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// A token request's grant parameters (the client's credentials apart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeExchange {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier` (PKCE).
    pub code_verifier: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, OpenID Connect Core 3.1.3.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT of type `at+jwt`).
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    pub expires_in: i64,
    /// The ID token.
    pub id_token: String,
    /// The granted scopes.
    pub scope: String,
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

impl<S: ProviderStore + ?Sized> Provider<S> {
    /// Exchanges a code for an ID token and an access token, once.
    pub async fn exchange_code(
        &self,
        client: &ClientCredentials,
        request: &CodeExchange,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        if request.grant_type.as_deref() != Some("authorization_code") {
            return Err(OAuthError::new(ErrorCode::UnsupportedGrantType, "only authorization_code is supported"));
        }
        let application = self.authenticate_client(client).await?;
        let code =
            request.code.as_deref().ok_or_else(|| OAuthError::new(ErrorCode::InvalidRequest, "code is missing"))?;
        // Per client: another client presenting the code finds nothing, and
        // does not use it up for its owner.
        let key = grant_key(&application.client_id, code);
        let stored = load(&*self.store, &key, now).await.map_err(OAuthError::server_error)?;
        let unknown = || invalid_grant("the code is invalid, expired or already used");
        let Some(stored) = stored else { return Err(unknown()) };
        let grant = match stored.value {
            StoredGrant::Pending { grant } => grant,
            StoredGrant::Exchanged { jti } => {
                self.revoke_access_token(&application, &jti, now).await?;
                return Err(unknown());
            }
        };
        // The exchange is a compare-and-swap of the grant's version: of two
        // exchanges at once, on any instances, one wins. It happens before
        // the checks, so a code gets one try: a wrong redirect URI or PKCE
        // verifier uses it up. The grant is kept, marked exchanged, for as
        // long as the access token lives.
        let jti = random_token().map_err(OAuthError::server_error)?;
        let expires = now + self.settings.access_token_ttl;
        let exchanged =
            serde_json::to_value(StoredGrant::Exchanged { jti: jti.clone() }).map_err(OAuthError::server_error)?;
        let won = self
            .store
            .replace_record(RecordKind::AuthorizationGrant, &key, stored.version, &exchanged, expires, now)
            .await
            .map_err(OAuthError::server_error)?;
        if !won {
            return Err(unknown());
        }
        check_grant(&application, &grant, request)?;
        self.issue_tokens(&application, &grant, &jti, now).await
    }

    /// The user's group and role memberships join the `groups` and `roles`
    /// attributes (values an IdP synced as attributes stay).
    async fn add_memberships(&self, user: &mut jit_domain::user::LocalUser) -> Result<(), OAuthError> {
        use jit_domain::attribute::{AttributeName, AttributeValue};
        use jit_domain::membership::MembershipKind;
        let all = self.store.all_memberships(user.id).await.map_err(OAuthError::server_error)?;
        for kind in [MembershipKind::Group, MembershipKind::Role] {
            let held: Vec<_> = all.iter().filter(|(k, _)| *k == kind).map(|(_, membership)| membership).collect();
            if held.is_empty() {
                continue;
            }
            let name = AttributeName::new(kind.plural()).map_err(OAuthError::server_error)?;
            let mut values: Vec<String> =
                user.attributes.get(kind.plural()).map(|v| v.values().to_vec()).unwrap_or_default();
            values.extend(held.into_iter().map(|membership| membership.name.clone()));
            values.sort();
            values.dedup();
            user.attributes.insert(name, AttributeValue::Multi(values));
        }
        Ok(())
    }

    /// Client authentication: the registered secret (compared in constant
    /// time, as its stored hash), or none for a public client.
    async fn authenticate_client(&self, client: &ClientCredentials) -> Result<Application, OAuthError> {
        let unknown = || OAuthError::new(ErrorCode::InvalidClient, "unknown client or wrong secret");
        let client_id = client
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "client authentication is missing"))?;
        let application =
            self.store.application(client_id).await.map_err(OAuthError::server_error)?.ok_or_else(unknown)?;
        match (&application.client_secret_hash, &client.secret) {
            (None, None) if application.public => Ok(application),
            (Some(expected), Some(secret)) if secrets_match(expected, &stored_form(secret)) => Ok(application),
            _ => Err(unknown()),
        }
    }

    /// A code that was already exchanged is presented again by its client:
    /// whoever holds it may be an attacker, so the access token it gave is
    /// revoked (RFC 6749 §4.1.2). The ID token cannot be recalled; it is
    /// short-lived.
    async fn revoke_access_token(
        &self,
        application: &Application,
        jti: &str,
        now: OffsetDateTime,
    ) -> Result<(), OAuthError> {
        let revoked =
            self.store.take_record(RecordKind::AccessToken, jti, now).await.map_err(OAuthError::server_error)?;
        if revoked.is_some() {
            tracing::warn!(
                event = "authorization_code_reused",
                client_id = %application.client_id,
                "an authorization code was used twice; the access token issued for it is revoked"
            );
        }
        Ok(())
    }

    async fn issue_tokens(
        &self,
        application: &Application,
        grant: &AuthorizationGrant,
        jti: &str,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = grant.authorization.scope.clone();
        let scopes: Vec<&str> = scope.split(' ').collect();
        let release = Release { scopes: &scopes, custom: &application.scopes };
        let claims = match &grant.subject {
            SignedInSubject::Local { user } => {
                let mut user = self
                    .store
                    .user(*user)
                    .await
                    .map_err(OAuthError::server_error)?
                    .ok_or_else(|| invalid_grant("the user no longer exists"))?;
                self.add_memberships(&mut user).await?;
                local_user_claims(&user, release)
            }
            SignedInSubject::PassThrough { connection, subject, attributes, email_verified } => {
                pass_through_claims(connection, subject, attributes, *email_verified, release)
            }
        };
        let issuer = &self.settings.issuer;
        let mut id_token = claims.clone();
        extend(
            &mut id_token,
            json!({
                "iss": issuer,
                "aud": application.client_id,
                "iat": now.unix_timestamp(),
                "exp": (now + self.settings.id_token_ttl).unix_timestamp(),
                "auth_time": grant.auth_time.unix_timestamp(),
                "amr": grant.methods,
            }),
        );
        if let Some(nonce) = &grant.authorization.nonce {
            id_token.insert("nonce".into(), Value::String(nonce.clone()));
        }
        let id_token = self.keys.sign(&id_token, None).await.map_err(OAuthError::server_error)?;

        let expires = now + self.settings.access_token_ttl;
        let access = json!({
            "iss": issuer,
            "sub": claims.get("sub"),
            "aud": application.client_id,
            "client_id": application.client_id,
            "scope": scope,
            "iat": now.unix_timestamp(),
            "exp": expires.unix_timestamp(),
            "jti": jti,
        });
        let access_token = self.keys.sign(&access, Some(ACCESS_TOKEN_TYPE)).await.map_err(OAuthError::server_error)?;
        self.store
            .insert_record(RecordKind::AccessToken, jti, &Value::Object(claims), expires)
            .await
            .map_err(|e: StoreError| OAuthError::server_error(e))?;
        tracing::info!(event = "tokens_issued", client_id = %application.client_id, "tokens issued");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl.whole_seconds(),
            id_token,
            scope,
        })
    }
}

fn check_grant(
    application: &Application,
    grant: &AuthorizationGrant,
    request: &CodeExchange,
) -> Result<(), OAuthError> {
    let authorization = &grant.authorization;
    if authorization.client_id != application.client_id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if request.redirect_uri.as_deref() != Some(authorization.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&authorization.code_challenge, &request.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !is_pkce_value(verifier) || !secrets_match(&computed, challenge) {
                return Err(invalid_grant("PKCE verification failed (code_verifier does not match)"));
            }
        }
        (Some(_), None) => return Err(invalid_grant("code_verifier is missing")),
        (None, Some(_)) => return Err(invalid_grant("no code_challenge was sent for this code")),
        (None, None) => {}
    }
    Ok(())
}

fn extend(map: &mut Map<String, Value>, more: Value) {
    if let Value::Object(more) = more {
        map.extend(more);
    }
}
