//! MySQL / MariaDB through diesel-async's `AsyncMysqlConnection`, pooled
//! with deadpool.

use super::connection_health::ConnectionHealth;
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
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
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

/// Lets MariaDB's planner see what a range on `(sensor_type, timestamp)`
/// saves over `ref` on `(sensor_type)` for a newest-first page below a time
/// bound (`to`, or a cursor). Without it MariaDB 10.11 picks `ref` whenever
/// the bound covers most of the type's rows and walks back from the newest
/// row: `sensor_type=humidity&to=…` over 10M rows read 750,101 rows for a
/// page of 100 (~1 s); with it, 101. `disable_max_seek` stops the cost model
/// from capping the seeks it charges `ref`. The variable takes these names
/// from MariaDB 10.6.18 / 10.11.8 on (10.6.17 / 10.11.7 had a number, MySQL
/// and older MariaDB have none); where the statement fails the session
/// keeps the server's planner settings.
const PREFER_RANGE_OVER_REF: &str = "SET SESSION optimizer_adjust_secondary_key_costs = \
     CONCAT_WS(',', NULLIF(@@optimizer_adjust_secondary_key_costs, ''), 'disable_max_seek')";

/// Settings every pooled connection gets before its first use.
async fn configure_session(conn: &mut AsyncMysqlConnection) -> diesel::QueryResult<()> {
    // created_at/updated_at default to CURRENT_TIMESTAMP(6), which is in the
    // session time zone; every value here is UTC.
    conn.batch_execute("SET time_zone = '+00:00'").await?;
    // A planner preference is not worth a connection: whatever the server
    // says to it, the session is usable and keeps its defaults.
    if let Err(error) = conn.batch_execute(PREFER_RANGE_OVER_REF).await {
        let unknown = matches!(&error, diesel::result::Error::DatabaseError(_, info)
            if info.message().contains("Unknown system variable"));
        if unknown {
            tracing::debug!(%error, "the server has no optimizer_adjust_secondary_key_costs; keeping its planner defaults");
        } else {
            tracing::warn!(%error, "could not add disable_max_seek to optimizer_adjust_secondary_key_costs; a type's pages below a time bound may be slow");
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_test_support::TestDb;
    use diesel::sql_types::Text;

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }

    async fn session_value(conn: &mut AsyncMysqlConnection, expr: &str) -> String {
        let rows: Vec<Setting> = diesel::sql_query(format!("SELECT CAST({expr} AS CHAR) AS value"))
            .load(conn)
            .await
            .unwrap();
        rows.into_iter().next().unwrap().value
    }

    #[tokio::test]
    async fn pooled_sessions_run_in_utc_and_let_the_planner_prefer_ranges() {
        let Some(db) = TestDb::mysql().await else {
            return;
        };
        let mut conn = AsyncMysqlConnection::establish(db.url()).await.unwrap();
        let knows_setting = session_value(
            &mut conn,
            "(SELECT COUNT(*) FROM information_schema.SYSTEM_VARIABLES \
              WHERE VARIABLE_NAME = 'OPTIMIZER_ADJUST_SECONDARY_KEY_COSTS')",
        )
        .await
            == "1";
        let before = if knows_setting {
            session_value(&mut conn, "@@session.optimizer_adjust_secondary_key_costs").await
        } else {
            String::new()
        };

        configure_session(&mut conn).await.unwrap();

        assert_eq!(
            session_value(&mut conn, "@@session.time_zone").await,
            "+00:00"
        );
        // 10.6.17 / 10.11.7 had a number here, which the statement cannot
        // extend; the session then keeps it.
        let named_flags = knows_setting && before.parse::<u32>().is_err();
        if named_flags {
            let after =
                session_value(&mut conn, "@@session.optimizer_adjust_secondary_key_costs").await;
            let flags: Vec<&str> = after.split(',').collect();
            assert!(flags.contains(&"disable_max_seek"), "{after}");
            for kept in before.split(',').filter(|f| !f.is_empty()) {
                assert!(flags.contains(&kept), "{kept} kept in {after}");
            }
        }
    }
}
