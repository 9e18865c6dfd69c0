//! Analytics in the domain: time buckets, how readings are grouped, the
//! aggregate of a group, and the questions the analytics endpoints ask.
//!
//! Everything here is plain arithmetic on readings; where the numbers come
//! from (rollups or raw rows) is the store's business. An [`Aggregate`]
//! merges with another exactly as if both sets of readings had been
//! aggregated at once, which is what lets rollups stand in for rows.

use crate::filter::{parse_duration, FilterError, FilterParams, ReadingFilter};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// Buckets a request may ask for at most, per `max_points`: more is a 400.
pub const MAX_BUCKETS_PER_POINT: i64 = 10;
/// `max_points` when the request does not say.
pub const DEFAULT_MAX_POINTS: u32 = 1_000;
/// The largest `max_points` accepted.
pub const MAX_MAX_POINTS: u32 = 10_000;
/// The window of a request that gives no `from`, `to` or `duration`.
pub const DEFAULT_WINDOW: Duration = Duration::hours(24);

/// The intervals an automatic choice picks from, in seconds.
const LADDER: [i64; 21] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
    86_400, 172_800, 604_800, 2_592_000,
];
/// The shortest and the longest interval: 1 s and 30 days.
const SHORTEST: i64 = 1;
const LONGEST: i64 = 30 * 86_400;

/// A bucket width: whole seconds from 1 s to 30 days. Buckets are aligned to
/// the Unix epoch in UTC: a bucket starts at a multiple of its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval(i64);

impl Interval {
    /// Parses `90s`, `15m`, `2h`, `7d` (the `duration` syntax), 1 s to 30 d.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let seconds = parse_duration(text)
            .map_err(|_| {
                FilterError::new(
                    "interval",
                    "must be a whole number with s, m, h or d, from 1s to 30d, e.g. 1h",
                )
            })?
            .num_seconds();
        Self::from_seconds(seconds)
    }

    /// An interval of `seconds`, 1 s to 30 d.
    pub fn from_seconds(seconds: i64) -> Result<Self, FilterError> {
        if (SHORTEST..=LONGEST).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(FilterError::new("interval", "must be from 1s to 30d"))
        }
    }

    /// The shortest interval of the ladder (1 s, 2 s, 5 s, … 1 h, … 30 d)
    /// that cuts `window` into at most `max_points` buckets.
    pub fn automatic(window: Duration, max_points: u32) -> Self {
        let seconds = window.num_seconds().max(1);
        let chosen = LADDER
            .iter()
            .copied()
            .find(|w| buckets_in(seconds, *w) <= i64::from(max_points))
            .unwrap_or(LONGEST);
        Self(chosen)
    }

    /// The width in seconds.
    pub fn seconds(self) -> i64 {
        self.0
    }

    /// The start of the bucket `at` falls in.
    pub fn bucket_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let start = at.timestamp().div_euclid(self.0) * self.0;
        Utc.timestamp_opt(start, 0).single().unwrap_or(at)
    }

    /// The text form: the largest unit that divides it (`90s`, `15m`, `1h`).
    pub fn label(self) -> String {
        match self.0 {
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3_600 == 0 => format!("{}h", s / 3_600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

/// How many buckets of `width` seconds a window of `seconds` touches at most.
fn buckets_in(seconds: i64, width: i64) -> i64 {
    seconds.div_euclid(width) + 1
}

/// What readings are grouped by, besides their bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupBy {
    /// One group per device: `sensor_type`, `id1`, `id2` (the default).
    #[default]
    Device,
    /// One group per sensor type.
    SensorType,
    /// One group per `id1`.
    Id1,
    /// One group for everything.
    None,
}

impl GroupBy {
    /// Parses `device`, `sensor_type`, `id1` or `none`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        match text {
            "device" => Ok(Self::Device),
            "sensor_type" => Ok(Self::SensorType),
            "id1" => Ok(Self::Id1),
            "none" => Ok(Self::None),
            _ => Err(FilterError::new(
                "group_by",
                "must be device, sensor_type, id1 or none",
            )),
        }
    }

    /// The group a reading of this device belongs to.
    pub fn key(self, sensor_type: &str, id1: &str, id2: i32) -> GroupKey {
        match self {
            Self::Device => GroupKey {
                sensor_type: Some(sensor_type.to_owned()),
                id1: Some(id1.to_owned()),
                id2: Some(id2),
            },
            Self::SensorType => GroupKey {
                sensor_type: Some(sensor_type.to_owned()),
                ..GroupKey::default()
            },
            Self::Id1 => GroupKey {
                id1: Some(id1.to_owned()),
                ..GroupKey::default()
            },
            Self::None => GroupKey::default(),
        }
    }
}

