//! `ConnectionHealth`: when a pooled MySQL connection needs a round trip to
//! prove it still works before it is handed out again.
//!
//! diesel-async's default recycling sends `SELECT 1` on every checkout: one
//! extra round trip per request, measured at ~15% of the API's read
//! throughput (`datastream bench query`). Skipping it blindly would be
//! wrong: a connection the server closed (a restart, `wait_timeout`, a
//! `KILL`) would go on failing every query it is given, forever, because
//! nothing takes it out of the pool. So each connection carries this record
//! of its own queries (as diesel instrumentation, which sees every query's
//! outcome), and is checked only when it may have gone bad: after any
//! failed query, or after sitting idle. A check that fails discards the
//! connection and the pool opens a new one.

use diesel::connection::{Instrumentation, InstrumentationEvent};
use std::time::{Duration, Instant};

/// How long a connection may sit unused before it is checked again: a busy
/// pool reuses its connections within milliseconds and skips the check; an
/// idle one pays one round trip per checkout, as before.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// What a connection's own queries say about it.
#[derive(Debug)]
pub struct ConnectionHealth {
    last_query: Instant,
    failed: bool,
}

impl ConnectionHealth {
    /// A connection that has just been opened (and so works).
    pub fn new() -> Self {
        Self {
            last_query: Instant::now(),
            failed: false,
        }
    }

    /// Whether the connection must be checked before reuse, and forgets a
    /// failure (the check about to run, or the discard, settles it).
    pub fn take_needs_check(&mut self) -> bool {
        std::mem::take(&mut self.failed) || self.last_query.elapsed() > CHECK_AFTER_IDLE
    }
}

impl Instrumentation for ConnectionHealth {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error, .. } = event {
            self.last_query = Instant::now();
            // Any error at all: telling "the socket is gone" from "this
            // statement was refused" is not worth one round trip per error.
            self.failed |= error.is_some();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_connection_in_use_needs_no_check() {
        let mut health = ConnectionHealth::new();
        assert!(!health.take_needs_check());
    }

    #[test]
    fn a_connection_idle_longer_than_the_limit_is_checked() {
        let mut health = ConnectionHealth {
            last_query: Instant::now() - CHECK_AFTER_IDLE - Duration::from_millis(1),
            failed: false,
        };
        assert!(health.take_needs_check());
    }

    #[test]
    fn a_failed_query_means_one_check_before_reuse() {
        let mut health = ConnectionHealth {
            last_query: Instant::now(),
            failed: true,
        };
        assert!(health.take_needs_check());
        assert!(!health.take_needs_check());
    }
}
