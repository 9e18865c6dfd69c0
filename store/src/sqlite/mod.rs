//! SQLite through diesel-async's `SyncConnectionWrapper`, the embedded
//! default: connection setup, migrations and the batch insert. Every other
//! operation is written once in `sql/`, compiled here for SQLite. The batch insert runs sync diesel on a
//! blocking thread because diesel's SQLite batch-insert path exists only
//! there.

use crate::backend::{BackendOps, Batch};
use crate::failure::{Failure, Outcome};
use crate::operations::{OwnedFuture, SharedStore};
use crate::options::Migrations;
use crate::pool::{build_pool, checkout, run_migrations};
use crate::rollup_rows::{CatalogSlice, DeviceRow, HourRollups, StaleRow, WriteMarks};
use crate::rows::NewReadingRow;
use crate::schema::{devices, rollup_dirty, rollup_stale, sensor_data, SQLITE_MIGRATIONS};
use crate::transaction::ConnWork;
use chrono::NaiveDateTime;
use datastream_domain::StoreError;
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use std::future::Future;
use std::sync::Arc;

/// What the shared store code (`sql/`) runs on here.
type Db = diesel::sqlite::Sqlite;
/// The connection `sql/` queries take.
type Conn = SyncConnectionWrapper<SqliteConnection>;
/// This module's [`BackendOps`].
type Backend = SqliteBackend;

// Deliberately included by both backends: the shared code compiles once
// per backend, for its concrete connection type (see `sql/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

/// Opens the store on the SQLite file at `path` (see `crate::connect`).
pub(crate) async fn open(
    path: &str,
    migrations: Migrations,
    pool_size: usize,
    rollups: bool,
) -> Outcome<SharedStore> {
    let backend = SqliteBackend::open(path, migrations, pool_size).await?;
    Ok(Arc::new(sql::SqlStore::new(backend, rollups)))
}

/// Rows per INSERT statement: 5 variables each, well below SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 2_000;
/// Connections a pool keeps open unless `DATABASE_POOL_SIZE` says otherwise.
pub const SQLITE_POOL_SIZE: usize = 4;

/// WAL lets readers run beside the single writer; `busy_timeout` makes a
/// second writer wait instead of failing; NORMAL sync is durable in WAL mode
/// except for the last commits on power loss (not on a process crash).
/// `busy_timeout` comes first so that the other pragmas wait for a lock too.
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// The SQLite backend, on one database file.
pub(crate) struct SqliteBackend {
    pool: Pool<Conn>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file at `path`, runs pending
    /// migrations and builds the pool.
    pub(crate) async fn open(
        path: &str,
        migrations: Migrations,
        pool_size: usize,
    ) -> Outcome<Self> {
        run_migrations(migrations, path, migrate).await?;
        let mut config = ManagerConfig::<Conn>::default();
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = Conn::establish(&url).await?;
                conn.batch_execute(CONNECTION_PRAGMAS)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path, config);
        Ok(Self {
            pool: build_pool(manager, pool_size)?,
        })
    }
}

/// Applies pending migrations on a plain connection, under one writer lock
/// so that processes starting together do not both apply them (each
/// migration's own transaction nests as a savepoint).
fn migrate(path: &str) -> Outcome<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = SqliteConnection::establish(path).map_err(Failure::unavailable)?;
    conn.batch_execute(CONNECTION_PRAGMAS)?;
    conn.immediate_transaction(|conn| {
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|_| ())
            .map_err(|e| Failure(StoreError::Migration(e.to_string())))
    })
}

impl BackendOps for SqliteBackend {
    type Conn = Conn;
    type Pooled = Object<Conn>;
    const NAME: &'static str = "sqlite";
    // One writer at a time: a second transaction only waits for the lock.
    const CONCURRENT_WRITERS: bool = false;

    const MARK_EVERY_HOUR: &'static str = "INSERT OR IGNORE INTO rollup_dirty (bucket, marked_at) SELECT DISTINCT strftime('%Y-%m-%d %H:00:00', \"timestamp\"), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM sensor_data";

    fn conn(&self) -> impl Future<Output = Outcome<Object<Conn>>> + Send {
        checkout(&self.pool)
    }

