//! Applications: the OpenID Connect clients that send users to jit.

use serde::{Deserialize, Serialize};

use crate::flow::SignInFlow;

/// A registered application (an OpenID Connect client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Unique name.
    pub name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret's hash (confidential clients only); the secret
    /// itself is shown once and never stored.
    pub client_secret_hash: Option<String>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Whether the client is public (no secret; PKCE required).
    pub public: bool,
    /// How its users sign in.
    pub sign_in: SignInFlow,
}
