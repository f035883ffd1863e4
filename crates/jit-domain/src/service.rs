//! Provisioning as a whole: decide on fresh data, apply atomically, and
//! decide again when the write lost a race.

use time::OffsetDateTime;

use crate::connection::JitPolicy;
use crate::ports::{ProvisioningStore, StoreError};
use crate::provisioning::{Decision, ProvisioningInput, Refusal, decide, plan_lookups};
use crate::schema::AttributeSchema;
use crate::user::{FederatedIdentity, LocalUser};

/// How often a decision is retried after losing a race. Each retry sees the
/// winner's write, so two attempts settle almost every race; the rest covers
/// busy databases.
pub const MAX_ATTEMPTS: usize = 8;

/// What a federated sign-in came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProvisioningOutcome {
    /// JIT is off: sign in with the mapped attributes, no local account.
    PassThrough(FederatedIdentity),
    /// Signed in as this local account (associated, linked or created).
    SignedIn {
        /// The account as it is now.
        user: LocalUser,
        /// What was decided (and applied).
        decision: Decision,
    },
    /// Refused; the audit trail records why.
    Refused(Refusal),
}

/// Errors of [`provision`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every attempt lost a race.
    #[error("provisioning kept conflicting with concurrent sign-ins after {MAX_ATTEMPTS} attempts; try again")]
    Contention,
}

/// Provisions `identity` under `policy`: reads, decides, applies; retries on
/// [`StoreError::Conflict`]. Race-free as long as the store's `apply` is
/// atomic and backed by unique constraints.
pub async fn provision<S: ProvisioningStore + ?Sized>(
    store: &S,
    policy: &JitPolicy,
    schema: &AttributeSchema,
    identity: &FederatedIdentity,
    now: OffsetDateTime,
) -> Result<ProvisioningOutcome, ProvisionError> {
    if !policy.enabled {
        return Ok(ProvisioningOutcome::PassThrough(identity.clone()));
    }
    for _ in 0..MAX_ATTEMPTS {
        let facts = store.facts(identity, &plan_lookups(policy, schema, identity)).await?;
        let decision = decide(ProvisioningInput {
            policy,
            schema,
            identity,
            associated: facts.associated.as_ref(),
            lookups: &facts.lookups,
        });
        match store.apply(identity, &decision, now).await {
            Ok(Some(user)) => return Ok(ProvisioningOutcome::SignedIn { user, decision }),
            Ok(None) => {
                return Ok(match decision {
                    Decision::Refuse(refusal) => ProvisioningOutcome::Refused(refusal),
                    _ => ProvisioningOutcome::PassThrough(identity.clone()),
                });
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ProvisionError::Contention)
}
