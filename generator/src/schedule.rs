//! `RateSchedule`: how many readings are due now.
//!
//! Readings are owed from a fixed origin (`elapsed × rate`), not from tick
//! to tick, so timer jitter and rounding never drift the long-run rate. A
//! stall (a slow broker, a suspended process) is forgiven rather than made
//! up: at most [`CATCH_UP`] worth of readings is sent late, the rest is
//! skipped and counted, so a generator never floods the broker with a
//! burst of stale readings.

use std::time::{Duration, Instant};

/// The most lateness that is caught up after a stall.
pub const CATCH_UP: Duration = Duration::from_millis(100);

/// What is due at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Readings to make now.
    pub now: u64,
    /// Readings dropped because they were owed from a stall.
    pub skipped: u64,
}

/// A fixed-rate schedule anchored at an origin.
#[derive(Debug, Clone)]
pub struct RateSchedule {
    rate: f64,
    origin: Instant,
    /// Readings accounted for since `origin` (made or skipped).
    counted: u64,
}

impl RateSchedule {
    /// `rate` readings per second starting at `now`; the first is due at
    /// once.
    pub fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            origin: now,
            counted: 0,
        }
    }

    /// The rate in readings per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How many readings are due at `now`; counts them as made.
    pub fn due(&mut self, now: Instant) -> Due {
        let elapsed = now.saturating_duration_since(self.origin).as_secs_f64();
        // The first reading is due at the origin itself.
        let owed_total = (elapsed * self.rate).floor() as u64 + 1;
        let owed = owed_total.saturating_sub(self.counted);
        let allowed = ((CATCH_UP.as_secs_f64() * self.rate).ceil() as u64).max(1);
        let skipped = owed.saturating_sub(allowed);
        self.counted += owed;
        Due {
            now: owed - skipped,
            skipped,
        }
    }

    /// When the next reading is due.
    pub fn next_at(&self) -> Instant {
        // counted readings cover [0, counted / rate); the next one is due at
        // counted / rate. Capped so an absurdly slow rate cannot overflow.
        let secs = (self.counted as f64 / self.rate).min(1e9);
        self.origin + Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(schedule: &mut RateSchedule, start: Instant, ticks: u32, tick: Duration) -> Due {
        let mut total = Due::default();
        for i in 1..=ticks {
            let d = schedule.due(start + tick * i);
            total.now += d.now;
            total.skipped += d.skipped;
        }
        total
    }

    #[test]
    fn the_first_reading_is_due_at_once() {
        let start = Instant::now();
        let mut s = RateSchedule::new(1.0, start);
        assert_eq!(s.due(start).now, 1);
        assert_eq!(s.due(start + Duration::from_millis(999)).now, 0);
        assert_eq!(s.due(start + Duration::from_millis(1000)).now, 1);
    }

    #[test]
    fn the_long_run_rate_is_exact_whatever_the_tick() {
        let start = Instant::now();
        for tick_us in [700, 1_000, 3_333, 17_000] {
            let mut s = RateSchedule::new(2_500.0, start);
            s.due(start);
            let tick = Duration::from_micros(tick_us);
            let ticks = (60_000_000 / tick_us) as u32; // one minute
            let made = run(&mut s, start, ticks, tick).now;
            let expected = (f64::from(ticks) * tick.as_secs_f64() * 2_500.0).floor() as u64;
            assert!(
                made.abs_diff(expected) <= 1,
                "tick {tick_us}µs: {made} vs {expected}"
            );
        }
    }

    #[test]
    fn a_stall_is_skipped_not_burst() {
        let start = Instant::now();
        let mut s = RateSchedule::new(1_000.0, start);
        s.due(start);
        let after_stall = s.due(start + Duration::from_secs(5));
        assert_eq!(after_stall.now, 100, "only CATCH_UP worth is sent late");
        assert_eq!(after_stall.now + after_stall.skipped, 5_000);
        // And then it carries on at the set rate.
        assert_eq!(s.due(start + Duration::from_millis(5_010)).now, 10);
    }

    #[test]
    fn next_at_points_at_the_next_reading() {
        let start = Instant::now();
        let mut s = RateSchedule::new(4.0, start);
        s.due(start);
        assert_eq!(s.next_at(), start + Duration::from_millis(250));
    }

    #[test]
    fn very_slow_rates_do_not_overflow() {
        let start = Instant::now();
        let mut s = RateSchedule::new(0.001, start);
        s.due(start);
        assert_eq!(s.next_at(), start + Duration::from_secs(1000));
    }
}
