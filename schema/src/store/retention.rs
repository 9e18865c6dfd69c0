//! Retention in the store: retiring old hours and removing their rows.
//!
//! The horizon (`retention_horizon.raw_before`, always a whole hour) splits
//! the table in two. At or after it everything is as the rollup invariant
//! says. Before it the rollups are the record: they are never rebuilt, dirty
//! marks there mean nothing (the refresher drops them), the device catalog
//! no longer counts those hours, and the rows are garbage that
//! [`step`] deletes in chunks. A reading written there after its hour was
//! retired is older than `RETENTION` and goes the same way.
//!
//! Retiring hour `H` (the oldest that still has rows, once it is older than
//! `RETENTION`) is one transaction: rebuild it first if it is dirty, take
//! its rollups out of the catalog as a rebuild that found no rows would,
//! but leave the rollups in place, and move the horizon to `H + 1h`.
//! Deleting rows marks nothing, so the rollups of retired hours stay as
//! they were.

use super::analytics_store::RawQuery;
use super::diesel_store::{DieselBackend, IdsAndTimes};
use super::query::SqlTypes;
use super::rollup_refresh::{catalog_after, hour_rollups_per_device, refresh_hour};
use super::rollup_rows::{hour_of, DeviceHourRow, DirtyRow, HourRollups, RawRow};
use super::transaction::in_transaction;
use super::StoreError;
use crate::db::{
    devices, retention_horizon, rollup_device_hour, rollup_dirty, rollup_id1_hour,
    rollup_type_hour, sensor_data,
};
use crate::filter::ReadingFilter;
use crate::retention::{RetentionPolicy, RetentionStep};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::{Insertable, Queryable};
use diesel::query_builder::{BoxedDeleteStatement, InsertStatement, QueryFragment};
use diesel::query_dsl::methods::BoxedDsl;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{AsyncConnection, RunQueryDsl};
use std::collections::BTreeMap;

/// Hours retired in one step at most: a step stays short, and a first run
/// over a year of readings makes progress a day at a time.
const HOURS_PER_STEP: usize = 24;
/// Hours of rollups removed in one step at most (`ROLLUP_RETENTION`).
const ROLLUP_HOURS_PER_STEP: i64 = 24;

/// The horizon's one row.
#[derive(Queryable, Insertable, Debug, Clone, Copy)]
#[diesel(table_name = retention_horizon)]
pub(super) struct HorizonRow {
    id: i32,
    raw_before: NaiveDateTime,
}

/// Writing the horizon's row.
pub(super) type HorizonInsert = InsertStatement<
    retention_horizon::table,
    <HorizonRow as Insertable<retention_horizon::table>>::Values,
>;

/// Retention's horizon: raw readings before it are gone or going. `None`
/// until retention has retired an hour.
pub(super) async fn horizon<C, DB>(conn: &mut C) -> Result<Option<NaiveDateTime>, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    retention_horizon::table:
        BoxedDsl<'static, DB, Output = retention_horizon::BoxedQuery<'static, DB>>,
    retention_horizon::BoxedQuery<'static, DB>: LoadQuery<'static, C, HorizonRow>,
{
    let rows: Vec<HorizonRow> = retention_horizon::table.into_boxed().load(conn).await?;
    Ok(rows.into_iter().next().map(|r| r.raw_before))
}