/// The fields a group is keyed by; those not grouped on are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupKey {
    /// The sensor type, when grouped by device or sensor type.
    pub sensor_type: Option<String>,
    /// `id1`, when grouped by device or `id1`.
    pub id1: Option<String>,
    /// `id2`, when grouped by device.
    pub id2: Option<i32>,
}

/// A value at an instant: a bucket's first or last reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// Ordered by time, then by value: readings of different devices may
    /// share a timestamp, and `first`/`last` must not depend on the order
    /// rows are read in.
    fn before(&self, other: &Sample) -> bool {
        match self.at.cmp(&other.at) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => self.value.total_cmp(&other.value).is_lt(),
        }
    }
}

/// A sum of doubles kept with its rounding error (Neumaier's compensated
/// summation): the value is `sum + compensation`, within about one unit in
/// the last place of the exact sum however many terms went in and however
/// they cancel (±1e15 and 1 add up exactly to 1). Naive summation of values
/// mixing ±1e15 loses whole units; rollups merge thousands of partial sums.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// A sum from its two parts, as stored.
    pub fn from_parts(sum: f64, compensation: f64) -> Self {
        Self { sum, compensation }
    }

    /// The sum of one value.
    pub fn of(value: f64) -> Self {
        Self {
            sum: value,
            compensation: 0.0,
        }
    }

    /// Adds one value.
    pub fn add(&mut self, value: f64) {
        let t = self.sum + value;
        // Whichever term is larger keeps its bits; the error of the other
        // goes into the compensation.
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - t) + value
        } else {
            (value - t) + self.sum
        };
        self.sum = t;
    }

    /// Adds another compensated sum.
    pub fn merge(&mut self, other: &CompensatedSum) {
        self.add(other.sum);
        self.add(other.compensation);
    }

    /// The running sum and its compensation, as stored.
    pub fn parts(&self) -> (f64, f64) {
        (self.sum, self.compensation)
    }

    /// The sum.
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// The aggregate of a set of readings: count, sum, min, max, and the
/// earliest and latest reading (ties between readings of one instant go to
/// the smaller value for `first` and the larger for `last`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    /// Readings.
    pub count: u64,
    /// Sum of their values.
    pub sum: CompensatedSum,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// The earliest reading.
    pub first: Sample,
    /// The latest reading.
    pub last: Sample,
}

impl Aggregate {
    /// The aggregate of one reading.
    pub fn of(at: DateTime<Utc>, value: f64) -> Self {
        let sample = Sample { at, value };
        Self {
            count: 1,
            sum: CompensatedSum::of(value),
            min: value,
            max: value,
            first: sample,
            last: sample,
        }
    }

    /// Adds `other` in: the aggregate of both sets of readings.
    pub fn merge(&mut self, other: &Aggregate) {
        self.count += other.count;
        self.sum.merge(&other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first.before(&self.first) {
            self.first = other.first;
        }
        if self.last.before(&other.last) {
            self.last = other.last;
        }
    }

    /// The mean value.
    pub fn avg(&self) -> f64 {
        self.sum.value() / self.count as f64
    }
}

/// One bucket of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Where the bucket starts.
    pub start: DateTime<Utc>,
    /// Which group.
    pub key: GroupKey,
    /// Its readings' aggregate.
    pub aggregate: Aggregate,
}

