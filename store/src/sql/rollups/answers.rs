//! Answers from the rollups: exact time-bucket aggregates and the device
//! catalog, reading rollups for clean whole hours and rows for the rest.

use super::super::core::{Conn, StoreCore};
use super::queries::{
    catalog_query, clean_extremes, device_rollup_query, dirty_hours_in, horizon, per_device_where,
    raw_rows, rollups_usable,
};
use crate::buckets::{
    ceil_hour, floor_hour, outside_clean_hours, Buckets, CleanHours, HourTable, PageFloor,
};
use crate::device_key::{device_aggregate, device_page, DeviceKey, DeviceRange};
use crate::failure::Outcome;
use crate::rollup_rows::{
    hour_of, DeviceHourRow, DeviceRow, DirtyRow, Id1HourRow, RawRow, TypeHourRow,
};
use crate::schema::{devices, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_type_hour};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use datastream_domain::analytics::{
    Aggregate, AggregateQuery, Bucket, Device, DeviceQuery, GroupKey, GroupedPage,
};
use datastream_domain::filter::ReadingFilter;
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use std::collections::{BTreeMap, BTreeSet};

/// Dirty hours in a window beyond which an answer reads the window's rows
/// instead of rollups (right after an upgrade, every hour is dirty).
const MOST_DIRTY_HOURS: usize = 48;

