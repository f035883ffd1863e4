//! # jit-flow
//!
//! The sign-in state machine: an application's steps, the authenticators
//! (local password now; federated connections; TOTP and Email OTP next), the
//! call into Just-in-Time provisioning, and flow state that survives across
//! requests and server instances (it lives in the store, keyed by the hash
//! of a random id the browser keeps). It renders no HTML and speaks no HTTP:
//! it says what comes [`engine::Next`].

pub mod clock;
pub mod engine;
pub mod error;
pub mod idps;
pub mod mfa;
pub mod password;
pub mod script;
pub mod secret;
pub mod state;

pub use engine::{FlowSettings, FlowStore, IssuedCode, Next, SignInEngine, StepView};
pub use error::FlowError;