/// Groups (or devices) per answer when the request says nothing.
pub const DEFAULT_GROUP_LIMIT: usize = 1_000;
/// The most groups (or devices) one answer may hold.
pub const MAX_GROUP_LIMIT: usize = 10_000;
/// The most buckets of all groups one aggregate answer may hold: a limit
/// of groups times the buckets of the window.
pub const MAX_POINTS_PER_ANSWER: i64 = 1_000_000;

/// A page of groups: those whose key comes after `after` (in key order:
/// sensor type, `id1`, `id2`), at most `limit` of them. Answers are paged
/// by group, so one request costs a bounded amount however many devices
/// there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPage {
    /// The last key of the previous page.
    pub after: Option<GroupKey>,
    /// Groups on this page.
    pub limit: usize,
}

impl Default for GroupPage {
    fn default() -> Self {
        Self {
            after: None,
            limit: DEFAULT_GROUP_LIMIT,
        }
    }
}

impl GroupPage {
    /// Parses `limit` (named `field` in errors) and takes `after`.
    pub fn parse(limit: Option<&str>, after: Option<GroupKey>) -> Result<Self, FilterError> {
        let limit = match limit {
            None => DEFAULT_GROUP_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_GROUP_LIMIT).contains(n))
                .ok_or_else(|| {
                    FilterError::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_GROUP_LIMIT}"),
                    )
                })?,
        };
        Ok(Self { after, limit })
    }

    /// Whether `key` comes after the previous page.
    pub fn follows(&self, key: &GroupKey) -> bool {
        self.after.as_ref().is_none_or(|after| key > after)
    }
}

/// One page of an answer paged by group (aggregates) or by device
/// (`/devices`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedPage<T> {
    /// What the page holds, in answer order.
    pub items: Vec<T>,
    /// The last group (or device) of this page, when another page follows:
    /// the next page is the one after it.
    pub next_after: Option<GroupKey>,
}

/// A question for `GET /readings/aggregate`: which readings (the filter's
/// conditions, within `[from, to)`), in buckets of which width, grouped how,
/// and which page of groups.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    conditions: ReadingFilter,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
    group_by: GroupBy,
    page: GroupPage,
}

/// The parameters of an aggregate request, as received.
#[derive(Debug, Default, Clone)]
pub struct AggregateParams<'a> {
    /// The readings filters (`limit`, `order`, `page` are not taken).
    pub filter: FilterParams<'a>,
    /// Bucket width (`duration` syntax); `None`: chosen automatically.
    pub interval: Option<&'a str>,
    /// `device`, `sensor_type`, `id1` or `none`; `None`: `device`.
    pub group_by: Option<&'a str>,
    /// The most buckets an automatic interval may make (default 1,000).
    pub max_points: Option<&'a str>,
    /// Groups per answer (default [`DEFAULT_GROUP_LIMIT`]).
    pub limit: Option<&'a str>,
    /// The last group of the previous page (from its cursor).
    pub after: Option<GroupKey>,
}

