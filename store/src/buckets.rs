//! How an aggregate answer is put together, whatever it is read from:
//! which hours rollups may answer ([`CleanHours`], [`outside_clean_hours`]),
//! which rollup table ([`HourTable`]), and the page of buckets being filled
//! ([`Buckets`]).

use crate::rollup_rows::hour_of;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use datastream_domain::analytics::{
    Aggregate, AggregateQuery, Bucket, GroupBy, GroupKey, GroupPage, GroupedPage, Interval,
};
use std::collections::{BTreeMap, BTreeSet};

/// The first whole hour at or after `at`.
pub(crate) fn ceil_hour(at: DateTime<Utc>) -> NaiveDateTime {
    let hour = hour_of(at);
    if hour == at.naive_utc() {
        hour
    } else {
        hour + Duration::hours(1)
    }
}

/// The start of the hour `at` falls in.
pub(crate) fn floor_hour(at: DateTime<Utc>) -> NaiveDateTime {
    hour_of(at)
}

/// What of `[from, to)` rollups do not cover: the part before the first
/// whole hour, after the last, and each dirty hour (adjacent ones joined).
pub(crate) fn outside_clean_hours(
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
pub(crate) struct Buckets {
    interval: Interval,
    page: GroupPage,
    by_group: BTreeMap<(GroupKey, DateTime<Utc>), Aggregate>,
    groups: BTreeSet<GroupKey>,
}

impl Buckets {
    pub(crate) fn new(interval: Interval, page: &GroupPage) -> Self {
        Self {
            interval,
            page: page.clone(),
            by_group: BTreeMap::new(),
            groups: BTreeSet::new(),
        }
    }

    /// Adds the aggregate of readings taken in the bucket of `at`.
    pub(crate) fn add(&mut self, at: DateTime<Utc>, key: GroupKey, aggregate: &Aggregate) {
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
    pub(crate) fn add_group(
        &mut self,
        hour: DateTime<Utc>,
        key: GroupKey,
        group_by: GroupBy,
        a: &Aggregate,
    ) {
        let regrouped = group_by.key(
            key.sensor_type.as_deref().unwrap_or(""),
            key.id1.as_deref().unwrap_or(""),
            key.id2.unwrap_or(0),
        );
        self.add(hour, regrouped, a);
    }

    /// The page's buckets by start, then group; the one group kept beyond
    /// the limit only says that another page follows.
    pub(crate) fn into_page(mut self) -> GroupedPage<Bucket> {
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
pub(crate) enum HourTable {
    /// Per device: any filter, any grouping.
    Device,
    /// Per `id1` and sensor type: no `id2` filter, not grouped by device.
    Id1,
    /// Per sensor type: neither `id1` nor `id2`, grouped by type or not.
    Type,
}

impl HourTable {
    pub(crate) fn for_query(q: &AggregateQuery) -> Self {
        let c = q.conditions();
        match q.group_by() {
            GroupBy::Device => Self::Device,
            _ if c.id2().is_some() => Self::Device,
            GroupBy::Id1 => Self::Id1,
            _ if c.id1().is_some() => Self::Id1,
            GroupBy::SensorType | GroupBy::None => Self::Type,
        }
    }
}

/// The whole hours `[first, end)` of a window, and which of them are dirty
/// (answered from rows instead).
#[derive(Clone, Copy)]
pub(crate) struct CleanHours<'a> {
    pub(crate) first: NaiveDateTime,
    pub(crate) end: NaiveDateTime,
    pub(crate) dirty: &'a BTreeSet<NaiveDateTime>,
}

/// What a page of groups says about the leading key column: its groups
/// have a sensor type (by device or type) or an `id1` (by `id1`) at least
/// the previous page's last. A condition on one column keeps the rows of
/// earlier pages in the database; the exact cut is the buckets'.
#[derive(Default)]
pub(crate) struct PageFloor {
    pub(crate) sensor_type: Option<String>,
    pub(crate) id1: Option<String>,
}

impl PageFloor {
    pub(crate) fn of(q: &AggregateQuery) -> Self {
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
