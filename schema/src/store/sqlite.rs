//! SQLite through diesel-async's `SyncConnectionWrapper`, the embedded
//! default: connection setup, migrations and the batch insert. Every other
//! operation is `DieselStore`'s. The batch insert runs sync diesel on a
//! blocking thread because diesel's SQLite batch-insert path exists only
//! there.

use super::diesel_store::{build_pool, checkout, run_migrations, DieselBackend, OwnedFuture};
use super::rollup_rows::{CatalogSlice, DeviceRow, HourRollups, StaleRow, WriteMarks};
use super::rows::NewReadingRow;
use super::transaction::ConnWork;
use super::{Migrations, StoreError};
use crate::db::{
    devices, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_stale, rollup_type_hour,
    sensor_data, SQLITE_MIGRATIONS,
};
use crate::reading::Reading;
use chrono::NaiveDateTime;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use std::future::Future;
use std::sync::Arc;

type Conn = SyncConnectionWrapper<SqliteConnection>;

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
    rollups: bool,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file at `path`, runs pending
    /// migrations and builds the pool.
    pub(crate) async fn open(
        path: &str,
        migrations: Migrations,
        pool_size: usize,
        rollups: bool,
    ) -> Result<Self, StoreError> {
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
            rollups,
        })
    }
}

/// Applies pending migrations on a plain connection, under one writer lock
/// so that processes starting together do not both apply them (each
/// migration's own transaction nests as a savepoint).
fn migrate(path: &str) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn =
        SqliteConnection::establish(path).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.batch_execute(CONNECTION_PRAGMAS)?;
    conn.immediate_transaction(|conn| {
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|_| ())
            .map_err(|e| StoreError::Migration(e.to_string()))
    })
}

impl DieselBackend for SqliteBackend {
    type Db = Sqlite;
    type Conn = Conn;
    const NAME: &'static str = "sqlite";
    // One writer at a time: a second transaction only waits for the lock.
    const CONCURRENT_WRITERS: bool = false;

    const MARK_EVERY_HOUR: &'static str = "INSERT OR IGNORE INTO rollup_dirty (bucket, marked_at) SELECT DISTINCT strftime('%Y-%m-%d %H:00:00', \"timestamp\"), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM sensor_data";

    type Pooled = Object<Conn>;

    fn conn(&self) -> impl Future<Output = Result<Object<Conn>, StoreError>> + Send {
        checkout(&self.pool)
    }

    fn rollups(&self) -> bool {
        self.rollups
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

    /// Sync diesel on the transaction's connection: its multi-row insert
    /// exists only there.
    fn write_hour(conn: &mut Conn, rollups: HourRollups) -> ConnWork<'_, ()> {
        Box::pin(async move {
            conn.spawn_blocking(move |conn| {
                use diesel::RunQueryDsl;
                for chunk in rollups.devices.chunks(ROWS_PER_STATEMENT) {
                    diesel::insert_into(rollup_device_hour::table)
                        .values(chunk)
                        .execute(conn)?;
                }
                for chunk in rollups.types.chunks(ROWS_PER_STATEMENT) {
                    diesel::insert_into(rollup_type_hour::table)
                        .values(chunk)
                        .execute(conn)?;
                }
                for chunk in rollups.id1s.chunks(ROWS_PER_STATEMENT) {
                    diesel::insert_into(rollup_id1_hour::table)
                        .values(chunk)
                        .execute(conn)?;
                }
                for chunk in rollups.catalog.chunks(ROWS_PER_STATEMENT) {
                    diesel::replace_into(devices::table)
                        .values(chunk)
                        .execute(conn)?;
                }
                Ok(())
            })
            .await?;
            Ok(())
        })
    }

    /// One `IMMEDIATE` transaction on a blocking thread: the rollup marks,
    /// then the rows.
    fn insert_rows(
        self: Arc<Self>,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<u64, StoreError>> {
        Box::pin(async move {
            let marks = WriteMarks::for_readings(self.rollups, &readings);
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
}
