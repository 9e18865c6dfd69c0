//! The refresher's half of the rollups: rebuilding one dirty hour, and
//! recovering from a writer that ran with rollups off.
//!
//! An hour is rebuilt a slice of devices at a time (in key order, at most
//! [`SLICE_ROWS`] rows each), so the refresher holds a slice's worth of
//! devices whatever an hour has: an hour of 200,000 devices took an
//! ingestor to ~190 MB when it was rebuilt whole.
//!
//! A rebuild is one transaction that starts by deleting the hour's dirty
//! mark (so a writer still holding that hour is waited for, and a second
//! refresher finds nothing to take), reads the hour's rows, and replaces
//! the hour in the three rollup tables. The device catalog is kept equal to
//! the sum of every device's hourly rollups: its rows are locked, moved by
//! the difference between the hour's old and new rollup, and written back
//! in bulk. Only when a device's first or last reading lay in the hour and
//! none of its readings are left there is a second lookup needed.

use super::super::core::{Backend, Conn};
use super::queries::{clean_extremes, device_rollup_query, horizon, raw_rows};
use crate::backend::BackendOps;
use crate::device_key::{add_to_device, device_aggregate, DeviceKey};
use crate::failure::Outcome;
use crate::rollup_rows::{
    hour_of, CatalogSlice, DeviceHourRow, DeviceRow, DirtyRow, HourRollups, Id1HourRow, RawRow,
    TypeHourRow,
};
use crate::schema::{
    devices, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_stale, rollup_type_hour,
    sensor_data,
};
use crate::transaction::in_transaction;
use chrono::{Duration, NaiveDateTime};
use datastream_domain::analytics::{Aggregate, Device};
use datastream_domain::filter::ReadingFilter;
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use std::collections::{BTreeMap, BTreeSet};

/// When a writer with rollups off has marked them stale: marks every hour
/// that has readings dirty and removes the stale row, in one transaction
/// that starts by deleting that row (a writer still marking it waits, and
/// its readings are seen by the scan).
async fn clear_stale(conn: &mut Conn) -> Outcome<()> {
    in_transaction(conn, |conn| {
        Box::pin(async move {
            let taken = diesel::delete(rollup_stale::table).execute(conn).await?;
            if taken > 0 {
                use diesel_async::SimpleAsyncConnection;
                tracing::warn!(
                    "rollups were left stale by a writer with ROLLUPS=off; rebuilding every hour"
                );
                conn.batch_execute(Backend::MARK_EVERY_HOUR).await?;
            }
            Ok(())
        })
    })
    .await
}

/// Rebuilds at most `most` dirty hours that ended by `settled` and were
/// first marked by `quiet`, oldest first (after recovering from stale
/// rollups); returns how many.
pub(super) async fn refresh_settled(
    conn: &mut Conn,
    settled: NaiveDateTime,
    quiet: NaiveDateTime,
    most: usize,
) -> Outcome<usize> {
    clear_stale(conn).await?;
    let horizon = horizon(conn).await?;
    if let Some(h) = horizon {
        // A reading written before retention's horizon is due for removal:
        // its hour keeps the rollups it was retired with.
        diesel::delete(rollup_dirty::table)
            .filter(rollup_dirty::bucket.lt(h))
            .execute(conn)
            .await?;
    }
    let mut hours = rollup_dirty::table.into_boxed();
    if let Some(h) = horizon {
        hours = hours.filter(rollup_dirty::bucket.ge(h));
    }
    let hours: Vec<DirtyRow> = hours
        .filter(rollup_dirty::bucket.le(settled))
        .filter(rollup_dirty::marked_at.le(quiet))
        .order(rollup_dirty::bucket.asc())
        .limit(i64::try_from(most).unwrap_or(i64::MAX))
        .load(conn)
        .await?;
    let mut refreshed = 0;
    for hour in hours {
        if refresh_hour(conn, hour.bucket, horizon).await? {
            refreshed += 1;
        }
    }
    Ok(refreshed)
}

