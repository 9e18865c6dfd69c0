//! The store's operations, as the services see them: readings, users,
//! analytics, and the whole [`Store`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datastream_domain::alert::{
    AlertCommit, AlertQuery, AlertRecord, AlertRule, DeliveryAttempt, Lease, Outgoing, StoredState,
};
use datastream_domain::analytics::{AggregateQuery, Bucket, Device, DeviceQuery, GroupedPage};
use datastream_domain::filter::ReadingFilter;
use datastream_domain::reading::{Reading, SensorType};
use datastream_domain::retention::{RetentionPolicy, RetentionStep};
use datastream_domain::sensor_catalog::SensorTypeInfo;
use datastream_domain::user::{Role, User, Username};
use datastream_domain::{StoreError, StoredReading};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future that owns everything it needs.
pub type OwnedFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a batch insert did: rows new to the table, and rows that were
/// already there (redelivered or re-sent readings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows ignored because the unique key already existed.
    pub duplicate: u64,
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
    /// One bounded step of retention at `now` (`datastream_domain::retention`):
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

/// The sensor-type catalog (`datastream_domain::sensor_catalog`).
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Every catalogued type, by name.
    async fn sensor_types(&self) -> Result<Vec<SensorTypeInfo>, StoreError>;
    /// The types that have stored readings, by name (at most 1000).
    async fn seen_sensor_types(&self) -> Result<Vec<SensorType>, StoreError>;
    /// Creates or replaces a type's entry.
    async fn put_sensor_type(&self, info: &SensorTypeInfo) -> Result<(), StoreError>;
    /// Deletes a type's entry; false if there was none. Its readings stay.
    async fn delete_sensor_type(&self, name: &SensorType) -> Result<bool, StoreError>;
}

/// What a new lease holder starts evaluating from.
#[derive(Debug, Clone, Default)]
pub struct EvaluationStart {
    /// Every device state under every rule.
    pub states: Vec<StoredState>,
    /// The alerts firing.
    pub firing: Vec<AlertRecord>,
    /// The largest alert id used.
    pub last_alert_id: i64,
    /// The largest notification id used.
    pub last_notification_id: i64,
}

/// Alerts: rules (the API), the history (the API), and the alerter's
/// state, outbox and lease (`datastream_domain::alert`).
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Every rule, with whether it is marked deleted.
    async fn alert_rules(&self) -> Result<Vec<(AlertRule, bool)>, StoreError>;
    /// One rule, unless deleted.
    async fn alert_rule(&self, id: i64) -> Result<Option<AlertRule>, StoreError>;
    /// Stores a new rule; returns it with its id and revision.
    async fn create_alert_rule(&self, rule: &AlertRule) -> Result<AlertRule, StoreError>;
    /// Replaces a rule and bumps its revision; `None` if there is none.
    async fn replace_alert_rule(
        &self,
        id: i64,
        rule: &AlertRule,
    ) -> Result<Option<AlertRule>, StoreError>;
    /// Marks a rule deleted (the alerter resolves its alerts, then forgets
    /// it); false if there was none.
    async fn delete_alert_rule(&self, id: i64) -> Result<bool, StoreError>;
    /// Alerts matching the query.
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError>;
    /// One alert.
    async fn alert(&self, id: i64) -> Result<Option<AlertRecord>, StoreError>;
    /// Every delivery attempt of an alert's notifications, oldest first.
    async fn alert_deliveries(&self, alert_id: i64) -> Result<Vec<DeliveryAttempt>, StoreError>;
    /// Takes the alerter lease for `holder` until `until` if it is free at
    /// `now`; `None` while another alerter holds it.
    async fn acquire_alert_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError>;
    /// Extends the lease; [`StoreError::LeaseLost`] if it has passed on.
    async fn renew_alert_lease(
        &self,
        lease: &Lease,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Gives the lease up at once.
    async fn release_alert_lease(&self, lease: &Lease) -> Result<(), StoreError>;
    /// What a new lease holder starts from.
    async fn alert_evaluation_start(&self) -> Result<EvaluationStart, StoreError>;
    /// Writes one evaluation step in one transaction, fenced by the lease
    /// (extended to `until`); [`StoreError::LeaseLost`] writes nothing.
    async fn commit_alerts(
        &self,
        lease: &Lease,
        until: DateTime<Utc>,
        work: AlertCommit,
    ) -> Result<(), StoreError>;
    /// Notifications with a channel due at `now`, oldest first.
    async fn undelivered_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError>;
    /// Records a delivery attempt and marks its channel done or due again.
    async fn record_delivery(&self, attempt: DeliveryAttempt) -> Result<(), StoreError>;
}

/// The whole store, as the services use it.
#[async_trait]
pub trait Store: ReadingStore + UserStore + AnalyticsStore + CatalogStore + AlertStore {
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
