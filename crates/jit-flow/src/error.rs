//! Why a sign-in cannot go on. Messages are shown to the end user (without
//! secrets) and say what happened.

use jit_domain::ports::StoreError;
use jit_domain::provisioning::Refusal;

/// Errors of the sign-in state machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// No sign-in under that id, or it expired.
    #[error("this sign-in has expired or does not exist; start again from the application")]
    Expired,
    /// A form came back without the token of its sign-in.
    #[error("the form does not belong to this sign-in (missing or wrong CSRF token); start again from the application")]
    Csrf,
    /// An option the current step does not offer.
    #[error("{0} is not offered at this step of the sign-in")]
    NotOffered(String),
    /// A connection that does not exist.
    #[error("there is no connection named {0:?}")]
    UnknownConnection(String),
    /// A callback whose `state` matches no pending redirect (forged,
    /// replayed, or from another browser).
    #[error(
        "the identity provider's response does not match a sign-in in progress in this browser (unknown or already used state); start again from the application"
    )]
    UnknownState,
    /// The external IdP failed or answered something invalid.
    #[error("sign-in with {connection} failed: {source}")]
    Idp {
        /// The connection.
        connection: String,
        /// What went wrong.
        #[source]
        source: jit_idp::IdpError,
    },
    /// The IdP's `sub` is empty or longer than 255 characters.
    #[error(
        "{connection} sent a subject identifier (sub) that is empty or longer than 255 characters, so the sign-in cannot be trusted; ask the administrator of {connection}"
    )]
    InvalidSubject {
        /// The connection.
        connection: String,
    },
    /// The IdP's claims cannot be mapped.
    #[error("the identity provider sent attributes that cannot be used: {0}")]
    Mapping(#[from] jit_domain::error::MappingError),
    /// Provisioning refused the sign-in.
    #[error("{0}")]
    Refused(Refusal),
    /// A step needs a local account and the user has none (JIT disabled).
    #[error(
        "step {step} of this sign-in ({option}) needs a local account, but you signed in through {connection}, whose users have no local account here (Just-in-Time provisioning is disabled). Ask the administrator to enable JIT provisioning for {connection} or to skip this step for its users."
    )]
    NeedsLocalAccount {
        /// The step (1-based).
        step: usize,
        /// The option.
        option: String,
        /// The connection used.
        connection: String,
    },
    /// The application's conditional authentication script failed (threw,
    /// ran too long, named a step that does not exist, ...).
    #[error(
        "the application's sign-in script failed, so the sign-in cannot go on: {0}. The administrator must fix the script."
    )]
    Script(#[from] jit_script::ScriptError),
    /// The application's script ended the sign-in (`fail()`).
    #[error("the application's sign-in rules do not allow this sign-in{}", .0.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    ScriptFailed(Option<String>),
    /// An IdP's answer for a step that is no longer the current one (the
    /// step was completed or left since the user was sent to the IdP).
    #[error(
        "this answer from {connection} belongs to a step of the sign-in that is already done or was left; nothing was changed. Continue in the window where you signed in, or start again from the application"
    )]
    StaleStep {
        /// The connection that answered.
        connection: String,
    },
    /// A step failed and the application's script asked for nothing more:
    /// the sign-in ends failed (it never completes past a failed step).
    #[error(
        "step {step} of this sign-in failed, and the application's sign-in rules offer no other way to continue; start again from the application"
    )]
    StepFailed {
        /// The step (1-based).
        step: usize,
    },
    /// Another request of the same sign-in changed it at the same moment
    /// (a double submit, or parallel guesses).
    #[error("this sign-in was changed by another request at the same moment; go back and try again")]
    Concurrent,
    /// Too many wrong passwords or codes in one sign-in.
    #[error("too many failed attempts in this sign-in; start again from the application")]
    TooManyAttempts,
    /// An email code could not be sent.
    #[error("the code could not be sent by email ({0}); try again later or ask the administrator")]
    Mail(String),
    /// Email OTP needs an email address and the account has none.
    #[error("a code cannot be sent by email: your account has no email address; ask the administrator")]
    NoEmailAddress,
    /// The application is misconfigured.
    #[error("the application's sign-in flow is invalid: {0}")]
    InvalidFlow(String),
    /// Storage failed.
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    /// Provisioning kept conflicting.
    #[error(transparent)]
    Provision(#[from] jit_domain::service::ProvisionError),
    /// The environment failed (random generator, password hashing).
    #[error("internal error: {0}")]
    Primitive(#[from] jit_primitives::PrimitiveError),
    /// A bug or an environment failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<jit_provider::grant::IssueError> for SignInError {
    fn from(error: jit_provider::grant::IssueError) -> Self {
        match error {
            jit_provider::grant::IssueError::Random(error) => Self::Primitive(error),
            jit_provider::grant::IssueError::Store(error) => Self::Store(error),
        }
    }
}
