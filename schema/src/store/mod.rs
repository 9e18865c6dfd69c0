//! The store: readings and users in MySQL or SQLite behind one trait.
//!
//! [`connect`] picks the backend from the URL, runs the embedded migrations
//! and returns a [`SharedStore`]. Query building lives once in `query.rs`
//! and every operation once in `diesel_store.rs`, both generic over the
//! diesel backend; `mysql.rs` and `sqlite.rs` only hold what genuinely
//! differs (connection setup, migrations and the batch insert). Nothing of
//! diesel appears in this module's public types.

// Device-key bounds for a table with `sensor_type`, `id1` and `id2`
// columns, in key order (sensor type, `id1`, `id2`). Macros, because each
// table's columns are types of their own.
/// `table`'s device key compared with `key`: `$before` on the leading
/// columns, `$last` on `id2` (`gt, gt`: after; `gt, ge`: from; `lt, le`:
/// through).
macro_rules! key_cmp {
    ($table:ident, $key:expr, $before:ident, $last:ident) => {{
        let key: &$crate::store::analytics_store::DeviceKey = $key;
        $table::sensor_type
            .$before(key.sensor_type.clone())
            .or($table::sensor_type
                .eq(key.sensor_type.clone())
                .and($table::id1.$before(key.id1.clone())))
            .or($table::sensor_type
                .eq(key.sensor_type.clone())
                .and($table::id1.eq(key.id1.clone()))
                .and($table::id2.$last(key.id2)))
    }};
}

/// `table`'s device key after `key`.
macro_rules! key_after {
    ($table:ident, $key:expr) => {
        key_cmp!($table, $key, gt, gt)
    };
}

/// `table`'s device key at or after `key`.
macro_rules! key_from {
    ($table:ident, $key:expr) => {
        key_cmp!($table, $key, gt, ge)
    };
}

/// `table`'s device key at or before `key`.
macro_rules! key_through {
    ($table:ident, $key:expr) => {
        key_cmp!($table, $key, lt, le)
    };
}

mod analytics_store;
mod connection_health;
mod detached;
mod diesel_store;
mod mysql;
mod mysql_load_data;
mod mysql_named_lock;
mod mysql_session;
mod query;
mod retention;
mod rollup_refresh;
mod rollup_rows;
mod rows;
mod sqlite;
mod transaction;

use crate::analytics::{AggregateQuery, Bucket, Device, DeviceQuery, GroupedPage};
use crate::filter::ReadingFilter;
use crate::reading::Reading;
use crate::retention::{RetentionPolicy, RetentionStep};
use crate::user::{Role, User, Username};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use detached::Detached;
use diesel_store::DieselStore;
use std::sync::Arc;

pub use diesel_store::OwnedFuture;
pub use mysql::MYSQL_POOL_SIZE;
pub use sqlite::SQLITE_POOL_SIZE;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not `sqlite://…` or `mysql://…`.
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://PATH or mysql://user:pass@host:port/db")]
    UnsupportedUrl(String),
    /// The database cannot be reached (connect failed, pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Running migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A unique key was violated (e.g. an existing username).
    #[error("already exists")]
    Conflict,
    /// The transaction lost a deadlock or waited too long for a lock, and
    /// retrying it did not help: trying again later will.
    #[error("database busy: {0}")]
    Contention(String),
    /// Any other database error; its cause is the driver's error.
    #[error("database error: {0}")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The conversion at the edge: diesel's errors become store errors, and no
/// diesel type is part of [`StoreError`].
impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict,
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            // InnoDB's 1213 and 1205; diesel gives them no kind of their own.
            Error::DatabaseError(_, info)
                if info.message().starts_with("Deadlock found")
                    || info.message().starts_with("Lock wait timeout") =>
            {
                StoreError::Contention(info.message().to_owned())
            }
            other => StoreError::Query(Box::new(other)),
        }
    }
}

/// What a batch insert did: rows new to the table, and rows that were
/// already there (redelivered or re-sent readings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows ignored because the unique key already existed.
    pub duplicate: u64,
}

