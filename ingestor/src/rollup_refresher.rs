//! `RollupRefresher`: rebuilds the rollups of hours that writes have marked
//! dirty, so that analytics answer from rollups instead of rows. Every
//! ingestor runs one; only one works at a time (the store takes a named
//! lock and the others skip the round, `store/src/sql/rollups/refresh.rs`), and each
//! hour's mark is taken by exactly one rebuild.

use crate::background_task::run_in_rounds;
use chrono::Utc;
use datastream_store::SharedStore;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the refresher looks for dirty hours when it found none.
const IDLE_PERIOD: Duration = Duration::from_secs(2);
/// Hours rebuilt per round; a round that rebuilt this many starts the next
/// at once (a backlog after an upgrade drains at full speed, in short
/// transactions, without holding up shutdown).
const HOURS_PER_ROUND: usize = 8;

/// The running refresher.
pub struct RollupRefresher {
    task: JoinHandle<()>,
}

impl RollupRefresher {
    /// Starts refreshing `store`'s rollups until `stop` is cancelled.
    pub fn start(store: SharedStore, stop: CancellationToken) -> Self {
        Self {
            task: tokio::spawn(run(store, stop)),
        }
    }

    /// Waits for the refresher to finish its round and stop.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "rollup refresher failed");
        }
    }
}

async fn run(store: SharedStore, stop: CancellationToken) {
    run_in_rounds("refreshing rollups", stop, || async {
        let n = store.refresh_rollups(Utc::now(), HOURS_PER_ROUND).await?;
        metrics::counter!("datastream_rollup_hours_refreshed_total").increment(n as u64);
        if n > 0 {
            tracing::debug!(hours = n, "rollups refreshed");
        }
        Ok(if n == HOURS_PER_ROUND {
            Duration::ZERO
        } else {
            IDLE_PERIOD
        })
    })
    .await;
}
