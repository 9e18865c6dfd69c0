//! MySQL / MariaDB through diesel-async's `AsyncMysqlConnection`, pooled
//! with deadpool: connection setup, migrations and the batch insert. Every
//! other operation is written once in `sql/`, compiled here for MySQL.

use crate::backend::{BackendOps, Batch};
use crate::failure::{Failure, Outcome};
use crate::operations::{OwnedFuture, SharedStore};
use crate::options::{InsertMethod, Migrations, StoreOptions};
use crate::pool::{build_pool, checkout, run_migrations};
use crate::rollup_rows::{CatalogSlice, DeviceRow, HourRollups, StaleRow, WriteMarks};
use crate::rows::NewReadingRow;
use crate::schema::{devices, rollup_dirty, rollup_stale, sensor_data, MYSQL_MIGRATIONS};
use crate::transaction::ConnWork;
use chrono::NaiveDateTime;
use connection_health::ConnectionHealth;
use datastream_domain::reading::Reading;
use datastream_domain::StoreError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use load_data::{says_unavailable, BatchFiles};
use session::configure_session;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod connection_health;
mod load_data;
mod named_lock;
mod session;

/// What the shared store code (`sql/`) runs on here.
type Db = diesel::mysql::Mysql;
/// The connection `sql/` queries take.
type Conn = AsyncMysqlConnection;
/// This module's [`BackendOps`].
type Backend = MysqlBackend;

// Deliberately included by both backends: the shared code compiles once
// per backend, for its concrete connection type (see `sql/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

/// Opens the store on the MySQL database at `url` (see `crate::connect`).
pub(crate) async fn open(
    url: &str,
    migrations: Migrations,
    options: StoreOptions,
) -> Outcome<SharedStore> {
    let backend = MysqlBackend::open(url, migrations, options).await?;
    Ok(Arc::new(sql::SqlStore::new(backend, options.rollups)))
}

/// Rows per INSERT statement: far below MySQL's 65,535 placeholders
/// (5 per row) and the default `max_allowed_packet`.
const ROWS_PER_STATEMENT: usize = 2_000;
/// Connections a pool keeps open unless `DATABASE_POOL_SIZE` says otherwise.
pub const MYSQL_POOL_SIZE: usize = 8;

/// The MySQL or MariaDB backend.
pub(crate) struct MysqlBackend {
    pool: Pool<AsyncMysqlConnection>,
    load_data: LoadData,
}

/// Whether batches go in as `LOAD DATA LOCAL INFILE` (`mysql_load_data.rs`)
/// or as multi-row `INSERT IGNORE`s.
struct LoadData {
    files: BatchFiles,
    /// Chosen (`InsertMethod::Auto`) and not found unavailable yet.
    enabled: AtomicBool,
    /// Whether the writer in use has been logged.
    announced: AtomicBool,
}

impl MysqlBackend {
    /// Connects, runs pending migrations (unless told not to: a read
    /// replica) and builds the pool.
    pub(crate) async fn open(
        url: &str,
        migrations: Migrations,
        options: StoreOptions,
    ) -> Outcome<Self> {
        run_migrations(migrations, url, migrate).await?;
        let files = BatchFiles::default();
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(
            url,
            pool_config(files.clone()),
        );
        Ok(Self {
            pool: build_pool(manager, options.pool_size.unwrap_or(MYSQL_POOL_SIZE))?,
            load_data: LoadData {
                files,
                enabled: AtomicBool::new(options.insert_method == InsertMethod::Auto),
                announced: AtomicBool::new(false),
            },
        })
    }

    /// Logs, once, how batches are written.
    fn announce(&self, how: &str, reason: Option<&str>) {
        if !self.load_data.announced.swap(true, Ordering::Relaxed) {
            match reason {
                None => tracing::info!("batches are written with {how}"),
                Some(reason) => {
                    tracing::warn!(%reason, "LOAD DATA LOCAL INFILE is unavailable; batches are written with {how}")
                }
            }
        }
    }

