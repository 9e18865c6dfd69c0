//! SQLite through diesel-async's `SyncConnectionWrapper`, the embedded
//! default. Reads share the generic query code; the batch insert runs sync
//! diesel on a blocking thread because diesel's SQLite batch-insert path
//! exists only there.

use super::rows::NewReadingRow;
use super::shared::diesel_store;
use super::{Migrations, Store, StoreError};
use crate::db::{sensor_data, SQLITE_MIGRATIONS};
use crate::reading::Reading;
use async_trait::async_trait;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use std::time::Duration;

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// Rows per INSERT statement: 5 variables each, well below SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 2_000;
/// Connections a pool keeps open unless `DATABASE_POOL_SIZE` says otherwise.
pub const SQLITE_POOL_SIZE: usize = 4;
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL lets readers run beside the single writer; `busy_timeout` makes a
/// second writer wait instead of failing; NORMAL sync is durable in WAL mode
/// except for the last commits on power loss (not on a process crash).
/// `busy_timeout` comes first so that the other pragmas wait for a lock too.
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// The store on an SQLite file.
pub struct SqliteStore {
    pool: Pool<Conn>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, runs pending
    /// migrations and builds the pool.
    pub async fn open(
        path: &str,
        migrations: Migrations,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        if migrations == Migrations::Run {
            Self::migrate(path).await?;
        }
        Self::pool(path, pool_size)
    }

    async fn migrate(path: &str) -> Result<(), StoreError> {
        let migration_path = path.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let mut conn = SqliteConnection::establish(&migration_path)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            conn.batch_execute(CONNECTION_PRAGMAS)?;
            // One writer lock around all migrations, so processes starting
            // together do not both apply them; each migration's own
            // transaction nests as a savepoint.
            conn.immediate_transaction(|conn| {
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|_| ())
                    .map_err(|e| StoreError::Migration(e.to_string()))
            })
        })
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))?
    }

    fn pool(path: &str, pool_size: usize) -> Result<Self, StoreError> {
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
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .wait_timeout(Some(CHECKOUT_TIMEOUT))
            .create_timeout(Some(CHECKOUT_TIMEOUT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
    /// Inserts `readings` (not empty) in one `IMMEDIATE` transaction on a
    /// blocking thread (diesel's SQLite batch insert is sync-only), ignoring
    /// existing keys; returns how many rows were new.
    async fn insert_rows(&self, readings: &[Reading]) -> Result<u64, StoreError> {
        let owned = readings.to_vec();
        let mut conn = self.conn().await?;
        let inserted = conn
            .spawn_blocking(move |conn| {
                let rows: Vec<NewReadingRow<'_>> = owned.iter().map(NewReadingRow::from).collect();
                conn.immediate_transaction(|conn| {
                    let mut inserted = 0u64;
                    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                        let insert =
                            diesel::insert_or_ignore_into(sensor_data::table).values(chunk);
                        let n = diesel::RunQueryDsl::execute(insert, conn)?;
                        inserted += n as u64;
                    }
                    Ok(inserted)
                })
            })
            .await?;
        Ok(inserted)
    }
}

diesel_store!(SqliteStore, Sqlite);

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.batch_execute("SELECT 1").await?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }
}
