//! Timestamps as text: RFC 3339 in, RFC 3339 UTC with six fractional
//! digits out. The MQTT wire format, the API and the filters all read and
//! write them here, so none of them depends on another for it.

use crate::reading::ReadingError;
use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a timestamp the way the wire format and the API write it:
/// RFC 3339, UTC, always six fractional digits.
pub fn format_timestamp(ts: DateTime<Utc>) -> String {
    TimestampText::new(ts).as_str().to_owned()
}

/// A timestamp's wire text (see [`format_timestamp`]), built on the stack.
///
/// Written digit by digit and without allocating: an API page of 100
/// readings writes 300 of these, and chrono's general formatter costs
/// several times more. Years outside 0–9999 and leap seconds take chrono's
/// path.
pub struct TimestampText(TimestampTextRepr);

enum TimestampTextRepr {
    Digits([u8; 27]),
    Chrono(String),
}

impl TimestampText {
    /// Formats `ts`.
    pub fn new(ts: DateTime<Utc>) -> Self {
        use chrono::{Datelike, Timelike};
        // Every accessor on a `DateTime` converts to local time first; the
        // naive UTC value reads its fields directly.
        let utc = ts.naive_utc();
        let (year, nanos) = (utc.year(), utc.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return Self(TimestampTextRepr::Chrono(
                ts.to_rfc3339_opts(SecondsFormat::Micros, true),
            ));
        }
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, utc.month());
        put(8, 2, utc.day());
        put(11, 2, utc.hour());
        put(14, 2, utc.minute());
        put(17, 2, utc.second());
        put(20, 6, nanos / 1_000);
        Self(TimestampTextRepr::Digits(out))
    }

    /// The text's bytes (ASCII for every year 0–9999).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            TimestampTextRepr::Digits(digits) => digits,
            TimestampTextRepr::Chrono(text) => text.as_bytes(),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            TimestampTextRepr::Digits(digits) => {
                std::str::from_utf8(digits).expect("digits and separators are ASCII")
            }
            TimestampTextRepr::Chrono(text) => text,
        }
    }
}

/// `#[serde(with = "timestamp_text")]` for `DateTime<Utc>` fields: writes
/// [`TimestampText`] without allocating, reads any RFC 3339 offset.
pub mod timestamp_text {
    use super::{parse_timestamp, TimestampText};
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `ts` as its wire text.
    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(TimestampText::new(*ts).as_str())
    }

    /// Reads an RFC 3339 timestamp into UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_timestamp(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses an RFC 3339 timestamp with any offset into UTC. A leap second
/// (second 60) is refused: no database column this project writes can hold
/// it ([`crate::reading::check_not_leap_second`]).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, ReadingError> {
    let parsed = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ReadingError::InvalidTimestamp(s.chars().take(80).collect()))?;
    crate::reading::check_not_leap_second(parsed, s)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde::{Deserialize, Serialize};

    #[test]
    fn timestamps_format_exactly_as_chrono_would() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            // xorshift: many spread-out instants without a dependency
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let micros = (next() % 400_000_000_000_000) as i64 - 60_000_000_000_000;
            let ts = DateTime::from_timestamp_micros(micros).unwrap();
            assert_eq!(
                format_timestamp(ts),
                ts.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
        for ts in [
            Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2000, 2, 29, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1900, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            assert_eq!(
                format_timestamp(ts),
                ts.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
    }

    #[test]
    fn timestamp_text_fields_round_trip_through_json() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Row {
            #[serde(with = "timestamp_text")]
            at: DateTime<Utc>,
        }
        let row = Row {
            at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"at":"2026-11-18T11:06:40.123456Z"}"#);
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), row);
        let offset: Row =
            serde_json::from_str(r#"{"at":"2026-11-18T13:06:40.123456+02:00"}"#).unwrap();
        assert_eq!(offset, row);
    }

    #[test]
    fn a_leap_second_is_refused_naming_the_timestamp() {
        for text in [
            "2025-06-30T23:59:60Z",
            "2025-06-30T12:30:60.5Z",
            "2016-12-31T23:59:60.999999+00:00",
        ] {
            let error = parse_timestamp(text).unwrap_err();
            assert_eq!(error.field(), "timestamp", "{text}");
            assert!(error.to_string().contains("leap second"), "{error}");
        }
        assert!(parse_timestamp("2025-06-30T23:59:59.999999Z").is_ok());
    }

    #[test]
    fn timestamp_text_fields_refuse_text_that_is_not_rfc3339() {
        #[derive(Deserialize, Debug)]
        struct Row {
            #[serde(with = "timestamp_text")]
            #[allow(dead_code)]
            at: DateTime<Utc>,
        }
        let err = serde_json::from_str::<Row>(r#"{"at":"yesterday"}"#).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }
}
