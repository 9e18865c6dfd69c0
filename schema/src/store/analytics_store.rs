//! The analytics of `DieselStore`: exact time-bucket aggregates, the device
//! catalog, and the refresher that keeps the hourly rollups exact.
//!
//! The invariant: an hour not listed in `rollup_dirty` has rollups that
//! equal the aggregate of its rows. Every write marks the hours it touches
//! in the same transaction (the batch insert, an edit or delete chunk), and
//! the refresher rebuilds a marked hour from its rows in one transaction
//! that starts by deleting the mark — the row lock on the mark orders it
//! after any writer still holding that hour. An answer therefore reads
//! rollups for clean whole hours and rows for everything else: the edges of
//! the window, dirty hours, and intervals that are not whole hours.

use super::diesel_store::IdsAndTimes;
use super::diesel_store::{DieselBackend, DieselStore};
use super::query::{filter_conditions, SqlTypes};
use super::retention::{self, HorizonInsert, HorizonRow};
use super::rollup_refresh;
use super::rollup_rows::{
    hour_of, DeviceHourRow, DeviceRow, DirtyRow, Id1HourRow, NewDeviceHourRow, NewId1HourRow,
    NewTypeHourRow, RawRow, StaleRow, TypeHourRow,
};
use super::{AnalyticsStore, StoreError};
use crate::analytics::{
    Aggregate, AggregateQuery, Bucket, Device, DeviceQuery, GroupBy, GroupKey, GroupPage,
    GroupedPage, Interval,
};
use crate::db::{
    devices, retention_horizon, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_stale,
    rollup_type_hour, sensor_data,
};
use crate::filter::ReadingFilter;
use crate::retention::{RetentionPolicy, RetentionStep};
use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::query_builder::{
    BoxedDeleteStatement, BoxedSelectStatement, FromClause, InsertOrIgnoreStatement,
    InsertStatement,
};
use diesel::query_dsl::methods::BoxedDsl;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Double, Integer, Text, Timestamp};
use diesel::{BoolExpressionMethods, ExpressionMethods, Insertable, QueryDsl};
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, BTreeSet};

/// Dirty hours in a window beyond which an answer reads the window's rows
/// instead of rollups (right after an upgrade, every hour is dirty).
const MOST_DIRTY_HOURS: usize = 48;
/// An hour is refreshed only once it has ended this long ago: readings
/// still arriving for it would only mark it again.
const SETTLE: i64 = 5;
/// ... and once it was first marked this long ago (seconds): an hour a
/// backlog or a backfill is still writing is rebuilt once it is done, or
/// every so often, rather than after every batch. Answers stay exact
/// meanwhile; they read its rows.
const QUIET: i64 = 10;

/// A reading's device, time and value, as selected from `sensor_data`.
type RawColumns = (Text, Text, Integer, Timestamp, Double);
pub(super) type RawQuery<DB> =
    BoxedSelectStatement<'static, RawColumns, FromClause<sensor_data::table>, DB>;
type DeviceInsert = InsertStatement<
    rollup_device_hour::table,
    <NewDeviceHourRow as Insertable<rollup_device_hour::table>>::Values,
>;
type TypeInsert = InsertStatement<
    rollup_type_hour::table,
    <NewTypeHourRow as Insertable<rollup_type_hour::table>>::Values,
>;
type Id1Insert = InsertStatement<
    rollup_id1_hour::table,
    <NewId1HourRow as Insertable<rollup_id1_hour::table>>::Values,
>;
type CatalogInsert =
    InsertStatement<devices::table, <DeviceRow as Insertable<devices::table>>::Values>;
/// Marking the rollups stale.
pub(super) type StaleMark = InsertOrIgnoreStatement<
    rollup_stale::table,
    <StaleRow as Insertable<rollup_stale::table>>::Values,
>;
/// Marking an hour dirty.
pub(super) type DirtyMark = InsertOrIgnoreStatement<
    rollup_dirty::table,
    <DirtyRow as Insertable<rollup_dirty::table>>::Values,
>;

