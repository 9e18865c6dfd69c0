//! Live readings: one feed per API process, fanned out in memory to every
//! open stream.
//!
//! Whatever subscribes to the broker (the binary wires an MQTT subscriber
//! in) calls [`LiveReadings::publish`]; each stream holds a receiver from
//! [`LiveReadings::subscribe`]. A stream that watches one device (`id1`
//! and `id2`, the dashboard's case) reads a ring of that device's readings
//! only, so a reading wakes the streams that want it and no others; every
//! other stream reads the ring of all readings and filters. A stream that
//! falls a whole ring behind loses its place ([`broadcast`]'s `Lagged`) and
//! is ended, so a slow client never slows the others or grows memory.

use datastream_schema::{Reading, ReadingFilter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Readings kept for streams that are behind on the ring of all readings,
/// by default: about 1.6 s at the benchmark's 5,000 readings/s.
pub const DEFAULT_CAPACITY: usize = 8_192;
/// The most a device's ring keeps: 2.5 s of a device sending 100
/// readings/s. Each slot costs ~50 bytes whether used or not, so 1,000
/// watched devices cost ~12 MiB (at 1,024 slots it was ~45 MiB).
const MOST_PER_DEVICE: usize = 256;

/// A device, as its ring is found.
type DeviceKey = (Arc<str>, i32);

/// The fan-out of live readings to streams.
#[derive(Clone)]
pub struct LiveReadings {
    all: broadcast::Sender<Arc<Reading>>,
    devices: Arc<Mutex<HashMap<DeviceKey, broadcast::Sender<Arc<Reading>>>>>,
    device_capacity: usize,
    closing: CancellationToken,
}

impl LiveReadings {
    /// A fan-out that keeps the last `capacity` readings for streams that
    /// are behind (and at most that many per device).
    pub fn new(capacity: usize) -> Self {
        let (all, _) = broadcast::channel(capacity.max(1));
        Self {
            all,
            devices: Arc::default(),
            device_capacity: capacity.clamp(1, MOST_PER_DEVICE),
            closing: CancellationToken::new(),
        }
    }

    /// Hands a reading that arrived from the broker to every stream that
    /// may want it.
    pub fn publish(&self, reading: Reading) {
        let reading = Arc::new(reading);
        {
            let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
            let key: DeviceKey = (reading.id1().as_str().into(), reading.id2().get());
            // A device nobody watches any more is forgotten.
            if let Some(ring) = devices.get(&key) {
                if ring.send(reading.clone()).is_err() {
                    devices.remove(&key);
                }
            }
        }
        if self.all.receiver_count() > 0 {
            let _ = self.all.send(reading);
        }
    }

    /// A receiver of the readings published from now on that `filter` may
    /// match: its device's ring when it names a device, else every
    /// reading (the stream still filters what it receives).
    pub fn subscribe(&self, filter: &ReadingFilter) -> broadcast::Receiver<Arc<Reading>> {
        let (Some(id1), Some(id2)) = (filter.id1(), filter.id2()) else {
            return self.all.subscribe();
        };
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        devices
            .entry((id1.as_str().into(), id2.get()))
            .or_insert_with(|| broadcast::channel(self.device_capacity).0)
            .subscribe()
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
}
