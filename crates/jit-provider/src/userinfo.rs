//! Userinfo: the claims recorded when an access token was issued, for as
//! long as the token is valid and not revoked.

use jit_domain::ports::RecordKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{ErrorCode, OAuthError};
use crate::{ACCESS_TOKEN_TYPE, Provider, ProviderStore};

#[derive(Deserialize)]
struct AccessClaims {
    jti: String,
    sub: String,
}

impl<S: ProviderStore + ?Sized> Provider<S> {
    /// The claims behind `access_token` (one of ours, of type `at+jwt`,
    /// signed by a key of ours, unexpired, and still stored: revoked tokens
    /// are gone).
    pub async fn userinfo(&self, access_token: &str, now: OffsetDateTime) -> Result<Map<String, Value>, OAuthError> {
        let invalid = || OAuthError::new(ErrorCode::InvalidToken, "the access token is invalid or expired");
        let header = decode_header(access_token).map_err(|_| invalid())?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let (key, algorithm) =
            self.keys.decoding_key(&kid).await.map_err(OAuthError::server_error)?.ok_or_else(invalid)?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let token = decode::<AccessClaims>(access_token, &key, &validation).map_err(|_| invalid())?;
        let stored = self
            .store
            .record(RecordKind::AccessToken, &token.claims.jti, now)
            .await
            .map_err(OAuthError::server_error)?
            .ok_or_else(invalid)?;
        let Value::Object(claims) = stored.value else { return Err(invalid()) };
        if claims.get("sub").and_then(Value::as_str) != Some(token.claims.sub.as_str()) {
            return Err(invalid());
        }
        Ok(claims)
    }
}
