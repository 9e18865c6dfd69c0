//! `DieselStore`: every store operation, written once over any diesel
//! backend. A [`DieselBackend`] supplies what truly differs: its pool of
//! connections and its batch insert.
//!
//! The bounds on the impls below spell out, for each query shape, that the
//! backend's connection can run it; both MySQL and SQLite meet them, and a
//! backend that could not would fail to compile here rather than at run
//! time.

use super::analytics_store::{DirtyMark, StaleMark};
use super::query::{filter_conditions, filtered_readings, SqlTypes};
use super::rollup_rows::{CatalogSlice, DeviceRow, HourRollups, StaleRow, WriteMarks};
use super::rows::{NewUserRow, ReadingRow, UserChangeRow, UserRow};
use super::transaction::{self, ConnWork};
use super::{
    InsertOutcome, ReadingStore, Store, StoreError, StoredReading, UserStore, WRITE_CHUNK,
};
use crate::db::{rollup_dirty, rollup_stale, sensor_data, users};
use crate::filter::ReadingFilter;
use crate::reading::Reading;
use crate::user::{Role, User, Username};
use async_trait::async_trait;
use chrono::NaiveDateTime;
use diesel::query_builder::{
    BoxedDeleteStatement, BoxedSelectStatement, BoxedUpdateStatement, FromClause, InsertStatement,
    QueryFragment, QueryId,
};
use diesel::query_dsl::methods::BoxedDsl;
use diesel::sql_types::{BigInt, Double, Integer, Text, Timestamp};
use diesel::{ExpressionMethods, Insertable, QueryDsl};
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future that owns everything it needs.
pub type OwnedFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What differs between the diesel backends.
pub(crate) trait DieselBackend: Send + Sync + 'static {
    /// The diesel backend (SQL dialect).
    type Db: SqlTypes + 'static;
    /// The pooled async connection.
    type Conn: AsyncConnection<Backend = Self::Db>
        + SimpleAsyncConnection
        + PoolableConnection
        + Send
        + 'static;
    /// `mysql` or `sqlite`, for logs.
    const NAME: &'static str;
    /// Whether write transactions may run side by side (InnoDB) rather
    /// than one at a time (SQLite's single writer).
    const CONCURRENT_WRITERS: bool;

    /// A connection checked out of the pool.
    type Pooled: std::ops::DerefMut<Target = Self::Conn> + Send;

    /// Checks a connection out of the pool (see [`checkout`]).
    fn conn(&self) -> impl Future<Output = Result<Self::Pooled, StoreError>> + Send;

    /// Marks every hour that has readings dirty (a constant statement: no
    /// input reaches it).
    const MARK_EVERY_HOUR: &'static str;

    /// Whether writes keep the rollups (`StoreOptions::rollups`).
    fn rollups(&self) -> bool;

    /// Becomes the one refresher at work (across processes), or `false`
    /// when another is: refreshers one at a time cannot deadlock on the
    /// catalog and rollup rows they share. Released by
    /// [`end_refresh`](Self::end_refresh).
    fn begin_refresh(conn: &mut Self::Conn) -> ConnWork<'_, bool>;

    /// Lets another refresher work.
    fn end_refresh(conn: &mut Self::Conn) -> ConnWork<'_, ()>;

    /// Takes `hour`'s dirty mark inside the caller's transaction: `true`
    /// when taken, `false` when it is gone (another refresher took it) or a
    /// writer holds it right now (the hour is left for the next round). A
    /// refresher never waits for a writer's lock: queued behind writers, it
    /// would close a cycle between two of them.
    fn claim_hour(conn: &mut Self::Conn, hour: NaiveDateTime) -> ConnWork<'_, bool>;

    /// The catalog rows of `slice`, locked until the transaction ends
    /// where the database locks rows (MySQL: two refreshers must not both
    /// move one device's row; SQLite has one writer at a time anyway).
    fn catalog_for_update(
        conn: &mut Self::Conn,
        slice: CatalogSlice,
    ) -> ConnWork<'_, Vec<DeviceRow>>;

    /// Writes an hour's rebuilt rollups and replaces the catalog rows it
    /// carries, inside the caller's transaction, in multi-row statements.
    fn write_hour(conn: &mut Self::Conn, rollups: HourRollups) -> ConnWork<'_, ()>;

    /// Inserts `readings` (not empty) in one transaction, ignoring existing
    /// keys; returns how many rows were new.
    fn insert_rows(
        self: Arc<Self>,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<u64, StoreError>>;
}

