//! `BatchWriter`: collects decoded messages into batches, commits each batch
//! in one transaction, and only then acknowledges its messages, in the order
//! they arrived.
//!
//! Up to `commits_in_flight` batches commit at once (two on MySQL, whose
//! InnoDB takes concurrent inserts; one on SQLite, which has one writer):
//! while one batch commits, the next fills and starts, so the database is
//! not idle while the writer builds a statement or sends acks. Acks still
//! leave strictly in batch order: a batch is acknowledged only when it is
//! the oldest in flight and committed.
//!
//! A batch fills to [`BatchSize::current`]: the live size, growing while a
//! backlog drains faster than the database commits (`batch_size.rs`).

use crate::batch_size::{BatchSize, Submitted};
use crate::delivery::{Content, Delivery};
use crate::lag::IngestLag;
use crate::log_limit::LogLimiter;
use crate::metrics::IngestMetrics;
use crate::status::AckLedger;
use datastream_domain::{Reading, StoreError};
use datastream_store::OwnedFuture;
use datastream_store::{InsertOutcome, SharedStore};
use rumqttc::{AsyncClient, Publish, QoS};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How long a stopping ingestor keeps retrying its last commits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A batch of at least [`EARLY_FLUSH_MIN`] messages is committed when
/// nothing more has arrived for this long, without waiting for the flush
/// interval: the broker has stopped sending until it gets acks (rumqttd
/// sends a client at most 100 unacknowledged messages, whatever it is
/// configured with), or a burst is over. Without it, a broker's window
/// smaller than the batch capped ingest at one window per flush interval.
/// Only while a commit slot is free: with every slot taken the batch
/// would only wait for one, and it keeps filling meanwhile instead.
const IDLE_GAP: Duration = Duration::from_millis(5);
/// The smallest batch an idle gap commits early: a trickle of readings
/// still waits for the flush interval, so it is not committed one by one.
const EARLY_FLUSH_MIN: usize = 32;

/// Batches readings and commits them.
pub(crate) struct BatchWriter {
    pub store: SharedStore,
    pub client: AsyncClient,
    pub batch_size: BatchSize,
    pub flush_interval: Duration,
    /// Batches committing at once (at least 1).
    pub commits_in_flight: usize,
    pub metrics: IngestMetrics,
    pub ledger: Arc<AckLedger>,
    /// Where the writer records what waits, for the lag gauges.
    pub lag: Arc<IngestLag>,
    pub dead_letter_log: LogLimiter,
    /// For dead letters that could not be published.
    pub unpublished_log: LogLimiter,
}

/// The open batch: readings to insert and every message to ack after commit.
#[derive(Default)]
struct OpenBatch {
    readings: Vec<Reading>,
    acks: Vec<Publish>,
    oldest: Option<Instant>,
    /// When its newest message arrived.
    newest: Option<Instant>,
}

impl OpenBatch {
    fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// Whether it holds `size` readings or messages.
    fn holds(&self, size: usize) -> bool {
        self.readings.len() >= size || self.acks.len() >= size
    }

    /// When it is due for commit: when its oldest message has waited the
    /// flush interval, or sooner after an idle gap while a commit slot is
    /// free (see [`IDLE_GAP`]).
    fn due(&self, flush_interval: Duration, slot_free: bool) -> Option<Instant> {
        let by_age = self.oldest? + flush_interval;
        match self.newest {
            Some(newest) if slot_free && self.acks.len() >= EARLY_FLUSH_MIN => {
                Some(by_age.min(newest + IDLE_GAP))
            }
            _ => Some(by_age),
        }
    }
}

