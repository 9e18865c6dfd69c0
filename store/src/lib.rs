//! The store: readings, users, rollups and retention in MySQL or SQLite,
//! behind one trait ([`Store`]) whose types are the domain's.
//!
//! [`connect`] picks the backend from the URL, runs the embedded migrations
//! and returns a [`SharedStore`]. Every operation is written once, in
//! `sql/`, which `mysql/` and `sqlite/` each compile for their own
//! connection type; the backends themselves hold only what genuinely
//! differs ([`BackendOps`](backend::BackendOps): connection setup,
//! migrations, the batch insert, locks). Backend-independent parts sit
//! beside them: the diesel schema (`schema.rs`), row types (`rows.rs`,
//! `rollup_rows.rs`), how answers are assembled (`buckets.rs`,
//! `device_key.rs`). Nothing of diesel appears in this crate's public
//! types.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// Device-key bounds for a table with `sensor_type`, `id1` and `id2`
// columns, in key order (sensor type, `id1`, `id2`). Macros, because each
// table's columns are types of their own.
/// `table`'s device key compared with `key`: `$before` on the leading
/// columns, `$last` on `id2` (`gt, gt`: after; `gt, ge`: from; `lt, le`:
/// through).
macro_rules! key_cmp {
    ($table:ident, $key:expr, $before:ident, $last:ident) => {{
        let key: &$crate::device_key::DeviceKey = $key;
        $table::sensor_type
            .$before(key.sensor_type.clone())
            .or($table::sensor_type
                .eq(key.sensor_type.clone())
                .and($table::id1.$before(key.id1.clone())))
            .or($table::sensor_type
                .eq(key.sensor_type.clone())
                .and($table::id1.eq(key.id1.clone()))
                .and($table::id2.$last(key.id2)))
    }};
}

/// `table`'s device key after `key`.
macro_rules! key_after {
    ($table:ident, $key:expr) => {
        key_cmp!($table, $key, gt, gt)
    };
}

/// `table`'s device key at or after `key`.
macro_rules! key_from {
    ($table:ident, $key:expr) => {
        key_cmp!($table, $key, gt, ge)
    };
}

/// `table`'s device key at or before `key`.
macro_rules! key_through {
    ($table:ident, $key:expr) => {
        key_cmp!($table, $key, lt, le)
    };
}

/// Adds `filter`'s conditions on the listed key columns (of `id1`, `id2`,
/// `sensor_type`) to the boxed query `q` of `table`.
macro_rules! key_conditions {
    ($table:ident, $q:expr, $filter:expr, [$($col:ident),*]) => {{
        let (mut q, filter) = ($q, $filter);
        $( q = key_conditions!(@$col $table, q, filter); )*
        q
    }};
    (@id1 $table:ident, $q:ident, $f:ident) => {
        match $f.id1() {
            Some(v) => $q.filter($table::id1.eq(v.as_str().to_owned())),
            None => $q,
        }
    };
    (@id2 $table:ident, $q:ident, $f:ident) => {
        match $f.id2() {
            Some(v) => $q.filter($table::id2.eq(v.get())),
            None => $q,
        }
    };
    (@sensor_type $table:ident, $q:ident, $f:ident) => {
        match $f.sensor_type() {
            Some(v) => $q.filter($table::sensor_type.eq(v.as_str().to_owned())),
            None => $q,
        }
    };
}

/// Adds `filter`'s device conditions (`id1`, `id2`, `sensor_type`) to the
/// boxed query `q` of `table`, which has those three columns.
macro_rules! device_conditions {
    ($table:ident, $q:expr, $filter:expr) => {
        key_conditions!($table, $q, $filter, [id1, id2, sensor_type])
    };
}

/// The boxed query of rollup `table`'s rows of the hours `[first, end)`.
macro_rules! rollups_in {
    ($table:ident, $first:expr, $end:expr) => {
        $table::table
            .into_boxed()
            .filter($table::bucket.ge($first))
            .filter($table::bucket.lt($end))
    };
}

/// Keeps the rows of `q` (of `table`) whose listed key columns are at
/// least the page floor's (`buckets::PageFloor`).
macro_rules! at_least_floor {
    ($table:ident, $q:expr, $floor:expr, [$($col:ident),*]) => {{
        let (mut q, floor) = ($q, $floor);
        $( if let Some(v) = floor.$col.clone() {
            q = q.filter($table::$col.ge(v));
        } )*
        q
    }};
}

/// Streams the rows of `query` as `$row`s from `conn`, running `$body`
/// with each bound to `$r` (a failed row ends it with the error).
macro_rules! for_each_row {
    ($conn:expr, $query:expr, |$r:ident: $row:ty| $body:block) => {{
        use futures_util::TryStreamExt as _;
        let rows = $query.load_stream::<$row>($conn).await?;
        let mut rows = std::pin::pin!(rows);
        while let Some($r) = rows.try_next().await? $body
    }};
}

/// Writes an hour's rebuilt rollups (`HourRollups`) on `conn`, `$rows` rows
/// a statement: the rollup tables' rows inserted, the catalog's replaced.
/// `$($await)*` is `.await` on an async connection, nothing on a sync one.
macro_rules! write_hour_rows {
    ($conn:expr, $rollups:expr, $rows:expr $(, $await:tt)*) => {{
        use crate::schema::{devices, rollup_device_hour, rollup_id1_hour, rollup_type_hour};
        let (conn, rollups) = ($conn, $rollups);
        for chunk in rollups.devices.chunks($rows) {
            diesel::insert_into(rollup_device_hour::table).values(chunk).execute(&mut *conn)$(.$await)*?;
        }
        for chunk in rollups.types.chunks($rows) {
            diesel::insert_into(rollup_type_hour::table).values(chunk).execute(&mut *conn)$(.$await)*?;
        }
        for chunk in rollups.id1s.chunks($rows) {
            diesel::insert_into(rollup_id1_hour::table).values(chunk).execute(&mut *conn)$(.$await)*?;
        }
        for chunk in rollups.catalog.chunks($rows) {
            diesel::replace_into(devices::table).values(chunk).execute(&mut *conn)$(.$await)*?;
        }
    }};
}

mod alert_rows;
mod backend;
mod buckets;
mod connect;
mod device_key;
mod failure;
mod mysql;
mod operations;
mod options;
mod pool;
mod rollup_rows;
mod rows;
mod schema;
mod sqlite;
mod transaction;

pub use connect::{connect, connect_replica, connect_with};
pub use datastream_domain::{redact_url, StoreError, StoredReading};
pub use mysql::MYSQL_POOL_SIZE;
pub use operations::{
    AlertStore, AnalyticsStore, CatalogStore, EvaluationStart, InsertOutcome, OwnedFuture,
    ReadingStore, SharedStore, Store, UserStore, WRITE_CHUNK,
};
pub use options::{InsertMethod, Migrations, StoreOptions};
pub use sqlite::SQLITE_POOL_SIZE;