/// Rebuilds the rollups of `hour` from its rows; `false` when its mark is
/// gone or held by a writer. `horizon` is retention's.
pub(super) async fn refresh_hour(
    conn: &mut Conn,
    hour: NaiveDateTime,
    horizon: Option<NaiveDateTime>,
) -> Outcome<bool> {
    in_transaction(conn, |conn| Box::pin(rebuild_hour(conn, hour, horizon))).await
}

/// Rows of an hour read per slice of its rebuild.
const SLICE_ROWS: i64 = 5_000;

/// The work of [`refresh_hour`], inside its transaction: slice by slice,
/// the devices' new rollups and catalog rows; then the hour's rollups per
/// sensor type (the per-`id1` ones are written as each is complete).
async fn rebuild_hour(
    conn: &mut Conn,
    hour: NaiveDateTime,
    horizon: Option<NaiveDateTime>,
) -> Outcome<bool> {
    if !Backend::claim_hour(conn, hour).await? {
        return Ok(false);
    }
    delete_regrouped_rollups(conn, hour).await?;
    let mut regrouped = Regrouped::default();
    let mut after: Option<DeviceKey> = None;
    loop {
        let slice = next_slice(conn, hour, after.as_ref()).await?;
        let stale = stale_slice(conn, hour, after.as_ref(), slice.through.as_ref()).await?;
        let catalog = catalog_after(conn, hour, horizon, &stale, &slice.fresh).await?;
        delete_device_rollups(conn, hour, after.as_ref(), slice.through.as_ref()).await?;
        let last = slice.through.is_none();
        let mut rollups = HourRollups::devices_of(hour, &slice.fresh, catalog);
        rollups.id1s = regrouped.add(hour, &slice.fresh, last);
        Backend::write_hour(conn, rollups).await?;
        match slice.through {
            Some(through) => after = Some(through),
            None => break,
        }
    }
    Backend::write_hour(conn, regrouped.types(hour)).await?;
    Ok(true)
}

/// One slice of an hour's devices: their fresh aggregates, and the last
/// device's key when more follow.
struct Slice {
    fresh: BTreeMap<DeviceKey, Aggregate>,
    through: Option<DeviceKey>,
}

/// The next slice of `hour` after `after`: the devices of its next
/// [`SLICE_ROWS`] rows in key order, the last of them completed with a
/// query of its own when the limit cut its rows.
async fn next_slice(
    conn: &mut Conn,
    hour: NaiveDateTime,
    after: Option<&DeviceKey>,
) -> Outcome<Slice> {
    let end = hour + Duration::hours(1);
    let within = ReadingFilter::default().within(hour.and_utc(), end.and_utc());
    let mut query = raw_rows(&within);
    if let Some(after) = after {
        query = query.filter(key_after!(sensor_data, after));
    }
    let rows: Vec<RawRow> = query
        .order((
            sensor_data::sensor_type.asc(),
            sensor_data::id1.asc(),
            sensor_data::id2.asc(),
        ))
        .limit(SLICE_ROWS)
        .load(conn)
        .await?;
    let cut = rows.len() as i64 == SLICE_ROWS;
    let mut fresh = aggregate_per_device(rows);
    if !cut {
        return Ok(Slice {
            fresh,
            through: None,
        });
    }
    // The limit may have cut the last device's rows: read all of them.
    let Some((last, _)) = fresh.pop_last() else {
        return Ok(Slice {
            fresh,
            through: None,
        });
    };
    let rows: Vec<RawRow> = raw_rows(&within)
        .filter(sensor_data::sensor_type.eq(last.sensor_type.clone()))
        .filter(sensor_data::id1.eq(last.id1.clone()))
        .filter(sensor_data::id2.eq(last.id2))
        .load(conn)
        .await?;
    fresh.extend(aggregate_per_device(rows));
    Ok(Slice {
        fresh,
        through: Some(last),
    })
}

/// Rows aggregated per device.
fn aggregate_per_device(rows: Vec<RawRow>) -> BTreeMap<DeviceKey, Aggregate> {
    let mut devices: BTreeMap<DeviceKey, Aggregate> = BTreeMap::new();
    for r in rows {
        let (key, one) = r.device_reading();
        add_to_device(&mut devices, key, &one);
    }
    devices
}

