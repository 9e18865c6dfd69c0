//! `GroupExit`: an ingestor that stops for good leaves its shared group
//! instead of leaving a session behind (`INGEST_LEAVE_GROUP_ON_STOP`).
//!
//! Mosquitto keeps handing a stopped member of a shared group its share of
//! the stream: the messages queue in its persistent session until the same
//! client id comes back. That is right for a restart and wrong for a
//! replica removed by an autoscaler, whose share would wait for a replica
//! that may never return (and be lost when the session expires). Leaving:
//!
//! 1. on stop, unsubscribe from the group (and, after a reconnection,
//!    unsubscribe again rather than subscribe): from the broker's UNSUBACK
//!    on, new messages go to the members that remain;
//! 2. keep taking what the session still holds (queued and in flight),
//!    committing and acknowledging it as usual, until nothing has arrived
//!    for [`QUIET`] and nothing is unacknowledged;
//! 3. then the writer stops, and the session, empty, is ended.
//!
//! Bounded by [`LEAVE_TIMEOUT`]: what is still unacknowledged then stays in
//! the session, as it would without leaving. Only when every member of a
//! group leaves at once (a deployment deleted) does the broker have no one
//! to queue for; hence off by default, and on where a minimum of replicas is
//! kept (deploy/k8s).

use crate::status::AckLedger;
use crate::IngestConfig;
use rumqttc::AsyncClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long nothing must arrive before the session counts as drained.
const QUIET: Duration = Duration::from_millis(500);
/// The longest a stopping ingestor spends leaving.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(20);
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// When the ingestor stops taking messages: at shutdown, or, for one that
/// leaves its group, once its session is drained.
pub(crate) struct Intake {
    /// Cancelled when intake closes; the receiver stops forwarding and the
    /// writer commits what it holds and disconnects.
    pub closed: CancellationToken,
    leaving: Option<JoinHandle<()>>,
}

impl Intake {
    /// Intake for `config`'s ingestor: closed by `shutdown`, or by leaving
    /// `filter`'s group after it.
    pub(crate) fn start(
        config: &IngestConfig,
        client: &AsyncClient,
        filter: &str,
        ledger: &Arc<AckLedger>,
        shutdown: &CancellationToken,
    ) -> Self {
        if !(config.leave_group_on_stop && config.group.is_some()) {
            return Self {
                closed: shutdown.clone(),
                leaving: None,
            };
        }
        let closed = CancellationToken::new();
        let leaving = tokio::spawn(leave_group_on_stop(
            client.clone(),
            filter.to_owned(),
            ledger.clone(),
            shutdown.clone(),
            closed.clone(),
        ));
        Self {
            closed,
            leaving: Some(leaving),
        }
    }

    /// After the writer and the receiver have stopped: ends the session
    /// of an ingestor that left its group with nothing held (it has no
    /// subscription left, so nothing can be queued in it any more).
    pub(crate) async fn finish(self, config: &IngestConfig, ledger: &AckLedger) {
        let Some(leaving) = self.leaving else {
            return;
        };
        self.closed.cancel();
        let _ = leaving.await;
        if !ledger.has_left() || ledger.unacked() > 0 {
            tracing::warn!(
                unacked = ledger.unacked(),
                "keeping the session: the group was not left with nothing held"
            );
            return;
        }
        match crate::end_session(&config.mqtt, &config.client_id).await {
            Ok(_) => tracing::info!(client_id = %config.client_id, "session ended"),
            Err(error) => tracing::warn!(%error, "could not end the emptied session"),
        }
    }
}

/// Leaves `filter`'s group once `stop` is cancelled, then closes `intake`
/// when the session is drained (or after [`LEAVE_TIMEOUT`]).
async fn leave_group_on_stop(
    client: AsyncClient,
    filter: String,
    ledger: Arc<AckLedger>,
    stop: CancellationToken,
    intake: CancellationToken,
) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = intake.cancelled() => return,
    }
    let deadline = Instant::now() + LEAVE_TIMEOUT;
    ledger.begin_leaving();
    if let Err(error) = client.try_unsubscribe(&filter) {
        tracing::warn!(%error, "could not queue the unsubscription; stopping without leaving the group");
        intake.cancel();
        return;
    }
    tracing::info!(%filter, "leaving the shared group: taking what the session still holds");
    let mut last_count = ledger.received_total();
    let mut last_arrival = Instant::now();
    loop {
        if Instant::now() >= deadline {
            tracing::warn!(
                unacked = ledger.unacked(),
                "leaving the group took over {} s; stopping with what is left in the session",
                LEAVE_TIMEOUT.as_secs()
            );
            break;
        }
        tokio::time::sleep(CHECK_EVERY).await;
        let count = ledger.received_total();
        if count != last_count {
            (last_count, last_arrival) = (count, Instant::now());
            continue;
        }
        if ledger.has_left() && ledger.unacked() == 0 && last_arrival.elapsed() >= QUIET {
            tracing::info!("left the shared group with nothing held");
            break;
        }
    }
    intake.cancel();
}
