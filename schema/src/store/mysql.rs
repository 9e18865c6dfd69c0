//! MySQL / MariaDB through diesel-async's `AsyncMysqlConnection`, pooled
//! with deadpool.

use super::query::{filter_conditions, filtered_readings};
use super::rows::{NewReadingRow, ReadingRow, UserRow};
use super::{
    in_chunks, InsertOutcome, ReadingStore, Store, StoreError, StoredReading, UserStore,
    WRITE_CHUNK,
};
use crate::db::{sensor_data, users, MYSQL_MIGRATIONS};
use crate::filter::ReadingFilter;
use crate::reading::Reading;
use crate::user::{Role, User, Username};
use async_trait::async_trait;
use diesel::mysql::Mysql;
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use std::time::Duration;

/// Rows per INSERT statement: far below MySQL's 65,535 placeholders
/// (5 per row) and the default `max_allowed_packet`.
const ROWS_PER_STATEMENT: usize = 2_000;
const POOL_SIZE: usize = 8;
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on MySQL or MariaDB.
pub struct MysqlStore {
    pool: Pool<AsyncMysqlConnection>,
}

impl MysqlStore {
    /// Connects, runs pending migrations and builds the pool.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
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
        .map_err(|e| StoreError::Migration(e.to_string()))??;

        let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
        // created_at/updated_at default to CURRENT_TIMESTAMP(6), which is in
        // the session time zone; every value in this schema is UTC.
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = AsyncMysqlConnection::establish(&url).await?;
                conn.batch_execute("SET time_zone = '+00:00'")
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager =
            AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
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

    /// The next chunk of ids matching `filter`'s conditions after `last`.
    async fn matching_ids(
        &self,
        filter: &ReadingFilter,
        last: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn().await?;
        let ids = filter_conditions(sensor_data::table.into_boxed::<Mysql>(), filter)
            .select(sensor_data::id)
            .filter(sensor_data::id.gt(last))
            .order(sensor_data::id.asc())
            .limit(WRITE_CHUNK)
            .load(&mut conn)
            .await?;
        Ok(ids)
    }
}

#[async_trait]
impl ReadingStore for MysqlStore {
    async fn insert_batch(&self, readings: &[Reading]) -> Result<InsertOutcome, StoreError> {
        if readings.is_empty() {
            return Ok(InsertOutcome::default());
        }
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
        Ok(InsertOutcome {
            inserted,
            duplicate: readings.len() as u64 - inserted,
        })
    }

    async fn query(&self, filter: &ReadingFilter) -> Result<Vec<StoredReading>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<ReadingRow> = filtered_readings::<Mysql>(filter)
            .limit(i64::from(filter.limit()))
            .offset(i64::try_from(filter.offset()).unwrap_or(i64::MAX))
            .load(&mut conn)
            .await?;
        Ok(rows.into_iter().map(StoredReading::from).collect())
    }

    async fn get(&self, id: i64) -> Result<Option<StoredReading>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<ReadingRow> = sensor_data::table
            .find(id)
            .first(&mut conn)
            .await
            .optional()?;
        Ok(row.map(StoredReading::from))
    }

    async fn count(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let n: i64 = filter_conditions(sensor_data::table.into_boxed::<Mysql>(), filter)
            .count()
            .get_result(&mut conn)
            .await?;
        Ok(n as u64)
    }

    async fn update_value(&self, filter: &ReadingFilter, value: f64) -> Result<u64, StoreError> {
        let now = chrono::Utc::now().naive_utc();
        in_chunks(
            |last| self.matching_ids(filter, last),
            |ids| async move {
                let mut conn = self.conn().await?;
                let n = diesel::update(sensor_data::table.filter(sensor_data::id.eq_any(ids)))
                    .set((
                        sensor_data::sensor_value.eq(value),
                        sensor_data::updated_at.eq(now),
                    ))
                    .execute(&mut conn)
                    .await?;
                Ok(n as u64)
            },
        )
        .await
    }

    async fn delete(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        in_chunks(
            |last| self.matching_ids(filter, last),
            |ids| async move {
                let mut conn = self.conn().await?;
                let n = diesel::delete(sensor_data::table.filter(sensor_data::id.eq_any(ids)))
                    .execute(&mut conn)
                    .await?;
                Ok(n as u64)
            },
        )
        .await
    }
}

#[async_trait]
impl UserStore for MysqlStore {
    async fn count_users(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let n: i64 = users::table.count().get_result(&mut conn).await?;
        Ok(n as u64)
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<UserRow> = users::table
            .filter(users::username.eq(username.as_str()))
            .first(&mut conn)
            .await
            .optional()?;
        Ok(row.and_then(UserRow::into_user))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<UserRow> = users::table
            .order(users::username.asc())
            .load(&mut conn)
            .await?;
        Ok(rows.into_iter().filter_map(UserRow::into_user).collect())
    }

    async fn delete_user(&self, username: &Username) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::delete(users::table.filter(users::username.eq(username.as_str())))
            .execute(&mut conn)
            .await?;
        Ok(n > 0)
    }

    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(users::table)
            .values((
                users::username.eq(username.as_str()),
                users::password_hash.eq(password_hash),
                users::role.eq(role.as_str()),
            ))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

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
