//! The janitor: deletes expired records (sign-ins, pending federations,
//! authorization codes and their grants, access tokens), so that what
//! unauthenticated requests made jit store does not outlive its expiry.
//!
//! Every instance may run one: a purge is one `DELETE ... WHERE expires_at
//! <= now`, which concurrent instances can run at the same moment without
//! harm (each row is deleted once, by whichever gets to it).

use std::sync::Arc;
use std::time::Duration;

use jit_domain::ports::ExpiringRecordStore;

use jit_primitives::clock::Clock;

/// Runs one purge: how many expired records were deleted.
pub async fn purge<S: ExpiringRecordStore + ?Sized>(
    store: &S,
    clock: &dyn Clock,
) -> Result<u64, jit_domain::ports::StoreError> {
    store.purge_expired_records(clock.now()).await
}

/// Purges every `interval`, forever (spawn it; it stops with the runtime).
/// A failed purge is logged and tried again at the next tick.
pub async fn run<S: ExpiringRecordStore + ?Sized>(store: Arc<S>, clock: Arc<dyn Clock>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match purge(&*store, &*clock).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(event = "expired_records_purged", purged, "expired records deleted"),
            Err(error) => tracing::warn!(event = "purge_failed", error = %error, "deleting expired records failed"),
        }
    }
}
