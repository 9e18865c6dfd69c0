//! `BatchWriter`: collects decoded messages into batches, commits each batch
//! in one transaction, and only then acknowledges its messages, in the order
//! they arrived.

use crate::dead_letter::{claimed_sensor_type, dead_letter_payload};
use crate::delivery::{Content, Delivery};
use crate::log_limit::LogLimiter;
use crate::metrics::IngestMetrics;
use crate::status::Shared;
use datastream_schema::{topic::dead_letter_topic, Reading, SharedStore};
use rumqttc::{AsyncClient, Publish, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How long a stopping ingestor keeps retrying its last commit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Batches readings and commits them.
pub(crate) struct BatchWriter {
    pub store: SharedStore,
    pub client: AsyncClient,
    pub batch_max: usize,
    pub flush_interval: Duration,
    pub metrics: IngestMetrics,
    pub shared: Arc<Shared>,
    pub dead_letter_log: LogLimiter,
}

/// The open batch: readings to insert and every message to ack after commit.
#[derive(Default)]
struct OpenBatch {
    readings: Vec<Reading>,
    acks: Vec<Publish>,
    oldest: Option<Instant>,
}

impl BatchWriter {
    /// Runs until `shutdown`; then commits what it holds, acks it, and
    /// disconnects the MQTT client.
    pub async fn run(
        mut self,
        mut deliveries: mpsc::UnboundedReceiver<Delivery>,
        shutdown: CancellationToken,
    ) {
        let mut batch = OpenBatch::default();
        loop {
            let deadline = batch
                .oldest
                .map(|t| tokio::time::Instant::from_std(t + self.flush_interval));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                received = deliveries.recv() => match received {
                    Some(d) => {
                        self.accept(&mut batch, d).await;
                        self.metrics.backlog(batch.readings.len() + deliveries.len());
                        if batch.readings.len() >= self.batch_max || batch.acks.len() >= self.batch_max {
                            self.flush(&mut batch, &shutdown).await;
                        }
                    }
                    None => break,
                },
                _ = sleep_until(deadline) => self.flush(&mut batch, &shutdown).await,
            }
        }
        // Stop: take what already arrived, commit it, ack it, say goodbye.
        deliveries.close();
        while let Ok(d) = deliveries.try_recv() {
            self.accept(&mut batch, d).await;
        }
        let pending = batch.readings.len();
        let grace = CancellationToken::new();
        let grace_timer = {
            let grace = grace.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                grace.cancel();
            })
        };
        self.flush(&mut batch, &grace).await;
        grace_timer.abort();
        tracing::info!(committed_at_shutdown = pending, "ingestor stopped");
        let _ = self.client.disconnect().await;
    }

    async fn accept(&mut self, batch: &mut OpenBatch, d: Delivery) {
        batch.oldest.get_or_insert(d.received);
        match d.content {
            Content::Readings(readings) => batch.readings.extend(readings),
            Content::Rejected { reason, payload } => {
                self.metrics.dead_letter();
                let reason = reason.to_string();
                if let Some(suppressed) = self.dead_letter_log.allow() {
                    tracing::warn!(topic = %d.ack.topic, %reason, suppressed, "dead-lettering message");
                }
                let topic = dead_letter_topic(claimed_sensor_type(&d.ack.topic));
                let body = dead_letter_payload(&d.ack.topic, &payload, &reason);
                if let Err(error) = self
                    .client
                    .publish(topic, QoS::AtLeastOnce, false, body)
                    .await
                {
                    tracing::error!(%error, "could not publish dead letter");
                }
            }
        }
        let mut ack = d.ack;
        ack.topic = String::new();
        batch.acks.push(ack);
    }

    /// Commits the open batch, retrying with capped exponential backoff
    /// while the database fails, then acks every message in arrival order.
    /// Gives up only when `give_up` is cancelled; the messages then stay
    /// unacked and the broker redelivers them.
    async fn flush(&self, batch: &mut OpenBatch, give_up: &CancellationToken) {
        if batch.acks.is_empty() {
            return;
        }
        let mut delay = FIRST_RETRY_DELAY;
        let mut failing = false;
        loop {
            let started = Instant::now();
            match self.store.insert_batch(&batch.readings).await {
                Ok(outcome) => {
                    self.metrics.committed(
                        outcome.inserted,
                        outcome.duplicate,
                        batch.readings.len(),
                        started.elapsed(),
                    );
                    if failing {
                        tracing::info!("database is back; committing again");
                        self.shared.set_database_error(None);
                    }
                    break;
                }
                Err(error) => {
                    self.metrics.commit_failed();
                    if !failing {
                        tracing::warn!(%error, readings = batch.readings.len(),
                            "commit failed; holding the batch unacked and retrying");
                        self.shared.set_database_error(Some(error.to_string()));
                    }
                    failing = true;
                    if let Some(oldest) = batch.oldest {
                        self.metrics.oldest_unacked(oldest.elapsed());
                    }
                    tokio::select! {
                        _ = give_up.cancelled() => {
                            tracing::warn!(readings = batch.readings.len(),
                                "stopping with an uncommitted batch; the broker will redeliver it");
                            *batch = OpenBatch::default();
                            return;
                        }
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
        let messages = batch.acks.len();
        self.send_acks(&batch.acks).await;
        batch.acks.clear();
        self.shared.acked(messages);
        batch.readings.clear();
        batch.oldest = None;
        self.metrics.oldest_unacked(Duration::ZERO);
    }
}

impl BatchWriter {
    /// Acknowledges `messages` (QoS 1; QoS 0 needs no ack) in arrival
    /// order with one write: the first ack goes through the MQTT client as
    /// a doorbell that wakes its event loop; when it has gone out, the
    /// receiver writes the rest straight to the connection and flushes once
    /// (`receiver.rs`). One ack per message through the client costs a
    /// write and a flush each, and rumqttc writes only one queued request
    /// per poll while reading up to nine messages.
    async fn send_acks(&self, messages: &[Publish]) {
        let mut acks = messages.iter().filter(|m| m.qos == QoS::AtLeastOnce);
        let Some(doorbell) = acks.next() else {
            return;
        };
        self.shared
            .ack_batch_queued(doorbell.pkid, acks.map(|m| m.pkid).collect());
        if let Err(error) = self.client.ack(doorbell).await {
            self.shared.ack_batch_abandoned();
            tracing::warn!(%error, "could not queue acks; the broker will redeliver");
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
