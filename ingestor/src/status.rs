//! What an ingestor reports about itself: subscription and database state,
//! and the count of messages it holds unacknowledged (its backlog).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// A snapshot of an ingestor's health.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestStatus {
    /// Subscribed to the shared group on a live connection.
    pub subscribed: bool,
    /// Why the broker refused the subscription (a failure code in its
    /// SUBACK), while it does: the ingestor receives nothing and is not
    /// ready.
    pub refused: Option<String>,
    /// `Some(error)` while commits are failing.
    pub database_error: Option<String>,
}

/// The receiver's and the writer's common account of the messages held
/// unacknowledged and the acks waiting to go out, and the status that
/// observers (readiness checks) follow.
#[derive(Debug)]
pub(crate) struct AckLedger {
    status: watch::Sender<IngestStatus>,
    /// Messages received and not yet acked.
    unacked: AtomicUsize,
    /// Messages received since the start.
    received_total: AtomicU64,
    /// Acks the writer has queued in the MQTT client, and acks the event
    /// loop has written: their difference is what still waits to go out.
    acks_queued: AtomicUsize,
    acks_sent: AtomicUsize,
    /// Ack batches whose first ack (the doorbell) is queued in the MQTT
    /// client: the doorbell's packet id and the rest, in order.
    ack_batches: Mutex<VecDeque<(u16, Vec<u16>)>>,
    /// Signalled whenever the writer queues or finishes a batch of acks.
    acked: Notify,
    /// Stopping by leaving the shared group (`group_exit.rs`).
    leaving: AtomicBool,
    /// The broker acknowledged the unsubscription.
    left: AtomicBool,
}

impl AckLedger {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            status: watch::channel(IngestStatus::default()).0,
            unacked: AtomicUsize::new(0),
            received_total: AtomicU64::new(0),
            acks_queued: AtomicUsize::new(0),
            acks_sent: AtomicUsize::new(0),
            ack_batches: Mutex::new(VecDeque::new()),
            acked: Notify::new(),
            leaving: AtomicBool::new(false),
            left: AtomicBool::new(false),
        })
    }

    /// The ingestor is leaving its group: a reconnection unsubscribes
    /// instead of subscribing.
    pub(crate) fn begin_leaving(&self) {
        self.leaving.store(true, Ordering::Relaxed);
    }

    pub(crate) fn leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// The broker acknowledged the unsubscription.
    pub(crate) fn set_left(&self) {
        self.left.store(true, Ordering::Relaxed);
    }

    pub(crate) fn has_left(&self) -> bool {
        self.left.load(Ordering::Relaxed)
    }

    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        self.status.send_if_modified(|s| {
            let changed = s.subscribed != subscribed || (subscribed && s.refused.is_some());
            s.subscribed = subscribed;
            if subscribed {
                s.refused = None;
            }
            changed
        });
    }

    /// The broker refused the subscription, for `reason`.
    pub(crate) fn set_refused(&self, reason: String) {
        self.status.send_if_modified(|s| {
            let changed = s.subscribed || s.refused.as_ref() != Some(&reason);
            s.subscribed = false;
            s.refused = Some(reason);
            changed
        });
    }

    pub(crate) fn set_database_error(&self, error: Option<String>) {
        self.status.send_if_modified(|s| {
            let changed = s.database_error.is_some() != error.is_some();
            s.database_error = error;
            changed
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<IngestStatus> {
        self.status.subscribe()
    }

    /// Counts a received message.
    pub(crate) fn received(&self) {
        self.received_total.fetch_add(1, Ordering::Relaxed);
        self.unacked.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages received since the start.
    pub(crate) fn received_total(&self) -> u64 {
        self.received_total.load(Ordering::Relaxed)
    }

    /// The writer is about to queue the doorbell `first` of an ack batch
    /// whose other acks are `rest`.
    pub(crate) fn ack_batch_queued(&self, first: u16, rest: Vec<u16>) {
        self.batches().push_back((first, rest));
        self.acks_queued.fetch_add(1, Ordering::Relaxed);
        self.acked.notify_waiters();
    }

    /// The doorbell could not be queued (the client is gone).
    pub(crate) fn ack_batch_abandoned(&self) {
        self.batches().pop_back();
        self.acks_queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// The event loop wrote the ack `pkid`: if it is the oldest batch's
    /// doorbell, returns the rest of that batch to write now.
    pub(crate) fn ack_sent(&self, pkid: u16) -> Option<Vec<u16>> {
        self.acks_sent.fetch_add(1, Ordering::Relaxed);
        let mut batches = self.batches();
        match batches.front() {
            Some((first, _)) if *first == pkid => batches.pop_front().map(|(_, rest)| rest),
            _ => {
                tracing::warn!(pkid, "an ack went out that is no batch's doorbell");
                None
            }
        }
    }

    fn batches(&self) -> std::sync::MutexGuard<'_, VecDeque<(u16, Vec<u16>)>> {
        // Pushes and pops are single operations: a panic cannot leave the
        // queue half-changed.
        self.ack_batches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Doorbells queued and not yet written.
    pub(crate) fn acks_pending(&self) -> usize {
        self.acks_queued
            .load(Ordering::Relaxed)
            .saturating_sub(self.acks_sent.load(Ordering::Relaxed))
    }

    /// The writer has queued the acks of `messages` messages.
    pub(crate) fn acked(&self, messages: usize) {
        self.unacked.fetch_sub(messages, Ordering::Relaxed);
        self.acked.notify_waiters();
    }

    pub(crate) fn unacked(&self) -> usize {
        self.unacked.load(Ordering::Relaxed)
    }

    /// Waits until fewer than `limit` messages are unacked or the writer
    /// has queued acks for the event loop to write.
    pub(crate) async fn wait_for_writer(&self, limit: usize) {
        loop {
            let notified = self.acked.notified();
            if self.unacked() < limit || self.acks_pending() > 0 {
                return;
            }
            notified.await;
        }
    }
}

/// What observers (readiness checks, `up`'s pipeline check) can see of a
/// running ingestor; cheap to clone.
#[derive(Debug, Clone)]
pub struct IngestProbe {
    status: watch::Receiver<IngestStatus>,
    ledger: Arc<AckLedger>,
}

impl IngestProbe {
    pub(crate) fn new(ledger: Arc<AckLedger>) -> Self {
        Self {
            status: ledger.subscribe(),
            ledger,
        }
    }

    /// The current status.
    pub fn status(&self) -> IngestStatus {
        self.status.borrow().clone()
    }

    /// A receiver that follows the status.
    pub fn watch(&self) -> watch::Receiver<IngestStatus> {
        self.status.clone()
    }

    /// Messages received from the broker since the start (readings and
    /// messages dead-lettered alike).
    pub fn messages_received(&self) -> u64 {
        self.ledger.received_total()
    }
}