/// One bounded step of `policy` at `now`, by the one refresher at work:
/// retires up to [`HOURS_PER_STEP`] due hours, deletes up to `chunk` rows
/// before the horizon, and removes up to [`ROLLUP_HOURS_PER_STEP`] hours of
/// rollups past `ROLLUP_RETENTION`.
pub(super) async fn step<B: DieselBackend>(
    conn: &mut B::Conn,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    chunk: usize,
) -> Result<RetentionStep, StoreError>
where
    String: ToSql<Text, B::Db>,
    i32: ToSql<Integer, B::Db>,
    i64: ToSql<BigInt, B::Db>,
    NaiveDateTime: ToSql<Timestamp, B::Db>,
    sensor_data::table: BoxedDsl<'static, B::Db, Output = sensor_data::BoxedQuery<'static, B::Db>>,
    rollup_dirty::table:
        BoxedDsl<'static, B::Db, Output = rollup_dirty::BoxedQuery<'static, B::Db>>,
    rollup_dirty::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DirtyRow>,
    rollup_device_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_device_hour::BoxedQuery<'static, B::Db>>,
    rollup_device_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DeviceHourRow>,
    retention_horizon::table:
        BoxedDsl<'static, B::Db, Output = retention_horizon::BoxedQuery<'static, B::Db>>,
    retention_horizon::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, HorizonRow>,
    RawQuery<B::Db>: LoadQuery<'static, B::Conn, RawRow>,
    IdsAndTimes<B::Db>: LoadQuery<'static, B::Conn, (i64, NaiveDateTime)>,
    diesel::dsl::EqAny<sensor_data::id, Vec<i64>>: QueryFragment<B::Db>,
    BoxedDeleteStatement<'static, B::Db, sensor_data::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_device_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_type_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_id1_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, devices::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, retention_horizon::table>: ExecuteDsl<B::Conn>,
    HorizonInsert: ExecuteDsl<B::Conn>,
{
    let cutoff = hour_of(policy.raw_cutoff(now));
    let mut step = RetentionStep::default();
    while (step.hours_retired as usize) < HOURS_PER_STEP {
        let before = horizon(conn).await?;
        let Some(hour) = oldest_hour_before::<B::Conn, B::Db>(conn, before, cutoff).await? else {
            break;
        };
        if !retire_hour::<B>(conn, before, hour).await? {
            // A writer holds one of its dirty marks: next step.
            step.more = true;
            break;
        }
        step.hours_retired += 1;
    }
    if step.hours_retired as usize == HOURS_PER_STEP {
        step.more = true;
    }
    let horizon = horizon(conn).await?;
    step.horizon = horizon.map(|h| h.and_utc());
    if let Some(h) = horizon {
        step.rows_deleted = delete_rows_before::<B::Conn, B::Db>(conn, h, chunk).await?;
        step.more |= step.rows_deleted as usize == chunk;
        // Never at or after the horizon: those rollups stand for rows the
        // catalog counts.
        if let Some(due) = policy.rollup_cutoff(now) {
            let (deleted, more) = delete_rollups_before::<B>(conn, hour_of(due).min(h)).await?;
            step.rollup_rows_deleted = deleted;
            step.more |= more;
        }
    }
    Ok(step)
}

