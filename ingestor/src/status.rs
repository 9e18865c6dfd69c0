//! What an ingestor reports about itself: subscription and database state,
//! and the count of messages it holds unacknowledged (its backlog).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// A snapshot of an ingestor's health.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestStatus {
    /// Subscribed to the shared group on a live connection.
    pub subscribed: bool,
    /// `Some(error)` while commits are failing.
    pub database_error: Option<String>,
}

/// State shared by the receiver, the writer and observers.
#[derive(Debug)]
pub(crate) struct Shared {
    status: watch::Sender<IngestStatus>,
    /// Messages received and not yet acked.
    unacked: AtomicUsize,
    /// Acks the writer has queued in the MQTT client, and acks the event
    /// loop has written: their difference is what still waits to go out.
    acks_queued: AtomicUsize,
    acks_sent: AtomicUsize,
    /// Signalled whenever the writer queues or finishes a batch of acks.
    acked: Notify,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            status: watch::channel(IngestStatus::default()).0,
            unacked: AtomicUsize::new(0),
            acks_queued: AtomicUsize::new(0),
            acks_sent: AtomicUsize::new(0),
            acked: Notify::new(),
        })
    }

    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        self.status.send_if_modified(|s| {
            let changed = s.subscribed != subscribed;
            s.subscribed = subscribed;
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

    /// Counts a received message; returns the unacked count.
    pub(crate) fn received(&self) -> usize {
        self.unacked.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The writer is about to queue `messages` acks.
    pub(crate) fn acks_queueing(&self, messages: usize) {
        self.acks_queued.fetch_add(messages, Ordering::Relaxed);
        self.acked.notify_waiters();
    }

    /// The event loop wrote one ack.
    pub(crate) fn ack_sent(&self) {
        self.acks_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Acks queued and not yet written.
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
