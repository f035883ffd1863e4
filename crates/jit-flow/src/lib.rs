//! # jit-flow
//!
//! The sign-in state machine: an application's steps (in order, or as its
//! conditional authentication script decides), the authenticators (local
//! password, federated connections, TOTP, Email OTP), the call into
//! Just-in-Time provisioning, and flow state that survives across
//! requests and server instances (it lives in the store, keyed by the hash
//! of a random id the browser keeps). It renders no HTML and speaks no HTTP:
//! it says what comes [`engine::Next`].

pub mod engine;
pub mod error;
pub mod factors;
pub mod idps;
pub mod janitor;
pub mod state;

pub use engine::{
    DeclinedSignIn, EmailOtpView, EngineSettings, EngineStore, IssuedCode, Next, SignInEngine, StepView, TotpView,
};
pub use error::SignInError;