impl AggregateQuery {
    /// Parses a request at instant `now`. Without `from`, the window starts
    /// [`DEFAULT_WINDOW`] before its end; without `to`, it ends at `now`.
    pub fn parse(p: AggregateParams<'_>, now: DateTime<Utc>) -> Result<Self, FilterError> {
        let conditions = ReadingFilter::parse(p.filter, now)?;
        let to = conditions.to().unwrap_or(now);
        let from = conditions.from().unwrap_or(to - DEFAULT_WINDOW);
        if from >= to {
            return Err(FilterError::new("from", "must be before to"));
        }
        let max_points = match p.max_points {
            None => DEFAULT_MAX_POINTS,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_MAX_POINTS).contains(n))
                .ok_or_else(|| {
                    FilterError::new(
                        "max_points",
                        format!("must be an integer from 1 to {MAX_MAX_POINTS}"),
                    )
                })?,
        };
        let interval = match p.interval {
            None => Interval::automatic(to - from, max_points),
            Some(text) => Interval::parse(text)?,
        };
        let buckets = buckets_in((to - from).num_seconds(), interval.seconds());
        let most = i64::from(max_points) * MAX_BUCKETS_PER_POINT;
        if buckets > most {
            return Err(FilterError::new(
                "interval",
                format!(
                    "makes {buckets} buckets of this window, more than {most} (max_points × {MAX_BUCKETS_PER_POINT}); choose a longer interval or a shorter window"
                ),
            ));
        }
        let group_by = p
            .group_by
            .map(GroupBy::parse)
            .transpose()?
            .unwrap_or_default();
        let page = GroupPage::parse(p.limit, p.after)?;
        let points = buckets.saturating_mul(page.limit as i64);
        if group_by != GroupBy::None && points > MAX_POINTS_PER_ANSWER {
            return Err(FilterError::new(
                "limit",
                format!(
                    "{} groups of {buckets} buckets make more than {MAX_POINTS_PER_ANSWER} points; ask for fewer groups per page or fewer buckets",
                    page.limit
                ),
            ));
        }
        Ok(Self {
            conditions,
            from,
            to,
            interval,
            group_by,
            page,
        })
    }

    /// Which page of groups.
    pub fn page(&self) -> &GroupPage {
        &self.page
    }

    /// Which readings: `id1`, `id2`, `sensor_type` (the time bounds are
    /// [`from`](Self::from) and [`to`](Self::to)).
    pub fn conditions(&self) -> &ReadingFilter {
        &self.conditions
    }
    /// Inclusive start of the window.
    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }
    /// Exclusive end of the window.
    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }
    /// Bucket width.
    pub fn interval(&self) -> Interval {
        self.interval
    }
    /// Grouping.
    pub fn group_by(&self) -> GroupBy {
        self.group_by
    }
}

/// One device as the catalog lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its sensor type.
    pub sensor_type: String,
    /// Its `id1`.
    pub id1: String,
    /// Its `id2`.
    pub id2: i32,
    /// Its earliest stored reading.
    pub first_seen: DateTime<Utc>,
    /// Its latest stored reading.
    pub last_seen: DateTime<Utc>,
    /// That reading's value.
    pub last_value: f64,
    /// Readings stored.
    pub count: u64,
}

/// A question for `GET /devices`.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    conditions: ReadingFilter,
    silent_for: Option<Duration>,
    search: Option<DeviceSearch>,
    page: GroupPage,
}

/// A search of the device catalog: the devices whose `id1/id2` starts
/// with the text (`AB` finds `ABC/1`; `ABC/1` finds `ABC/1` and `ABC/12`).
/// Letters are compared in upper case, as `id1` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSearch {
    id1: String,
    /// With a `/`: `id1` is whole, and this is the start of `id2`.
    id2_prefix: Option<String>,
}

impl DeviceSearch {
    /// Parses `[A-Za-z]{1,32}` or `[A-Za-z]{1,32}/[0-9]{0,10}`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let refuse = || {
            FilterError::new(
                "search",
                "must be the start of a device id: id1 (letters), or id1/ and the start of id2",
            )
        };
        let (id1, id2) = match text.split_once('/') {
            Some((id1, id2)) => (id1, Some(id2)),
            None => (text, None),
        };
        let id1_ok = (1..=32).contains(&id1.len()) && id1.bytes().all(|b| b.is_ascii_alphabetic());
        let id2_ok = id2.is_none_or(|d| d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit()));
        if !(id1_ok && id2_ok) {
            return Err(refuse());
        }
        Ok(Self {
            id1: id1.to_ascii_uppercase(),
            id2_prefix: id2.map(str::to_owned),
        })
    }

    /// The whole `id1` the search names, when it names one (it has a `/`).
    pub fn whole_id1(&self) -> Option<&str> {
        self.id2_prefix.as_ref().map(|_| self.id1.as_str())
    }

    /// The start of `id1` the search names, when it names no whole one.
    pub fn id1_prefix(&self) -> Option<&str> {
        self.id2_prefix.is_none().then_some(self.id1.as_str())
    }

    /// Whether the device `id1/id2` is found.
    pub fn matches(&self, id1: &str, id2: i32) -> bool {
        match &self.id2_prefix {
            None => id1.starts_with(&self.id1),
            Some(prefix) => id1 == self.id1 && id2.to_string().starts_with(prefix.as_str()),
        }
    }
}

