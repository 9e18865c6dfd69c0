//! MySQL / MariaDB through diesel-async's `AsyncMysqlConnection`, pooled
//! with deadpool: connection setup, migrations and the batch insert. Every
//! other operation is `DieselStore`'s.

use super::connection_health::ConnectionHealth;
use super::diesel_store::{build_pool, checkout, run_migrations, DieselBackend, OwnedFuture};
use super::mysql_session::configure_session;
use super::rollup_rows::{DeviceRow, HourRollups, StaleRow, WriteMarks};
use super::rows::NewReadingRow;
use super::transaction::ConnWork;
use super::{Migrations, StoreError};
use crate::db::{
    devices, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_stale, rollup_type_hour,
    sensor_data, MYSQL_MIGRATIONS,
};
use crate::reading::Reading;
use chrono::NaiveDateTime;
use diesel::mysql::Mysql;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use std::future::Future;
use std::sync::Arc;

/// Rows per INSERT statement: far below MySQL's 65,535 placeholders
/// (5 per row) and the default `max_allowed_packet`.
const ROWS_PER_STATEMENT: usize = 2_000;
/// Connections a pool keeps open unless `DATABASE_POOL_SIZE` says otherwise.
pub const MYSQL_POOL_SIZE: usize = 8;

/// The MySQL or MariaDB backend.
pub(crate) struct MysqlBackend {
    pool: Pool<AsyncMysqlConnection>,
    rollups: bool,
}

impl MysqlBackend {
    /// Connects, runs pending migrations (unless told not to: a read
    /// replica) and builds the pool.
    pub(crate) async fn open(
        url: &str,
        migrations: Migrations,
        pool_size: usize,
        rollups: bool,
    ) -> Result<Self, StoreError> {
        run_migrations(migrations, url, migrate).await?;
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(
            url,
            pool_config(),
        );
        Ok(Self {
            pool: build_pool(manager, pool_size)?,
            rollups,
        })
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
fn migrate(url: &str) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = <AsyncConnectionWrapper<AsyncMysqlConnection> as Connection>::establish(url)
        .map_err(|e| StoreError::Unavailable(with_hint(e.to_string())))?;
    // DDL commits implicitly, so a transaction cannot keep replicas that
    // start together from both applying a migration; a named lock does.
    conn.batch_execute("DO GET_LOCK('datastream_migrations', 60)")?;
    let result = conn
        .run_pending_migrations(MYSQL_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| StoreError::Migration(e.to_string()));
    conn.batch_execute("DO RELEASE_LOCK('datastream_migrations')")?;
    result
}

/// Every pooled connection gets the session settings and health
/// instrumentation; it is pinged on checkout only after a failure or an
/// idle second (`connection_health.rs`).
fn pool_config() -> ManagerConfig<AsyncMysqlConnection> {
    let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
    config.custom_setup = Box::new(|url| {
        let url = url.to_owned();
        Box::pin(async move {
            let mut conn = AsyncMysqlConnection::establish(&url).await?;
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

impl DieselBackend for MysqlBackend {
    type Db = Mysql;
    type Conn = AsyncMysqlConnection;
    const NAME: &'static str = "mysql";
    // InnoDB takes concurrent inserts into one table.
    const CONCURRENT_WRITERS: bool = true;

    const MARK_EVERY_HOUR: &'static str = "INSERT IGNORE INTO rollup_dirty (bucket, marked_at) SELECT DISTINCT DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:00:00'), UTC_TIMESTAMP(6) FROM sensor_data";

    type Pooled = Object<AsyncMysqlConnection>;

    fn conn(
        &self,
    ) -> impl Future<Output = Result<Object<AsyncMysqlConnection>, StoreError>> + Send {
        checkout(&self.pool)
    }

    fn rollups(&self) -> bool {
        self.rollups
    }

    fn begin_refresh(conn: &mut AsyncMysqlConnection) -> ConnWork<'_, bool> {
        Box::pin(async move {
            let got: Vec<Option<i32>> =
                diesel::select(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Integer>,
                >("GET_LOCK('datastream_rollup_refresh', 0)"))
                .load(conn)
                .await?;
            Ok(matches!(got.as_slice(), [Some(1)]))
        })
    }

    fn end_refresh(conn: &mut AsyncMysqlConnection) -> ConnWork<'_, ()> {
        use diesel_async::SimpleAsyncConnection;
        Box::pin(async move {
            conn.batch_execute("DO RELEASE_LOCK('datastream_rollup_refresh')")
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
        id1s: Vec<String>,
    ) -> ConnWork<'_, Vec<DeviceRow>> {
        use diesel::{ExpressionMethods, QueryDsl};
        Box::pin(async move {
            let mut rows = Vec::new();
            for chunk in id1s.chunks(ROWS_PER_STATEMENT) {
                let locked: Vec<DeviceRow> = devices::table
                    .filter(devices::id1.eq_any(chunk))
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
            for chunk in rollups.devices.chunks(ROWS_PER_STATEMENT) {
                diesel::insert_into(rollup_device_hour::table)
                    .values(chunk)
                    .execute(conn)
                    .await?;
            }
            for chunk in rollups.types.chunks(ROWS_PER_STATEMENT) {
                diesel::insert_into(rollup_type_hour::table)
                    .values(chunk)
                    .execute(conn)
                    .await?;
            }
            for chunk in rollups.id1s.chunks(ROWS_PER_STATEMENT) {
                diesel::insert_into(rollup_id1_hour::table)
                    .values(chunk)
                    .execute(conn)
                    .await?;
            }
            for chunk in rollups.catalog.chunks(ROWS_PER_STATEMENT) {
                diesel::replace_into(devices::table)
                    .values(chunk)
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
    }

    /// One transaction: the rollup marks first (so that a refresher taking
    /// a mark waits for this write), then the rows.
    fn insert_rows(
        self: Arc<Self>,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<u64, StoreError>> {
        Box::pin(async move {
            let rows: Vec<NewReadingRow<'_>> = readings.iter().map(NewReadingRow::from).collect();
            let marks = WriteMarks::for_readings(self.rollups, &readings);
            let mut conn = self.conn().await?;
            let inserted = conn
                .transaction(async |conn| {
                    match &marks {
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
                    let mut inserted = 0u64;
                    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                        let n = diesel::insert_or_ignore_into(sensor_data::table)
                            .values(chunk)
                            .execute(conn)
                            .await?;
                        inserted += n as u64;
                    }
                    Ok::<_, diesel::result::Error>(inserted)
                })
                .await?;
            Ok(inserted)
        })
    }
}
