//! Every store operation, written once and compiled once per backend: the
//! backend's module declares `Db` (diesel's SQL dialect), `Conn` (its
//! connection) and `Backend` (its [`BackendOps`]), then includes this
//! directory as its `sql` module. The code here is concrete, over those
//! types: a query names only the columns it uses and carries no trait
//! bounds.
//!
//! * `readings.rs` — a [`ReadingFilter`] as SQL, reads, and chunked edits
//!   and deletes;
//! * `users.rs` — the users table;
//! * `sensor_types.rs` — the sensor-type catalog;
//! * `alerts.rs` — alert rules, states, history, outbox and lease;
//! * `rollups/` — hourly rollups, their refresh, retention, and answers.
//!
//! This file is the dispatch table: each trait method is one call into the
//! module that does the work, run as a task of its own ([`SqlStore::detached`])
//! so that no caller can cancel a query half-way. Cancelling mid-query is
//! more than untidy: diesel-async's `SyncConnectionWrapper` (SQLite) blocks
//! in its drop to finish the query, which panics on a current-thread
//! runtime such as actix-web's workers, and a MySQL connection dropped
//! mid-statement goes back to the pool in an unknown state. A batch insert
//! is spawned when it is asked for, not when its future is first polled:
//! the ingestor keeps two in flight and waits on the older.

use crate::backend::BackendOps;
use crate::failure::Outcome;
use crate::operations::{
    AlertStore, AnalyticsStore, CatalogStore, EvaluationStart, InsertOutcome, OwnedFuture,
    ReadingStore, Store, UserStore,
};
use crate::rollup_rows::WriteMarks;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use core::{Backend, Conn, StoreCore};
use datastream_domain::alert::{
    AlertCommit, AlertQuery, AlertRecord, AlertRule, DeliveryAttempt, Lease, Outgoing,
};
use datastream_domain::analytics::{AggregateQuery, Bucket, Device, DeviceQuery, GroupedPage};
use datastream_domain::filter::ReadingFilter;
use datastream_domain::reading::{Reading, SensorType};
use datastream_domain::retention::{RetentionPolicy, RetentionStep};
use datastream_domain::sensor_catalog::SensorTypeInfo;
use datastream_domain::user::{Role, User, Username};
use datastream_domain::{StoreError, StoredReading};
use std::future::Future;
use std::sync::Arc;

mod alerts;
mod core;
pub(super) mod readings;
mod rollups;
mod sensor_types;
mod users;

/// The store over this backend.
pub(crate) struct SqlStore(Arc<StoreCore>);

impl SqlStore {
    pub(crate) fn new(backend: Backend, rollups: bool) -> Self {
        Self(Arc::new(StoreCore::new(backend, rollups)))
    }

    /// Runs `op` as a task of its own, to its end whatever the caller does.
    async fn detached<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<StoreCore>) -> Fut,
        Fut: Future<Output = Outcome<T>> + Send + 'static,
        T: Send + 'static,
    {
        let outcome = tokio::spawn(op(self.0.clone()))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?;
        Ok(outcome?)
    }

    /// [`detached`](Self::detached), on a pooled connection.
    async fn on_conn<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> crate::transaction::ConnWork<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        self.detached(|core| async move { op(&mut *core.conn().await?).await })
            .await
    }
}

