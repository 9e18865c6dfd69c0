//! The queries rollup answers, refresh and retention share.

use super::super::core::{Conn, Db};
use super::super::readings::filter_conditions;
use crate::device_key::DeviceKey;
use crate::failure::Outcome;
use crate::rollup_rows::{DeviceHourRow, DirtyRow, HorizonRow, RawRow, StaleRow};
use crate::schema::{
    devices, retention_horizon, rollup_device_hour, rollup_dirty, rollup_stale, sensor_data,
};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use datastream_domain::analytics::{Aggregate, DeviceSearch};
use datastream_domain::filter::ReadingFilter;
use diesel::query_builder::{BoxedSelectStatement, FromClause};
use diesel::sql_types::{Double, Integer, Text, Timestamp};
use diesel::{ExpressionMethods, QueryDsl, TextExpressionMethods};
use diesel_async::RunQueryDsl;
use std::collections::{BTreeMap, BTreeSet};

/// A reading's device, time and value, as selected from `sensor_data`.
type RawColumns = (Text, Text, Integer, Timestamp, Double);
/// The query of [`raw_rows`].
pub(super) type RawQuery =
    BoxedSelectStatement<'static, RawColumns, FromClause<sensor_data::table>, Db>;

/// Retention's horizon: raw readings before it are gone or going. `None`
/// until retention has retired an hour.
pub(super) async fn horizon(conn: &mut Conn) -> Outcome<Option<NaiveDateTime>> {
    let rows: Vec<HorizonRow> = retention_horizon::table.load(conn).await?;
    Ok(rows.into_iter().next().map(|r| r.raw_before))
}

/// Whether answers may read rollups: this process keeps them (`keeps`),
/// and no writer with rollups off has left them stale.
pub(super) async fn rollups_usable(conn: &mut Conn, keeps: bool) -> Outcome<bool> {
    if !keeps {
        return Ok(false);
    }
    let stale: Vec<StaleRow> = rollup_stale::table.load(conn).await?;
    Ok(stale.is_empty())
}

/// Hours that ended by `ended_by` and wait for a rebuild, plus one while
/// the rollups are stale.
pub(in super::super) async fn dirty_hours(
    conn: &mut Conn,
    ended_by: DateTime<Utc>,
) -> Outcome<u64> {
    let last = (ended_by - Duration::hours(1)).naive_utc();
    let dirty: Vec<DirtyRow> = rollup_dirty::table
        .filter(rollup_dirty::bucket.le(last))
        .load(conn)
        .await?;
    let stale: Vec<StaleRow> = rollup_stale::table.load(conn).await?;
    Ok(dirty.len() as u64 + stale.len() as u64)
}

/// The dirty hours in `[first, end)`.
pub(super) async fn dirty_hours_in(
    conn: &mut Conn,
    first: NaiveDateTime,
    end: NaiveDateTime,
) -> Outcome<BTreeSet<NaiveDateTime>> {
    let rows: Vec<DirtyRow> = rollup_dirty::table
        .filter(rollup_dirty::bucket.ge(first))
        .filter(rollup_dirty::bucket.lt(end))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.bucket).collect())
}

/// Every reading `filter` matches (conditions and time bounds): its device,
/// time and value.
pub(super) fn raw_rows(filter: &ReadingFilter) -> RawQuery {
    filter_conditions(sensor_data::table.into_boxed(), filter).select((
        sensor_data::sensor_type,
        sensor_data::id1,
        sensor_data::id2,
        sensor_data::timestamp,
        sensor_data::sensor_value,
    ))
}

/// Per-device rollup rows of `[first, end)` matching the device conditions
/// of `c`.
pub(super) fn device_rollup_query(
    c: &ReadingFilter,
    first: NaiveDateTime,
    end: NaiveDateTime,
) -> rollup_device_hour::BoxedQuery<'static, Db> {
    device_conditions!(
        rollup_device_hour,
        rollups_in!(rollup_device_hour, first, end),
        c
    )
}

/// `hour`'s rollup of every device that has one.
pub(super) async fn hour_rollups_per_device(
    conn: &mut Conn,
    hour: NaiveDateTime,
) -> Outcome<BTreeMap<DeviceKey, Aggregate>> {
    let end = hour + Duration::hours(1);
    let rows: Vec<DeviceHourRow> = device_rollup_query(&ReadingFilter::default(), hour, end)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.key(), r.aggregate())).collect())
}

/// The catalog rows matching the device conditions of `c`, by key.
pub(super) fn catalog_query(
    c: &ReadingFilter,
    search: Option<&DeviceSearch>,
) -> devices::BoxedQuery<'static, Db> {
    let mut q = device_conditions!(devices, devices::table.into_boxed(), c);
    // The id2 part of a search is checked by `DeviceQuery::selects`.
    if let Some(id1) = search.and_then(DeviceSearch::whole_id1) {
        q = q.filter(devices::id1.eq(id1.to_owned()));
    }
    if let Some(start) = search.and_then(DeviceSearch::id1_prefix) {
        // `id1` is letters only: nothing in it is a LIKE wildcard.
        q = q.filter(devices::id1.like(format!("{start}%")));
    }
    q.order((
        devices::sensor_type.asc(),
        devices::id1.asc(),
        devices::id2.asc(),
    ))
}

/// The earliest and latest reading of `key` among the clean hours' rollups
/// from `horizon` on (retention's: the hours before it are no longer
/// counted), as an aggregate (count left at 0; the caller sets it).
pub(super) async fn clean_extremes(
    conn: &mut Conn,
    key: &DeviceKey,
    dirty: &BTreeSet<NaiveDateTime>,
    horizon: Option<NaiveDateTime>,
) -> Outcome<Option<Aggregate>> {
    // Among the first (last) `dirty.len() + 1` hours of the device, one is
    // clean if any is.
    let look = dirty.len() as i64 + 1;
    let of_device = || {
        let q = rollup_device_hour::table
            .into_boxed::<Db>()
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

/// Each device's aggregate of the rows `filter` matches, for the devices
/// `keep` wants only (the others' rows stream past).
pub(super) async fn per_device_where(
    conn: &mut Conn,
    filter: &ReadingFilter,
    keep: &(dyn Fn(&DeviceKey) -> bool + Sync),
) -> Outcome<BTreeMap<DeviceKey, Aggregate>> {
    let mut devices: BTreeMap<DeviceKey, Aggregate> = BTreeMap::new();
    for_each_row!(conn, raw_rows(filter), |r: RawRow| {
        let (key, one) = r.device_reading();
        if keep(&key) {
            crate::device_key::add_to_device(&mut devices, key, &one);
        }
    });
    Ok(devices)
}