#[async_trait]
impl<B: DieselBackend> AnalyticsStore for DieselStore<B>
where
    String: ToSql<Text, B::Db>,
    i32: ToSql<Integer, B::Db>,
    i64: ToSql<BigInt, B::Db>,
    f64: ToSql<Double, B::Db>,
    NaiveDateTime: ToSql<Timestamp, B::Db>,
    sensor_data::table: BoxedDsl<'static, B::Db, Output = sensor_data::BoxedQuery<'static, B::Db>>,
    rollup_dirty::table:
        BoxedDsl<'static, B::Db, Output = rollup_dirty::BoxedQuery<'static, B::Db>>,
    rollup_device_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_device_hour::BoxedQuery<'static, B::Db>>,
    rollup_type_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_type_hour::BoxedQuery<'static, B::Db>>,
    rollup_id1_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_id1_hour::BoxedQuery<'static, B::Db>>,
    devices::table: BoxedDsl<'static, B::Db, Output = devices::BoxedQuery<'static, B::Db>>,
    rollup_stale::table:
        BoxedDsl<'static, B::Db, Output = rollup_stale::BoxedQuery<'static, B::Db>>,
    rollup_stale::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, StaleRow>,
    BoxedDeleteStatement<'static, B::Db, rollup_stale::table>: ExecuteDsl<B::Conn>,
    RawQuery<B::Db>: LoadQuery<'static, B::Conn, RawRow>,
    rollup_dirty::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DirtyRow>,
    rollup_device_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DeviceHourRow>,
    rollup_type_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, TypeHourRow>,
    rollup_id1_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, Id1HourRow>,
    devices::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DeviceRow>,
    BoxedDeleteStatement<'static, B::Db, rollup_dirty::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_device_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_type_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_id1_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, devices::table>: ExecuteDsl<B::Conn>,
    DeviceInsert: ExecuteDsl<B::Conn>,
    TypeInsert: ExecuteDsl<B::Conn>,
    Id1Insert: ExecuteDsl<B::Conn>,
    CatalogInsert: ExecuteDsl<B::Conn>,
    retention_horizon::table:
        BoxedDsl<'static, B::Db, Output = retention_horizon::BoxedQuery<'static, B::Db>>,
    retention_horizon::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, HorizonRow>,
    BoxedDeleteStatement<'static, B::Db, retention_horizon::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, sensor_data::table>: ExecuteDsl<B::Conn>,
    HorizonInsert: ExecuteDsl<B::Conn>,
    IdsAndTimes<B::Db>: LoadQuery<'static, B::Conn, (i64, NaiveDateTime)>,
    diesel::dsl::EqAny<sensor_data::id, Vec<i64>>: diesel::query_builder::QueryFragment<B::Db>,
{
    async fn aggregate(&self, q: &AggregateQuery) -> Result<GroupedPage<Bucket>, StoreError> {
        let mut conn = self.conn().await?;
        let mut buckets = Buckets::new(q.interval(), q.page());
        let mut raw = vec![(q.from(), q.to())];
        let usable = self.rollups_usable(&mut *conn).await?;
        // Before retention's horizon the rows are gone (or going) and the
        // rollups are the record: they are read whatever their marks say.
        let horizon = retention::horizon(&mut *conn).await?;
        if usable && q.interval().seconds() % 3_600 == 0 {
            let (first, end) = (ceil_hour(q.from()), floor_hour(q.to()));
            if first < end {
                let mut dirty = dirty_hours_in(&mut *conn, first, end).await?;
                if let Some(h) = horizon {
                    dirty.retain(|hour| *hour >= h);
                }
                if dirty.len() <= MOST_DIRTY_HOURS {
                    let hours = CleanHours {
                        first,
                        end,
                        dirty: &dirty,
                    };
                    HourTable::for_query(q)
                        .add_to(&mut *conn, q, hours, &mut buckets)
                        .await?;
                    raw = outside_clean_hours(q.from(), q.to(), first, end, &dirty);
                }
            }
        }
        for (from, to) in raw {
            let from = horizon.map_or(from, |h| from.max(h.and_utc()));
            if from >= to {
                continue;
            }
            let filter = q.conditions().clone().within(from, to);
            let rows = raw_rows(&filter).load_stream::<RawRow>(&mut *conn).await?;
            let mut rows = std::pin::pin!(rows);
            while let Some(r) = rows.try_next().await? {
                let key = q.group_by().key(&r.sensor_type, &r.id1, r.id2);
                buckets.add(
                    r.timestamp.and_utc(),
                    key,
                    &Aggregate::of(r.timestamp.and_utc(), r.value),
                );
            }
        }
        Ok(buckets.into_page())
    }

    async fn devices(
        &self,
        q: &DeviceQuery,
        now: DateTime<Utc>,
    ) -> Result<GroupedPage<Device>, StoreError> {
        let mut conn = self.conn().await?;
        let after = q.page().after.as_ref().map(DeviceKey::from_group);
        if !self.rollups_usable(&mut *conn).await? {
            let range = DeviceRange {
                after,
                through: None,
            };
            let all = per_device_where(&mut *conn, q.conditions(), &|k| range.contains(k)).await?;
            let devices = all.into_iter().map(|(key, a)| key.device(&a));
            return Ok(device_page(
                devices.filter(|d| q.selects(d, now)),
                q.page(),
                None,
            ));
        }
        // The page's stretch of the catalog: the first `limit + 1` devices
        // after the previous page; where it was cut bounds what the dirty
        // hours may add or remove.
        let mut catalog: BTreeMap<DeviceKey, Aggregate> = BTreeMap::new();
        let mut query = catalog_query(q.conditions());
        if let Some(a) = &after {
            let (st, id1) = (a.sensor_type.clone(), a.id1.clone());
            query = query.filter(
                devices::sensor_type
                    .gt(st.clone())
                    .or(devices::sensor_type
                        .eq(st.clone())
                        .and(devices::id1.gt(id1.clone())))
                    .or(devices::sensor_type
                        .eq(st)
                        .and(devices::id1.eq(id1))
                        .and(devices::id2.gt(a.id2))),
            );
        }
        let query = query.limit(i64::try_from(q.page().limit + 1).unwrap_or(i64::MAX));
        {
            let rows = query.load_stream::<DeviceRow>(&mut *conn).await?;
            let mut rows = std::pin::pin!(rows);
            while let Some(r) = rows.try_next().await? {
                let device = Device::from(r);
                let key = DeviceKey::of(&device);
                if after.as_ref().is_some_and(|a| key <= *a) {
                    continue;
                }
                catalog.insert(key, device_aggregate(&device));
                if catalog.len() > q.page().limit {
                    break;
                }
            }
        }
        let through = (catalog.len() > q.page().limit)
            .then(|| catalog.keys().next_back().cloned())
            .flatten();
        let range = DeviceRange {
            after,
            through: through.clone(),
        };
        // What the dirty hours hold replaces what their rollups said
        // (before retention's horizon, marks mean nothing: rollups are the
        // record there and the catalog no longer counts those hours).
        let horizon = retention::horizon(&mut *conn).await?;
        let mut dirty = rollup_dirty::table.into_boxed();
        if let Some(h) = horizon {
            dirty = dirty.filter(rollup_dirty::bucket.ge(h));
        }
        let dirty: Vec<DirtyRow> = dirty.load(&mut *conn).await?;
        let c = q.conditions();
        correct_for_dirty_hours(&mut *conn, c, &dirty, horizon, &range, &mut catalog).await?;
        let devices = catalog
            .into_iter()
            .filter(|(_, a)| a.count > 0)
            .map(|(key, a)| key.device(&a))
            .filter(|d| q.selects(d, now));
        Ok(device_page(devices, q.page(), through))
    }

    async fn refresh_rollups(&self, now: DateTime<Utc>, most: usize) -> Result<usize, StoreError> {
        if !self.backend.rollups() {
            return Ok(0);
        }
        let settled = (now - Duration::seconds(3_600 + SETTLE)).naive_utc();
        let quiet = (now - Duration::seconds(QUIET)).naive_utc();
        let Ok(_turn) = self.maintenance.try_lock() else {
            return Ok(0);
        };
        let mut conn = self.conn().await?;
        if !B::begin_refresh(&mut conn).await? {
            return Ok(0);
        }
        let refreshed = rollup_refresh::refresh_settled::<B>(&mut conn, settled, quiet, most).await;
        // Released even after a failure: the connection goes back to the pool.
        B::end_refresh(&mut conn).await?;
        refreshed
    }

    async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        chunk: usize,
    ) -> Result<RetentionStep, StoreError> {
        if !self.backend.rollups() {
            // Retired hours are answered from rollups: without them,
            // retention would lose history (the binary refuses the mix).
            return Ok(RetentionStep::default());
        }
        let busy = RetentionStep {
            busy: true,
            ..RetentionStep::default()
        };
        let Ok(_turn) = self.maintenance.try_lock() else {
            return Ok(busy);
        };
        let mut conn = self.conn().await?;
        if !B::begin_refresh(&mut conn).await? {
            return Ok(busy);
        }
        let step = retention::step::<B>(&mut conn, policy, now, chunk).await;
        // Released even after a failure: the connection goes back to the pool.
        B::end_refresh(&mut conn).await?;
        step
    }

    async fn dirty_hours(&self, ended_by: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let last = (ended_by - Duration::hours(1)).naive_utc();
        let dirty: Vec<DirtyRow> = rollup_dirty::table
            .into_boxed()
            .filter(rollup_dirty::bucket.le(last))
            .load(&mut *conn)
            .await?;
        let stale: Vec<StaleRow> = rollup_stale::table.into_boxed().load(&mut *conn).await?;
        Ok(dirty.len() as u64 + stale.len() as u64)
    }
}

