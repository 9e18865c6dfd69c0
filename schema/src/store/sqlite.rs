//! SQLite through diesel-async's `SyncConnectionWrapper`, the embedded
//! default. Reads share the generic query code; the batch insert runs sync
//! diesel on a blocking thread because diesel's SQLite batch-insert path
//! exists only there.

use super::query::{filter_conditions, filtered_readings};
use super::rows::{NewReadingRow, ReadingRow, UserRow};
use super::{
    in_chunks, InsertOutcome, ReadingStore, Store, StoreError, StoredReading, UserStore,
    WRITE_CHUNK,
};
use crate::db::{sensor_data, users, SQLITE_MIGRATIONS};
use crate::filter::ReadingFilter;
use crate::reading::Reading;
use crate::user::{Role, User, Username};
use async_trait::async_trait;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use std::time::Duration;

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// Rows per INSERT statement: 5 variables each, well below SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 2_000;
const POOL_SIZE: usize = 4;
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
    pub async fn open(path: &str) -> Result<Self, StoreError> {
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
        .map_err(|e| StoreError::Migration(e.to_string()))??;

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
            .max_size(POOL_SIZE)
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

    /// The next chunk of ids matching `filter`'s conditions after `last`.
    async fn matching_ids(
        &self,
        filter: &ReadingFilter,
        last: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn().await?;
        let ids = filter_conditions(sensor_data::table.into_boxed::<Sqlite>(), filter)
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
impl ReadingStore for SqliteStore {
    async fn insert_batch(&self, readings: &[Reading]) -> Result<InsertOutcome, StoreError> {
        if readings.is_empty() {
            return Ok(InsertOutcome::default());
        }
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
        Ok(InsertOutcome {
            inserted,
            duplicate: readings.len() as u64 - inserted,
        })
    }

    async fn query(&self, filter: &ReadingFilter) -> Result<Vec<StoredReading>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<ReadingRow> = filtered_readings::<Sqlite>(filter)
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
        let n: i64 = filter_conditions(sensor_data::table.into_boxed::<Sqlite>(), filter)
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
impl UserStore for SqliteStore {
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