/// `hour`'s old rollups of the devices after `after` through `through`.
async fn stale_slice(
    conn: &mut Conn,
    hour: NaiveDateTime,
    after: Option<&DeviceKey>,
    through: Option<&DeviceKey>,
) -> Outcome<BTreeMap<DeviceKey, Aggregate>> {
    let end = hour + Duration::hours(1);
    let mut query = device_rollup_query(&ReadingFilter::default(), hour, end);
    if let Some(after) = after {
        query = query.filter(key_after!(rollup_device_hour, after));
    }
    if let Some(through) = through {
        query = query.filter(key_through!(rollup_device_hour, through));
    }
    let rows: Vec<DeviceHourRow> = query.load(conn).await?;
    Ok(rows.into_iter().map(|r| (r.key(), r.aggregate())).collect())
}

/// Deletes `hour`'s rollups of the devices after `after` through `through`.
async fn delete_device_rollups(
    conn: &mut Conn,
    hour: NaiveDateTime,
    after: Option<&DeviceKey>,
    through: Option<&DeviceKey>,
) -> Outcome<()> {
    let mut delete = diesel::delete(rollup_device_hour::table)
        .filter(rollup_device_hour::bucket.eq(hour))
        .into_boxed();
    if let Some(after) = after {
        delete = delete.filter(key_after!(rollup_device_hour, after));
    }
    if let Some(through) = through {
        delete = delete.filter(key_through!(rollup_device_hour, through));
    }
    delete.execute(conn).await?;
    Ok(())
}

/// The hour's rollups per sensor type and per `id1`, built from the slices
/// as they go. Slices come in key order (sensor type, `id1`, `id2`), so an
/// (`id1`, sensor type) group is complete once a slice moves past it: only
/// the last one seen is carried to the next slice.
#[derive(Default)]
struct Regrouped {
    types: BTreeMap<String, Aggregate>,
    id1_carry: Option<((String, String), Aggregate)>,
}

impl Regrouped {
    /// Takes in a slice; returns the per-`id1` rows it completed (all of
    /// them on the `last` slice).
    fn add(
        &mut self,
        hour: NaiveDateTime,
        fresh: &BTreeMap<DeviceKey, Aggregate>,
        last: bool,
    ) -> Vec<Id1HourRow> {
        let mut done = Vec::new();
        for (key, a) in fresh {
            self.types
                .entry(key.sensor_type.clone())
                .and_modify(|t| t.merge(a))
                .or_insert(*a);
            match &mut self.id1_carry {
                Some((group, sum)) if group.0 == key.sensor_type && group.1 == key.id1 => {
                    sum.merge(a)
                }
                _ => {
                    let group = ((key.sensor_type.clone(), key.id1.clone()), *a);
                    if let Some(((sensor_type, id1), sum)) = self.id1_carry.replace(group) {
                        done.push(Id1HourRow::new(id1, sensor_type, hour, &sum));
                    }
                }
            }
        }
        if last {
            if let Some(((sensor_type, id1), sum)) = self.id1_carry.take() {
                done.push(Id1HourRow::new(id1, sensor_type, hour, &sum));
            }
        }
        done
    }

    /// The per-sensor-type rows.
    fn types(self, hour: NaiveDateTime) -> HourRollups {
        HourRollups {
            types: self
                .types
                .into_iter()
                .map(|(t, a)| TypeHourRow::new(t, hour, &a))
                .collect(),
            ..HourRollups::default()
        }
    }
}

/// Deletes `hour` from the per-type and per-`id1` rollup tables (the
/// per-device rows go slice by slice).
async fn delete_regrouped_rollups(conn: &mut Conn, hour: NaiveDateTime) -> Outcome<()> {
    diesel::delete(rollup_type_hour::table)
        .filter(rollup_type_hour::bucket.eq(hour))
        .execute(conn)
        .await?;
    diesel::delete(rollup_id1_hour::table)
        .filter(rollup_id1_hour::bucket.eq(hour))
        .execute(conn)
        .await?;
    Ok(())
}