impl<B: DieselBackend> DieselStore<B>
where
    rollup_stale::table:
        BoxedDsl<'static, B::Db, Output = rollup_stale::BoxedQuery<'static, B::Db>>,
    rollup_stale::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, StaleRow>,
{
    /// Whether answers may read rollups: this process keeps them, and no
    /// writer with rollups off has left them stale.
    async fn rollups_usable(&self, conn: &mut B::Conn) -> Result<bool, StoreError> {
        if !self.backend.rollups() {
            return Ok(false);
        }
        let stale: Vec<StaleRow> = rollup_stale::table.into_boxed().load(conn).await?;
        Ok(stale.is_empty())
    }
}

/// The first whole hour at or after `at`.
fn ceil_hour(at: DateTime<Utc>) -> NaiveDateTime {
    let hour = hour_of(at);
    if hour == at.naive_utc() {
        hour
    } else {
        hour + Duration::hours(1)
    }
}

/// The start of the hour `at` falls in.
fn floor_hour(at: DateTime<Utc>) -> NaiveDateTime {
    hour_of(at)
}

/// What of `[from, to)` rollups do not cover: the part before the first
/// whole hour, after the last, and each dirty hour (adjacent ones joined).
fn outside_clean_hours(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    first: NaiveDateTime,
    end: NaiveDateTime,
    dirty: &BTreeSet<NaiveDateTime>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut push = |a: DateTime<Utc>, b: DateTime<Utc>| {
        if a >= b {
            return;
        }
        match ranges.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => ranges.push((a, b)),
        }
    };
    push(from, first.and_utc());
    for hour in dirty {
        push(hour.and_utc(), (*hour + Duration::hours(1)).and_utc());
    }
    push(end.and_utc(), to);
    ranges
}