/// The buckets `q` asks for (see `AnalyticsStore::aggregate`).
pub(in super::super) async fn aggregate(
    store: &StoreCore,
    q: &AggregateQuery,
) -> Outcome<GroupedPage<Bucket>> {
    let mut conn = store.conn().await?;
    let conn = &mut *conn;
    let mut buckets = Buckets::new(q.interval(), q.page());
    let mut raw = vec![(q.from(), q.to())];
    let usable = rollups_usable(conn, store.rollups).await?;
    // Before retention's horizon the rows are gone (or going) and the
    // rollups are the record: they are read whatever their marks say.
    let horizon = horizon(conn).await?;
    if usable && q.interval().seconds() % 3_600 == 0 {
        let (first, end) = (ceil_hour(q.from()), floor_hour(q.to()));
        if first < end {
            let mut dirty = dirty_hours_in(conn, first, end).await?;
            if let Some(h) = horizon {
                dirty.retain(|hour| *hour >= h);
            }
            if dirty.len() <= MOST_DIRTY_HOURS {
                let hours = CleanHours {
                    first,
                    end,
                    dirty: &dirty,
                };
                add_rollups(conn, HourTable::for_query(q), q, hours, &mut buckets).await?;
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
        for_each_row!(&mut *conn, raw_rows(&filter), |r: RawRow| {
            let key = q.group_by().key(&r.sensor_type, &r.id1, r.id2);
            let at = r.timestamp.and_utc();
            buckets.add(at, key, &Aggregate::of(at, r.value));
        });
    }
    Ok(buckets.into_page())
}

/// Streams the rollup rows of `hours` from `table` matching `q` into
/// `buckets`, skipping the dirty hours. Rows of groups before the page are
/// left in the database where the table's leading key column can tell.
async fn add_rollups(
    conn: &mut Conn,
    table: HourTable,
    q: &AggregateQuery,
    hours: CleanHours<'_>,
    buckets: &mut Buckets,
) -> Outcome<()> {
    let (c, group_by) = (q.conditions(), q.group_by());
    let floor = PageFloor::of(q);
    let mut add = |bucket: NaiveDateTime, key: GroupKey, a: Aggregate| {
        if !hours.dirty.contains(&bucket) {
            buckets.add_group(bucket.and_utc(), key, group_by, &a);
        }
    };
    // Each table's rows keyed by the columns it has; `add_group` regroups
    // them by the query's grouping.
    let key = |sensor_type: &str, id1: Option<&str>, id2: Option<i32>| GroupKey {
        sensor_type: Some(sensor_type.to_owned()),
        id1: id1.map(str::to_owned),
        id2,
    };
    match table {
        HourTable::Device => {
            let query = device_rollup_query(c, hours.first, hours.end);
            let query = at_least_floor!(rollup_device_hour, query, &floor, [sensor_type, id1]);
            for_each_row!(conn, query, |r: DeviceHourRow| {
                let group = key(&r.sensor_type, Some(&r.id1), Some(r.id2));
                add(r.bucket, group, r.aggregate());
            });
        }
        HourTable::Id1 => {
            let query = rollups_in!(rollup_id1_hour, hours.first, hours.end);
            let query = key_conditions!(rollup_id1_hour, query, c, [id1, sensor_type]);
            let query = at_least_floor!(rollup_id1_hour, query, &floor, [sensor_type, id1]);
            for_each_row!(conn, query, |r: Id1HourRow| {
                let group = key(&r.sensor_type, Some(&r.id1), None);
                add(r.bucket, group, r.aggregate());
            });
        }
        HourTable::Type => {
            let query = rollups_in!(rollup_type_hour, hours.first, hours.end);
            let query = key_conditions!(rollup_type_hour, query, c, [sensor_type]);
            let query = at_least_floor!(rollup_type_hour, query, &floor, [sensor_type]);
            for_each_row!(conn, query, |r: TypeHourRow| {
                add(r.bucket, key(&r.sensor_type, None, None), r.aggregate());
            });
        }
    }
    Ok(())
}

/// The devices `q` selects at `now` (see `AnalyticsStore::devices`).
pub(in super::super) async fn devices(
    store: &StoreCore,
    q: &DeviceQuery,
    now: DateTime<Utc>,
) -> Outcome<GroupedPage<Device>> {
    let mut conn = store.conn().await?;
    let conn = &mut *conn;
    let after = q.page().after.as_ref().map(DeviceKey::from_group);
    if !rollups_usable(conn, store.rollups).await? {
        let range = DeviceRange {
            after,
            through: None,
        };
        let all = per_device_where(conn, q.conditions(), &|k| range.contains(k)).await?;
        let devices = all.into_iter().map(|(key, a)| key.device(&a));
        return Ok(device_page(
            devices.filter(|d| q.selects(d, now)),
            q.page(),
            None,
        ));
    }
    let (mut catalog, through) = catalog_page(conn, q, after.as_ref()).await?;
    let range = DeviceRange {
        after,
        through: through.clone(),
    };
    // What the dirty hours hold replaces what their rollups said (before
    // retention's horizon, marks mean nothing: rollups are the record there
    // and the catalog no longer counts those hours).
    let horizon = horizon(conn).await?;
    let mut dirty = rollup_dirty::table.into_boxed();
    if let Some(h) = horizon {
        dirty = dirty.filter(rollup_dirty::bucket.ge(h));
    }
    let dirty: Vec<DirtyRow> = dirty.load(&mut *conn).await?;
    let c = q.conditions();
    correct_for_dirty_hours(conn, c, &dirty, horizon, &range, &mut catalog).await?;
    let devices = catalog
        .into_iter()
        .filter(|(_, a)| a.count > 0)
        .map(|(key, a)| key.device(&a))
        .filter(|d| q.selects(d, now));
    Ok(device_page(devices, q.page(), through))
}

/// The page's stretch of the catalog: the first `limit + 1` devices after
/// the previous page, and the last of them when the limit cut the catalog
/// there (which bounds what the dirty hours may add or remove).
async fn catalog_page(
    conn: &mut Conn,
    q: &DeviceQuery,
    after: Option<&DeviceKey>,
) -> Outcome<(BTreeMap<DeviceKey, Aggregate>, Option<DeviceKey>)> {
    let mut catalog: BTreeMap<DeviceKey, Aggregate> = BTreeMap::new();
    let mut query = catalog_query(q.conditions(), q.search());
    if let Some(a) = after {
        query = query.filter(key_after!(devices, a));
    }
    let query = query.limit(i64::try_from(q.page().limit + 1).unwrap_or(i64::MAX));
    for_each_row!(conn, query, |r: DeviceRow| {
        let device = Device::from(r);
        let key = DeviceKey::of(&device);
        if after.is_some_and(|a| key <= *a) {
            continue;
        }
        catalog.insert(key, device_aggregate(&device));
        if catalog.len() > q.page().limit {
            break;
        }
    });
    let through = (catalog.len() > q.page().limit)
        .then(|| catalog.keys().next_back().cloned())
        .flatten();
    Ok((catalog, through))
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
async fn correct_for_dirty_hours(
    conn: &mut Conn,
    c: &ReadingFilter,
    dirty: &[DirtyRow],
    horizon: Option<NaiveDateTime>,
    range: &DeviceRange,
    catalog: &mut BTreeMap<DeviceKey, Aggregate>,
) -> Outcome<()> {
    let hours: BTreeSet<NaiveDateTime> = dirty.iter().map(|d| d.bucket).collect();
    let mut corrections: BTreeMap<DeviceKey, Correction> = BTreeMap::new();
    for hour in &hours {
        let end = *hour + Duration::hours(1);
        let stale = device_rollup_query(c, *hour, end);
        for_each_row!(&mut *conn, stale, |r: DeviceHourRow| {
            let key = r.key();
            if range.contains(&key) {
                corrections.entry(key).or_default().stale += r.aggregate().count;
            }
        });
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
