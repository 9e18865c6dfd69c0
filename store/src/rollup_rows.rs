//! Diesel row types of the rollup tables and the device catalog, and their
//! conversion to and from the domain's aggregates.

use crate::schema::{
    devices, retention_horizon, rollup_device_hour, rollup_dirty, rollup_id1_hour, rollup_stale,
    rollup_type_hour,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use datastream_domain::analytics::{Aggregate, CompensatedSum, Device, Sample};
use datastream_domain::reading::Reading;
use diesel::{Insertable, Queryable};

/// An hour whose rollups may not match its rows.
#[derive(Queryable, Insertable, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[diesel(table_name = rollup_dirty)]
pub(crate) struct DirtyRow {
    pub(crate) bucket: NaiveDateTime,
    /// When the hour was first marked since its last rebuild (a repeated
    /// mark is ignored, so this stays).
    pub(crate) marked_at: NaiveDateTime,
}

/// The row saying rollups are stale (a writer ran with them off).
#[derive(Queryable, Insertable, Debug, Clone, Copy)]
#[diesel(table_name = rollup_stale)]
pub(crate) struct StaleRow {
    pub(crate) id: i32,
}

impl StaleRow {
    /// The one row there is.
    pub(crate) const ROW: Self = Self { id: 1 };
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
    pub(crate) fn for_times(rollups: bool, times: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
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
pub(crate) struct RawRow {
    pub(crate) sensor_type: String,
    pub(crate) id1: String,
    pub(crate) id2: i32,
    pub(crate) timestamp: NaiveDateTime,
    pub(crate) value: f64,
}

impl RawRow {
    /// Its device, and itself as an aggregate of one reading.
    pub(crate) fn device_reading(self) -> (crate::device_key::DeviceKey, Aggregate) {
        let one = Aggregate::of(self.timestamp.and_utc(), self.value);
        let key = crate::device_key::DeviceKey {
            sensor_type: self.sensor_type,
            id1: self.id1,
            id2: self.id2,
        };
        (key, one)
    }
}

/// Retention's horizon, its one row.
#[derive(Queryable, Insertable, Debug, Clone, Copy)]
#[diesel(table_name = retention_horizon)]
pub(crate) struct HorizonRow {
    pub(crate) id: i32,
    pub(crate) raw_before: NaiveDateTime,
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
    ($name:ident, $table:ident, { $($key:ident: $ty:ty),* }) => {
        /// A row of the table of the same name, as read and as written.
        #[derive(Queryable, Insertable, Debug, Clone)]
        #[diesel(table_name = $table)]
        pub(crate) struct $name {
            $(pub(crate) $key: $ty,)*
            pub(crate) bucket: NaiveDateTime,
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
            /// The row of readings aggregating to `a`.
            pub(crate) fn new($($key: $ty,)* bucket: NaiveDateTime, a: &Aggregate) -> Self {
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

            /// Its readings' aggregate.
            pub(crate) fn aggregate(&self) -> Aggregate {
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
    };
}

rollup_row!(DeviceHourRow, rollup_device_hour, { id1: String, id2: i32, sensor_type: String });

impl DeviceHourRow {
    /// Its device.
    pub(crate) fn key(&self) -> crate::device_key::DeviceKey {
        crate::device_key::DeviceKey {
            sensor_type: self.sensor_type.clone(),
            id1: self.id1.clone(),
            id2: self.id2,
        }
    }
}
rollup_row!(TypeHourRow, rollup_type_hour, { sensor_type: String });
rollup_row!(Id1HourRow, rollup_id1_hour, { id1: String, sensor_type: String });

/// A `devices` row.
#[derive(Queryable, Insertable, Debug, Clone)]
#[diesel(table_name = devices)]
pub(crate) struct DeviceRow {
    pub(crate) id1: String,
    pub(crate) id2: i32,
    pub(crate) sensor_type: String,
    pub(crate) first_seen: NaiveDateTime,
    pub(crate) last_seen: NaiveDateTime,
    pub(crate) last_value: f64,
    pub(crate) reading_count: i64,
}

impl DeviceRow {
    /// The catalog row of a device whose readings aggregate to `a`.
    pub(crate) fn new(id1: String, id2: i32, sensor_type: String, a: &Aggregate) -> Self {
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
pub(crate) fn hour_of(at: DateTime<Utc>) -> NaiveDateTime {
    let start = at.timestamp().div_euclid(3_600) * 3_600;
    DateTime::<Utc>::from_timestamp(start, 0)
        .unwrap_or(at)
        .naive_utc()
}

/// The catalog rows to lock and read for a change to some devices: those
/// of their `id1`s from the first device's key through the last's.
#[derive(Debug, Clone)]
pub(crate) struct CatalogSlice {
    pub(crate) id1s: Vec<String>,
    pub(crate) first: crate::device_key::DeviceKey,
    pub(crate) last: crate::device_key::DeviceKey,
}

/// An hour's rebuilt rollups, ready to write, and the catalog rows of the
/// devices it touched.
#[derive(Debug, Default)]
pub(crate) struct HourRollups {
    pub(crate) devices: Vec<DeviceHourRow>,
    pub(crate) types: Vec<TypeHourRow>,
    pub(crate) id1s: Vec<Id1HourRow>,
    pub(crate) catalog: Vec<DeviceRow>,
}

impl HourRollups {
    /// The per-device rows of `hour` for readings aggregating to `fresh`,
    /// and `catalog`; no regrouped rows.
    pub(crate) fn devices_of(
        hour: NaiveDateTime,
        fresh: &std::collections::BTreeMap<crate::device_key::DeviceKey, Aggregate>,
        catalog: Vec<DeviceRow>,
    ) -> Self {
        Self {
            devices: fresh
                .iter()
                .map(|(key, a)| {
                    DeviceHourRow::new(key.id1.clone(), key.id2, key.sensor_type.clone(), hour, a)
                })
                .collect(),
            catalog,
            ..Self::default()
        }
    }
}