/// Buckets being filled: partial aggregates merged by group and bucket,
/// for one page of groups. Only groups after the page's `after` are kept,
/// and only the first `limit + 1` of them by key (one more, to tell whether
/// a next page exists): a group beyond them is dropped as its rows stream
/// past, so an answer holds a page's worth however many groups the window
/// has, and every kept group is complete (all rows are seen).
struct Buckets {
    interval: Interval,
    page: GroupPage,
    by_group: BTreeMap<(GroupKey, DateTime<Utc>), Aggregate>,
    groups: BTreeSet<GroupKey>,
}

impl Buckets {
    fn new(interval: Interval, page: &GroupPage) -> Self {
        Self {
            interval,
            page: page.clone(),
            by_group: BTreeMap::new(),
            groups: BTreeSet::new(),
        }
    }

    /// Adds the aggregate of readings taken in the bucket of `at`.
    fn add(&mut self, at: DateTime<Utc>, key: GroupKey, aggregate: &Aggregate) {
        if !self.keeps(&key) {
            return;
        }
        let start = self.interval.bucket_of(at);
        match self.by_group.get_mut(&(key.clone(), start)) {
            Some(existing) => existing.merge(aggregate),
            None => {
                self.by_group.insert((key, start), *aggregate);
            }
        }
    }

    /// Whether `key` belongs to the page (making room for it if it does).
    fn keeps(&mut self, key: &GroupKey) -> bool {
        if !self.page.follows(key) {
            return false;
        }
        if self.groups.contains(key) {
            return true;
        }
        let room = self.page.limit + 1;
        if self.groups.len() >= room {
            match self.groups.last() {
                Some(last) if key > last => return false,
                _ => {}
            }
        }
        self.groups.insert(key.clone());
        if self.groups.len() > room {
            if let Some(evicted) = self.groups.pop_last() {
                let from = (evicted.clone(), DateTime::<Utc>::MIN_UTC);
                let gone: Vec<_> = self
                    .by_group
                    .range(from..)
                    .take_while(|((k, _), _)| *k == evicted)
                    .map(|(at, _)| at.clone())
                    .collect();
                for at in gone {
                    self.by_group.remove(&at);
                }
            }
        }
        true
    }

    /// Adds an hourly rollup of `key`'s readings, regrouped by `group_by`.
    fn add_group(&mut self, hour: DateTime<Utc>, key: GroupKey, group_by: GroupBy, a: &Aggregate) {
        let regrouped = group_by.key(
            key.sensor_type.as_deref().unwrap_or(""),
            key.id1.as_deref().unwrap_or(""),
            key.id2.unwrap_or(0),
        );
        self.add(hour, regrouped, a);
    }

    /// The page's buckets by start, then group; the one group kept beyond
    /// the limit only says that another page follows.
    fn into_page(mut self) -> GroupedPage<Bucket> {
        let mut next_after = None;
        if self.groups.len() > self.page.limit {
            if let Some(beyond) = self.groups.pop_last() {
                self.by_group.retain(|(key, _), _| *key != beyond);
                next_after = self.groups.last().cloned();
            }
        }
        let mut buckets: Vec<Bucket> = self
            .by_group
            .into_iter()
            .map(|((key, start), aggregate)| Bucket {
                start,
                key,
                aggregate,
            })
            .collect();
        buckets.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
        GroupedPage {
            items: buckets,
            next_after,
        }
    }
}

/// Which hourly rollup answers a query: the coarsest that still has the
/// query's filters and grouping among its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HourTable {
    /// Per device: any filter, any grouping.
    Device,
    /// Per `id1` and sensor type: no `id2` filter, not grouped by device.
    Id1,
    /// Per sensor type: neither `id1` nor `id2`, grouped by type or not.
    Type,
}