impl DeviceQuery {
    /// Parses `sensor_type`, `id1`, `id2` and `silent_for` (`duration`
    /// syntax: devices whose latest reading is older than that).
    pub fn parse(
        filter: FilterParams<'_>,
        silent_for: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, FilterError> {
        let conditions = ReadingFilter::parse(filter, now)?;
        let silent_for = silent_for
            .map(|text| {
                parse_duration(text).map_err(|_| {
                    FilterError::new(
                        "silent_for",
                        "must be a whole number with s, m, h or d, e.g. 10m",
                    )
                })
            })
            .transpose()?;
        Ok(Self {
            conditions,
            silent_for,
            search: None,
            page: GroupPage::default(),
        })
    }

    /// The same question, narrowed to the devices `search` finds
    /// ([`DeviceSearch`]); `None` changes nothing.
    pub fn with_search(mut self, search: Option<&str>) -> Result<Self, FilterError> {
        self.search = search.map(DeviceSearch::parse).transpose()?;
        Ok(self)
    }

    /// The search narrowing the question, if any.
    pub fn search(&self) -> Option<&DeviceSearch> {
        self.search.as_ref()
    }

    /// The same question, for the page `page` of devices (by key: sensor
    /// type, `id1`, `id2`).
    pub fn with_page(mut self, page: GroupPage) -> Self {
        self.page = page;
        self
    }

    /// Which page of devices.
    pub fn page(&self) -> &GroupPage {
        &self.page
    }

    /// Which devices: `id1`, `id2`, `sensor_type`.
    pub fn conditions(&self) -> &ReadingFilter {
        &self.conditions
    }

    /// Whether `device` answers the question at `now`.
    pub fn selects(&self, device: &Device, now: DateTime<Utc>) -> bool {
        let c = &self.conditions;
        c.sensor_type()
            .is_none_or(|t| t.as_str() == device.sensor_type)
            && c.id1().is_none_or(|i| i.as_str() == device.id1)
            && c.id2().is_none_or(|i| i.get() == device.id2)
            && self
                .silent_for
                .is_none_or(|quiet| device.last_seen < now - quiet)
            && self
                .search
                .as_ref()
                .is_none_or(|s| s.matches(&device.id1, device.id2))
    }
}

#[cfg(test)]
mod compensated_sum_tests {
    use super::CompensatedSum;

    #[test]
    fn large_values_that_cancel_leave_the_small_ones_exact() {
        let mut sum = CompensatedSum::default();
        for v in [1e15, 1.0, -1e15, 0.25, 1e15, -1e15, -0.125] {
            sum.add(v);
        }
        assert_eq!(sum.value(), 1.125);
        let naive: f64 = [1e15, 0.1, -1e15].iter().sum();
        assert_ne!(naive, 0.1, "what naive summation gets wrong");
        let mut sum = CompensatedSum::default();
        [1e15, 0.1, -1e15].iter().for_each(|v| sum.add(*v));
        assert_eq!(sum.value(), 0.1);
    }