/// A reading as stored, with its id and bookkeeping times. Rows are returned
/// as stored, without re-validation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    /// Database id.
    pub id: i64,
    /// Measured value.
    pub sensor_value: f64,
    /// Sensor type.
    pub sensor_type: String,
    /// First device id part.
    pub id1: String,
    /// Second device id part.
    pub id2: i32,
    /// When the reading was taken.
    pub timestamp: DateTime<Utc>,
    /// When the row was inserted.
    pub created_at: DateTime<Utc>,
    /// When the row was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Readings: batch insert-or-ignore and filtered reads.
#[async_trait]
pub trait ReadingStore: Send + Sync {
    /// Inserts readings in one transaction, ignoring ones whose unique key
    /// `(id1, id2, sensor_type, timestamp)` already exists. When the future
    /// returns `Ok`, every reading is durably stored. The insert starts when
    /// this is called and runs to its end even if the future is dropped, so
    /// a caller may hold several in flight without polling them.
    fn insert_batch(
        &self,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<InsertOutcome, StoreError>>;
    /// Readings matching the filter, ordered by `(timestamp, id)`.
    async fn query(&self, filter: &ReadingFilter) -> Result<Vec<StoredReading>, StoreError>;
    /// One reading by id.
    async fn get(&self, id: i64) -> Result<Option<StoredReading>, StoreError>;
    /// Number of stored readings matching the filter (its limit is ignored).
    async fn count(&self, filter: &ReadingFilter) -> Result<u64, StoreError>;
    /// Sets `sensor_value` (and bumps `updated_at`) on every reading the
    /// filter's conditions match, in chunks of [`WRITE_CHUNK`] rows, each its
    /// own short statement. Returns how many were updated.
    async fn update_value(&self, filter: &ReadingFilter, value: f64) -> Result<u64, StoreError>;
    /// Deletes every reading the filter's conditions match, in chunks like
    /// [`ReadingStore::update_value`]. Returns how many were deleted.
    async fn delete(&self, filter: &ReadingFilter) -> Result<u64, StoreError>;
}

/// Rows per statement when editing or deleting by filter: small enough that
/// a million-row delete never holds one long lock.
pub const WRITE_CHUNK: i64 = 1000;

/// Users for the API.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// How many users exist.
    async fn count_users(&self) -> Result<u64, StoreError>;
    /// One user by name.
    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Deletes a user; false if there was none.
    async fn delete_user(&self, username: &Username) -> Result<bool, StoreError>;
    /// Creates a user; [`StoreError::Conflict`] if the name is taken.
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> Result<(), StoreError>;
    /// Replaces a user's password hash; false if there is no such user.
    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Changes a user's role; false if there is no such user.
    async fn set_role(&self, username: &Username, role: Role) -> Result<bool, StoreError>;
}

/// Analytics: exact time-bucket aggregates and the device catalog, from
/// hourly rollups kept exact, and raw rows where rollups do not reach.
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// The buckets `query` asks for, of its page of groups, by start and
    /// group; empty buckets are left out. Equals the same grouping over the
    /// matching rows.
    async fn aggregate(&self, query: &AggregateQuery) -> Result<GroupedPage<Bucket>, StoreError>;
    /// The devices with stored readings that `query` selects at `now`, of
    /// its page, by sensor type, `id1`, `id2`.
    async fn devices(
        &self,
        query: &DeviceQuery,
        now: DateTime<Utc>,
    ) -> Result<GroupedPage<Device>, StoreError>;
    /// Rebuilds the rollups of at most `most` dirty hours, oldest first,
    /// that ended at least 5 s before `now` and were first marked at least
    /// 10 s before it (an hour still being written is left to settle);
    /// returns how many it rebuilt. Returns 0 at once while another
    /// refresher is at work.
    async fn refresh_rollups(&self, now: DateTime<Utc>, most: usize) -> Result<usize, StoreError>;
    /// Hours that ended by `ended_by` and whose rollups wait for a rebuild
    /// (plus one while a writer with rollups off has left them all stale).
    async fn dirty_hours(&self, ended_by: DateTime<Utc>) -> Result<u64, StoreError>;
    /// One bounded step of retention at `now` (`crate::retention`):
    /// retires up to a day of hours older than the policy's raw retention
    /// (rollups then stand for them), deletes up to `chunk` of their rows
    /// and, with rollup retention, up to a day of old rollups. Taken in
    /// turns with the refresher, across processes: returns at once,
    /// [`RetentionStep::busy`], while another is at work.
    async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        chunk: usize,
    ) -> Result<RetentionStep, StoreError>;
}

