//! # jit-domain
//!
//! The pure rules of Just-in-Time (JIT) user provisioning, with no I/O:
//!
//! - [`attribute`] and [`schema`]: attributes, their normalisation, which
//!   are unique and which are protected;
//! - [`claims`]: mapping an IdP's claims to local attributes;
//! - [`connection`]: connections and their JIT policy (sync method, linking
//!   rules, "skip provisioning when no local account is found");
//! - [`sync`]: attribute synchronisation (override all, preserve local, none);
//! - [`provisioning`]: the decision for one federated sign-in;
//! - [`flow`]: an application's sign-in flow and its warnings;
//! - [`console`]: the admin console's own application and what keeps it
//!   usable;
//! - [`audit`]: the provisioning audit trail;
//! - [`ports`]: the traits storage implements; [`service`]: the retry loop
//!   that makes provisioning race-free on top of them.
//!
//! ```
//! use jit_domain::prelude::*;
//!
//! let schema = AttributeSchema::standard();
//! let policy = JitPolicy::default(); // JIT on, link on verified email, override all
//! let claims = serde_json::json!({"sub": "42", "email": "Ann@Example.com", "email_verified": true});
//! let mapped = ClaimMapping::standard().map(claims.as_object().unwrap(), &schema).unwrap();
//! let identity = FederatedIdentity {
//!     connection: ConnectionName::new("corp").unwrap(),
//!     subject: Subject::new("42").unwrap(),
//!     attributes: mapped.attributes,
//!     email_verified: mapped.email_verified,
//!     // What linking rules look up: the IdP's claims by name.
//!     claims: [("email".to_owned(), "Ann@Example.com".to_owned())].into(),
//!     filtered_out: None,
//!     memberships: Vec::new(),
//! };
//! // Nobody has this email yet: the decision is to create an account.
//! let lookups = Lookups::default();
//! let decision = decide(ProvisioningInput {
//!     policy: &policy, schema: &schema, identity: &identity, associated: None, lookups: &lookups,
//! });
//! assert!(matches!(decision, Decision::Create { .. }));
//! ```

pub mod application;
pub mod attribute;
pub mod audit;
pub mod claims;
pub mod connection;
pub mod console;
pub mod error;
pub mod flow;
pub mod membership;
pub mod mfa;
pub mod ports;
pub mod provisioning;
pub mod schema;
pub mod service;
pub mod sync;
pub mod user;

/// The names most users of the crate need.
pub mod prelude {
    pub use crate::application::{Application, RedirectUri};
    pub use crate::attribute::{AttributeName, AttributeValue, Attributes, Normalization};
    pub use crate::audit::{AuditAction, AuditEvent, AuditFilter};
    pub use crate::claims::{ClaimMapping, MappedClaims};
    pub use crate::connection::{
        Connection, ConnectionName, JitPolicy, LinkRule, LinkingPolicy, OidcSettings, Protocol, SyncMethod,
        TokenAuthMethod,
    };
    pub use crate::error::{ConfigError, MappingError};
    pub use crate::flow::{ConnectionFacts, FlowWarning, SignInFlow, SignInFlowError, Step, StepOption};
    pub use crate::provisioning::{
        Decision, LookupKey, Lookups, MatchedRule, ProvisioningInput, Refusal, decide, plan_lookups,
    };
    pub use crate::schema::{AttributeDefinition, AttributeSchema};
    pub use crate::service::{ProvisionError, ProvisioningOutcome, provision};
    pub use crate::sync::{AttributeUpdate, plan_update, sync_attributes};
    pub use crate::user::{FederatedIdentity, LocalUser, Subject, UserId, Username};
}
