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
    /// Signalled whenever the writer acks a batch.
    acked: Notify,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            status: watch::channel(IngestStatus::default()).0,
            unacked: AtomicUsize::new(0),
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

    pub(crate) fn received(&self) {
        self.unacked.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn acked(&self, messages: usize) {
        self.unacked.fetch_sub(messages, Ordering::Relaxed);
        self.acked.notify_waiters();
    }

    pub(crate) fn unacked(&self) -> usize {
        self.unacked.load(Ordering::Relaxed)
    }

    /// Waits until fewer than `limit` messages are unacked.
    pub(crate) async fn wait_below(&self, limit: usize) {
        loop {
            let notified = self.acked.notified();
            if self.unacked() < limit {
                return;
            }
            notified.await;
        }
    }
}
