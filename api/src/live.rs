//! Live readings: one feed per API process, fanned out in memory to every
//! open stream.
//!
//! Whatever subscribes to the broker (the binary wires an MQTT subscriber
//! in) calls [`LiveReadings::publish`]; each stream holds a
//! [`LiveReadings::subscribe`] receiver. The fan-out is a ring of
//! `capacity` readings shared by every stream: a stream that falls more
//! than that far behind loses its place ([`broadcast`]'s `Lagged`) and is
//! ended, so a slow client never slows the others or grows memory.

use datastream_schema::Reading;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Readings kept for streams that are behind, by default: about a second
/// of the benchmark's 5,000 readings/s.
pub const DEFAULT_CAPACITY: usize = 8_192;

/// The fan-out of live readings to streams.
#[derive(Clone)]
pub struct LiveReadings {
    sender: broadcast::Sender<Arc<Reading>>,
    connected: Arc<AtomicBool>,
    closing: CancellationToken,
}

impl LiveReadings {
    /// A fan-out that keeps the last `capacity` readings for streams that
    /// are behind.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            connected: Arc::new(AtomicBool::new(false)),
            closing: CancellationToken::new(),
        }
    }

    /// Hands a reading that arrived from the broker to every stream.
    pub fn publish(&self, reading: Reading) {
        // No stream open: nothing to do (send fails only then).
        let _ = self.sender.send(Arc::new(reading));
    }

    /// Records whether the feed is connected to the broker (for `/readyz`
    /// and for streams opened meanwhile).
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Whether the feed is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// A receiver of every reading published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Reading>> {
        self.sender.subscribe()
    }

    /// Ends every open stream (with a final `closing` event): the server
    /// is stopping, and would otherwise wait for them.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Cancelled when [`LiveReadings::close`] is called.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.sender.receiver_count()
    }
}
