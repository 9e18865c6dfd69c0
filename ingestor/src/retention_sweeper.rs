//! `RetentionSweeper`: applies `RETENTION` and `ROLLUP_RETENTION` in the
//! background. Every ingestor runs one when retention is set; the store
//! lets one work at a time (the refresher's lock, so the two take turns
//! too), and each step is bounded: a day of hours retired, one chunk of
//! rows deleted in one short statement.
//!
//! Ingest comes first: after a step the sweeper pauses three times as long
//! as the step took, so it holds one database connection at most a quarter
//! of the time (`bench retention`: at half the time, ingest ran at 0.64× its
//! rate while a day was removed), and when nothing is due it looks again a
//! minute later. Removing a day still takes minutes, and retention only has
//! to remove a day a day.

use crate::background_task::run_in_rounds;
use chrono::Utc;
use datastream_domain::RetentionPolicy;
use datastream_store::SharedStore;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Raw rows deleted per statement.
pub const RETENTION_DELETE_CHUNK: usize = 2_000;
/// The pause after a step, in multiples of the time the step took.
const PAUSE_PER_STEP: u32 = 3;

/// How long the sweeper rests after a step that took `step` and left more
/// to do.
pub fn retention_pause(step: Duration) -> Duration {
    (step * PAUSE_PER_STEP).max(Duration::from_millis(10))
}
/// How often the sweeper looks when nothing was due.
const IDLE_PERIOD: Duration = Duration::from_secs(60);

/// The running sweeper.
pub struct RetentionSweeper {
    task: JoinHandle<()>,
}

impl RetentionSweeper {
    /// Starts applying `policy` to `store` until `stop` is cancelled.
    pub fn start(store: SharedStore, policy: RetentionPolicy, stop: CancellationToken) -> Self {
        tracing::info!(
            retention = %humanize(policy.raw()),
            rollup_retention = %policy.rollups().map_or_else(|| "forever".to_owned(), humanize),
            "retention on: older raw readings are removed in the background"
        );
        Self {
            task: tokio::spawn(run(store, policy, stop)),
        }
    }

    /// Waits for the sweeper to finish its step and stop.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "retention sweeper failed");
        }
    }
}

fn humanize(d: chrono::Duration) -> String {
    if d.num_seconds() % 86_400 == 0 {
        format!("{}d", d.num_days())
    } else {
        format!("{}h", d.num_hours())
    }
}

async fn run(store: SharedStore, policy: RetentionPolicy, stop: CancellationToken) {
    run_in_rounds("applying retention", stop, || async {
        let started = Instant::now();
        let step = store
            .apply_retention(&policy, Utc::now(), RETENTION_DELETE_CHUNK)
            .await?;
        metrics::counter!("datastream_retention_hours_retired_total").increment(step.hours_retired);
        metrics::counter!("datastream_retention_rows_deleted_total").increment(step.rows_deleted);
        metrics::counter!("datastream_retention_rollup_rows_deleted_total")
            .increment(step.rollup_rows_deleted);
        if step.hours_retired > 0 {
            tracing::info!(hours = step.hours_retired, horizon = ?step.horizon,
                "retention retired hours; rollups stand for them from now on");
        }
        Ok(if step.more {
            retention_pause(started.elapsed())
        } else {
            IDLE_PERIOD
        })
    })
    .await;
}