/// The store over backend `B`.
pub(crate) struct DieselStore<B> {
    pub(super) backend: Arc<B>,
    /// The refresher's and the retention sweeper's turn in this process
    /// (across processes, [`DieselBackend::begin_refresh`] decides): they
    /// write the same catalog and rollup rows, and SQLite's named-lock
    /// stand-in lets everyone in.
    pub(super) maintenance: tokio::sync::Mutex<()>,
}

impl<B: DieselBackend> DieselStore<B> {
    pub(crate) fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            maintenance: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) async fn conn(&self) -> Result<B::Pooled, StoreError> {
        self.backend.conn().await
    }
}

/// How long a request waits for a pooled connection, or for a new one.
const CHECKOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A pool of `size` connections from `manager`.
pub(crate) fn build_pool<M: deadpool::managed::Manager>(
    manager: M,
    size: usize,
) -> Result<deadpool::managed::Pool<M>, StoreError> {
    deadpool::managed::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(CHECKOUT_TIMEOUT))
        .create_timeout(Some(CHECKOUT_TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// A connection from `pool`; a pool that cannot give one in time (the
/// database is down or every connection busy) makes the store unavailable.
pub(crate) async fn checkout<M>(
    pool: &deadpool::managed::Pool<M>,
) -> Result<deadpool::managed::Object<M>, StoreError>
where
    M: deadpool::managed::Manager,
    M::Error: std::fmt::Display,
{
    pool.get()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Runs a backend's blocking `migrate` step against `target` (its URL or
/// path) on a blocking thread, unless told not to (a read replica).
pub(crate) async fn run_migrations(
    migrations: super::Migrations,
    target: &str,
    migrate: fn(&str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if migrations == super::Migrations::Skip {
        return Ok(());
    }
    let target = target.to_owned();
    tokio::task::spawn_blocking(move || migrate(&target))
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))?
}

/// `sensor_data` rows, boxed.
type ReadingsQuery<DB> = sensor_data::BoxedQuery<'static, DB>;
/// Ids and timestamps of `sensor_data` rows.
pub(super) type IdsAndTimes<DB> =
    BoxedSelectStatement<'static, (BigInt, Timestamp), FromClause<sensor_data::table>, DB>;
/// One `BIGINT` column of `sensor_data` (ids, or a count).
type SensorDataBigInts<DB> =
    BoxedSelectStatement<'static, BigInt, FromClause<sensor_data::table>, DB>;
/// `users` rows, boxed.
type UsersQuery<DB> = users::BoxedQuery<'static, DB>;
/// A count of `users`.
type UsersCount<DB> = BoxedSelectStatement<'static, BigInt, FromClause<users::table>, DB>;
/// The value and `updated_at` a PATCH sets.
type ValueChange = (
    diesel::dsl::Eq<sensor_data::sensor_value, f64>,
    diesel::dsl::Eq<sensor_data::updated_at, NaiveDateTime>,
);
type ValueUpdate<DB> = BoxedUpdateStatement<
    'static,
    DB,
    sensor_data::table,
    <ValueChange as diesel::AsChangeset>::Changeset,
>;
/// A change to one user.
type UserUpdate<DB> = BoxedUpdateStatement<
    'static,
    DB,
    users::table,
    <UserChangeRow as diesel::AsChangeset>::Changeset,
>;
type NewUserInsert =
    InsertStatement<users::table, <NewUserRow as Insertable<users::table>>::Values>;

#[async_trait]
impl<B: DieselBackend> ReadingStore for DieselStore<B>
where
    String: diesel::serialize::ToSql<Text, B::Db>,
    i32: diesel::serialize::ToSql<Integer, B::Db>,
    i64: diesel::serialize::ToSql<BigInt, B::Db>,
    f64: diesel::serialize::ToSql<Double, B::Db>,
    sensor_data::table: BoxedDsl<'static, B::Db, Output = sensor_data::BoxedQuery<'static, B::Db>>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, B::Db>,
    ReadingsQuery<B::Db>: LoadQuery<'static, B::Conn, ReadingRow>,
    SensorDataBigInts<B::Db>: LoadQuery<'static, B::Conn, i64>,
    IdsAndTimes<B::Db>: LoadQuery<'static, B::Conn, (i64, NaiveDateTime)>,
    DirtyMark: ExecuteDsl<B::Conn>,
    StaleMark: ExecuteDsl<B::Conn>,
    ValueUpdate<B::Db>: ExecuteDsl<B::Conn>,
    diesel::dsl::EqAny<sensor_data::id, Vec<i64>>: QueryFragment<B::Db>,
    BoxedDeleteStatement<'static, B::Db, sensor_data::table>: ExecuteDsl<B::Conn>,
{
    fn insert_batch(
        &self,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<InsertOutcome, StoreError>> {
        let backend = self.backend.clone();
        Box::pin(async move {
            if readings.is_empty() {
                return Ok(InsertOutcome::default());
            }
            let total = readings.len() as u64;
            let inserted =
                transaction::retrying_contention(|| backend.clone().insert_rows(readings.clone()))
                    .await?;
            Ok(InsertOutcome {
                inserted,
                duplicate: total - inserted,
            })
        })
    }

    async fn query(&self, filter: &ReadingFilter) -> Result<Vec<StoredReading>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<ReadingRow> = filtered_readings::<B::Db>(filter)
            .limit(i64::from(filter.limit()))
            .offset(i64::try_from(filter.offset()).unwrap_or(i64::MAX))
            .load(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get(&self, id: i64) -> Result<Option<StoredReading>, StoreError> {
        let mut conn = self.conn().await?;
        let mut rows: Vec<ReadingRow> = sensor_data::table
            .into_boxed::<B::Db>()
            .filter(sensor_data::id.eq(id))
            .load(&mut *conn)
            .await?;
        Ok(rows.pop().map(Into::into))
    }

    async fn count(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let counts: Vec<i64> = filter_conditions(sensor_data::table.into_boxed::<B::Db>(), filter)
            .count()
            .load(&mut *conn)
            .await?;
        Ok(counts.into_iter().next().unwrap_or(0) as u64)
    }

    async fn update_value(&self, filter: &ReadingFilter, value: f64) -> Result<u64, StoreError> {
        let now = chrono::Utc::now().naive_utc();
        self.in_chunks(filter, |ids| {
            diesel::update(sensor_data::table)
                .filter(sensor_data::id.eq_any(ids))
                .set((
                    sensor_data::sensor_value.eq(value),
                    sensor_data::updated_at.eq(now),
                ))
                .into_boxed()
        })
        .await
    }

    async fn delete(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        self.in_chunks(filter, |ids| {
            diesel::delete(sensor_data::table)
                .filter(sensor_data::id.eq_any(ids))
                .into_boxed()
        })
        .await
    }
}

impl<B: DieselBackend> DieselStore<B>
where
    String: diesel::serialize::ToSql<Text, B::Db>,
    i32: diesel::serialize::ToSql<Integer, B::Db>,
    i64: diesel::serialize::ToSql<BigInt, B::Db>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, B::Db>,
    IdsAndTimes<B::Db>: LoadQuery<'static, B::Conn, (i64, NaiveDateTime)>,
    sensor_data::table: BoxedDsl<'static, B::Db, Output = sensor_data::BoxedQuery<'static, B::Db>>,
    DirtyMark: ExecuteDsl<B::Conn>,
    StaleMark: ExecuteDsl<B::Conn>,
{
    /// Runs the statement `apply` builds on the ids of the rows `filter`
    /// matches, [`WRITE_CHUNK`] ids at a time in id order, each chunk its own
    /// short transaction that also marks the hours it changes dirty, until a
    /// chunk comes back short. Returns the rows changed.
    async fn in_chunks<S>(
        &self,
        filter: &ReadingFilter,
        apply: impl Fn(Vec<i64>) -> S + Send + Sync,
    ) -> Result<u64, StoreError>
    where
        S: ExecuteDsl<B::Conn> + QueryFragment<B::Db> + QueryId + Send + 'static,
    {
        let mut last = i64::MIN;
        let mut total = 0;
        loop {
            let mut conn = self.conn().await?;
            let rows: Vec<(i64, NaiveDateTime)> =
                filter_conditions(sensor_data::table.into_boxed::<B::Db>(), filter)
                    .select((sensor_data::id, sensor_data::timestamp))
                    .filter(sensor_data::id.gt(last))
                    .order(sensor_data::id.asc())
                    .limit(WRITE_CHUNK)
                    .load(&mut *conn)
                    .await?;
            let Some(&(max, _)) = rows.last() else {
                return Ok(total);
            };
            let full = rows.len() as i64 == WRITE_CHUNK;
            last = max;
            let marks =
                WriteMarks::for_times(self.backend.rollups(), rows.iter().map(|r| r.1.and_utc()));
            let ids: Vec<i64> = rows.into_iter().map(|(id, _)| id).collect();
            total += transaction::retrying_contention_on(&mut *conn, |conn| {
                Box::pin(in_transaction(conn, marks.clone(), apply(ids.clone())))
            })
            .await?;
            if !full {
                return Ok(total);
            }
        }
    }
}

/// Runs `statement` in a transaction that first records `marks`.
async fn in_transaction<C, S>(
    conn: &mut C,
    marks: WriteMarks,
    statement: S,
) -> Result<u64, StoreError>
where
    C: AsyncConnection + Send,
    S: ExecuteDsl<C> + Send + 'static,
    DirtyMark: ExecuteDsl<C>,
    StaleMark: ExecuteDsl<C>,
{
    transaction::in_transaction(conn, |conn| {
        Box::pin(async move {
            match marks {
                WriteMarks::Hours(hours) => {
                    for hour in hours {
                        diesel::insert_or_ignore_into(rollup_dirty::table)
                            .values(hour)
                            .execute(conn)
                            .await?;
                    }
                }
                WriteMarks::Stale => {
                    diesel::insert_or_ignore_into(rollup_stale::table)
                        .values(StaleRow::ROW)
                        .execute(conn)
                        .await?;
                }
            }
            Ok(statement.execute(conn).await? as u64)
        })
    })
    .await
}

impl<B: DieselBackend> DieselStore<B> {
    /// Applies `change` to one user; false if there is none. MySQL counts
    /// matched rows here (diesel-async asks for found rows), so an
    /// unchanged value still says the user exists.
    async fn change_user(
        &self,
        username: &Username,
        change: UserChangeRow,
    ) -> Result<bool, StoreError>
    where
        String: diesel::serialize::ToSql<Text, B::Db>,
        UserUpdate<B::Db>: ExecuteDsl<B::Conn>,
    {
        let mut conn = self.conn().await?;
        let n = diesel::update(users::table)
            .filter(users::username.eq(username.as_str().to_owned()))
            .set(change)
            .into_boxed::<B::Db>()
            .execute(&mut *conn)
            .await?;
        Ok(n > 0)
    }
}

#[async_trait]
impl<B: DieselBackend> UserStore for DieselStore<B>
where
    String: diesel::serialize::ToSql<Text, B::Db>,
    users::table: BoxedDsl<'static, B::Db, Output = users::BoxedQuery<'static, B::Db>>,
    UsersQuery<B::Db>: LoadQuery<'static, B::Conn, UserRow>,
    UsersCount<B::Db>: LoadQuery<'static, B::Conn, i64>,
    BoxedDeleteStatement<'static, B::Db, users::table>: ExecuteDsl<B::Conn>,
    NewUserInsert: ExecuteDsl<B::Conn>,
    UserUpdate<B::Db>: ExecuteDsl<B::Conn>,
{
    async fn count_users(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let counts: Vec<i64> = users::table
            .into_boxed::<B::Db>()
            .count()
            .load(&mut *conn)
            .await?;
        Ok(counts.into_iter().next().unwrap_or(0) as u64)
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<UserRow> = users::table
            .into_boxed::<B::Db>()
            .filter(users::username.eq(username.as_str().to_owned()))
            .load(&mut *conn)
            .await?;
        Ok(rows.into_iter().next().and_then(UserRow::into_user))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<UserRow> = users::table
            .into_boxed::<B::Db>()
            .order(users::username.asc())
            .load(&mut *conn)
            .await?;
        Ok(rows.into_iter().filter_map(UserRow::into_user).collect())
    }

    async fn delete_user(&self, username: &Username) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::delete(users::table)
            .filter(users::username.eq(username.as_str().to_owned()))
            .into_boxed::<B::Db>()
            .execute(&mut *conn)
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
            .values(NewUserRow::new(username, password_hash, role))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let change = UserChangeRow {
            password_hash: Some(password_hash.to_owned()),
            role: None,
        };
        self.change_user(username, change).await
    }

    async fn set_role(&self, username: &Username, role: Role) -> Result<bool, StoreError> {
        let change = UserChangeRow {
            password_hash: None,
            role: Some(role.as_str()),
        };
        self.change_user(username, change).await
    }
}

#[async_trait]
impl<B: DieselBackend> Store for DieselStore<B>
where
    Self: ReadingStore + UserStore + super::AnalyticsStore,
{
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.batch_execute("SELECT 1").await?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        B::NAME
    }

    fn concurrent_writers(&self) -> bool {
        B::CONCURRENT_WRITERS
    }
}
