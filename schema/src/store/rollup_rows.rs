//! Diesel row types of the rollup tables and the device catalog, and their
//! conversion to and from the domain's aggregates.

use crate::analytics::{Aggregate, CompensatedSum, Device, Sample};
use crate::db::{
    devices, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_stale, rollup_type_hour,
};
use crate::reading::Reading;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{Insertable, Queryable};

/// An hour whose rollups may not match its rows.
#[derive(Queryable, Insertable, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[diesel(table_name = rollup_dirty)]
pub(crate) struct DirtyRow {
    pub(super) bucket: NaiveDateTime,
    /// When the hour was first marked since its last rebuild (a repeated
    /// mark is ignored, so this stays).
    pub(super) marked_at: NaiveDateTime,
}

/// The row saying rollups are stale (a writer ran with them off).
#[derive(Queryable, Insertable, Debug, Clone, Copy)]
#[diesel(table_name = rollup_stale)]
pub(super) struct StaleRow {
    pub(super) id: i32,
}

impl StaleRow {
    /// The one row there is.
    pub(super) const ROW: Self = Self { id: 1 };
}

/// What a write transaction records for the rollups besides its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteMarks {
    /// Rollups on: the hours the write touches become dirty.
    Hours(Vec<DirtyRow>),
    /// Rollups off: the rollups as a whole become stale.
    Stale,
}

impl WriteMarks {
    /// The marks for a write touching readings taken at `times`.
    pub(super) fn for_times(rollups: bool, times: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
        if !rollups {
            return Self::Stale;
        }
        let hours: std::collections::BTreeSet<NaiveDateTime> =
            times.into_iter().map(hour_of).collect();
        let marked_at = Utc::now().naive_utc();
        Self::Hours(
            hours
                .into_iter()
                .map(|bucket| DirtyRow { bucket, marked_at })
                .collect(),
        )
    }

    /// The marks for inserting `readings`.
    pub(crate) fn for_readings(rollups: bool, readings: &[Reading]) -> Self {
        Self::for_times(rollups, readings.iter().map(Reading::timestamp))
    }
}

/// A reading as the rollups see it: its device, time and value.
#[derive(Queryable, Debug, Clone)]
pub(super) struct RawRow {
    pub(super) sensor_type: String,
    pub(super) id1: String,
    pub(super) id2: i32,
    pub(super) timestamp: NaiveDateTime,
    pub(super) value: f64,
}

/// The aggregate columns every rollup table ends with.
fn aggregate(
    reading_count: i64,
    value_sum: (f64, f64),
    value_min: f64,
    value_max: f64,
    first: (NaiveDateTime, f64),
    last: (NaiveDateTime, f64),
) -> Aggregate {
    Aggregate {
        count: reading_count.max(0) as u64,
        sum: CompensatedSum::from_parts(value_sum.0, value_sum.1),
        min: value_min,
        max: value_max,
        first: Sample {
            at: first.0.and_utc(),
            value: first.1,
        },
        last: Sample {
            at: last.0.and_utc(),
            value: last.1,
        },
    }
}

macro_rules! rollup_row {
    ($name:ident, $new:ident, $table:ident, { $($key:ident: $ty:ty),* }) => {
        /// A row of the table of the same name, as read.
        #[derive(Queryable, Debug, Clone)]
        pub(super) struct $name {
            $(pub(super) $key: $ty,)*
            pub(super) bucket: NaiveDateTime,
            reading_count: i64,
            value_sum: f64,
            value_min: f64,
            value_max: f64,
            first_at: NaiveDateTime,
            first_value: f64,
            last_at: NaiveDateTime,
            last_value: f64,
            value_sum_error: f64,
        }

        impl $name {
            /// Its readings' aggregate.
            pub(super) fn aggregate(&self) -> Aggregate {
                aggregate(
                    self.reading_count,
                    (self.value_sum, self.value_sum_error),
                    self.value_min,
                    self.value_max,
                    (self.first_at, self.first_value),
                    (self.last_at, self.last_value),
                )
            }
        }

        /// A row to write into the table of the same name.
        #[derive(Insertable, Debug, Clone)]
        #[diesel(table_name = $table)]
        pub(super) struct $new {
            $(pub(super) $key: $ty,)*
            pub(super) bucket: NaiveDateTime,
            reading_count: i64,
            value_sum: f64,
            value_min: f64,
            value_max: f64,
            first_at: NaiveDateTime,
            first_value: f64,
            last_at: NaiveDateTime,
            last_value: f64,
            value_sum_error: f64,
        }

        impl $new {
            pub(super) fn new($($key: $ty,)* bucket: NaiveDateTime, a: &Aggregate) -> Self {
                Self {
                    $($key,)*
                    bucket,
                    reading_count: a.count as i64,
                    value_sum: a.sum.parts().0,
                    value_sum_error: a.sum.parts().1,
                    value_min: a.min,
                    value_max: a.max,
                    first_at: a.first.at.naive_utc(),
                    first_value: a.first.value,
                    last_at: a.last.at.naive_utc(),
                    last_value: a.last.value,
                }
            }
        }
    };
}

