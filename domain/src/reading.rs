//! The `Reading` domain type and the newtypes it is built from.
//!
//! Every type here is constructed only through `parse`, so a value that exists
//! is valid. Nothing in this module knows about MQTT, HTTP or SQL.

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use std::fmt;
use std::sync::Arc;

/// Why a reading (or one of its fields) was rejected. Each variant names the
/// offending field so the message can be shown to whoever sent it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadingError {
    /// `sensor_value` was NaN or infinite.
    #[error("sensor_value must be a finite number")]
    NonFiniteValue,
    /// `sensor_value` was finite but beyond ±[`MAX_ABS_SENSOR_VALUE`].
    #[error("sensor_value must be from -1e15 to 1e15, got {0:e}")]
    ValueOutOfRange(f64),
    /// `sensor_type` did not match `[a-z0-9_-]{1,64}`.
    #[error("sensor_type must match [a-z0-9_-]{{1,64}}, got {0:?}")]
    InvalidSensorType(String),
    /// `id1` did not match `[A-Z]{1,32}`.
    #[error("id1 must match [A-Z]{{1,32}}, got {0:?}")]
    InvalidId1(String),
    /// `id2` was outside `0..=2^31-1`.
    #[error("id2 must be an integer from 0 to 2147483647, got {0}")]
    InvalidId2(String),
    /// `timestamp` was not RFC 3339.
    #[error("timestamp must be RFC 3339 (e.g. 2026-11-25T07:00:00.123456Z), got {0:?}")]
    InvalidTimestamp(String),
    /// `timestamp` named second 60 of a minute (a leap second).
    #[error("timestamp {0:?} is a leap second (second 60), which UTC as databases store it has no place for; send second 59.999999 or a leap-smeared clock's time")]
    LeapSecond(String),
    /// A required part was not given to [`ReadingBuilder`].
    #[error("{0} is required")]
    Missing(&'static str),
    /// `timestamp` was outside the accepted window.
    #[error("timestamp {value} is outside the accepted range {earliest} .. {latest}")]
    TimestampOutOfRange {
        /// The rejected timestamp.
        value: DateTime<Utc>,
        /// Earliest accepted instant.
        earliest: DateTime<Utc>,
        /// Latest accepted instant (now plus the allowed lead).
        latest: DateTime<Utc>,
    },
}

impl ReadingError {
    /// The name of the field this error is about, as it appears on the wire.
    pub fn field(&self) -> &'static str {
        match self {
            ReadingError::NonFiniteValue | ReadingError::ValueOutOfRange(_) => "sensor_value",
            ReadingError::InvalidSensorType(_) => "sensor_type",
            ReadingError::InvalidId1(_) => "id1",
            ReadingError::InvalidId2(_) => "id2",
            ReadingError::InvalidTimestamp(_)
            | ReadingError::LeapSecond(_)
            | ReadingError::TimestampOutOfRange { .. } => "timestamp",
            ReadingError::Missing(field) => field,
        }
    }
}

/// The largest magnitude a sensor value may have. Far beyond any physical
/// measurement or counter, and far enough below `f64::MAX` (1.8e308) that
/// sums over any number of readings a database can hold stay finite, in SQL
/// and in the rollups: aggregates are always numbers.
pub const MAX_ABS_SENSOR_VALUE: f64 = 1e15;

/// Checks a sensor value: finite and within ±[`MAX_ABS_SENSOR_VALUE`].
pub fn check_sensor_value(value: f64) -> Result<f64, ReadingError> {
    if !value.is_finite() {
        return Err(ReadingError::NonFiniteValue);
    }
    if value.abs() > MAX_ABS_SENSOR_VALUE {
        return Err(ReadingError::ValueOutOfRange(value));
    }
    Ok(value)
}

/// Refuses second 60 (a leap second): MySQL's `DATETIME` has no place for
/// it (it stores the zero date instead) and SQLite would keep text no
/// other reader orders correctly.
pub fn check_not_leap_second(timestamp: DateTime<Utc>, text: &str) -> Result<(), ReadingError> {
    use chrono::Timelike;
    if timestamp.nanosecond() >= 1_000_000_000 {
        return Err(ReadingError::LeapSecond(text.chars().take(80).collect()));
    }
    Ok(())
}

/// A sensor type such as `temperature`: `[a-z0-9_-]{1,64}`. Cloning is a
/// reference-count increment, so every reading of a message can share the
/// topic's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensorType(Arc<str>);

impl SensorType {
    /// Longest accepted sensor type, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Parses a sensor type, refusing anything outside `[a-z0-9_-]{1,64}`.
    pub fn parse(s: &str) -> Result<Self, ReadingError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ReadingError::InvalidSensorType(truncated(s)))
        }
    }

    /// The sensor type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first part of a device id: `[A-Z]{1,32}`. Cheap to clone, like
/// [`SensorType`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id1(Arc<str>);

impl Id1 {
    /// Longest accepted id1, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Parses an id1, refusing anything outside `[A-Z]{1,32}`.
    pub fn parse(s: &str) -> Result<Self, ReadingError> {
        if !s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ReadingError::InvalidId1(truncated(s)))
        }
    }

    /// The id1 as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The second part of a device id: an integer in `0..=2^31-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id2(i32);