#[async_trait]
impl ReadingStore for SqlStore {
    fn insert_batch(
        &self,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<InsertOutcome, StoreError>> {
        let marks = WriteMarks::for_readings(self.0.rollups, &readings);
        let task = tokio::spawn(readings::insert_batch(
            self.0.backend.clone(),
            readings,
            marks,
        ));
        Box::pin(async move {
            let outcome = task
                .await
                .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?;
            Ok(outcome?)
        })
    }

    async fn query(&self, filter: &ReadingFilter) -> Result<Vec<StoredReading>, StoreError> {
        let filter = filter.clone();
        self.on_conn(move |conn| Box::pin(async move { readings::query(conn, &filter).await }))
            .await
    }

    async fn get(&self, id: i64) -> Result<Option<StoredReading>, StoreError> {
        self.on_conn(move |conn| Box::pin(readings::get(conn, id)))
            .await
    }

    async fn count(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        let filter = filter.clone();
        self.on_conn(move |conn| Box::pin(async move { readings::count(conn, &filter).await }))
            .await
    }

    async fn update_value(&self, filter: &ReadingFilter, value: f64) -> Result<u64, StoreError> {
        let filter = filter.clone();
        let change = readings::ChunkChange::SetValue(value, Utc::now().naive_utc());
        self.detached(move |core| async move {
            readings::change_in_chunks(&core, &filter, change).await
        })
        .await
    }

    async fn delete(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        let filter = filter.clone();
        let change = readings::ChunkChange::Delete;
        self.detached(move |core| async move {
            readings::change_in_chunks(&core, &filter, change).await
        })
        .await
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn count_users(&self) -> Result<u64, StoreError> {
        self.on_conn(|conn| Box::pin(users::count(conn))).await
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let name = username.clone();
        self.on_conn(move |conn| Box::pin(async move { users::find(conn, &name).await }))
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.on_conn(|conn| Box::pin(users::list(conn))).await
    }

    async fn delete_user(&self, username: &Username) -> Result<bool, StoreError> {
        let name = username.clone();
        self.on_conn(move |conn| Box::pin(async move { users::delete(conn, &name).await }))
            .await
    }

    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        let (name, hash) = (username.clone(), password_hash.to_owned());
        self.on_conn(move |conn| {
            Box::pin(async move { users::create(conn, &name, &hash, role).await })
        })
        .await
    }

    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let (name, change) = (username.clone(), users::UserChange::password(password_hash));
        self.on_conn(move |conn| Box::pin(async move { users::change(conn, &name, change).await }))
            .await
    }

    async fn set_role(&self, username: &Username, role: Role) -> Result<bool, StoreError> {
        let (name, change) = (username.clone(), users::UserChange::role(role));
        self.on_conn(move |conn| Box::pin(async move { users::change(conn, &name, change).await }))
            .await
    }
}

#[async_trait]
impl AnalyticsStore for SqlStore {
    async fn aggregate(&self, query: &AggregateQuery) -> Result<GroupedPage<Bucket>, StoreError> {
        let query = query.clone();
        self.detached(move |core| async move { rollups::answers::aggregate(&core, &query).await })
            .await
    }

    async fn devices(
        &self,
        query: &DeviceQuery,
        now: DateTime<Utc>,
    ) -> Result<GroupedPage<Device>, StoreError> {
        let query = query.clone();
        self.detached(
            move |core| async move { rollups::answers::devices(&core, &query, now).await },
        )
        .await
    }

    async fn refresh_rollups(&self, now: DateTime<Utc>, most: usize) -> Result<usize, StoreError> {
        self.detached(move |core| async move { rollups::refresh_rollups(&core, now, most).await })
            .await
    }

    async fn dirty_hours(&self, ended_by: DateTime<Utc>) -> Result<u64, StoreError> {
        self.on_conn(move |conn| Box::pin(rollups::queries::dirty_hours(conn, ended_by)))
            .await
    }

    async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        chunk: usize,
    ) -> Result<RetentionStep, StoreError> {
        let policy = *policy;
        self.detached(move |core| async move {
            rollups::apply_retention(&core, &policy, now, chunk).await
        })
        .await
    }
}

#[async_trait]
impl CatalogStore for SqlStore {
    async fn sensor_types(&self) -> Result<Vec<SensorTypeInfo>, StoreError> {
        self.on_conn(|conn| Box::pin(sensor_types::list(conn)))
            .await
    }

    async fn seen_sensor_types(&self) -> Result<Vec<SensorType>, StoreError> {
        self.on_conn(|conn| Box::pin(sensor_types::seen(conn)))
            .await
    }

    async fn put_sensor_type(&self, info: &SensorTypeInfo) -> Result<(), StoreError> {
        let info = info.clone();
        self.on_conn(move |conn| Box::pin(async move { sensor_types::put(conn, &info).await }))
            .await
    }