    /// One batch in one transaction: the rollup marks first (so that a
    /// refresher taking a mark waits for this write), then the rows, as
    /// LOAD DATA or as INSERTs. `Ok(None)`: LOAD DATA turned out to be
    /// unavailable and nothing was written.
    async fn write_batch(
        &self,
        conn: &mut AsyncMysqlConnection,
        readings: &[Reading],
        marks: &WriteMarks,
        load_data: bool,
    ) -> Outcome<Option<u64>> {
        let parked = load_data.then(|| self.load_data.files.park(readings));
        let result = conn
            .transaction(async |conn| {
                match marks {
                    WriteMarks::Hours(hours) => {
                        diesel::insert_or_ignore_into(rollup_dirty::table)
                            .values(hours)
                            .execute(conn)
                            .await?
                    }
                    WriteMarks::Stale => {
                        diesel::insert_or_ignore_into(rollup_stale::table)
                            .values(StaleRow::ROW)
                            .execute(conn)
                            .await?
                    }
                };
                if let Some(parked) = &parked {
                    let n = diesel::sql_query(parked.statement()).execute(conn).await?;
                    return Ok::<_, diesel::result::Error>(n as u64);
                }
                let rows: Vec<NewReadingRow<'_>> =
                    readings.iter().map(NewReadingRow::from).collect();
                let mut inserted = 0u64;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let n = diesel::insert_or_ignore_into(sensor_data::table)
                        .values(chunk)
                        .execute(conn)
                        .await?;
                    inserted += n as u64;
                }
                Ok(inserted)
            })
            .await;
        match result {
            Ok(n) => Ok(Some(n)),
            Err(diesel::result::Error::DatabaseError(_, info))
                if load_data && says_unavailable(info.message()) =>
            {
                self.load_data.enabled.store(false, Ordering::Relaxed);
                self.announce("multi-row INSERT IGNORE", Some(info.message()));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A connection error, with what to do about the common first-run one.
fn with_hint(message: String) -> String {
    match database_in_unknown_database(&message) {
        Some(name) => format!(
            "{message}: create it first, e.g. mariadb -e 'CREATE DATABASE {name}' (datastream creates its tables, not the database)"
        ),
        None => message,
    }
}

/// The name in MySQL's `Unknown database 'NAME'`.
fn database_in_unknown_database(message: &str) -> Option<&str> {
    let rest = &message[message.find("Unknown database '")? + "Unknown database '".len()..];
    rest.split('\'').next()
}

/// Applies pending migrations over a blocking connection (the wrapper
/// blocks on the runtime, so this runs on a blocking thread).
fn migrate(url: &str) -> Outcome<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = <AsyncConnectionWrapper<AsyncMysqlConnection> as Connection>::establish(url)
        .map_err(|e| Failure::unavailable(with_hint(e.to_string())))?;
    // DDL commits implicitly, so a transaction cannot keep replicas that
    // start together from both applying a migration; a named lock does.
    conn.batch_execute(&format!("DO {}", named_lock::MIGRATIONS.get(60)))?;
    let result = conn
        .run_pending_migrations(MYSQL_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| Failure(StoreError::Migration(e.to_string())));
    conn.batch_execute(&named_lock::MIGRATIONS.release())?;
    result
}

/// Every pooled connection gets the session settings, health
/// instrumentation and `files` as its LOCAL INFILE handler; it is pinged on
/// checkout only after a failure or an idle second (`connection_health.rs`).
fn pool_config(files: BatchFiles) -> ManagerConfig<AsyncMysqlConnection> {
    let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let files = files.clone();
        Box::pin(async move {
            let mut conn = connect_with_batch_files(&url, files).await?;
            conn.set_instrumentation(ConnectionHealth::new());
            configure_session(&mut conn)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        Box::pin(async move {
            let needs_check = conn
                .instrumentation()
                .downcast_mut::<ConnectionHealth>()
                .is_none_or(ConnectionHealth::take_needs_check);
            if needs_check {
                // diesel-async's own check: what every checkout ran before.
                conn.ping(&RecyclingMethod::Verified).await?;
            }
            Ok(())
        })
    }));
    config
}

/// A connection as diesel-async's `establish` opens one, plus the handler
/// that hands parked batches to the server.
async fn connect_with_batch_files(
    url: &str,
    files: BatchFiles,
) -> Result<AsyncMysqlConnection, diesel::ConnectionError> {
    let opts = mysql_async::Opts::from_url(url)
        .map_err(|e| diesel::ConnectionError::InvalidConnectionUrl(e.to_string()))?;
    let opts = mysql_async::OptsBuilder::from_opts(opts)
        // What diesel-async sets: its own statement cache, and found rows
        // as affected rows.
        .stmt_cache_size(0)
        .client_found_rows(true)
        .local_infile_handler(Some(files));
    let conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    AsyncMysqlConnection::try_from(conn).await
}

impl BackendOps for MysqlBackend {
    type Conn = AsyncMysqlConnection;
    type Pooled = Object<AsyncMysqlConnection>;
    const NAME: &'static str = "mysql";
    // InnoDB takes concurrent inserts into one table.
    const CONCURRENT_WRITERS: bool = true;