impl HourTable {
    fn for_query(q: &AggregateQuery) -> Self {
        let c = q.conditions();
        match q.group_by() {
            GroupBy::Device => Self::Device,
            _ if c.id2().is_some() => Self::Device,
            GroupBy::Id1 => Self::Id1,
            _ if c.id1().is_some() => Self::Id1,
            GroupBy::SensorType | GroupBy::None => Self::Type,
        }
    }

    /// Streams the rollup rows of `hours` matching `q` into `buckets`,
    /// skipping the dirty hours. Rows of groups before the page are left in
    /// the database where the table's leading key column can tell.
    async fn add_to<C, DB>(
        self,
        conn: &mut C,
        q: &AggregateQuery,
        hours: CleanHours<'_>,
        buckets: &mut Buckets,
    ) -> Result<(), StoreError>
    where
        C: AsyncConnection<Backend = DB> + Send,
        DB: SqlTypes + 'static,
        String: ToSql<Text, DB>,
        i32: ToSql<Integer, DB>,
        NaiveDateTime: ToSql<Timestamp, DB>,
        rollup_device_hour::table:
            BoxedDsl<'static, DB, Output = rollup_device_hour::BoxedQuery<'static, DB>>,
        rollup_type_hour::table:
            BoxedDsl<'static, DB, Output = rollup_type_hour::BoxedQuery<'static, DB>>,
        rollup_id1_hour::table:
            BoxedDsl<'static, DB, Output = rollup_id1_hour::BoxedQuery<'static, DB>>,
        rollup_device_hour::BoxedQuery<'static, DB>: LoadQuery<'static, C, DeviceHourRow>,
        rollup_type_hour::BoxedQuery<'static, DB>: LoadQuery<'static, C, TypeHourRow>,
        rollup_id1_hour::BoxedQuery<'static, DB>: LoadQuery<'static, C, Id1HourRow>,
    {
        let (c, group_by) = (q.conditions(), q.group_by());
        let floor = PageFloor::of(q);
        let mut add = |bucket: NaiveDateTime, key: GroupKey, a: Aggregate| {
            if !hours.dirty.contains(&bucket) {
                buckets.add_group(bucket.and_utc(), key, group_by, &a);
            }
        };
        match self {
            Self::Device => {
                let mut query = device_rollup_query(c, None, hours.first, hours.end);
                if let Some(v) = floor.sensor_type {
                    query = query.filter(rollup_device_hour::sensor_type.ge(v));
                }
                if let Some(v) = floor.id1 {
                    query = query.filter(rollup_device_hour::id1.ge(v));
                }
                let rows = query.load_stream::<DeviceHourRow>(conn).await?;
                let mut rows = std::pin::pin!(rows);
                while let Some(r) = rows.try_next().await? {
                    let key = GroupBy::Device.key(&r.sensor_type, &r.id1, r.id2);
                    add(r.bucket, key, r.aggregate());
                }
            }
            Self::Id1 => {
                let mut query = rollup_id1_hour::table
                    .into_boxed()
                    .filter(rollup_id1_hour::bucket.ge(hours.first))
                    .filter(rollup_id1_hour::bucket.lt(hours.end));
                if let Some(v) = c.id1() {
                    query = query.filter(rollup_id1_hour::id1.eq(v.as_str().to_owned()));
                }
                if let Some(v) = c.sensor_type() {
                    query = query.filter(rollup_id1_hour::sensor_type.eq(v.as_str().to_owned()));
                }
                if let Some(v) = floor.sensor_type {
                    query = query.filter(rollup_id1_hour::sensor_type.ge(v));
                }
                if let Some(v) = floor.id1 {
                    query = query.filter(rollup_id1_hour::id1.ge(v));
                }
                let rows = query.load_stream::<Id1HourRow>(conn).await?;
                let mut rows = std::pin::pin!(rows);
                while let Some(r) = rows.try_next().await? {
                    let key = GroupKey {
                        sensor_type: Some(r.sensor_type.clone()),
                        id1: Some(r.id1.clone()),
                        id2: None,
                    };
                    add(r.bucket, key, r.aggregate());
                }
            }
            Self::Type => {
                let mut query = rollup_type_hour::table
                    .into_boxed()
                    .filter(rollup_type_hour::bucket.ge(hours.first))
                    .filter(rollup_type_hour::bucket.lt(hours.end));
                if let Some(v) = c.sensor_type() {
                    query = query.filter(rollup_type_hour::sensor_type.eq(v.as_str().to_owned()));
                }
                if let Some(v) = floor.sensor_type {
                    query = query.filter(rollup_type_hour::sensor_type.ge(v));
                }
                let rows = query.load_stream::<TypeHourRow>(conn).await?;
                let mut rows = std::pin::pin!(rows);
                while let Some(r) = rows.try_next().await? {
                    let key = GroupKey {
                        sensor_type: Some(r.sensor_type.clone()),
                        ..GroupKey::default()
                    };
                    add(r.bucket, key, r.aggregate());
                }
            }
        }
        Ok(())
    }
}