    async fn delete_sensor_type(&self, name: &SensorType) -> Result<bool, StoreError> {
        let name = name.clone();
        self.on_conn(move |conn| Box::pin(async move { sensor_types::delete(conn, &name).await }))
            .await
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.on_conn(|conn| {
            Box::pin(async move {
                use diesel_async::SimpleAsyncConnection;
                conn.batch_execute("SELECT 1").await?;
                Ok(())
            })
        })
        .await
    }

    fn backend_name(&self) -> &'static str {
        Backend::NAME
    }

    fn concurrent_writers(&self) -> bool {
        Backend::CONCURRENT_WRITERS
    }
}

#[async_trait]
impl AlertStore for SqlStore {
    async fn alert_rules(&self) -> Result<Vec<(AlertRule, bool)>, StoreError> {
        self.on_conn(|conn| Box::pin(alerts::rules(conn))).await
    }

    async fn alert_rule(&self, id: i64) -> Result<Option<AlertRule>, StoreError> {
        self.on_conn(move |conn| Box::pin(alerts::rule(conn, id)))
            .await
    }

    async fn create_alert_rule(&self, rule: &AlertRule) -> Result<AlertRule, StoreError> {
        let rule = rule.clone();
        self.on_conn(move |conn| Box::pin(async move { alerts::create_rule(conn, &rule).await }))
            .await
    }

    async fn replace_alert_rule(
        &self,
        id: i64,
        rule: &AlertRule,
    ) -> Result<Option<AlertRule>, StoreError> {
        let rule = rule.clone();
        self.on_conn(move |conn| {
            Box::pin(async move { alerts::replace_rule(conn, id, &rule).await })
        })
        .await
    }

    async fn delete_alert_rule(&self, id: i64) -> Result<bool, StoreError> {
        self.on_conn(move |conn| Box::pin(alerts::delete_rule(conn, id)))
            .await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        let query = query.clone();
        self.on_conn(move |conn| Box::pin(async move { alerts::history(conn, &query).await }))
            .await
    }

    async fn alert(&self, id: i64) -> Result<Option<AlertRecord>, StoreError> {
        self.on_conn(move |conn| Box::pin(alerts::alert(conn, id)))
            .await
    }

    async fn alert_deliveries(&self, alert_id: i64) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.on_conn(move |conn| Box::pin(alerts::deliveries(conn, alert_id)))
            .await
    }

    async fn acquire_alert_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let holder = holder.to_owned();
        self.on_conn(move |conn| {
            Box::pin(async move { alerts::acquire_lease(conn, &holder, now, until).await })
        })
        .await
    }

    async fn renew_alert_lease(
        &self,
        lease: &Lease,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.on_conn(move |conn| {
            Box::pin(async move { alerts::renew_lease(conn, &lease, until).await })
        })
        .await
    }

    async fn release_alert_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.on_conn(move |conn| Box::pin(async move { alerts::release_lease(conn, &lease).await }))
            .await
    }

    async fn alert_evaluation_start(&self) -> Result<EvaluationStart, StoreError> {
        let (states, firing, last_alert_id, last_notification_id) = self
            .on_conn(|conn| Box::pin(alerts::evaluation_start(conn)))
            .await?;
        Ok(EvaluationStart {
            states,
            firing,
            last_alert_id,
            last_notification_id,
        })
    }

    async fn commit_alerts(
        &self,
        lease: &Lease,
        until: DateTime<Utc>,
        work: AlertCommit,
    ) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.on_conn(move |conn| {
            Box::pin(async move { alerts::commit(conn, &lease, until, work).await })
        })
        .await
    }

    async fn undelivered_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        self.on_conn(move |conn| Box::pin(alerts::undelivered(conn, now, limit)))
            .await
    }

    async fn record_delivery(&self, attempt: DeliveryAttempt) -> Result<(), StoreError> {
        self.on_conn(move |conn| Box::pin(alerts::record_delivery(conn, attempt)))
            .await
    }
}
