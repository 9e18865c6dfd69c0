//! `ReadingFilter`: which readings a query, edit or delete applies to.
//!
//! Built from the raw strings of a request by [`ReadingFilter::parse`], so a
//! filter that exists is valid; the store translates it into SQL.

use crate::reading::{Id1, Id2, Reading, SensorType};
use crate::timestamp::parse_timestamp;
use chrono::{DateTime, Duration, Utc};

/// Default number of readings per page.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 10_000;

/// A bad filter parameter, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    /// The query parameter at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Sort order by reading time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the default: dashboards want the latest readings).
    #[default]
    Desc,
}

/// A position in a result set ordered by `(timestamp, id)`: the last row of
/// the previous page. The API hands it out as an opaque, signed cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    /// Timestamp of the last row seen.
    pub timestamp: DateTime<Utc>,
    /// Id of the last row seen.
    pub id: i64,
}

/// The raw, unparsed filter parameters of a request (query-string values).
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterParams<'a> {
    /// `id1`
    pub id1: Option<&'a str>,
    /// `id2`
    pub id2: Option<&'a str>,
    /// `sensor_type`
    pub sensor_type: Option<&'a str>,
    /// `from`, RFC 3339
    pub from: Option<&'a str>,
    /// `to`, RFC 3339
    pub to: Option<&'a str>,
    /// `duration`, e.g. `15m`
    pub duration: Option<&'a str>,
    /// `limit`
    pub limit: Option<&'a str>,
    /// `order`: `asc` or `desc`
    pub order: Option<&'a str>,
    /// `page`: 1-based page number (offset paging)
    pub page: Option<&'a str>,
}

/// A validated set of reading filters. `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingFilter {
    id1: Option<Id1>,
    id2: Option<Id2>,
    sensor_type: Option<SensorType>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u32,
    order: Order,
    page: Option<u32>,
    after: Option<PageCursor>,
    /// Rows to skip; derived from `page` and `limit`.
    skip: u64,
}

impl Default for ReadingFilter {
    fn default() -> Self {
        Self {
            id1: None,
            id2: None,
            sensor_type: None,
            from: None,
            to: None,
            limit: DEFAULT_LIMIT,
            order: Order::Desc,
            page: None,
            after: None,
            skip: 0,
        }
    }
}

impl ReadingFilter {
    /// Parses request parameters. `duration` with `from` sets `to`; alone it
    /// means the last span up to `now`; with `to` it sets `from`.
    pub fn parse(p: FilterParams<'_>, now: DateTime<Utc>) -> Result<Self, FilterError> {
        let field_err = |field, e: crate::ReadingError| FilterError::new(field, e.to_string());
        let id1 = p
            .id1
            .map(Id1::parse)
            .transpose()
            .map_err(|e| field_err("id1", e))?;
        let id2 = p
            .id2
            .map(Id2::parse)
            .transpose()
            .map_err(|e| field_err("id2", e))?;
        let sensor_type = p
            .sensor_type
            .map(SensorType::parse)
            .transpose()
            .map_err(|e| field_err("sensor_type", e))?;
        let (from, to) = parse_window(p.from, p.to, p.duration, now)?;
        let limit = match p.limit {
            None => DEFAULT_LIMIT,
            Some(s) => parse_number("limit", s, 1..=MAX_LIMIT)?,
        };
        let order = match p.order {
            None => Order::default(),
            Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(_) => return Err(FilterError::new("order", "must be asc or desc")),
        };
        let page = p
            .page
            .map(|s| parse_number("page", s, 1..=u32::MAX))
            .transpose()?;
        Ok(Self {
            id1,
            id2,
            sensor_type,
            from,
            to,
            limit,
            order,
            page,
            after: None,
            skip: 0,
        }
        .with_limit(limit))
    }

    /// Continues after `cursor` (keyset paging); refused together with `page`.
    pub fn with_cursor(mut self, cursor: PageCursor) -> Result<Self, FilterError> {
        if self.page.is_some() {
            return Err(FilterError::new("cursor", "cannot be combined with page"));
        }
        self.after = Some(cursor);
        Ok(self)
    }