rollup_row!(DeviceHourRow, NewDeviceHourRow, rollup_device_hour, { id1: String, id2: i32, sensor_type: String });

impl DeviceHourRow {
    /// Its device.
    pub(super) fn key(&self) -> super::analytics_store::DeviceKey {
        super::analytics_store::DeviceKey {
            sensor_type: self.sensor_type.clone(),
            id1: self.id1.clone(),
            id2: self.id2,
        }
    }
}
rollup_row!(TypeHourRow, NewTypeHourRow, rollup_type_hour, { sensor_type: String });
rollup_row!(Id1HourRow, NewId1HourRow, rollup_id1_hour, { id1: String, sensor_type: String });

/// A `devices` row.
#[derive(Queryable, Insertable, Debug, Clone)]
#[diesel(table_name = devices)]
pub(super) struct DeviceRow {
    pub(super) id1: String,
    pub(super) id2: i32,
    pub(super) sensor_type: String,
    pub(super) first_seen: NaiveDateTime,
    pub(super) last_seen: NaiveDateTime,
    pub(super) last_value: f64,
    pub(super) reading_count: i64,
}

impl DeviceRow {
    /// The catalog row of a device whose readings aggregate to `a`.
    pub(super) fn new(id1: String, id2: i32, sensor_type: String, a: &Aggregate) -> Self {
        Self {
            id1,
            id2,
            sensor_type,
            first_seen: a.first.at.naive_utc(),
            last_seen: a.last.at.naive_utc(),
            last_value: a.last.value,
            reading_count: a.count as i64,
        }
    }
}

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Self {
        Device {
            sensor_type: r.sensor_type,
            id1: r.id1,
            id2: r.id2,
            first_seen: r.first_seen.and_utc(),
            last_seen: r.last_seen.and_utc(),
            last_value: r.last_value,
            count: r.reading_count.max(0) as u64,
        }
    }
}

/// The hour `at` falls in, as the rollup tables store it.
pub(super) fn hour_of(at: DateTime<Utc>) -> NaiveDateTime {
    let start = at.timestamp().div_euclid(3_600) * 3_600;
    DateTime::<Utc>::from_timestamp(start, 0)
        .unwrap_or(at)
        .naive_utc()
}

/// The catalog rows to lock and read for a change to some devices: those
/// of their `id1`s from the first device's key through the last's.
#[derive(Debug, Clone)]
pub(crate) struct CatalogSlice {
    pub(super) id1s: Vec<String>,
    pub(super) first: super::analytics_store::DeviceKey,
    pub(super) last: super::analytics_store::DeviceKey,
}

/// An hour's rebuilt rollups, ready to write, and the catalog rows of the
/// devices it touched.
#[derive(Debug, Default)]
pub(crate) struct HourRollups {
    pub(super) devices: Vec<NewDeviceHourRow>,
    pub(super) types: Vec<NewTypeHourRow>,
    pub(super) id1s: Vec<NewId1HourRow>,
    pub(super) catalog: Vec<DeviceRow>,
}

impl HourRollups {
    /// The per-device rows of `hour` for readings aggregating to `fresh`,
    /// and `catalog`; no regrouped rows.
    pub(super) fn devices_of(
        hour: NaiveDateTime,
        fresh: &std::collections::BTreeMap<super::analytics_store::DeviceKey, Aggregate>,
        catalog: Vec<DeviceRow>,
    ) -> Self {
        Self {
            devices: fresh
                .iter()
                .map(|(key, a)| {
                    NewDeviceHourRow::new(
                        key.id1.clone(),
                        key.id2,
                        key.sensor_type.clone(),
                        hour,
                        a,
                    )
                })
                .collect(),
            catalog,
            ..Self::default()
        }
    }

    /// The rows of `hour` for readings aggregating to `fresh` per device,
    /// regrouped per sensor type and per `id1`.
    pub(super) fn new(
        hour: NaiveDateTime,
        fresh: &std::collections::BTreeMap<super::analytics_store::DeviceKey, Aggregate>,
        catalog: Vec<DeviceRow>,
    ) -> Self {
        use std::collections::BTreeMap;
        let mut per_type: BTreeMap<&str, Aggregate> = BTreeMap::new();
        let mut per_id1: BTreeMap<(&str, &str), Aggregate> = BTreeMap::new();
        let mut devices = Vec::with_capacity(fresh.len());
        for (key, a) in fresh {
            devices.push(NewDeviceHourRow::new(
                key.id1.clone(),
                key.id2,
                key.sensor_type.clone(),
                hour,
                a,
            ));
            per_type
                .entry(&key.sensor_type)
                .and_modify(|t| t.merge(a))
                .or_insert(*a);
            per_id1
                .entry((&key.id1, &key.sensor_type))
                .and_modify(|t| t.merge(a))
                .or_insert(*a);
        }
        Self {
            devices,
            types: per_type
                .into_iter()
                .map(|(t, a)| NewTypeHourRow::new(t.to_owned(), hour, &a))
                .collect(),
            id1s: per_id1
                .into_iter()
                .map(|((id1, t), a)| NewId1HourRow::new(id1.to_owned(), t.to_owned(), hour, &a))
                .collect(),
            catalog,
        }
    }
}