/// The whole hours `[first, end)` of a window, and which of them are dirty
/// (answered from rows instead).
#[derive(Clone, Copy)]
struct CleanHours<'a> {
    first: NaiveDateTime,
    end: NaiveDateTime,
    dirty: &'a BTreeSet<NaiveDateTime>,
}

/// What a page of groups says about the leading key column: its groups
/// have a sensor type (by device or type) or an `id1` (by `id1`) at least
/// the previous page's last. A condition on one column keeps the rows of
/// earlier pages in the database; the exact cut is the buckets'.
#[derive(Default)]
struct PageFloor {
    sensor_type: Option<String>,
    id1: Option<String>,
}

impl PageFloor {
    fn of(q: &AggregateQuery) -> Self {
        let Some(after) = &q.page().after else {
            return Self::default();
        };
        match q.group_by() {
            GroupBy::Device | GroupBy::SensorType => Self {
                sensor_type: after.sensor_type.clone(),
                id1: None,
            },
            GroupBy::Id1 => Self {
                sensor_type: None,
                id1: after.id1.clone(),
            },
            GroupBy::None => Self::default(),
        }
    }
}

/// The dirty hours in `[first, end)`.
async fn dirty_hours_in<C, DB>(
    conn: &mut C,
    first: NaiveDateTime,
    end: NaiveDateTime,
) -> Result<BTreeSet<NaiveDateTime>, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    NaiveDateTime: ToSql<Timestamp, DB>,
    rollup_dirty::table: BoxedDsl<'static, DB, Output = rollup_dirty::BoxedQuery<'static, DB>>,
    rollup_dirty::BoxedQuery<'static, DB>: LoadQuery<'static, C, DirtyRow>,
{
    let rows: Vec<DirtyRow> = rollup_dirty::table
        .into_boxed()
        .filter(rollup_dirty::bucket.ge(first))
        .filter(rollup_dirty::bucket.lt(end))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.bucket).collect())
}

/// Every reading `filter` matches (conditions and time bounds): its device,
/// time and value.
pub(super) fn raw_rows<DB>(filter: &ReadingFilter) -> RawQuery<DB>
where
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    sensor_data::table: BoxedDsl<'static, DB, Output = sensor_data::BoxedQuery<'static, DB>>,
{
    filter_conditions(sensor_data::table.into_boxed::<DB>(), filter).select((
        sensor_data::sensor_type,
        sensor_data::id1,
        sensor_data::id2,
        sensor_data::timestamp,
        sensor_data::sensor_value,
    ))
}

/// The catalog rows matching the device conditions of `c`.
fn catalog_query<DB>(c: &ReadingFilter) -> devices::BoxedQuery<'static, DB>
where
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    devices::table: BoxedDsl<'static, DB, Output = devices::BoxedQuery<'static, DB>>,
{
    let mut q = devices::table.into_boxed::<DB>();
    if let Some(v) = c.id1() {
        q = q.filter(devices::id1.eq(v.as_str().to_owned()));
    }
    if let Some(v) = c.id2() {
        q = q.filter(devices::id2.eq(v.get()));
    }
    if let Some(v) = c.sensor_type() {
        q = q.filter(devices::sensor_type.eq(v.as_str().to_owned()));
    }
    q.order((
        devices::sensor_type.asc(),
        devices::id1.asc(),
        devices::id2.asc(),
    ))
}

/// The devices after a page's `after` up to `through` (inclusive; `None`:
/// to the end), by key.
struct DeviceRange {
    after: Option<DeviceKey>,
    through: Option<DeviceKey>,
}

impl DeviceRange {
    fn contains(&self, key: &DeviceKey) -> bool {
        self.after.as_ref().is_none_or(|a| key > a)
            && self.through.as_ref().is_none_or(|t| key <= t)
    }
}

/// The first `limit` of `devices` (in key order, every one after the
/// page's start) and where the next page starts: after the last of them
/// when more followed, else after `examined_through` when only that much
/// of the catalog was looked at.
fn device_page(
    devices: impl Iterator<Item = Device>,
    page: &GroupPage,
    examined_through: Option<DeviceKey>,
) -> GroupedPage<Device> {
    let mut items: Vec<Device> = devices.take(page.limit + 1).collect();
    let next = if items.len() > page.limit {
        items.truncate(page.limit);
        items.last().map(DeviceKey::of)
    } else {
        examined_through
    };
    GroupedPage {
        items,
        next_after: next.map(DeviceKey::into_group),
    }
}

/// A device, ordered by sensor type, `id1`, `id2`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DeviceKey {
    pub(super) sensor_type: String,
    pub(super) id1: String,
    pub(super) id2: i32,
}

