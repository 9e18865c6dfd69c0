//! `LeaseKeeper`: holds the alerter lease while this alerter evaluates,
//! renewing it in the background, and says when it is lost.
//!
//! The lease is a row in the database, not a named lock: it is scoped to
//! the deployment's database whatever else the server holds, and every
//! commit of the evaluator is fenced by it (`AlertStore::commit_alerts`),
//! so an alerter that stalled past its lease writes nothing.

use chrono::Utc;
use datastream_domain::alert::Lease;
use datastream_domain::StoreError;
use datastream_store::SharedStore;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Holds a lease and renews it until dropped or lost.
pub struct LeaseKeeper {
    /// The lease held.
    pub lease: Lease,
    /// Cancelled when the lease is lost (another alerter took it, or it
    /// could not be renewed before it expired).
    pub lost: CancellationToken,
    renewer: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Tries once to take the lease for `holder`.
    pub async fn try_acquire(
        store: &SharedStore,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let now = Utc::now();
        let Some(lease) = store.acquire_alert_lease(holder, now, now + ttl).await? else {
            return Ok(None);
        };
        let lost = CancellationToken::new();
        let renewer = tokio::spawn(renew(store.clone(), lease.clone(), ttl, lost.clone()));
        Ok(Some(Self {
            lease,
            lost,
            renewer,
        }))
    }

    /// Gives the lease up at once (a standby takes over without waiting
    /// for it to expire).
    pub async fn release(self, store: &SharedStore) {
        self.renewer.abort();
        if let Err(error) = store.release_alert_lease(&self.lease).await {
            tracing::warn!(%error, "could not release the alerter lease; it expires by itself");
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews every third of the lease's time; gives up (cancelling `lost`)
/// when another alerter has it, or when it has expired unrenewed.
async fn renew(store: SharedStore, lease: Lease, ttl: Duration, lost: CancellationToken) {
    let mut valid_until = tokio::time::Instant::now() + ttl;
    loop {
        tokio::time::sleep(ttl / 3).await;
        let asked = tokio::time::Instant::now();
        match store.renew_alert_lease(&lease, Utc::now() + ttl).await {
            Ok(()) => valid_until = asked + ttl,
            Err(StoreError::LeaseLost) => {
                tracing::warn!(epoch = lease.epoch, "another alerter took the lease");
                lost.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the alerter lease");
                // Stop before it can have expired: past this point another
                // alerter may hold it.
                if tokio::time::Instant::now() + ttl / 3 >= valid_until {
                    tracing::error!("alerter lease expired unrenewed; standing down");
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