/// The hour of the oldest reading at or after `horizon`, when that hour
/// ended by `cutoff`.
async fn oldest_hour_before<C, DB>(
    conn: &mut C,
    horizon: Option<NaiveDateTime>,
    cutoff: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    sensor_data::table: BoxedDsl<'static, DB, Output = sensor_data::BoxedQuery<'static, DB>>,
    RawQuery<DB>: LoadQuery<'static, C, RawRow>,
{
    let mut q = super::analytics_store::raw_rows::<DB>(&ReadingFilter::default())
        .filter(sensor_data::timestamp.lt(cutoff))
        .order(sensor_data::timestamp.asc())
        .limit(1);
    if let Some(h) = horizon {
        q = q.filter(sensor_data::timestamp.ge(h));
    }
    let oldest: Vec<RawRow> = q.load(conn).await?;
    Ok(oldest
        .into_iter()
        .next()
        .map(|r| hour_of(r.timestamp.and_utc())))
}

/// Retires `hour`, the oldest with rows at or after the horizon `before`:
/// rebuilds its rollups first if they are marked, then in one transaction
/// takes them out of the device catalog and moves the horizon past it.
/// `false` when a mark could not be taken (a writer holds it).
async fn retire_hour<B: DieselBackend>(
    conn: &mut B::Conn,
    before: Option<NaiveDateTime>,
    hour: NaiveDateTime,
) -> Result<bool, StoreError>
where
    String: ToSql<Text, B::Db>,
    i32: ToSql<Integer, B::Db>,
    i64: ToSql<BigInt, B::Db>,
    NaiveDateTime: ToSql<Timestamp, B::Db>,
    sensor_data::table: BoxedDsl<'static, B::Db, Output = sensor_data::BoxedQuery<'static, B::Db>>,
    rollup_dirty::table:
        BoxedDsl<'static, B::Db, Output = rollup_dirty::BoxedQuery<'static, B::Db>>,
    rollup_dirty::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DirtyRow>,
    rollup_device_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_device_hour::BoxedQuery<'static, B::Db>>,
    rollup_device_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DeviceHourRow>,
    retention_horizon::table:
        BoxedDsl<'static, B::Db, Output = retention_horizon::BoxedQuery<'static, B::Db>>,
    retention_horizon::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, HorizonRow>,
    RawQuery<B::Db>: LoadQuery<'static, B::Conn, RawRow>,
    BoxedDeleteStatement<'static, B::Db, rollup_device_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_type_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_id1_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, devices::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, retention_horizon::table>: ExecuteDsl<B::Conn>,
    HorizonInsert: ExecuteDsl<B::Conn>,
{
    let end = hour + Duration::hours(1);
    // Every marked hour up to this one is rebuilt first: the catalog is
    // the sum of rollups, so retiring must subtract exact ones. (Hours
    // between the horizon and this one have no rows, so a mark there is
    // an hour whose rows were all deleted.)
    let mut marked = rollup_dirty::table
        .into_boxed()
        .filter(rollup_dirty::bucket.lt(end));
    if let Some(h) = before {
        marked = marked.filter(rollup_dirty::bucket.ge(h));
    }
    let marked: Vec<DirtyRow> = marked.load(conn).await?;
    for m in marked {
        if !refresh_hour::<B>(conn, m.bucket, before).await? {
            return Ok(false);
        }
    }
    in_transaction(conn, |conn| {
        Box::pin(retire_in_transaction::<B>(conn, hour))
    })
    .await?;
    Ok(true)
}

/// The work of [`retire_hour`] inside its transaction.
async fn retire_in_transaction<B: DieselBackend>(
    conn: &mut B::Conn,
    hour: NaiveDateTime,
) -> Result<(), StoreError>
where
    String: ToSql<Text, B::Db>,
    i32: ToSql<Integer, B::Db>,
    i64: ToSql<BigInt, B::Db>,
    NaiveDateTime: ToSql<Timestamp, B::Db>,
    rollup_device_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_device_hour::BoxedQuery<'static, B::Db>>,
    rollup_device_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DeviceHourRow>,
    retention_horizon::table:
        BoxedDsl<'static, B::Db, Output = retention_horizon::BoxedQuery<'static, B::Db>>,
    retention_horizon::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, HorizonRow>,
    BoxedDeleteStatement<'static, B::Db, devices::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, retention_horizon::table>: ExecuteDsl<B::Conn>,
    HorizonInsert: ExecuteDsl<B::Conn>,
{
    let end = hour + Duration::hours(1);
    if horizon(conn).await?.is_some_and(|h| h >= end) {
        return Ok(()); // another replica retired it
    }
    let stale = hour_rollups_per_device(conn, hour).await?;
    // As if the hour had been rebuilt and found empty, counting from the
    // new horizon: a device's first reading moves to a later hour.
    let catalog = catalog_after::<B>(conn, hour, Some(end), &stale, &BTreeMap::new()).await?;
    B::write_hour(conn, HourRollups::new(hour, &BTreeMap::new(), catalog)).await?;
    diesel::delete(retention_horizon::table)
        .into_boxed::<B::Db>()
        .execute(conn)
        .await?;
    diesel::insert_into(retention_horizon::table)
        .values(HorizonRow {
            id: 1,
            raw_before: end,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes up to `chunk` rows taken before `horizon`, oldest first (the
/// timestamp index finds them), in one short statement; returns how many.
async fn delete_rows_before<C, DB>(
    conn: &mut C,
    horizon: NaiveDateTime,
    chunk: usize,
) -> Result<u64, StoreError>
where
    C: AsyncConnection<Backend = DB> + Send,
    DB: SqlTypes + 'static,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    sensor_data::table: BoxedDsl<'static, DB, Output = sensor_data::BoxedQuery<'static, DB>>,
    IdsAndTimes<DB>: LoadQuery<'static, C, (i64, NaiveDateTime)>,
    diesel::dsl::EqAny<sensor_data::id, Vec<i64>>: QueryFragment<DB>,
    BoxedDeleteStatement<'static, DB, sensor_data::table>: ExecuteDsl<C>,
{
    let rows: Vec<(i64, NaiveDateTime)> = sensor_data::table
        .into_boxed::<DB>()
        .select((sensor_data::id, sensor_data::timestamp))
        .filter(sensor_data::timestamp.lt(horizon))
        .order(sensor_data::timestamp.asc())
        .limit(i64::try_from(chunk).unwrap_or(i64::MAX))
        .load(conn)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.into_iter().map(|(id, _)| id).collect();
    let deleted = diesel::delete(sensor_data::table)
        .filter(sensor_data::id.eq_any(ids))
        .into_boxed::<DB>()
        .execute(conn)
        .await?;
    Ok(deleted as u64)
}

/// Deletes the rollups of up to [`ROLLUP_HOURS_PER_STEP`] hours that
/// started before `due`, oldest first; returns the rows deleted and
/// whether older ones are left.
async fn delete_rollups_before<B: DieselBackend>(
    conn: &mut B::Conn,
    due: NaiveDateTime,
) -> Result<(u64, bool), StoreError>
where
    String: ToSql<Text, B::Db>,
    i32: ToSql<Integer, B::Db>,
    i64: ToSql<BigInt, B::Db>,
    NaiveDateTime: ToSql<Timestamp, B::Db>,
    rollup_device_hour::table:
        BoxedDsl<'static, B::Db, Output = rollup_device_hour::BoxedQuery<'static, B::Db>>,
    rollup_device_hour::BoxedQuery<'static, B::Db>: LoadQuery<'static, B::Conn, DeviceHourRow>,
    BoxedDeleteStatement<'static, B::Db, rollup_device_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_type_hour::table>: ExecuteDsl<B::Conn>,
    BoxedDeleteStatement<'static, B::Db, rollup_id1_hour::table>: ExecuteDsl<B::Conn>,
{
    let oldest: Vec<DeviceHourRow> = rollup_device_hour::table
        .into_boxed()
        .filter(rollup_device_hour::bucket.lt(due))
        .order(rollup_device_hour::bucket.asc())
        .limit(1)
        .load(conn)
        .await?;
    let Some(oldest) = oldest.into_iter().next() else {
        return Ok((0, false));
    };
    let bound = (oldest.bucket + Duration::hours(ROLLUP_HOURS_PER_STEP)).min(due);
    let mut deleted = diesel::delete(rollup_device_hour::table)
        .filter(rollup_device_hour::bucket.lt(bound))
        .into_boxed::<B::Db>()
        .execute(conn)
        .await?;
    deleted += diesel::delete(rollup_type_hour::table)
        .filter(rollup_type_hour::bucket.lt(bound))
        .into_boxed::<B::Db>()
        .execute(conn)
        .await?;
    deleted += diesel::delete(rollup_id1_hour::table)
        .filter(rollup_id1_hour::bucket.lt(bound))
        .into_boxed::<B::Db>()
        .execute(conn)
        .await?;
    Ok((deleted as u64, bound < due))
}