impl DeviceKey {
    /// The device a group key names (missing parts sort first).
    fn from_group(key: &GroupKey) -> Self {
        Self {
            sensor_type: key.sensor_type.clone().unwrap_or_default(),
            id1: key.id1.clone().unwrap_or_default(),
            id2: key.id2.unwrap_or(i32::MIN),
        }
    }

    /// As a group key of grouping by device.
    fn into_group(self) -> GroupKey {
        GroupKey {
            sensor_type: Some(self.sensor_type),
            id1: Some(self.id1),
            id2: Some(self.id2),
        }
    }

    pub(super) fn of(d: &Device) -> Self {
        Self {
            sensor_type: d.sensor_type.clone(),
            id1: d.id1.clone(),
            id2: d.id2,
        }
    }

    fn device(self, a: &Aggregate) -> Device {
        Device {
            sensor_type: self.sensor_type,
            id1: self.id1,
            id2: self.id2,
            first_seen: a.first.at,
            last_seen: a.last.at,
            last_value: a.last.value,
            count: a.count,
        }
    }
}

/// A catalog row as an aggregate: what it records of the device's readings
/// (count, first and last; sum, min and max are not kept and not read).
pub(super) fn device_aggregate(d: &Device) -> Aggregate {
    let mut a = Aggregate::of(d.first_seen, d.last_value);
    a.count = d.count;
    a.last.at = d.last_seen;
    a.last.value = d.last_value;
    a
}

/// What the dirty hours change about one device's catalog entry.
#[derive(Default)]
struct Correction {
    /// Readings its dirty hours' rollups counted.
    stale: u64,
    /// Its dirty hours' rows.
    rows: Option<Aggregate>,
}

/// The catalog reflects every hour's rollups; for a dirty hour, what its
/// rows hold replaces what its rollups said: counts move by the difference,
/// and a first or last reading recorded in a dirty hour is looked up again
/// among the clean hours (it may have been deleted or edited).
async fn correct_for_dirty_hours<C, DB>(
    conn: &mut C,
    c: &ReadingFilter,
    dirty: &[DirtyRow],
    horizon: Option<NaiveDateTime>,
    range: &DeviceRange,
    catalog: &mut BTreeMap<DeviceKey, Aggregate>,
) -> Result<(), StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    sensor_data::table: BoxedDsl<'static, DB, Output = sensor_data::BoxedQuery<'static, DB>>,
    rollup_device_hour::table:
        BoxedDsl<'static, DB, Output = rollup_device_hour::BoxedQuery<'static, DB>>,
    RawQuery<DB>: LoadQuery<'static, C, RawRow>,
    rollup_device_hour::BoxedQuery<'static, DB>: LoadQuery<'static, C, DeviceHourRow>,
{
    let hours: BTreeSet<NaiveDateTime> = dirty.iter().map(|d| d.bucket).collect();
    let mut corrections: BTreeMap<DeviceKey, Correction> = BTreeMap::new();
    for hour in &hours {
        let end = *hour + Duration::hours(1);
        {
            let stale = device_rollup_query(c, None, *hour, end)
                .load_stream::<DeviceHourRow>(&mut *conn)
                .await?;
            let mut stale = std::pin::pin!(stale);
            while let Some(r) = stale.try_next().await? {
                let key = r.key();
                if range.contains(&key) {
                    corrections.entry(key).or_default().stale += r.aggregate().count;
                }
            }
        }
        let filter = c.clone().within(hour.and_utc(), end.and_utc());
        for (key, rows) in per_device_where(conn, &filter, &|k| range.contains(k)).await? {
            let entry = &mut corrections.entry(key).or_default().rows;
            match entry {
                Some(a) => a.merge(&rows),
                None => *entry = Some(rows),
            }
        }
    }
    let dirty_hour = |at: DateTime<Utc>| hours.contains(&hour_of(at));
    for (key, correction) in corrections {
        let recorded = catalog.get(&key).copied();
        let mut exact = match recorded {
            Some(a) if dirty_hour(a.first.at) || dirty_hour(a.last.at) => {
                clean_extremes(conn, &key, &hours, horizon).await?
            }
            other => other,
        };
        let count = recorded
            .map_or(0, |a| a.count)
            .saturating_sub(correction.stale)
            + correction.rows.map_or(0, |r| r.count);
        if let Some(rows) = correction.rows {
            match &mut exact {
                Some(a) => a.merge(&rows),
                None => exact = Some(rows),
            }
        }
        match exact {
            Some(mut a) if count > 0 => {
                a.count = count;
                catalog.insert(key, a);
            }
            _ => {
                catalog.remove(&key);
            }
        }
    }
    Ok(())
}

