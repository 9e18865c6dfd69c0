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

use super::super::core::{Backend, Conn};
use super::queries::{horizon, hour_rollups_per_device, raw_rows};
use super::refresh::{catalog_after, refresh_hour};
use crate::backend::BackendOps;
use crate::failure::Outcome;
use crate::rollup_rows::{hour_of, DeviceHourRow, DirtyRow, HorizonRow, HourRollups, RawRow};
use crate::schema::{
    retention_horizon, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_type_hour,
    sensor_data,
};
use crate::transaction::in_transaction;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use datastream_domain::filter::ReadingFilter;
use datastream_domain::retention::{RetentionPolicy, RetentionStep};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// Hours retired in one step at most: a step stays short, and a first run
/// over a year of readings makes progress a day at a time.
const HOURS_PER_STEP: usize = 24;
/// Hours of rollups removed in one step at most (`ROLLUP_RETENTION`).
const ROLLUP_HOURS_PER_STEP: i64 = 24;

/// One bounded step of `policy` at `now`, by the one refresher at work:
/// retires up to [`HOURS_PER_STEP`] due hours, deletes up to `chunk` rows
/// before the horizon, and removes up to [`ROLLUP_HOURS_PER_STEP`] hours of
/// rollups past `ROLLUP_RETENTION`.
pub(super) async fn step(
    conn: &mut Conn,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    chunk: usize,
) -> Outcome<RetentionStep> {
    let cutoff = hour_of(policy.raw_cutoff(now));
    let mut step = RetentionStep::default();
    while (step.hours_retired as usize) < HOURS_PER_STEP {
        let before = horizon(conn).await?;
        let Some(hour) = oldest_hour_before(conn, before, cutoff).await? else {
            break;
        };
        if !retire_hour(conn, before, hour).await? {
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
        step.rows_deleted = delete_rows_before(conn, h, chunk).await?;
        step.more |= step.rows_deleted as usize == chunk;
        // Never at or after the horizon: those rollups stand for rows the
        // catalog counts.
        if let Some(due) = policy.rollup_cutoff(now) {
            let (deleted, more) = delete_rollups_before(conn, hour_of(due).min(h)).await?;
            step.rollup_rows_deleted = deleted;
            step.more |= more;
        }
    }
    Ok(step)
}

/// The hour of the oldest reading at or after `horizon`, when that hour
/// ended by `cutoff`.
async fn oldest_hour_before(
    conn: &mut Conn,
    horizon: Option<NaiveDateTime>,
    cutoff: NaiveDateTime,
) -> Outcome<Option<NaiveDateTime>> {
    let mut q = raw_rows(&ReadingFilter::default())
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
async fn retire_hour(
    conn: &mut Conn,
    before: Option<NaiveDateTime>,
    hour: NaiveDateTime,
) -> Outcome<bool> {
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
        if !refresh_hour(conn, m.bucket, before).await? {
            return Ok(false);
        }
    }
    in_transaction(conn, |conn| Box::pin(retire_in_transaction(conn, hour))).await?;
    Ok(true)
}

/// The work of [`retire_hour`] inside its transaction.
async fn retire_in_transaction(conn: &mut Conn, hour: NaiveDateTime) -> Outcome<()> {
    let end = hour + Duration::hours(1);
    if horizon(conn).await?.is_some_and(|h| h >= end) {
        return Ok(()); // another replica retired it
    }
    let stale = hour_rollups_per_device(conn, hour).await?;
    // As if the hour had been rebuilt and found empty, counting from the
    // new horizon: a device's first reading moves to a later hour.
    let catalog = catalog_after(conn, hour, Some(end), &stale, &BTreeMap::new()).await?;
    let rollups = HourRollups {
        catalog,
        ..HourRollups::default()
    };
    Backend::write_hour(conn, rollups).await?;
    diesel::delete(retention_horizon::table)
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
async fn delete_rows_before(conn: &mut Conn, horizon: NaiveDateTime, chunk: usize) -> Outcome<u64> {
    let rows: Vec<(i64, NaiveDateTime)> = sensor_data::table
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
        .execute(conn)
        .await?;
    Ok(deleted as u64)
}

/// Deletes the rollups of up to [`ROLLUP_HOURS_PER_STEP`] hours that
/// started before `due`, oldest first; returns the rows deleted and
/// whether older ones are left.
async fn delete_rollups_before(conn: &mut Conn, due: NaiveDateTime) -> Outcome<(u64, bool)> {
    let oldest: Vec<DeviceHourRow> = rollup_device_hour::table
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
        .execute(conn)
        .await?;
    deleted += diesel::delete(rollup_type_hour::table)
        .filter(rollup_type_hour::bucket.lt(bound))
        .execute(conn)
        .await?;
    deleted += diesel::delete(rollup_id1_hour::table)
        .filter(rollup_id1_hour::bucket.lt(bound))
        .execute(conn)
        .await?;
    Ok((deleted as u64, bound < due))
}