/// The whole store, as the services use it.
#[async_trait]
pub trait Store: ReadingStore + UserStore + AnalyticsStore {
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
    /// `mysql` or `sqlite`, for logs.
    fn backend_name(&self) -> &'static str;
    /// Whether write transactions may run side by side (MySQL's InnoDB) or
    /// only one at a time (SQLite has a single writer; a second would wait
    /// for its lock).
    fn concurrent_writers(&self) -> bool;
}

/// A store shared between tasks.
pub type SharedStore = Arc<dyn Store>;

/// Whether opening a store applies pending migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply them (the primary database).
    Run,
    /// Leave the schema alone (a read replica follows the primary).
    Skip,
}

/// Connects to `url` (`sqlite://PATH` or `mysql://…`), runs pending
/// migrations, and returns the store, each operation [`Detached`] so that
/// no caller can cancel a query half-way.
pub async fn connect(url: &str) -> Result<SharedStore, StoreError> {
    connect_with(url, StoreOptions::default()).await
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections the pool keeps open (`None`: the backend's default,
    /// [`MYSQL_POOL_SIZE`] or [`SQLITE_POOL_SIZE`]).
    pub pool_size: Option<usize>,
    /// Whether writes keep the hourly rollups and the device catalog
    /// (`ROLLUPS`, on by default). Off, analytics read raw rows; turned on
    /// again, every hour is rebuilt.
    pub rollups: bool,
    /// How batches are written (`INGEST_WRITER`).
    pub insert_method: InsertMethod,
}

/// How a batch of readings is written to MySQL/MariaDB (SQLite always
/// writes multi-row INSERTs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertMethod {
    /// `LOAD DATA LOCAL INFILE` streamed from memory where the server
    /// allows it (`local_infile`), else multi-row `INSERT IGNORE`: found
    /// out at the first batch and logged once.
    #[default]
    Auto,
    /// Always multi-row `INSERT IGNORE`.
    Insert,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: None,
            rollups: true,
            insert_method: InsertMethod::Auto,
        }
    }
}

/// Like [`connect`], with `options`.
pub async fn connect_with(url: &str, options: StoreOptions) -> Result<SharedStore, StoreError> {
    open(url, Migrations::Run, options).await
}

/// Connects to a read replica (`DATABASE_READ_URL`): like [`connect`], but
/// never migrates; the replica gets the schema from its primary.
pub async fn connect_replica(url: &str, options: StoreOptions) -> Result<SharedStore, StoreError> {
    open(url, Migrations::Skip, options).await
}

async fn open(
    url: &str,
    migrations: Migrations,
    options: StoreOptions,
) -> Result<SharedStore, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let pool_size = options.pool_size.unwrap_or(SQLITE_POOL_SIZE);
        let backend =
            sqlite::SqliteBackend::open(path, migrations, pool_size, options.rollups).await?;
        Ok(Arc::new(Detached::new(DieselStore::new(backend))))
    } else if url.starts_with("mysql://") {
        let backend = mysql::MysqlBackend::open(url, migrations, options).await?;
        Ok(Arc::new(Detached::new(DieselStore::new(backend))))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Hides the password in a database URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("mysql://user:secret@db:3306/x"),
            "mysql://user:***@db:3306/x"
        );
        assert_eq!(redact_url("mysql://root@db/x"), "mysql://root@db/x");
        assert_eq!(redact_url("sqlite://data.db"), "sqlite://data.db");
    }
}