/// The earliest and latest reading of `key` among the clean hours' rollups
/// from `horizon` on (retention's: the hours before it are no longer
/// counted), as an aggregate (count left at 0; the caller sets it).
pub(super) async fn clean_extremes<C, DB>(
    conn: &mut C,
    key: &DeviceKey,
    dirty: &BTreeSet<NaiveDateTime>,
    horizon: Option<NaiveDateTime>,
) -> Result<Option<Aggregate>, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    rollup_device_hour::table:
        BoxedDsl<'static, DB, Output = rollup_device_hour::BoxedQuery<'static, DB>>,
    rollup_device_hour::BoxedQuery<'static, DB>: LoadQuery<'static, C, DeviceHourRow>,
{
    // Among the first (last) `dirty.len() + 1` hours of the device, one is
    // clean if any is.
    let look = dirty.len() as i64 + 1;
    let of_device = || {
        let q = rollup_device_hour::table
            .into_boxed::<DB>()
            .filter(rollup_device_hour::id1.eq(key.id1.clone()))
            .filter(rollup_device_hour::id2.eq(key.id2))
            .filter(rollup_device_hour::sensor_type.eq(key.sensor_type.clone()))
            .limit(look);
        match horizon {
            Some(h) => q.filter(rollup_device_hour::bucket.ge(h)),
            None => q,
        }
    };
    let earliest: Vec<DeviceHourRow> = of_device()
        .order(rollup_device_hour::bucket.asc())
        .load(conn)
        .await?;
    let latest: Vec<DeviceHourRow> = of_device()
        .order(rollup_device_hour::bucket.desc())
        .load(conn)
        .await?;
    let clean = |r: &&DeviceHourRow| !dirty.contains(&r.bucket);
    Ok(
        match (earliest.iter().find(clean), latest.iter().find(clean)) {
            (Some(first), Some(last)) => {
                let mut a = first.aggregate();
                a.last = last.aggregate().last;
                a.count = 0;
                Some(a)
            }
            _ => None,
        },
    )
}

/// Rollup rows per device of `[first, end)` matching `c` (and `id2` when
/// given), in no particular order.
pub(super) async fn device_rollups<C, DB>(
    conn: &mut C,
    c: &ReadingFilter,
    id2: Option<i32>,
    first: NaiveDateTime,
    end: NaiveDateTime,
) -> Result<Vec<DeviceHourRow>, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    rollup_device_hour::table:
        BoxedDsl<'static, DB, Output = rollup_device_hour::BoxedQuery<'static, DB>>,
    rollup_device_hour::BoxedQuery<'static, DB>: LoadQuery<'static, C, DeviceHourRow>,
{
    Ok(device_rollup_query(c, id2, first, end).load(conn).await?)
}

/// The query for [`device_rollups`].
pub(super) fn device_rollup_query<DB>(
    c: &ReadingFilter,
    id2: Option<i32>,
    first: NaiveDateTime,
    end: NaiveDateTime,
) -> rollup_device_hour::BoxedQuery<'static, DB>
where
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    rollup_device_hour::table:
        BoxedDsl<'static, DB, Output = rollup_device_hour::BoxedQuery<'static, DB>>,
{
    let mut q = rollup_device_hour::table
        .into_boxed()
        .filter(rollup_device_hour::bucket.ge(first))
        .filter(rollup_device_hour::bucket.lt(end));
    if let Some(v) = c.id1() {
        q = q.filter(rollup_device_hour::id1.eq(v.as_str().to_owned()));
    }
    if let Some(v) = id2.or(c.id2().map(|v| v.get())) {
        q = q.filter(rollup_device_hour::id2.eq(v));
    }
    if let Some(v) = c.sensor_type() {
        q = q.filter(rollup_device_hour::sensor_type.eq(v.as_str().to_owned()));
    }
    q
}

/// Each device's aggregate of the rows `filter` matches, for the devices
/// `keep` wants only (the others' rows stream past).
async fn per_device_where<C, DB>(
    conn: &mut C,
    filter: &ReadingFilter,
    keep: &(dyn Fn(&DeviceKey) -> bool + Sync),
) -> Result<BTreeMap<DeviceKey, Aggregate>, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    sensor_data::table: BoxedDsl<'static, DB, Output = sensor_data::BoxedQuery<'static, DB>>,
    RawQuery<DB>: LoadQuery<'static, C, RawRow>,
{
    let mut devices: BTreeMap<DeviceKey, Aggregate> = BTreeMap::new();
    let rows = raw_rows::<DB>(filter).load_stream::<RawRow>(conn).await?;
    let mut rows = std::pin::pin!(rows);
    while let Some(r) = rows.try_next().await? {
        let one = Aggregate::of(r.timestamp.and_utc(), r.value);
        let key = DeviceKey {
            sensor_type: r.sensor_type,
            id1: r.id1,
            id2: r.id2,
        };
        if !keep(&key) {
            continue;
        }
        match devices.get_mut(&key) {
            Some(a) => a.merge(&one),
            None => {
                devices.insert(key, one);
            }
        }
    }
    Ok(devices)
}