    /// SQLite runs one write transaction at a time: refreshers take turns
    /// by themselves.
    fn begin_refresh(_conn: &mut Conn) -> ConnWork<'_, bool> {
        Box::pin(async { Ok(true) })
    }

    fn end_refresh(_conn: &mut Conn) -> ConnWork<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Deleting the mark takes the write lock (a writer in progress is
    /// waited for: with one writer at a time there is no cycle to close).
    fn claim_hour(conn: &mut Conn, hour: NaiveDateTime) -> ConnWork<'_, bool> {
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        Box::pin(async move {
            let taken = diesel::delete(rollup_dirty::table.filter(rollup_dirty::bucket.eq(hour)))
                .execute(conn)
                .await?;
            Ok(taken > 0)
        })
    }

    /// Plain reads: the transaction already holds SQLite's one write lock.
    fn catalog_for_update(conn: &mut Conn, slice: CatalogSlice) -> ConnWork<'_, Vec<DeviceRow>> {
        Box::pin(async move {
            let rows = conn
                .spawn_blocking(move |conn| {
                    use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl, RunQueryDsl};
                    let mut rows = Vec::new();
                    for chunk in slice.id1s.chunks(ROWS_PER_STATEMENT) {
                        let found: Vec<DeviceRow> = devices::table
                            .filter(devices::id1.eq_any(chunk))
                            .filter(key_from!(devices, &slice.first))
                            .filter(key_through!(devices, &slice.last))
                            .load(conn)?;
                        rows.extend(found);
                    }
                    Ok(rows)
                })
                .await?;
            Ok(rows)
        })
    }

    /// One `IMMEDIATE` transaction on a blocking thread: the rollup marks,
    /// then the rows.
    fn insert_rows(
        self: Arc<Self>,
        readings: Batch,
        marks: WriteMarks,
    ) -> OwnedFuture<Outcome<u64>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let inserted = conn
                .spawn_blocking(move |conn| {
                    let rows: Vec<NewReadingRow<'_>> =
                        readings.iter().map(NewReadingRow::from).collect();
                    conn.immediate_transaction(|conn| {
                        match &marks {
                            WriteMarks::Hours(hours) => diesel::RunQueryDsl::execute(
                                diesel::insert_or_ignore_into(rollup_dirty::table).values(hours),
                                conn,
                            )?,
                            WriteMarks::Stale => diesel::RunQueryDsl::execute(
                                diesel::insert_or_ignore_into(rollup_stale::table)
                                    .values(StaleRow::ROW),
                                conn,
                            )?,
                        };
                        let mut inserted = 0u64;
                        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                            let insert =
                                diesel::insert_or_ignore_into(sensor_data::table).values(chunk);
                            inserted += diesel::RunQueryDsl::execute(insert, conn)? as u64;
                        }
                        Ok(inserted)
                    })
                })
                .await?;
            Ok(inserted)
        })
    }

    /// Sync diesel on the transaction's connection: its multi-row insert
    /// exists only there.
    fn write_hour(conn: &mut Conn, rollups: HourRollups) -> ConnWork<'_, ()> {
        Box::pin(async move {
            conn.spawn_blocking(move |conn| {
                use diesel::RunQueryDsl;
                write_hour_rows!(conn, &rollups, ROWS_PER_STATEMENT);
                Ok(())
            })
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sql::readings::filtered_readings;
    use crate::schema::SQLITE_MIGRATIONS;
    use chrono::{TimeZone, Utc};
    use datastream_domain::filter::{FilterParams, PageCursor};
    use datastream_domain::filter::{Order, ReadingFilter};
    use diesel::sql_types::Text;
    use diesel::sqlite::{Sqlite, SqliteConnection};
    use diesel::QueryDsl;
    use diesel::{Connection, QueryableByName, RunQueryDsl};
    use diesel_migrations::MigrationHarness;

    #[derive(QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// SQLite's plan for the page query of `filter`, its values left as
    /// parameters as the store sends them.
    fn sqlite_plan(filter: &ReadingFilter) -> String {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let query = filtered_readings(filter).limit(101);
        let sql = diesel::debug_query::<Sqlite, _>(&query).to_string();
        let sql = sql.split(" -- binds:").next().unwrap();
        let steps: Vec<PlanStep> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load(&mut conn)
            .unwrap();
        steps
            .into_iter()
            .map(|s| s.detail)
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cursor_filter(order: Order) -> ReadingFilter {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        ReadingFilter::parse(FilterParams::default(), now)
            .unwrap()
            .with_order(order)
            .with_cursor(PageCursor {
                timestamp: now,
                id: 42,
            })
            .unwrap()
    }

    #[test]
    fn sqlite_range_scans_the_timestamp_index_for_a_cursor_page() {
        let desc = sqlite_plan(&cursor_filter(Order::Desc));
        assert_eq!(
            desc,
            "SEARCH sensor_data USING INDEX idx_sensor_data_timestamp (timestamp<?)"
        );
        let asc = sqlite_plan(&cursor_filter(Order::Asc));
        assert_eq!(
            asc,
            "SEARCH sensor_data USING INDEX idx_sensor_data_timestamp (timestamp>?)"
        );
    }
}
