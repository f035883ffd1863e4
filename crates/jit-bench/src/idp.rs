//! The external IdP of a run: node `oidc-provider` from `interop/` (the
//! default: a real OpenID provider doing a whole login of its own, whose
//! CPU is measured beside jit's), or `jit_testkit::TestIdp` in this process
//! (no login page; for profiling jit alone).

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use jit_testkit::harness::{Proc, start_idp};
use jit_testkit::{Counters, TestIdp, TestIdpConfig};
use serde_json::Value;

/// Which IdP the run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IdpKind {
    /// node `oidc-provider` (interop/idp.mjs), its own process.
    Node,
    /// The in-process test IdP.
    Test,
}

impl std::fmt::Display for IdpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Node => "node oidc-provider",
            Self::Test => "in-process test IdP",
        })
    }
}

/// A running IdP.
pub enum Idp {
    /// node `oidc-provider`.
    Node {
        /// The process.
        process: Proc,
        /// Its issuer.
        issuer: String,
    },
    /// The test IdP.
    Test(TestIdp),
}

/// The client jit is at node `oidc-provider` (`start_idp`'s).
const NODE_CLIENT: (&str, &str) = ("jit", "jit-secret-at-idp");

impl Idp {
    /// Starts `kind` for jit at `jit_url`, whose connection is `connection`.
    pub async fn start(kind: IdpKind, jit_url: &str, connection: &str) -> Result<Self> {
        match kind {
            IdpKind::Test => {
                let idp = TestIdp::start(TestIdpConfig {
                    redirect_uri: format!("{jit_url}/federation/{connection}/callback"),
                    ..TestIdpConfig::default()
                })
                .await
                .context("starting the test IdP")?;
                Ok(Self::Test(idp))
            }
            IdpKind::Node => {
                let port = crate::process::free_port()?;
                let (jit_url, connection) = (jit_url.to_owned(), connection.to_owned());
                let process = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        start_idp(port, &jit_url, &connection, &serde_json::json!({}))
                    }))
                })
                .await
                .context("starting node oidc-provider")?
                .map_err(|_| anyhow::anyhow!("node oidc-provider did not start: run `npm ci` in interop/ first"))?;
                Ok(Self::Node { process, issuer: format!("http://127.0.0.1:{port}") })
            }
        }
    }

    /// Its issuer URL.
    pub fn issuer(&self) -> String {
        match self {
            Self::Node { issuer, .. } => issuer.clone(),
            Self::Test(idp) => idp.issuer(),
        }
    }

    /// jit's client id and secret at the IdP.
    pub fn client(&self) -> (String, String) {
        match self {
            Self::Node { .. } => (NODE_CLIENT.0.to_owned(), NODE_CLIENT.1.to_owned()),
            Self::Test(idp) => (idp.config().client_id.clone(), idp.config().client_secret.clone()),
        }
    }

    /// The IdP's process id, when it has its own process.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Node { process, .. } => Some(process.id()),
            Self::Test(_) => None,
        }
    }

    /// Makes `users` (subject → claims) the IdP's users for the next logins.
    pub async fn set_users(&self, client: &reqwest::Client, users: Vec<(String, Value)>) -> Result<()> {
        match self {
            Self::Test(idp) => {
                idp.clear_queued_users();
                idp.queue_users(users);
                Ok(())
            }
            Self::Node { issuer, .. } => {
                let users: HashMap<String, Value> = users
                    .into_iter()
                    .map(|(subject, mut claims)| {
                        claims["sub"] = Value::String(subject.clone());
                        (subject, claims)
                    })
                    .collect();
                let response = client
                    .post(format!("{issuer}/_test/users"))
                    .json(&users)
                    .send()
                    .await
                    .context("setting node oidc-provider's users")?;
                ensure!(response.status().is_success(), "node oidc-provider refused the users: {}", response.status());
                Ok(())
            }
        }
    }

    /// Logins that failed before reaching the test IdP left their subjects queued.
    pub fn clear(&self) {
        if let Self::Test(idp) = self {
            idp.clear_queued_users();
        }
    }

    /// How often jit called the test IdP's endpoints (the test IdP only).
    pub fn counters(&self) -> Option<Counters> {
        match self {
            Self::Test(idp) => Some(idp.counters()),
            Self::Node { .. } => None,
        }
    }
}
