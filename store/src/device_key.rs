//! Devices as the analytics answers order and page them: [`DeviceKey`],
//! a page's stretch of keys, and a catalog row as an aggregate.

use datastream_domain::analytics::{Aggregate, Device, GroupKey, GroupPage, GroupedPage};
use std::collections::BTreeMap;

/// The devices after a page's `after` up to `through` (inclusive; `None`:
/// to the end), by key.
pub(crate) struct DeviceRange {
    pub(crate) after: Option<DeviceKey>,
    pub(crate) through: Option<DeviceKey>,
}

impl DeviceRange {
    pub(crate) fn contains(&self, key: &DeviceKey) -> bool {
        self.after.as_ref().is_none_or(|a| key > a)
            && self.through.as_ref().is_none_or(|t| key <= t)
    }
}

/// The first `limit` of `devices` (in key order, every one after the
/// page's start) and where the next page starts: after the last of them
/// when more followed, else after `examined_through` when only that much
/// of the catalog was looked at.
pub(crate) fn device_page(
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
pub(crate) struct DeviceKey {
    pub(crate) sensor_type: String,
    pub(crate) id1: String,
    pub(crate) id2: i32,
}

impl DeviceKey {
    /// The device a group key names (missing parts sort first).
    pub(crate) fn from_group(key: &GroupKey) -> Self {
        Self {
            sensor_type: key.sensor_type.clone().unwrap_or_default(),
            id1: key.id1.clone().unwrap_or_default(),
            id2: key.id2.unwrap_or(i32::MIN),
        }
    }

    /// As a group key of grouping by device.
    pub(crate) fn into_group(self) -> GroupKey {
        GroupKey {
            sensor_type: Some(self.sensor_type),
            id1: Some(self.id1),
            id2: Some(self.id2),
        }
    }

    pub(crate) fn of(d: &Device) -> Self {
        Self {
            sensor_type: d.sensor_type.clone(),
            id1: d.id1.clone(),
            id2: d.id2,
        }
    }

    pub(crate) fn device(self, a: &Aggregate) -> Device {
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
pub(crate) fn device_aggregate(d: &Device) -> Aggregate {
    let mut a = Aggregate::of(d.first_seen, d.last_value);
    a.count = d.count;
    a.last.at = d.last_seen;
    a.last.value = d.last_value;
    a
}

/// Merges `a` into `key`'s entry of `devices`.
pub(crate) fn add_to_device(
    devices: &mut BTreeMap<DeviceKey, Aggregate>,
    key: DeviceKey,
    a: &Aggregate,
) {
    devices.entry(key).and_modify(|d| d.merge(a)).or_insert(*a);
}
