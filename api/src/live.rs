//! Live readings (and alert notifications): one feed per API process,
//! fanned out in memory to every open stream.
//!
//! Whatever subscribes to the broker (the binary wires an MQTT subscriber
//! in) calls [`LiveReadings::publish`]; each stream holds a receiver from
//! [`LiveReadings::subscribe`]. A stream that watches one device (`id1`
//! and `id2`, the dashboard's case) reads a ring of that device's readings
//! only, so a reading wakes the streams that want it and no others; every
//! other stream reads the ring of all readings and filters. A stream that
//! falls a whole ring behind loses its place ([`broadcast`]'s `Lagged`) and
//! is ended, so a slow client never slows the others or grows memory. A
//! device's ring lives as long as a stream watches it: the last
//! [`LiveSubscription`] to go removes it, whether the device ever sent
//! anything or not.

use datastream_domain::alert::AlertNotice;
use datastream_domain::{Reading, ReadingFilter};
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

/// Alert notifications kept for alert streams that are behind.
const ALERT_CAPACITY: usize = 1_024;

/// Resumes (`Last-Event-ID`) reading the store at once, per process: each
/// holds a database connection while it reads, and the rest of the pool is
/// left to requests (and, in `up`, never shared with the ingestor).
const RESUMES_AT_ONCE: usize = 2;

/// A device, as its ring is found.
type DeviceKey = (Arc<str>, i32);

/// The rings of watched devices.
type DeviceRings = Arc<Mutex<HashMap<DeviceKey, broadcast::Sender<Arc<Reading>>>>>;

/// The fan-out of live readings to streams.
#[derive(Clone)]
pub struct LiveReadings {
    all: broadcast::Sender<Arc<Reading>>,
    /// Alert notifications, for `/api/v1/alerts/stream`.
    alerts: broadcast::Sender<Arc<AlertNotice>>,
    devices: DeviceRings,
    device_capacity: usize,
    closing: CancellationToken,
    resumes: Arc<tokio::sync::Semaphore>,
}

/// A stream's place in the fan-out: its receiver and, for one device, the
/// claim on that device's ring.
pub struct LiveSubscription {
    /// The readings, from the moment of subscribing.
    pub receiver: broadcast::Receiver<Arc<Reading>>,
    /// Declared after the receiver, so dropped after it: the ring is
    /// removed once its last receiver is gone.
    _ring: Option<RingClaim>,
}

/// Removes a device's ring when the last stream watching it goes.
struct RingClaim {
    devices: DeviceRings,
    key: DeviceKey,
}

impl Drop for RingClaim {
    fn drop(&mut self) {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        if devices
            .get(&self.key)
            .is_some_and(|ring| ring.receiver_count() == 0)
        {
            devices.remove(&self.key);
        }
    }
}

impl LiveReadings {
    /// A fan-out that keeps the last `capacity` readings for streams that
    /// are behind (and at most that many per device).
    pub fn new(capacity: usize) -> Self {
        let (all, _) = broadcast::channel(capacity.max(1));
        let (alerts, _) = broadcast::channel(ALERT_CAPACITY);
        Self {
            all,
            alerts,
            devices: Arc::default(),
            device_capacity: capacity.clamp(1, MOST_PER_DEVICE),
            closing: CancellationToken::new(),
            resumes: Arc::new(tokio::sync::Semaphore::new(RESUMES_AT_ONCE)),
        }
    }

    /// Devices with a ring (streams watching them), for tests and metrics.
    pub fn watched_devices(&self) -> usize {
        self.devices.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A turn to read the store for a resume, waiting at most `wait`;
    /// `None` when every turn stayed taken that long.
    pub async fn resume_turn(
        &self,
        wait: std::time::Duration,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::time::timeout(wait, self.resumes.clone().acquire_owned())
            .await
            .ok()?
            .ok()
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

    /// Hands an alert notification that arrived from the broker to every
    /// alert stream.
    pub fn publish_alert(&self, notice: AlertNotice) {
        if self.alerts.receiver_count() > 0 {
            let _ = self.alerts.send(Arc::new(notice));
        }
    }

    /// A receiver of the alert notifications published from now on.
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<Arc<AlertNotice>> {
        self.alerts.subscribe()
    }

    /// A receiver of the readings published from now on that `filter` may
    /// match: its device's ring when it names a device, else every
    /// reading (the stream still filters what it receives).
    pub fn subscribe(&self, filter: &ReadingFilter) -> LiveSubscription {
        let (Some(id1), Some(id2)) = (filter.id1(), filter.id2()) else {
            return LiveSubscription {
                receiver: self.all.subscribe(),
                _ring: None,
            };
        };
        let key: DeviceKey = (id1.as_str().into(), id2.get());
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = devices
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(self.device_capacity).0)
            .subscribe();
        LiveSubscription {
            receiver,
            _ring: Some(RingClaim {
                devices: self.devices.clone(),
                key,
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_domain::FilterParams;

    fn device(id2: &str) -> ReadingFilter {
        ReadingFilter::parse(
            FilterParams {
                id1: Some("LEAK"),
                id2: Some(id2),
                ..FilterParams::default()
            },
            chrono::Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn a_devices_ring_goes_with_its_last_stream_even_if_it_never_sent() {
        let live = LiveReadings::new(DEFAULT_CAPACITY);
        for n in 0..10_000 {
            drop(live.subscribe(&device(&n.to_string())));
        }
        assert_eq!(live.watched_devices(), 0);
        let (first, second) = (live.subscribe(&device("1")), live.subscribe(&device("1")));
        drop(first);
        assert_eq!(live.watched_devices(), 1, "still watched by the second");
        drop(second);
        assert_eq!(live.watched_devices(), 0);
    }
}
