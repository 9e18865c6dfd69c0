//! `IngestLag`: how far behind the ingestor is, the metric to scale
//! ingestors on (docs/SCALING.md, "Kubernetes").
//!
//! The writer records as it goes (cheap atomic stores); `gauges.rs`
//! publishes the gauges once a second, apart from the writer, which stops
//! in a database outage (it waits on the commit it holds), exactly when the
//! lag must keep growing on `/metrics`.
//!
//! `datastream_ingest_lag_seconds` is, for each second, the larger of
//! * how long the oldest message received and not yet committed has waited
//!   here (`datastream_ingest_oldest_unacked_seconds`): grows while the
//!   database is slow or down;
//! * the largest median age, at commit and by the readings' own
//!   timestamps, of the batches committed in that second: this counts the
//!   time readings spent queued in the broker before this ingestor took
//!   them, which no clock of the ingestor's can see. The median ignores a
//!   few devices with wrong clocks; back-filled history counts as lag while
//!   it is written, and it is work waiting.
//!
//! An idle ingestor (nothing published, nothing waiting) reports 0.
//!
//! `datastream_ingest_backlog_readings` counts the readings received and
//! not yet committed.

use crate::metrics::IngestMetrics;
use crate::status::AckLedger;
use chrono::Utc;
use datastream_domain::Reading;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The writer's record of what waits and how old the last commits were.
#[derive(Debug)]
pub(crate) struct IngestLag {
    base: Instant,
    /// Arrival of the oldest message not yet committed, as microseconds
    /// since `base` plus one; 0: nothing waits.
    oldest_waiting: AtomicU64,
    /// The largest median age, in microseconds, of the batches committed
    /// since the last sample.
    committed_age: AtomicU64,
    /// Readings decoded since the start, and those committed since: their
    /// difference is what is received and not yet committed.
    received: AtomicU64,
    settled: AtomicU64,
}

impl IngestLag {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            oldest_waiting: AtomicU64::new(0),
            committed_age: AtomicU64::new(0),
            received: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        })
    }

    /// The oldest message not yet committed arrived `at` (`None`: nothing
    /// waits).
    pub(crate) fn waiting_since(&self, at: Option<Instant>) {
        let stamp = at.map_or(0, |at| {
            at.saturating_duration_since(self.base).as_micros() as u64 + 1
        });
        self.oldest_waiting.store(stamp, Ordering::Relaxed);
    }

    /// The receiver decoded `readings` more.
    pub(crate) fn received(&self, readings: usize) {
        self.received.fetch_add(readings as u64, Ordering::Relaxed);
    }

    /// Readings received and not yet committed.
    fn held(&self) -> u64 {
        let settled = self.settled.load(Ordering::Relaxed);
        self.received
            .load(Ordering::Relaxed)
            .saturating_sub(settled)
    }

    /// `readings` have just been committed.
    pub(crate) fn committed(&self, readings: &[Reading]) {
        self.settled
            .fetch_add(readings.len() as u64, Ordering::Relaxed);
        if let Some(age) = median_age(readings, Utc::now()) {
            self.committed_age
                .fetch_max(age.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// How long the oldest uncommitted message has waited here at `now`.
    fn oldest_waiting(&self, now: Instant) -> Duration {
        match self.oldest_waiting.load(Ordering::Relaxed).checked_sub(1) {
            Some(micros) => {
                now.saturating_duration_since(self.base + Duration::from_micros(micros))
            }
            None => Duration::ZERO,
        }
    }

    /// The lag since the last sample, as defined in the module docs; starts
    /// the next sample.
    pub(crate) fn sample(&self, now: Instant) -> Duration {
        let committed = Duration::from_micros(self.committed_age.swap(0, Ordering::Relaxed));
        self.oldest_waiting(now).max(committed)
    }
}

/// The median of `now - timestamp` over `readings` (a reading from the
/// future counts as age 0); `None` for no readings.
fn median_age(readings: &[Reading], now: chrono::DateTime<Utc>) -> Option<Duration> {
    let mut ages: Vec<i64> = readings
        .iter()
        .map(|r| {
            (now - r.timestamp())
                .num_microseconds()
                .unwrap_or(i64::MAX)
                .max(0)
        })
        .collect();
    if ages.is_empty() {
        return None;
    }
    let middle = ages.len() / 2;
    let (_, median, _) = ages.select_nth_unstable(middle);
    Some(Duration::from_micros(*median as u64))
}

impl IngestLag {
    /// Publishes the lag gauges (called once a second by `gauges.rs`).
    pub(crate) fn publish(&self, ledger: &AckLedger, metrics: &IngestMetrics) {
        let now = Instant::now();
        metrics.oldest_unacked(self.oldest_waiting(now));
        metrics.lag(self.sample(now));
        metrics.unacked(ledger.unacked(), ledger.acks_pending());
        metrics.backlog(self.held());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SubsecRound, TimeZone};
    use datastream_domain::{Id1, Id2, SensorType, TimestampBounds};

    fn reading_aged(age: chrono::Duration, now: chrono::DateTime<Utc>) -> Reading {
        let earliest = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("a date");
        let bounds = TimestampBounds::new(earliest, chrono::Duration::days(1));
        Reading::builder()
            .sensor_value(1.0)
            .sensor_type(SensorType::parse("temperature").expect("valid"))
            .id1(Id1::parse("LAG").expect("valid"))
            .id2(Id2::new(1).expect("valid"))
            .timestamp(now - age)
            .build(&bounds, now)
            .expect("valid reading")
    }

    #[test]
    fn the_median_age_ignores_a_few_readings_with_wrong_clocks() {
        let now = Utc::now().trunc_subsecs(6);
        let mut readings: Vec<Reading> = (0..9)
            .map(|_| reading_aged(chrono::Duration::seconds(30), now))
            .collect();
        readings.push(reading_aged(chrono::Duration::days(300), now));
        readings.push(reading_aged(chrono::Duration::seconds(-3600), now));
        let age = median_age(&readings, now).expect("readings");
        assert_eq!(age, Duration::from_secs(30));
    }

    #[test]
    fn nothing_waiting_and_nothing_committed_is_no_lag() {
        let lag = IngestLag::new();
        assert_eq!(lag.sample(Instant::now()), Duration::ZERO);
        lag.waiting_since(Some(Instant::now()));
        lag.waiting_since(None);
        assert_eq!(
            lag.sample(Instant::now() + Duration::from_secs(60)),
            Duration::ZERO
        );
    }

    #[test]
    fn an_uncommitted_message_makes_the_lag_grow_with_its_wait() {
        let lag = IngestLag::new();
        let arrived = Instant::now();
        lag.waiting_since(Some(arrived));
        assert!(lag.sample(arrived + Duration::from_secs(7)) >= Duration::from_secs(7));
        assert!(lag.sample(arrived + Duration::from_secs(9)) >= Duration::from_secs(9));
    }

    #[test]
    fn the_oldest_batch_committed_since_the_last_sample_sets_the_lag_once() {
        let lag = IngestLag::new();
        let now = Utc::now();
        let aged = |seconds| -> Vec<Reading> {
            (0..5)
                .map(|_| reading_aged(chrono::Duration::seconds(seconds), now))
                .collect()
        };
        lag.committed(&aged(40));
        lag.committed(&aged(2));
        assert!(lag.sample(Instant::now()) >= Duration::from_secs(39));
        assert_eq!(lag.sample(Instant::now()), Duration::ZERO);
    }
}