impl Id2 {
    /// Accepts any integer that fits `0..=2^31-1`.
    pub fn new(value: i64) -> Result<Self, ReadingError> {
        i32::try_from(value)
            .ok()
            .filter(|v| *v >= 0)
            .map(Self)
            .ok_or_else(|| ReadingError::InvalidId2(value.to_string()))
    }

    /// Parses a decimal id2 (a topic segment or a query parameter).
    pub fn parse(s: &str) -> Result<Self, ReadingError> {
        // Only plain digits: "+5", " 5" and "05x" are not ids.
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReadingError::InvalidId2(truncated(s)));
        }
        let value: i64 = s
            .parse()
            .map_err(|_| ReadingError::InvalidId2(truncated(s)))?;
        Self::new(value)
    }

    /// The id2 as an integer.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// The window of timestamps a reading may carry. Back-filled history is
/// normal, so the lower bound is far in the past; the upper bound allows for
/// sensors whose clocks run a little ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampBounds {
    earliest: DateTime<Utc>,
    max_lead: Duration,
}

impl TimestampBounds {
    /// Builds bounds from the earliest accepted instant and how far ahead of
    /// now a timestamp may be.
    pub fn new(earliest: DateTime<Utc>, max_lead: Duration) -> Self {
        Self { earliest, max_lead }
    }

    /// Checks `value` against the bounds at instant `now`.
    pub fn check(&self, value: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ReadingError> {
        let latest = now + self.max_lead;
        if value < self.earliest || value > latest {
            return Err(ReadingError::TimestampOutOfRange {
                value,
                earliest: self.earliest,
                latest,
            });
        }
        Ok(())
    }
}

impl Default for TimestampBounds {
    /// From 2000-01-01T00:00:00Z to one day ahead of now.
    fn default() -> Self {
        Self {
            earliest: Utc
                .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
                .single()
                .expect("2000-01-01 is a valid date"),
            max_lead: Duration::days(1),
        }
    }
}

/// One validated sensor reading. Timestamps are UTC with microsecond precision
/// (what `DATETIME(6)` stores), so a reading round-trips through the database
/// unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    sensor_value: f64,
    sensor_type: SensorType,
    id1: Id1,
    id2: Id2,
    timestamp: DateTime<Utc>,
}

impl Reading {
    /// Starts a reading; its parts are set by name and checked by
    /// [`ReadingBuilder::build`].
    pub fn builder() -> ReadingBuilder {
        ReadingBuilder::default()
    }

    /// The measured value.
    pub fn sensor_value(&self) -> f64 {
        self.sensor_value
    }
    /// The sensor type.
    pub fn sensor_type(&self) -> &SensorType {
        &self.sensor_type
    }
    /// The first part of the device id.
    pub fn id1(&self) -> &Id1 {
        &self.id1
    }
    /// The second part of the device id.
    pub fn id2(&self) -> Id2 {
        self.id2
    }
    /// When the reading was taken (UTC, microseconds).
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
}

/// The parts of a [`Reading`], set by name (so that an optional part
/// added later touches no caller), checked together by [`build`](Self::build).
#[derive(Debug, Clone, Default)]
pub struct ReadingBuilder {
    sensor_value: Option<f64>,
    sensor_type: Option<SensorType>,
    id1: Option<Id1>,
    id2: Option<Id2>,
    timestamp: Option<DateTime<Utc>>,
}

impl ReadingBuilder {
    /// The measured value.
    pub fn sensor_value(mut self, value: f64) -> Self {
        self.sensor_value = Some(value);
        self
    }
    /// The sensor type.
    pub fn sensor_type(mut self, sensor_type: SensorType) -> Self {
        self.sensor_type = Some(sensor_type);
        self
    }
    /// The first device id part.
    pub fn id1(mut self, id1: Id1) -> Self {
        self.id1 = Some(id1);
        self
    }
    /// The second device id part.
    pub fn id2(mut self, id2: Id2) -> Self {
        self.id2 = Some(id2);
        self
    }
    /// When it was measured.
    pub fn timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// The reading, once every required part is given, the value is in
    /// range and the timestamp within `bounds` at `now`. The timestamp is
    /// truncated to microseconds.
    pub fn build(
        self,
        bounds: &TimestampBounds,
        now: DateTime<Utc>,
    ) -> Result<Reading, ReadingError> {
        let sensor_value = self
            .sensor_value
            .ok_or(ReadingError::Missing("sensor_value"))?;
        let sensor_type = self
            .sensor_type
            .ok_or(ReadingError::Missing("sensor_type"))?;
        let id1 = self.id1.ok_or(ReadingError::Missing("id1"))?;
        let id2 = self.id2.ok_or(ReadingError::Missing("id2"))?;
        let timestamp = self.timestamp.ok_or(ReadingError::Missing("timestamp"))?;
        check_sensor_value(sensor_value)?;
        check_not_leap_second(timestamp, &timestamp.to_rfc3339())?;
        let timestamp = timestamp.trunc_subsecs(6);
        bounds.check(timestamp, now)?;
        Ok(Reading {
            sensor_value,
            sensor_type,
            id1,
            id2,
            timestamp,
        })
    }
}