    /// True when the filter selects a subset (device, type or time);
    /// editing and deleting refuse a filter without conditions.
    pub fn has_conditions(&self) -> bool {
        self.id1.is_some()
            || self.id2.is_some()
            || self.sensor_type.is_some()
            || self.from.is_some()
            || self.to.is_some()
    }

    /// Filter on `id1`.
    pub fn with_id1(mut self, id1: Id1) -> Self {
        self.id1 = Some(id1);
        self
    }
    /// Filter on `sensor_type`.
    pub fn with_sensor_type(mut self, t: SensorType) -> Self {
        self.sensor_type = Some(t);
        self
    }
    /// Sets the page size, clamped to `1..=MAX_LIMIT` (and the offset of
    /// the page, if one was asked for).
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit.clamp(1, MAX_LIMIT);
        self.skip = self
            .page
            .map(|p| u64::from(p - 1) * u64::from(self.limit))
            .unwrap_or(0);
        self
    }

    /// The same filter fetching one row more than its limit, so a caller can
    /// tell whether another page follows. Offset paging keeps its offset.
    pub fn with_lookahead(mut self) -> Self {
        let offset = self.offset();
        self.limit += 1;
        // Keep the offset of the requested page, not of a page of limit + 1.
        self.page = None;
        self.skip = offset;
        self
    }
    /// These conditions over `[from, to)` instead of their own time bounds.
    pub fn within(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Sets the order.
    pub fn with_order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Whether `reading` meets the device, sensor type and time conditions
    /// (paging does not apply): how a live stream picks its readings.
    pub fn matches(&self, reading: &Reading) -> bool {
        self.id1.as_ref().is_none_or(|v| v == reading.id1())
            && self.id2.is_none_or(|v| v == reading.id2())
            && self
                .sensor_type
                .as_ref()
                .is_none_or(|v| v == reading.sensor_type())
            && self.from.is_none_or(|t| reading.timestamp() >= t)
            && self.to.is_none_or(|t| reading.timestamp() < t)
    }

    /// `id1` to match, if any.
    pub fn id1(&self) -> Option<&Id1> {
        self.id1.as_ref()
    }
    /// `id2` to match, if any.
    pub fn id2(&self) -> Option<Id2> {
        self.id2
    }
    /// `sensor_type` to match, if any.
    pub fn sensor_type(&self) -> Option<&SensorType> {
        self.sensor_type.as_ref()
    }
    /// Inclusive lower time bound.
    pub fn from(&self) -> Option<DateTime<Utc>> {
        self.from
    }
    /// Exclusive upper time bound.
    pub fn to(&self) -> Option<DateTime<Utc>> {
        self.to
    }
    /// Page size.
    pub fn limit(&self) -> u32 {
        self.limit
    }
    /// Sort order by time.
    pub fn order(&self) -> Order {
        self.order
    }
    /// 1-based page number for offset paging.
    pub fn page(&self) -> Option<u32> {
        self.page
    }
    /// Rows to skip for offset paging.
    pub fn offset(&self) -> u64 {
        self.skip
    }
    /// Keyset position to continue after.
    pub fn after(&self) -> Option<PageCursor> {
        self.after
    }
}

