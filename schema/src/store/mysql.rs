//! MySQL / MariaDB through diesel-async's `AsyncMysqlConnection`, pooled
//! with deadpool.

use super::connection_health::ConnectionHealth;
use super::mysql_session::configure_session;
use super::rows::NewReadingRow;
use super::shared::diesel_store;
use super::{Migrations, Store, StoreError};
use crate::db::{sensor_data, MYSQL_MIGRATIONS};
use crate::reading::Reading;
use async_trait::async_trait;
use diesel::mysql::Mysql;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use std::time::Duration;

/// Rows per INSERT statement: far below MySQL's 65,535 placeholders
/// (5 per row) and the default `max_allowed_packet`.
const ROWS_PER_STATEMENT: usize = 2_000;
/// Connections a pool keeps open unless `DATABASE_POOL_SIZE` says otherwise.
pub const MYSQL_POOL_SIZE: usize = 8;
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on MySQL or MariaDB.
pub struct MysqlStore {
    pool: Pool<AsyncMysqlConnection>,
}

impl MysqlStore {
    /// Connects, runs pending migrations (unless told not to: a read
    /// replica) and builds the pool.
    pub async fn open(
        url: &str,
        migrations: Migrations,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        if migrations == Migrations::Run {
            Self::migrate(url).await?;
        }
        Self::pool(url, pool_size)
    }

    async fn migrate(url: &str) -> Result<(), StoreError> {
        let migration_url = url.to_owned();
        // The wrapper blocks on the runtime, so it must not run on a worker.
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            use diesel::Connection;
            let mut conn = <AsyncConnectionWrapper<AsyncMysqlConnection> as Connection>::establish(
                &migration_url,
            )
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            // DDL commits implicitly, so a transaction cannot keep replicas
            // that start together from both applying a migration; a named
            // lock does.
            use diesel::connection::SimpleConnection;
            SimpleConnection::batch_execute(&mut conn, "DO GET_LOCK('datastream_migrations', 60)")?;
            let result = conn
                .run_pending_migrations(MYSQL_MIGRATIONS)
                .map(|_| ())
                .map_err(|e| StoreError::Migration(e.to_string()));
            SimpleConnection::batch_execute(&mut conn, "DO RELEASE_LOCK('datastream_migrations')")?;
            result
        })
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))?
    }

    fn pool(url: &str, pool_size: usize) -> Result<Self, StoreError> {
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
        let manager =
            AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .wait_timeout(Some(CHECKOUT_TIMEOUT))
            .create_timeout(Some(CHECKOUT_TIMEOUT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    async fn conn(&self) -> Result<Object<AsyncMysqlConnection>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
    /// Inserts `readings` (not empty) in one transaction, ignoring existing
    /// keys; returns how many rows were new.
    async fn insert_rows(&self, readings: &[Reading]) -> Result<u64, StoreError> {
        let rows: Vec<NewReadingRow<'_>> = readings.iter().map(NewReadingRow::from).collect();
        let mut conn = self.conn().await?;
        let inserted = conn
            .transaction(async |conn| {
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
    }
}

diesel_store!(MysqlStore, Mysql);

#[async_trait]
impl Store for MysqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "mysql"
    }
}
