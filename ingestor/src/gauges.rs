//! `IngestGauges`: the thread that keeps the lag gauges (`lag.rs`) and the
//! broker's backlog (`broker_backlog.rs`) current while the ingestor runs.
//!
//! A thread with a small runtime of its own, not tasks on the ingestor's
//! runtime: a once-a-second timer and a second broker connection there
//! raised the ingestor's peak memory while it rebuilt rollups (measured with
//! `rebuilding_an_hour_of_100_000_devices_…`, four rounds each way: 47.3
//! against 42.6 MiB over idle; on this thread 42.1), as the runtime's
//! workers woke for them and spread the rebuild's allocations over more
//! threads' heaps.

use crate::broker_backlog::follow_broker_backlog;
use crate::lag::IngestLag;
use crate::metrics::IngestMetrics;
use crate::status::AckLedger;
use crate::IngestConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the lag gauges are published.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The running gauges' thread.
pub(crate) struct IngestGauges {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IngestGauges {
    /// Starts publishing; without a thread (the system refused one) the
    /// gauges stay unset and ingest goes on.
    pub(crate) fn start(
        config: &IngestConfig,
        lag: Arc<IngestLag>,
        ledger: Arc<AckLedger>,
        metrics: IngestMetrics,
    ) -> Self {
        let stop = CancellationToken::new();
        let (mqtt, client_id, stopped) =
            (config.mqtt.clone(), config.client_id.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ingest-gauges".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::warn!(%error, "no runtime for the lag gauges; they stay unset");
                        return;
                    }
                };
                runtime.block_on(async {
                    let sampling = async {
                        let mut tick = tokio::time::interval(SAMPLE_EVERY);
                        loop {
                            tokio::select! {
                                _ = stopped.cancelled() => return,
                                _ = tick.tick() => lag.publish(&ledger, &metrics),
                            }
                        }
                    };
                    let broker =
                        follow_broker_backlog(mqtt, client_id, metrics.clone(), stopped.clone());
                    tokio::join!(sampling, broker);
                });
            })
            .inspect_err(
                |error| tracing::warn!(%error, "no thread for the lag gauges; they stay unset"),
            )
            .ok();
        Self { stop, thread }
    }

    /// Stops publishing and waits for the thread.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Some(thread) = self.thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