/// `from` (inclusive) and `to` (exclusive), each optional.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The time window `from`, `to` and `duration` describe (see
/// [`ReadingFilter::parse`]), moved into what can be stored.
fn parse_window(
    from: Option<&str>,
    to: Option<&str>,
    duration: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Window, FilterError> {
    let bound = |field: &'static str, text: Option<&str>| {
        text.map(parse_timestamp)
            .transpose()
            .map_err(|_| FilterError::new(field, "must be an RFC 3339 timestamp"))
    };
    let (mut from, mut to) = (bound("from", from)?, bound("to", to)?);
    if let Some(d) = duration {
        let span = parse_duration(d)?;
        match (from, to) {
            (Some(_), Some(_)) => {
                return Err(FilterError::new(
                    "duration",
                    "cannot be combined with both from and to",
                ))
            }
            (Some(f), None) => to = Some(f + span),
            (None, Some(t)) => from = Some(t - span),
            (None, None) => {
                from = Some(now - span);
                to = Some(now);
            }
        }
    }
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(FilterError::new("from", "must not be after to"));
        }
    }
    // Any RFC 3339 time is a valid bound, and a duration may reach 2,700
    // years back; no reading lies outside what every backend can store, so
    // bounds beyond it mean the same as its edges.
    Ok((from.map(storable), to.map(storable)))
}