    const MARK_EVERY_HOUR: &'static str = "INSERT IGNORE INTO rollup_dirty (bucket, marked_at) SELECT DISTINCT DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:00:00'), UTC_TIMESTAMP(6) FROM sensor_data";

    fn conn(&self) -> impl Future<Output = Outcome<Object<AsyncMysqlConnection>>> + Send {
        checkout(&self.pool)
    }

    fn begin_refresh(conn: &mut AsyncMysqlConnection) -> ConnWork<'_, bool> {
        Box::pin(async move {
            let got: Vec<Option<i32>> =
                diesel::select(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Integer>,
                >(&named_lock::ROLLUP_REFRESH.get(0)))
                .load(conn)
                .await?;
            Ok(matches!(got.as_slice(), [Some(1)]))
        })
    }

    fn end_refresh(conn: &mut AsyncMysqlConnection) -> ConnWork<'_, ()> {
        use diesel_async::SimpleAsyncConnection;
        Box::pin(async move {
            conn.batch_execute(&named_lock::ROLLUP_REFRESH.release())
                .await?;
            Ok(())
        })
    }

    fn claim_hour(conn: &mut AsyncMysqlConnection, hour: NaiveDateTime) -> ConnWork<'_, bool> {
        use diesel::{ExpressionMethods, QueryDsl};
        Box::pin(async move {
            let locked = rollup_dirty::table
                .filter(rollup_dirty::bucket.eq(hour))
                .select(rollup_dirty::bucket)
                .for_update()
                .no_wait()
                .load::<NaiveDateTime>(conn)
                .await;
            match locked {
                Ok(rows) if rows.is_empty() => Ok(false),
                Ok(_) => {
                    diesel::delete(rollup_dirty::table.filter(rollup_dirty::bucket.eq(hour)))
                        .execute(conn)
                        .await?;
                    Ok(true)
                }
                // NOWAIT found the mark locked: a writer is at this hour.
                Err(diesel::result::Error::DatabaseError(_, info))
                    if info.message().contains("Lock wait timeout") =>
                {
                    Ok(false)
                }
                Err(error) => Err(error.into()),
            }
        })
    }

    fn catalog_for_update(
        conn: &mut AsyncMysqlConnection,
        slice: CatalogSlice,
    ) -> ConnWork<'_, Vec<DeviceRow>> {
        use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
        Box::pin(async move {
            let mut rows = Vec::new();
            for chunk in slice.id1s.chunks(ROWS_PER_STATEMENT) {
                let locked: Vec<DeviceRow> = devices::table
                    .filter(devices::id1.eq_any(chunk))
                    .filter(key_from!(devices, &slice.first))
                    .filter(key_through!(devices, &slice.last))
                    .for_update()
                    .load(conn)
                    .await?;
                rows.extend(locked);
            }
            Ok(rows)
        })
    }

    fn write_hour(conn: &mut AsyncMysqlConnection, rollups: HourRollups) -> ConnWork<'_, ()> {
        Box::pin(async move {
            write_hour_rows!(conn, &rollups, ROWS_PER_STATEMENT, await);
            Ok(())
        })
    }

    /// One transaction per batch ([`MysqlBackend::write_batch`]), as LOAD
    /// DATA while the server allows it, else as INSERTs.
    fn insert_rows(
        self: Arc<Self>,
        readings: Batch,
        marks: WriteMarks,
    ) -> OwnedFuture<Outcome<u64>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            if AtomicBool::load(&self.load_data.enabled, Ordering::Relaxed) {
                if let Some(n) = self.write_batch(&mut conn, &readings, &marks, true).await? {
                    self.announce("LOAD DATA LOCAL INFILE, streamed from memory", None);
                    return Ok(n);
                }
            } else {
                self.announce("multi-row INSERT IGNORE", None);
            }
            let written = self
                .write_batch(&mut conn, &readings, &marks, false)
                .await?;
            Ok(written.unwrap_or_default())
        })
    }
}
