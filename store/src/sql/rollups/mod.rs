//! Hourly rollups, kept exact: the queries they share (`queries.rs`), the
//! answers read from them (`answers.rs`), their refresh (`refresh.rs`) and
//! retention, which retires hours into them (`retention.rs`). The files
//! depend one way: `answers` and `refresh` on `queries`, `retention` on
//! `refresh`.
//!
//! The invariant: an hour not listed in `rollup_dirty` has rollups that
//! equal the aggregate of its rows. Every write marks the hours it touches
//! in the same transaction (the batch insert, an edit or delete chunk), and
//! the refresher rebuilds a marked hour from its rows in one transaction
//! that starts by deleting the mark — the row lock on the mark orders it
//! after any writer still holding that hour. An answer therefore reads
//! rollups for clean whole hours and rows for everything else: the edges of
//! the window, dirty hours, and intervals that are not whole hours.

use super::core::{Backend, StoreCore};
use crate::backend::BackendOps;
use crate::failure::Outcome;
use chrono::{DateTime, Duration, Utc};
use datastream_domain::retention::{RetentionPolicy, RetentionStep};

pub(super) mod answers;
pub(super) mod queries;
mod refresh;
mod retention;

/// An hour is refreshed only once it has ended this long ago (seconds):
/// readings still arriving for it would only mark it again.
const SETTLE: i64 = 5;
/// ... and once it was first marked this long ago (seconds): an hour a
/// backlog or a backfill is still writing is rebuilt once it is done, or
/// every so often, rather than after every batch. Answers stay exact
/// meanwhile; they read its rows.
const QUIET: i64 = 10;

/// Rebuilds at most `most` settled dirty hours, as the one refresher at
/// work (0 at once while another is).
pub(super) async fn refresh_rollups(
    store: &StoreCore,
    now: DateTime<Utc>,
    most: usize,
) -> Outcome<usize> {
    if !store.rollups {
        return Ok(0);
    }
    let settled = (now - Duration::seconds(3_600 + SETTLE)).naive_utc();
    let quiet = (now - Duration::seconds(QUIET)).naive_utc();
    let Ok(_turn) = store.maintenance.try_lock() else {
        return Ok(0);
    };
    let mut conn = store.conn().await?;
    if !Backend::begin_refresh(&mut conn).await? {
        return Ok(0);
    }
    let refreshed = refresh::refresh_settled(&mut conn, settled, quiet, most).await;
    // Released even after a failure: the connection goes back to the pool.
    Backend::end_refresh(&mut conn).await?;
    refreshed
}

/// One bounded step of retention, in turns with the refresher.
pub(super) async fn apply_retention(
    store: &StoreCore,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    chunk: usize,
) -> Outcome<RetentionStep> {
    if !store.rollups {
        // Retired hours are answered from rollups: without them,
        // retention would lose history (the binary refuses the mix).
        return Ok(RetentionStep::default());
    }
    let busy = RetentionStep {
        busy: true,
        ..RetentionStep::default()
    };
    let Ok(_turn) = store.maintenance.try_lock() else {
        return Ok(busy);
    };
    let mut conn = store.conn().await?;
    if !Backend::begin_refresh(&mut conn).await? {
        return Ok(busy);
    }
    let step = retention::step(&mut conn, policy, now, chunk).await;
    // Released even after a failure: the connection goes back to the pool.
    Backend::end_refresh(&mut conn).await?;
    step
}
