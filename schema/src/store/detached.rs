//! `Detached`: runs every store operation as a task of its own, so that a
//! caller that gives up (an HTTP request whose client went away, a timed-out
//! future) never cancels a query half-way.
//!
//! Cancelling mid-query is more than untidy here: diesel-async's
//! `SyncConnectionWrapper` (SQLite) blocks in its drop to finish the query,
//! which panics on a current-thread runtime such as actix-web's workers; and
//! a MySQL connection dropped mid-statement goes back to the pool in an
//! unknown state. A spawned task always runs to completion.
//!
//! A batch insert is spawned when it is asked for, not when its future is
//! first polled: the ingestor keeps two in flight and waits on the older,
//! and this spawn is the only hand-off between it and the database.

use super::{
    AnalyticsStore, InsertOutcome, OwnedFuture, ReadingStore, Store, StoreError, StoredReading,
    UserStore,
};
use crate::analytics::{AggregateQuery, Bucket, Device, DeviceQuery, GroupedPage};
use crate::filter::ReadingFilter;
use crate::reading::Reading;
use crate::retention::{RetentionPolicy, RetentionStep};
use crate::user::{Role, User, Username};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;

/// A store whose operations each run as a spawned task.
pub(crate) struct Detached<S>(Arc<S>);

impl<S> Detached<S> {
    /// Wraps `store`.
    pub(crate) fn new(store: S) -> Self {
        Self(Arc::new(store))
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<S>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        tokio::spawn(op(self.0.clone()))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl<S: Store + 'static> ReadingStore for Detached<S> {
    fn insert_batch(
        &self,
        readings: Arc<[Reading]>,
    ) -> OwnedFuture<Result<InsertOutcome, StoreError>> {
        let task = tokio::spawn(self.0.insert_batch(readings));
        Box::pin(async move {
            task.await
                .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
        })
    }

    async fn query(&self, filter: &ReadingFilter) -> Result<Vec<StoredReading>, StoreError> {
        let filter = filter.clone();
        self.run(|s| async move { s.query(&filter).await }).await
    }

    async fn get(&self, id: i64) -> Result<Option<StoredReading>, StoreError> {
        self.run(|s| async move { s.get(id).await }).await
    }

    async fn count(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        let filter = filter.clone();
        self.run(|s| async move { s.count(&filter).await }).await
    }

    async fn update_value(&self, filter: &ReadingFilter, value: f64) -> Result<u64, StoreError> {
        let filter = filter.clone();
        self.run(|s| async move { s.update_value(&filter, value).await })
            .await
    }

    async fn delete(&self, filter: &ReadingFilter) -> Result<u64, StoreError> {
        let filter = filter.clone();
        self.run(|s| async move { s.delete(&filter).await }).await
    }
}

#[async_trait]
impl<S: Store + 'static> UserStore for Detached<S> {
    async fn count_users(&self) -> Result<u64, StoreError> {
        self.run(|s| async move { s.count_users().await }).await
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let username = username.clone();
        self.run(|s| async move { s.find_user(&username).await })
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.run(|s| async move { s.list_users().await }).await
    }

    async fn delete_user(&self, username: &Username) -> Result<bool, StoreError> {
        let username = username.clone();
        self.run(|s| async move { s.delete_user(&username).await })
            .await
    }

    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        let (username, hash) = (username.clone(), password_hash.to_owned());
        self.run(|s| async move { s.create_user(&username, &hash, role).await })
            .await
    }

    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let (username, hash) = (username.clone(), password_hash.to_owned());
        self.run(|s| async move { s.set_password(&username, &hash).await })
            .await
    }

    async fn set_role(&self, username: &Username, role: Role) -> Result<bool, StoreError> {
        let username = username.clone();
        self.run(|s| async move { s.set_role(&username, role).await })
            .await
    }
}

#[async_trait]
impl<S: Store + 'static> AnalyticsStore for Detached<S> {
    async fn aggregate(&self, query: &AggregateQuery) -> Result<GroupedPage<Bucket>, StoreError> {
        let query = query.clone();
        self.run(|s| async move { s.aggregate(&query).await }).await
    }

    async fn devices(
        &self,
        query: &DeviceQuery,
        now: DateTime<Utc>,
    ) -> Result<GroupedPage<Device>, StoreError> {
        let query = query.clone();
        self.run(|s| async move { s.devices(&query, now).await })
            .await
    }

    async fn refresh_rollups(&self, now: DateTime<Utc>, most: usize) -> Result<usize, StoreError> {
        self.run(|s| async move { s.refresh_rollups(now, most).await })
            .await
    }

    async fn dirty_hours(&self, ended_by: DateTime<Utc>) -> Result<u64, StoreError> {
        self.run(move |s| async move { s.dirty_hours(ended_by).await })
            .await
    }

    async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        chunk: usize,
    ) -> Result<RetentionStep, StoreError> {
        let policy = *policy;
        self.run(move |s| async move { s.apply_retention(&policy, now, chunk).await })
            .await
    }
}

#[async_trait]
impl<S: Store + 'static> Store for Detached<S> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|s| async move { s.ping().await }).await
    }

    fn backend_name(&self) -> &'static str {
        self.0.backend_name()
    }

    fn concurrent_writers(&self) -> bool {
        self.0.concurrent_writers()
    }
}