/// A whole number in `range`, or an error naming `field`.
fn parse_number(
    field: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, FilterError> {
    text.parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            FilterError::new(
                field,
                format!(
                    "must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// `at`, moved into the range of times every backend can store (MySQL's
/// `DATETIME`: years 1000 to 9999).
fn storable(at: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = DateTime::<Utc>::from_timestamp(-30_610_224_000, 0); // 1000-01-01
    let latest = DateTime::<Utc>::from_timestamp(253_402_300_799, 999_999_000); // 9999-12-31T23:59:59.999999
    match (earliest, latest) {
        (Some(earliest), Some(latest)) => at.clamp(earliest, latest),
        _ => at,
    }
}

/// Parses `90s`, `15m`, `2h`, `7d`: a whole number from 1 to 999,999
/// without leading zeros, and one unit (the API's documented pattern
/// `^[1-9][0-9]{0,5}[smhd]$`).
pub fn parse_duration(s: &str) -> Result<Duration, FilterError> {
    let bad = || {
        FilterError::new(
            "duration",
            "must be a whole number from 1 to 999999 with s, m, h or d, e.g. 15m",
        )
    };
    let unit_at = s.len().checked_sub(1).ok_or_else(bad)?;
    if !s.is_char_boundary(unit_at) {
        return Err(bad());
    }
    let (digits, unit) = s.split_at(unit_at);
    let well_formed = (1..=6).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    // At most 999,999 days (~2,700 years): far inside chrono's range.
    let secs = n * seconds_per_unit;
    Ok(Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap()
    }

    fn parse(p: FilterParams<'_>) -> Result<ReadingFilter, FilterError> {
        ReadingFilter::parse(p, now())
    }

    #[test]
    fn empty_params_give_defaults() {
        let f = parse(FilterParams::default()).unwrap();
        assert_eq!(f, ReadingFilter::default());
        assert_eq!(f.limit(), 100);
        assert_eq!(f.order(), Order::Desc);
    }

    #[test]
    fn all_fields_parse() {
        let f = parse(FilterParams {
            id1: Some("ABC"),
            id2: Some("7"),
            sensor_type: Some("humidity"),
            from: Some("2026-11-25T06:00:00Z"),
            to: Some("2026-11-25T07:00:00+00:00"),
            limit: Some("10000"),
            order: Some("asc"),
            duration: None,
            page: None,
        })
        .unwrap();
        assert_eq!(f.id1().unwrap().as_str(), "ABC");
        assert_eq!(f.id2().unwrap().get(), 7);
        assert_eq!(f.sensor_type().unwrap().as_str(), "humidity");
        assert_eq!(
            f.from(),
            Some(Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).unwrap())
        );
        assert_eq!(
            f.to(),
            Some(Utc.with_ymd_and_hms(2026, 11, 25, 7, 0, 0).unwrap())
        );
        assert_eq!(f.limit(), 10_000);
        assert_eq!(f.order(), Order::Asc);
    }

    #[test]
    fn duration_alone_means_the_last_span() {
        let f = parse(FilterParams {
            duration: Some("15m"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.from(), Some(now() - Duration::minutes(15)));
        assert_eq!(f.to(), Some(now()));
    }

    #[test]
    fn duration_with_from_sets_to() {
        let f = parse(FilterParams {
            from: Some("2026-11-20T00:00:00Z"),
            duration: Some("2h"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f.to(),
            Some(Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap())
        );
    }

    #[test]
    fn bounds_beyond_what_can_be_stored_mean_its_edges() {
        let f = ReadingFilter::parse(
            FilterParams {
                from: Some("0001-01-01T00:00:00Z"),
                duration: Some("999999d"),
                ..Default::default()
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(f.from().unwrap().to_rfc3339(), "1000-01-01T00:00:00+00:00");
        let g = ReadingFilter::parse(
            FilterParams {
                duration: Some("999999d"),
                ..Default::default()
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(g.from().unwrap().year(), 1000);
        let h = ReadingFilter::parse(
            FilterParams {
                from: Some("9999-12-31T00:00:00Z"),
                duration: Some("999999d"),
                ..Default::default()
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(h.to().unwrap().year(), 9999);
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_duration("2h").unwrap(), Duration::hours(2));
        assert_eq!(parse_duration("7d").unwrap(), Duration::days(7));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for bad in [
            "",
            "s",
            "0s",
            "-5m",
            "5",
            "5w",
            "1.5h",
            "99999999999999999999d",
            "1000000s",
            "015m",
            "5é",
            "é",
        ] {
            assert_eq!(parse_duration(bad).unwrap_err().field, "duration", "{bad}");
        }
    }

    #[test]
    fn each_bad_param_is_named() {
        let cases: [(FilterParams<'_>, &str); 8] = [
            (
                FilterParams {
                    id1: Some("abc"),
                    ..Default::default()
                },
                "id1",
            ),
            (
                FilterParams {
                    id2: Some("x"),
                    ..Default::default()
                },
                "id2",
            ),
            (
                FilterParams {
                    sensor_type: Some("A B"),
                    ..Default::default()
                },
                "sensor_type",
            ),
            (
                FilterParams {
                    from: Some("yesterday"),
                    ..Default::default()
                },
                "from",
            ),
            (
                FilterParams {
                    to: Some("2026-13-01"),
                    ..Default::default()
                },
                "to",
            ),
            (
                FilterParams {
                    limit: Some("0"),
                    ..Default::default()
                },
                "limit",
            ),
            (
                FilterParams {
                    limit: Some("10001"),
                    ..Default::default()
                },
                "limit",
            ),
            (
                FilterParams {
                    order: Some("up"),
                    ..Default::default()
                },
                "order",
            ),
        ];
        for (params, field) in cases {
            assert_eq!(parse(params).unwrap_err().field, field);
        }
    }

    #[test]
    fn page_is_one_based_and_sets_the_offset() {
        let f = parse(FilterParams {
            page: Some("3"),
            limit: Some("50"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.offset(), 100);
        assert_eq!(
            parse(FilterParams {
                page: Some("0"),
                ..Default::default()
            })
            .unwrap_err()
            .field,
            "page"
        );
    }

    #[test]
    fn cursor_and_page_exclude_each_other() {
        let f = parse(FilterParams {
            page: Some("2"),
            ..Default::default()
        })
        .unwrap();
        let c = PageCursor {
            timestamp: now(),
            id: 1,
        };
        assert_eq!(f.with_cursor(c).unwrap_err().field, "cursor");
    }

    #[test]
    fn only_device_type_and_time_count_as_conditions() {
        assert!(!parse(FilterParams {
            limit: Some("5"),
            order: Some("asc"),
            ..Default::default()
        })
        .unwrap()
        .has_conditions());
        assert!(parse(FilterParams {
            id2: Some("1"),
            ..Default::default()
        })
        .unwrap()
        .has_conditions());
    }

    #[test]
    fn from_after_to_is_rejected() {
        let err = parse(FilterParams {
            from: Some("2026-11-25T07:00:00Z"),
            to: Some("2026-11-25T06:00:00Z"),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "from");
    }
}
