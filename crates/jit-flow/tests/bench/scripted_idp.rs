//! An IdP in process: it answers what the test tells it, with no HTTP and
//! no keys, so the engine's rules run in microseconds. It still plays by
//! the protocol's shape: `begin` hands out a fresh `state` and `finish`
//! refuses an answer whose `state` is not the pending one. Token
//! validation itself is `jit-idp`'s, tested against real IdPs there.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use jit_domain::connection::Connection;
use jit_flow::SignInError;
use jit_flow::idps::IdpDirectory;
use jit_idp::{AuthorizationStart, CallbackParams, IdpClient, IdpError, PendingAuthorization, VerifiedLogin};
use serde_json::{Map, Value};

pub const ISSUER: &str = "https://idp.test";

/// Who the IdP signs in next, and how often it was asked.
#[derive(Default)]
pub struct ScriptedIdp {
    logins: Mutex<VecDeque<(String, Map<String, Value>)>>,
    started: Mutex<u64>,
    exchanged: Mutex<u64>,
}

impl ScriptedIdp {
    /// The next answer signs in `subject` with these ID token claims.
    pub fn will_sign_in(&self, subject: &str, claims: Value) {
        let Value::Object(claims) = claims else { panic!("claims must be an object") };
        self.logins.lock().unwrap().push_back((subject.to_owned(), claims));
    }

    /// Redirects handed out.
    pub fn started(&self) -> u64 {
        *self.started.lock().unwrap()
    }

    /// Answers taken to the end (codes "exchanged").
    pub fn exchanged(&self) -> u64 {
        *self.exchanged.lock().unwrap()
    }

    /// The callback the browser brings back from `url` (one of ours):
    /// `error` set means the user declined.
    pub fn answer(url: &str, error: Option<&str>) -> CallbackParams {
        let url = url::Url::parse(url).unwrap();
        let state = url.query_pairs().find(|(name, _)| name == "state").map(|(_, v)| v.into_owned());
        match error {
            Some(error) => CallbackParams { state, error: Some(error.into()), ..Default::default() },
            None => CallbackParams { state, code: Some("scripted-code".into()), ..Default::default() },
        }
    }
}

/// Every connection is served by the scripted IdP.
pub struct ScriptedDirectory(pub Arc<ScriptedIdp>);

impl IdpDirectory for ScriptedDirectory {
    fn client(&self, _: &Connection, _: &str) -> Result<Arc<dyn IdpClient>, SignInError> {
        Ok(self.0.clone())
    }
}

#[async_trait]
impl IdpClient for ScriptedIdp {
    async fn begin(&self) -> Result<AuthorizationStart, IdpError> {
        let state = jit_primitives::secret::random_token().unwrap();
        *self.started.lock().unwrap() += 1;
        Ok(AuthorizationStart {
            url: format!("{ISSUER}/authorize?state={state}"),
            pending: PendingAuthorization { state, nonce: "nonce".into(), pkce_verifier: "verifier".into() },
        })
    }

    async fn finish(
        &self,
        callback: &CallbackParams,
        pending: &PendingAuthorization,
        _: SystemTime,
    ) -> Result<VerifiedLogin, IdpError> {
        if callback.state.as_deref() != Some(pending.state.as_str()) {
            return Err(IdpError::StateMismatch);
        }
        if let Some(error) = &callback.error {
            return Err(IdpError::IdpRefused { error: error.clone(), description: None });
        }
        let (subject, mut claims) =
            self.logins.lock().unwrap().pop_front().ok_or(IdpError::MissingParameter("a scripted login"))?;
        *self.exchanged.lock().unwrap() += 1;
        claims.insert("sub".into(), Value::String(subject.clone()));
        Ok(VerifiedLogin {
            issuer: ISSUER.into(),
            subject,
            claims: claims.clone(),
            id_token_claims: claims,
            userinfo_claims: None,
        })
    }
}
