//! [`BackendOps`]: what MySQL and SQLite each do their own way. Everything
//! else is written once in `sql/`, which each backend's module compiles
//! for its own connection type (see `mysql/mod.rs`).

use crate::failure::Outcome;
use crate::operations::OwnedFuture;
use crate::rollup_rows::{CatalogSlice, DeviceRow, HourRollups, WriteMarks};
use crate::transaction::ConnWork;
use chrono::NaiveDateTime;
use datastream_domain::reading::Reading;
use std::future::Future;
use std::sync::Arc;

/// A batch of readings to insert, shared with the tasks that write it.
pub(crate) type Batch = Arc<[Reading]>;

/// What differs between the backends.
pub(crate) trait BackendOps: Send + Sync + 'static {
    /// The pooled async connection.
    type Conn: Send + 'static;
    /// A connection checked out of the pool.
    type Pooled: std::ops::DerefMut<Target = Self::Conn> + Send;

    /// `mysql` or `sqlite`, for logs.
    const NAME: &'static str;
    /// Whether write transactions may run side by side (InnoDB) rather
    /// than one at a time (SQLite's single writer).
    const CONCURRENT_WRITERS: bool;
    /// Marks every hour that has readings dirty (a constant statement: no
    /// input reaches it).
    const MARK_EVERY_HOUR: &'static str;

    /// Checks a connection out of the pool (see `pool::checkout`).
    fn conn(&self) -> impl Future<Output = Outcome<Self::Pooled>> + Send;

    /// Becomes the one refresher at work (across processes), or `false`
    /// when another is: refreshers one at a time cannot deadlock on the
    /// catalog and rollup rows they share. Released by
    /// [`end_refresh`](Self::end_refresh).
    fn begin_refresh(conn: &mut Self::Conn) -> ConnWork<'_, bool>;

    /// Lets another refresher work.
    fn end_refresh(conn: &mut Self::Conn) -> ConnWork<'_, ()>;

    /// Takes `hour`'s dirty mark inside the caller's transaction: `true`
    /// when taken, `false` when it is gone (another refresher took it) or a
    /// writer holds it right now (the hour is left for the next round). A
    /// refresher never waits for a writer's lock: queued behind writers, it
    /// would close a cycle between two of them.
    fn claim_hour(conn: &mut Self::Conn, hour: NaiveDateTime) -> ConnWork<'_, bool>;

    /// The catalog rows of `slice`, locked until the transaction ends
    /// where the database locks rows (MySQL: two refreshers must not both
    /// move one device's row; SQLite has one writer at a time anyway).
    fn catalog_for_update(
        conn: &mut Self::Conn,
        slice: CatalogSlice,
    ) -> ConnWork<'_, Vec<DeviceRow>>;

    /// Writes an hour's rebuilt rollups and replaces the catalog rows it
    /// carries, inside the caller's transaction, in multi-row statements.
    fn write_hour(conn: &mut Self::Conn, rollups: HourRollups) -> ConnWork<'_, ()>;

    /// Inserts `readings` (not empty) in one transaction that first records
    /// `marks`, ignoring existing keys; returns how many rows were new.
    fn insert_rows(
        self: Arc<Self>,
        readings: Batch,
        marks: WriteMarks,
    ) -> OwnedFuture<Outcome<u64>>;
}