/// A batch whose first commit attempt is running (or has ended). The
/// store runs the attempt whether or not it is polled, so a second batch
/// commits while the writer waits on the first.
struct Commit {
    readings: Arc<[Reading]>,
    acks: Vec<Publish>,
    oldest: Option<Instant>,
    started: Instant,
    attempt: OwnedFuture<Result<InsertOutcome, StoreError>>,
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
        let mut in_flight: VecDeque<Commit> = VecDeque::new();
        self.metrics.batch_target(self.batch_size.current());
        loop {
            let slot_free = !self.slots_taken(&in_flight);
            let deadline = batch
                .due(self.flush_interval, slot_free)
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                done = oldest_attempt(&mut in_flight) => {
                    self.finish_oldest(&mut in_flight, done, &shutdown).await;
                    self.record_waiting(&in_flight, &batch);
                }
                received = deliveries.recv() => match received {
                    Some(d) => {
                        self.accept(&mut batch, d).await;
                        self.record_waiting(&in_flight, &batch);
                        if batch.holds(self.batch_size.current()) {
                            let waited = self.submit(&mut batch, &mut in_flight, &shutdown).await;
                            self.resize(true, waited, deliveries.len());
                        }
                    }
                    None => break,
                },
                _ = sleep_until(deadline) => {
                    let waited = self.submit(&mut batch, &mut in_flight, &shutdown).await;
                    self.resize(false, waited, deliveries.len());
                }
            }
        }
        // Stop: take what already arrived, commit it, ack it, say goodbye.
        deliveries.close();
        while let Ok(d) = deliveries.try_recv() {
            self.accept(&mut batch, d).await;
        }
        let pending =
            batch.readings.len() + in_flight.iter().map(|c| c.readings.len()).sum::<usize>();
        let grace = CancellationToken::new();
        let grace_timer = {
            let grace = grace.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                grace.cancel();
            })
        };
        self.submit(&mut batch, &mut in_flight, &grace).await;
        while !in_flight.is_empty() {
            let done = oldest_attempt(&mut in_flight).await;
            self.finish_oldest(&mut in_flight, done, &grace).await;
        }
        grace_timer.abort();
        tracing::info!(committed_at_shutdown = pending, "ingestor stopped");
        let _ = self.client.disconnect().await;
    }

    /// Whether as many commits run as may run at once.
    fn slots_taken(&self, in_flight: &VecDeque<Commit>) -> bool {
        in_flight.len() >= self.commits_in_flight.max(1)
    }

    /// Sizes the next batch by how the last one went (`batch_size.rs`):
    /// whether it was full, whether it waited for a commit slot, and how
    /// many messages were waiting behind it.
    fn resize(&mut self, full: bool, waited: bool, waiting: usize) {
        self.batch_size.after(Submitted {
            full,
            waited,
            waiting,
        });
        self.metrics.batch_target(self.batch_size.current());
    }

    /// Starts committing the open batch, first waiting for the oldest
    /// commit when as many as allowed are running; returns whether it had
    /// to wait.
    async fn submit(
        &self,
        batch: &mut OpenBatch,
        in_flight: &mut VecDeque<Commit>,
        give_up: &CancellationToken,
    ) -> bool {
        if batch.is_empty() {
            return false;
        }
        let waited = self.slots_taken(in_flight);
        while self.slots_taken(in_flight) {
            let done = oldest_attempt(in_flight).await;
            self.finish_oldest(in_flight, done, give_up).await;
        }
        let next = self.batch_size.current();
        let batch = std::mem::replace(
            batch,
            OpenBatch {
                // Sized once: a batch grown by doubling holds up to twice
                // its readings while it moves, and the peak stays resident.
                readings: Vec::with_capacity(next),
                acks: Vec::with_capacity(next),
                ..OpenBatch::default()
            },
        );
        let readings: Arc<[Reading]> = batch.readings.into();
        let attempt = self.store.insert_batch(readings.clone());
        in_flight.push_back(Commit {
            readings,
            acks: batch.acks,
            oldest: batch.oldest,
            started: Instant::now(),
            attempt,
        });
        waited
    }

    /// The oldest commit's first attempt ended: on success ack its
    /// messages; on failure retry it (with capped exponential backoff)
    /// until it commits or `give_up`, then ack or leave it unacked for the
    /// broker to redeliver.
    async fn finish_oldest(
        &self,
        in_flight: &mut VecDeque<Commit>,
        done: AttemptResult,
        give_up: &CancellationToken,
    ) {
        let Some(commit) = in_flight.pop_front() else {
            return;
        };
        let committed = match done {
            Ok(outcome) => {
                self.committed(&commit.readings, outcome, commit.started);
                true
            }
            Err(error) => {
                self.commit_with_retry(&commit.readings, error, give_up)
                    .await
            }
        };
        if !committed {
            return;
        }
        let messages = commit.acks.len();
        self.send_acks(&commit.acks).await;
        self.ledger.acked(messages);
        if let Some(next) = in_flight.front() {
            self.lag.waiting_since(next.oldest);
        }
    }

    /// Records when the oldest message not yet committed arrived: the
    /// oldest batch committing, else the open batch.
    fn record_waiting(&self, in_flight: &VecDeque<Commit>, batch: &OpenBatch) {
        let oldest = in_flight.front().and_then(|c| c.oldest).or(batch.oldest);
        self.lag.waiting_since(oldest);
    }

    fn committed(&self, readings: &[Reading], outcome: InsertOutcome, started: Instant) {
        self.metrics.committed(
            outcome.inserted,
            outcome.duplicate,
            readings.len(),
            started.elapsed(),
        );
        self.lag.committed(readings);
    }

    async fn accept(&mut self, batch: &mut OpenBatch, d: Delivery) {
        batch.oldest.get_or_insert(d.received);
        batch.newest = Some(d.received);
        match d.content {
            Content::Readings(readings) => batch.readings.extend(readings),
            Content::Rejected { reason, letter } => {
                self.metrics.dead_letter();
                if let Some(suppressed) = self.dead_letter_log.allow() {
                    let topic: String = d.ack.topic.chars().take(256).collect();
                    tracing::warn!(%topic, %reason, suppressed, "dead-lettering message");
                }
                // The message is acked below whatever happens here: a dead
                // letter that cannot be published is counted and logged,
                // never a reason to hold the stream.
                if let Err(error) = self
                    .client
                    .publish(letter.topic, QoS::AtLeastOnce, false, letter.body)
                    .await
                {
                    self.metrics.dead_letter_unpublished();
                    if let Some(suppressed) = self.unpublished_log.allow() {
                        tracing::error!(%error, suppressed, "could not publish a dead letter; acking the message anyway");
                    }
                }
            }
        }
        let mut ack = d.ack;
        ack.topic = String::new();
        batch.acks.push(ack);
    }

    /// Retries a batch whose commit failed with `error`, with capped
    /// exponential backoff, until it commits (`true`) or `give_up` is
    /// cancelled (`false`: its messages stay unacked and the broker
    /// redelivers them).
    async fn commit_with_retry(
        &self,
        readings: &Arc<[Reading]>,
        mut error: StoreError,
        give_up: &CancellationToken,
    ) -> bool {
        let mut delay = FIRST_RETRY_DELAY;
        let mut failing = false;
        loop {
            self.metrics.commit_failed();
            if !failing {
                tracing::warn!(%error, readings = readings.len(),
                    "commit failed; holding the batch unacked and retrying");
                self.ledger.set_database_error(Some(error.to_string()));
            }
            failing = true;
            tokio::select! {
                _ = give_up.cancelled() => {
                    tracing::warn!(readings = readings.len(),
                        "stopping with an uncommitted batch; the broker will redeliver it");
                    return false;
                }
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            let started = Instant::now();
            match self.store.insert_batch(readings.clone()).await {
                Ok(outcome) => {
                    self.committed(readings, outcome, started);
                    tracing::info!("database is back; committing again");
                    self.ledger.set_database_error(None);
                    return true;
                }
                Err(e) => error = e,
            }
        }
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
        self.ledger
            .ack_batch_queued(doorbell.pkid, acks.map(|m| m.pkid).collect());
        if let Err(error) = self.client.ack(doorbell).await {
            self.ledger.ack_batch_abandoned();
            tracing::warn!(%error, "could not queue acks; the broker will redeliver");
        }
    }
}