/// The device catalog once `hour`'s rollups go from `stale` to `fresh`
/// (per device), counting from `horizon` on: the rows to write back.
/// Devices with nothing left lose their row here. The catalog rows are
/// locked until the transaction ends.
pub(super) async fn catalog_after(
    conn: &mut Conn,
    hour: NaiveDateTime,
    horizon: Option<NaiveDateTime>,
    stale: &BTreeMap<DeviceKey, Aggregate>,
    fresh: &BTreeMap<DeviceKey, Aggregate>,
) -> Outcome<Vec<DeviceRow>> {
    let touched: BTreeSet<DeviceKey> = fresh.keys().chain(stale.keys()).cloned().collect();
    let (Some(first), Some(last)) = (BTreeSet::first(&touched), BTreeSet::last(&touched)) else {
        return Ok(Vec::new());
    };
    let slice = CatalogSlice {
        id1s: touched
            .iter()
            .map(|k| k.id1.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        first: first.clone(),
        last: last.clone(),
    };
    let recorded: BTreeMap<DeviceKey, Aggregate> = Backend::catalog_for_update(conn, slice)
        .await?
        .into_iter()
        .map(|row| {
            let device = Device::from(row);
            (DeviceKey::of(&device), device_aggregate(&device))
        })
        .collect();
    let mut catalog = Vec::new();
    for key in touched {
        let change = HourChange {
            hour,
            horizon,
            recorded: recorded.get(&key),
            stale: stale.get(&key),
            fresh: fresh.get(&key),
        };
        match change.catalog_entry(conn, &key).await? {
            Some(a) => catalog.push(DeviceRow::new(key.id1, key.id2, key.sensor_type, &a)),
            None => delete_catalog_row(conn, &key).await?,
        }
    }
    Ok(catalog)
}

/// What rebuilding (or retiring) one hour does to one device.
struct HourChange<'a> {
    hour: NaiveDateTime,
    /// Retention's horizon: hours before it no longer count.
    horizon: Option<NaiveDateTime>,
    /// Its catalog row (the sum of all its hourly rollups).
    recorded: Option<&'a Aggregate>,
    /// The hour's old rollup of it.
    stale: Option<&'a Aggregate>,
    /// The hour's new rollup of it.
    fresh: Option<&'a Aggregate>,
}

impl HourChange<'_> {
    /// The device's catalog entry after the change; `None` when no reading
    /// of it is left.
    async fn catalog_entry(&self, conn: &mut Conn, key: &DeviceKey) -> Outcome<Option<Aggregate>> {
        let count = self
            .recorded
            .map_or(0, |a| a.count)
            .saturating_sub(self.stale.map_or(0, |a| a.count))
            + self.fresh.map_or(0, |a| a.count);
        if count == 0 {
            return Ok(None);
        }
        let Some(&recorded) = self.recorded else {
            return Ok(self.fresh.map(|f| Aggregate { count, ..*f }));
        };
        let mut entry = recorded;
        let first_here = hour_of(recorded.first.at) == self.hour;
        let last_here = hour_of(recorded.last.at) == self.hour;
        // A first (last) reading in this hour means every other hour of the
        // device is later (earlier): the hour's new rollup decides, unless
        // nothing of the device is left in it.
        let replacement = match self.fresh {
            Some(fresh) => Some(*fresh),
            None if first_here || last_here => {
                clean_extremes(conn, key, &BTreeSet::from([self.hour]), self.horizon).await?
            }
            None => None,
        };
        if let Some(other) = replacement {
            if first_here {
                entry.first = other.first;
            }
            if last_here {
                entry.last = other.last;
            }
        } else if first_here || last_here {
            return Ok(None);
        }
        if let Some(fresh) = self.fresh {
            entry.merge(fresh);
        }
        entry.count = count;
        Ok(Some(entry))
    }
}

/// Removes a device whose readings are all gone from the catalog.
async fn delete_catalog_row(conn: &mut Conn, key: &DeviceKey) -> Outcome<()> {
    diesel::delete(devices::table)
        .filter(devices::id1.eq(key.id1.clone()))
        .filter(devices::id2.eq(key.id2))
        .filter(devices::sensor_type.eq(key.sensor_type.clone()))
        .execute(conn)
        .await?;
    Ok(())
}