/// A reading as the store gives it back, with its id and bookkeeping
/// times. Rows are returned as stored, without re-validation: a row edited
/// by hand may hold what [`Reading`] would refuse.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    /// Database id.
    pub id: i64,
    /// Measured value.
    pub sensor_value: f64,
    /// Sensor type.
    pub sensor_type: String,
    /// First device id part.
    pub id1: String,
    /// Second device id part.
    pub id2: i32,
    /// When the reading was taken.
    pub timestamp: DateTime<Utc>,
    /// When the row was inserted.
    pub created_at: DateTime<Utc>,
    /// When the row was last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Display for SensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Id1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Id2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Keeps echoed bad input short so an error message cannot be used to
/// reflect a megabyte back at the sender or into a log.
fn truncated(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 7, 0, 0).unwrap()
    }

    fn reading_at(ts: DateTime<Utc>, value: f64) -> Result<Reading, ReadingError> {
        Reading::builder()
            .sensor_value(value)
            .sensor_type(SensorType::parse("temperature").unwrap())
            .id1(Id1::parse("ABC").unwrap())
            .id2(Id2::new(17).unwrap())
            .timestamp(ts)
            .build(&TimestampBounds::default(), now())
    }

    #[test]
    fn a_reading_without_a_required_part_is_refused_naming_it() {
        let error = Reading::builder()
            .sensor_value(1.0)
            .sensor_type(SensorType::parse("temperature").unwrap())
            .id1(Id1::parse("ABC").unwrap())
            .timestamp(now())
            .build(&TimestampBounds::default(), now())
            .unwrap_err();
        assert_eq!(error, ReadingError::Missing("id2"));
        assert_eq!(error.field(), "id2");
    }

    #[test]
    fn sensor_type_accepts_lowercase_digits_dash_underscore() {
        for ok in [
            "temperature",
            "co2",
            "air_quality",
            "pm2-5",
            "a",
            &"x".repeat(64),
        ] {
            assert!(SensorType::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn sensor_type_rejects_empty_uppercase_slash_wildcards_and_overlong() {
        for bad in [
            "",
            "Temperature",
            "temp/x",
            "+",
            "#",
            "temp erature",
            "é",
            &"x".repeat(65),
        ] {
            let err = SensorType::parse(bad).unwrap_err();
            assert_eq!(err.field(), "sensor_type", "{bad}");
        }
    }

    #[test]
    fn id1_accepts_uppercase_ascii_up_to_32() {
        assert!(Id1::parse("ABC").is_ok());
        assert!(Id1::parse(&"Z".repeat(32)).is_ok());
    }

    #[test]
    fn id1_rejects_lowercase_digits_empty_and_overlong() {
        for bad in ["", "abc", "AB1", "AB C", "ÄB", &"A".repeat(33)] {
            assert_eq!(Id1::parse(bad).unwrap_err().field(), "id1", "{bad}");
        }
    }

    #[test]
    fn id2_accepts_zero_to_i32_max() {
        assert_eq!(Id2::new(0).unwrap().get(), 0);
        assert_eq!(Id2::new(2_147_483_647).unwrap().get(), i32::MAX);
        assert_eq!(Id2::parse("17").unwrap().get(), 17);
    }

    #[test]
    fn id2_rejects_negative_too_large_and_non_digits() {
        assert_eq!(Id2::new(-1).unwrap_err().field(), "id2");
        assert_eq!(Id2::new(2_147_483_648).unwrap_err().field(), "id2");
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            " 1",
            "2147483648",
            "99999999999999999999",
        ] {
            assert_eq!(Id2::parse(bad).unwrap_err().field(), "id2", "{bad}");
        }
    }

    #[test]
    fn sensor_value_must_be_finite() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                reading_at(now(), bad).unwrap_err(),
                ReadingError::NonFiniteValue
            );
        }
        assert!(reading_at(now(), -40.25).is_ok());
    }

    #[test]
    fn timestamp_from_2000_to_one_day_ahead_is_accepted() {
        let earliest = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        assert!(reading_at(earliest, 1.0).is_ok());
        assert!(reading_at(now() + Duration::days(1), 1.0).is_ok());
    }

    #[test]
    fn timestamp_before_2000_or_beyond_a_day_ahead_is_rejected() {
        let before = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        let after = now() + Duration::days(1) + Duration::microseconds(1);
        for ts in [before, after] {
            assert_eq!(reading_at(ts, 1.0).unwrap_err().field(), "timestamp");
        }
    }

    #[test]
    fn timestamp_is_truncated_to_microseconds() {
        let ts = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        let r = reading_at(ts, 1.0).unwrap();
        assert_eq!(r.timestamp().timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn error_messages_do_not_echo_huge_input() {
        let err = SensorType::parse(&"X".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 200);
    }
}