    #[test]
    fn merging_partial_sums_equals_adding_every_value() {
        let values: Vec<f64> = (0..1_000)
            .map(|i| if i % 2 == 0 { 1e15 } else { -1e15 + 0.5 })
            .collect();
        let mut whole = CompensatedSum::default();
        values.iter().for_each(|v| whole.add(*v));
        let mut merged = CompensatedSum::default();
        for chunk in values.chunks(7) {
            let mut part = CompensatedSum::default();
            chunk.iter().for_each(|v| part.add(*v));
            merged.merge(&part);
        }
        assert_eq!(whole.value(), 250.0);
        assert_eq!(merged.value(), 250.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn intervals_parse_like_durations_within_1s_to_30d() {
        assert_eq!(Interval::parse("1h").unwrap().seconds(), 3_600);
        assert_eq!(Interval::parse("30d").unwrap().seconds(), 2_592_000);
        for bad in ["0s", "31d", "1w", "", "1.5h"] {
            assert_eq!(Interval::parse(bad).unwrap_err().field, "interval", "{bad}");
        }
    }

    #[test]
    fn buckets_are_aligned_to_the_epoch() {
        let hour = Interval::parse("1h").unwrap();
        assert_eq!(hour.bucket_of(at(7_199)), at(3_600));
        assert_eq!(hour.bucket_of(at(7_200)), at(7_200));
        assert_eq!(hour.bucket_of(at(-1)), at(-3_600));
    }

    #[test]
    fn an_automatic_interval_makes_at_most_max_points_buckets() {
        let day = Interval::automatic(Duration::days(30), 1_000);
        assert_eq!(day.label(), "1h");
        assert_eq!(
            Interval::automatic(Duration::minutes(10), 1_000).label(),
            "1s"
        );
        assert_eq!(Interval::automatic(Duration::days(30), 10).label(), "7d");
    }

    #[test]
    fn merging_aggregates_is_aggregating_at_once() {
        let mut a = Aggregate::of(at(10), 3.0);
        a.merge(&Aggregate::of(at(5), 7.0));
        a.merge(&Aggregate::of(at(20), 1.0));
        assert_eq!((a.count, a.sum.value(), a.min, a.max), (3, 11.0, 1.0, 7.0));
        assert_eq!((a.first.value, a.last.value), (7.0, 1.0));
    }

    #[test]
    fn ties_in_time_go_to_the_smaller_first_and_the_larger_last() {
        let mut a = Aggregate::of(at(10), 3.0);
        a.merge(&Aggregate::of(at(10), 1.0));
        a.merge(&Aggregate::of(at(10), 5.0));
        assert_eq!((a.first.value, a.last.value), (1.0, 5.0));
    }

    #[test]
    fn too_many_buckets_is_a_400_naming_interval() {
        let now = at(1_000_000);
        let e = AggregateQuery::parse(
            AggregateParams {
                filter: FilterParams {
                    duration: Some("30d"),
                    ..Default::default()
                },
                interval: Some("1s"),
                ..Default::default()
            },
            now,
        )
        .unwrap_err();
        assert_eq!(e.field, "interval");
    }

    #[test]
    fn bad_group_by_and_max_points_are_named() {
        let now = at(1_000_000);
        let bad = |group_by, max_points| {
            AggregateQuery::parse(
                AggregateParams {
                    group_by,
                    max_points,
                    ..Default::default()
                },
                now,
            )
            .unwrap_err()
            .field
        };
        assert_eq!(bad(Some("colour"), None), "group_by");
        assert_eq!(bad(None, Some("0")), "max_points");
    }

    #[test]
    fn a_device_search_finds_ids_that_start_with_it() {
        let s = DeviceSearch::parse("ab").unwrap();
        assert!(s.matches("ABC", 1) && s.matches("AB", 7));
        assert!(!s.matches("XAB", 1));
        assert_eq!((s.id1_prefix(), s.whole_id1()), (Some("AB"), None));
        let s = DeviceSearch::parse("ABC/1").unwrap();
        assert!(s.matches("ABC", 1) && s.matches("ABC", 12));
        assert!(!s.matches("ABCD", 1) && !s.matches("ABC", 21));
        assert_eq!((s.id1_prefix(), s.whole_id1()), (None, Some("ABC")));
        assert!(DeviceSearch::parse("ABC/").unwrap().matches("ABC", 5));
    }

    #[test]
    fn a_device_search_that_is_no_start_of_an_id_is_refused_naming_search() {
        for bad in [
            "",
            "/1",
            "AB1",
            "A/x",
            "A/1/2",
            "ÄB",
            &"A".repeat(33),
            "A/12345678901",
        ] {
            let err = DeviceSearch::parse(bad).unwrap_err();
            assert_eq!(err.field, "search", "{bad:?}");
        }
    }
}