type AttemptResult = Result<InsertOutcome, StoreError>;

/// Waits for the oldest commit's first attempt; never resolves when none
/// is running.
async fn oldest_attempt(in_flight: &mut VecDeque<Commit>) -> AttemptResult {
    match in_flight.front_mut() {
        Some(commit) => (&mut commit.attempt).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(messages: usize, oldest: Instant, newest: Instant) -> OpenBatch {
        let publish = Publish::new("sensors/t/A/1", QoS::AtLeastOnce, Vec::new());
        OpenBatch {
            readings: Vec::new(),
            acks: vec![publish; messages],
            oldest: Some(oldest),
            newest: Some(newest),
        }
    }

    #[test]
    fn a_batch_is_due_after_the_flush_interval_or_sooner_once_the_broker_pauses() {
        let t0 = Instant::now();
        let flush = Duration::from_millis(100);
        let newest = t0 + Duration::from_millis(40);
        // A trickle waits for the flush interval.
        assert_eq!(batch_of(3, t0, newest).due(flush, true), Some(t0 + flush));
        // A broker's full window (rumqttd: 100) goes as soon as it pauses.
        assert_eq!(
            batch_of(100, t0, newest).due(flush, true),
            Some(newest + IDLE_GAP)
        );
        assert_eq!(OpenBatch::default().due(flush, true), None);
    }

    #[test]
    fn with_every_commit_slot_taken_a_batch_keeps_filling_until_the_flush_interval() {
        let t0 = Instant::now();
        let flush = Duration::from_millis(100);
        let newest = t0 + Duration::from_millis(40);
        assert_eq!(
            batch_of(100, t0, newest).due(flush, false),
            Some(t0 + flush)
        );
    }
}
