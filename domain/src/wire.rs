//! The MQTT wire format of readings: JSON, one object or an array of them.
//!
//! ```json
//! {"sensor_value": 21.53, "sensor_type": "temperature", "id1": "ABC", "id2": 17,
//!  "timestamp": "2026-11-25T07:00:00.123456Z"}
//! ```
//!
//! Decoding checks every field and that the payload agrees with its topic.
//! A message is accepted or rejected whole: one bad element in an array
//! rejects the message (the dead letter names the element).

use crate::reading::{Id1, Id2, Reading, ReadingError, SensorType, TimestampBounds};
use crate::timestamp::{format_timestamp, parse_timestamp};
use crate::topic::{ReadingTopic, TopicError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One reading as it travels over MQTT. Decoding borrows its strings from
/// the payload where JSON allows (no escapes), so it allocates nothing per
/// reading beyond the `Vec` that holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireReading<'a> {
    /// The measured value.
    pub sensor_value: f64,
    /// The sensor type; must equal the topic's segment.
    #[serde(borrow)]
    pub sensor_type: Cow<'a, str>,
    /// First device id part; must equal the topic's segment.
    #[serde(borrow)]
    pub id1: Cow<'a, str>,
    /// Second device id part; must equal the topic's segment.
    pub id2: i64,
    /// RFC 3339 with any offset.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

impl<'a> From<&'a Reading> for WireReading<'a> {
    fn from(r: &'a Reading) -> Self {
        Self {
            sensor_value: r.sensor_value(),
            sensor_type: Cow::Borrowed(r.sensor_type().as_str()),
            id1: Cow::Borrowed(r.id1().as_str()),
            id2: i64::from(r.id2().get()),
            timestamp: Cow::Owned(format_timestamp(r.timestamp())),
        }
    }
}

/// Encodes one reading as a JSON payload.
pub fn encode_reading(r: &Reading) -> Vec<u8> {
    serde_json::to_vec(&WireReading::from(r)).expect("a WireReading always serializes")
}

/// Why a message could not be turned into readings. The `Display` text is
/// what goes into a dead letter's `reason`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The topic is not a reading topic.
    #[error("bad topic: {0}")]
    Topic(#[from] TopicError),
    /// The payload is larger than allowed.
    #[error("payload is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The payload is not JSON of the expected shape.
    #[error("payload is not a reading or an array of readings: {0}")]
    Json(String),
    /// An empty array.
    #[error("payload is an empty array")]
    Empty,
    /// A field failed validation.
    #[error("{}{source}", element_prefix(*.index))]
    Invalid {
        /// Position in the array, if the payload was an array.
        index: Option<usize>,
        /// What was wrong.
        source: ReadingError,
    },
    /// The payload disagrees with its topic.
    #[error("{}{field} {payload:?} does not match the topic's {topic:?}", element_prefix(*.index))]
    TopicMismatch {
        /// Position in the array, if the payload was an array.
        index: Option<usize>,
        /// The field that differs.
        field: &'static str,
        /// The value in the payload.
        payload: String,
        /// The value in the topic.
        topic: String,
    },
}

fn element_prefix(index: Option<usize>) -> String {
    index.map(|i| format!("element {i}: ")).unwrap_or_default()
}

/// Settings for [`decode_message`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Accepted timestamp window.
    pub bounds: TimestampBounds,
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            bounds: TimestampBounds::default(),
            max_payload_bytes: 256 * 1024,
        }
    }
}

/// Decodes one MQTT message into readings, checking the topic, the JSON,
/// every field and that each reading matches the topic's segments.
pub fn decode_message(
    topic: &str,
    payload: &[u8],
    limits: &DecodeLimits,
    now: DateTime<Utc>,
) -> Result<Vec<Reading>, DecodeError> {
    let topic = ReadingTopic::parse(topic)?;
    if payload.len() > limits.max_payload_bytes {
        return Err(DecodeError::TooLarge {
            size: payload.len(),
            limit: limits.max_payload_bytes,
        });
    }
    let is_array = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if is_array {
        let wires: Vec<WireReading<'_>> =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        if wires.is_empty() {
            return Err(DecodeError::Empty);
        }
        wires
            .into_iter()
            .enumerate()
            .map(|(i, w)| to_reading(w, &topic, Some(i), limits, now))
            .collect()
    } else {
        let wire: WireReading<'_> =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        Ok(vec![to_reading(wire, &topic, None, limits, now)?])
    }
}

fn to_reading(
    w: WireReading<'_>,
    topic: &ReadingTopic,
    index: Option<usize>,
    limits: &DecodeLimits,
    now: DateTime<Utc>,
) -> Result<Reading, DecodeError> {
    let invalid = |source| DecodeError::Invalid { index, source };
    let mismatch = |field, payload: String, topic: String| DecodeError::TopicMismatch {
        index,
        field,
        payload,
        topic,
    };
    // The topic's segments are already valid; a payload field equal to its
    // segment reuses it (no allocation). Anything else is either invalid or
    // a mismatch, and gets the error that says which.
    let sensor_type = if w.sensor_type == topic.sensor_type().as_str() {
        topic.sensor_type().clone()
    } else {
        let parsed = SensorType::parse(&w.sensor_type).map_err(invalid)?;
        return Err(mismatch(
            "sensor_type",
            parsed.to_string(),
            topic.sensor_type().to_string(),
        ));
    };
    let id1 = if w.id1 == topic.id1().as_str() {
        topic.id1().clone()
    } else {
        let parsed = Id1::parse(&w.id1).map_err(invalid)?;
        return Err(mismatch("id1", parsed.to_string(), topic.id1().to_string()));
    };
    let id2 = Id2::new(w.id2).map_err(invalid)?;
    if id2 != topic.id2() {
        return Err(mismatch("id2", id2.to_string(), topic.id2().to_string()));
    }
    let timestamp = parse_timestamp(&w.timestamp).map_err(invalid)?;
    Reading::builder()
        .sensor_value(w.sensor_value)
        .sensor_type(sensor_type)
        .id1(id1)
        .id2(id2)
        .timestamp(timestamp)
        .build(&limits.bounds, now)
        .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap()
    }

    fn decode(topic: &str, payload: &str) -> Result<Vec<Reading>, DecodeError> {
        decode_message(topic, payload.as_bytes(), &DecodeLimits::default(), now())
    }

    const GOOD: &str = r#"{"sensor_value": 21.53, "sensor_type": "temperature", "id1": "ABC", "id2": 17, "timestamp": "2026-11-25T07:00:00.123456Z"}"#;
    const TOPIC: &str = "sensors/temperature/ABC/17";

    #[test]
    fn decodes_the_design_example() {
        let r = &decode(TOPIC, GOOD).unwrap()[0];
        assert_eq!(r.sensor_value(), 21.53);
        assert_eq!(r.sensor_type().as_str(), "temperature");
        assert_eq!(r.id1().as_str(), "ABC");
        assert_eq!(r.id2().get(), 17);
        assert_eq!(
            format_timestamp(r.timestamp()),
            "2026-11-25T07:00:00.123456Z"
        );
    }

    #[test]
    fn decodes_an_array_of_readings() {
        let payload = format!("  [{GOOD},{}]", GOOD.replace("07:00:00", "07:00:01"));
        assert_eq!(decode(TOPIC, &payload).unwrap().len(), 2);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let r = decode(TOPIC, GOOD).unwrap().remove(0);
        let bytes = encode_reading(&r);
        let back = decode_message(TOPIC, &bytes, &DecodeLimits::default(), now()).unwrap();
        assert_eq!(back, vec![r]);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let payload = GOOD.replace("07:00:00.123456Z", "09:00:00.123456+02:00");
        let r = &decode(TOPIC, &payload).unwrap()[0];
        assert_eq!(
            format_timestamp(r.timestamp()),
            "2026-11-25T07:00:00.123456Z"
        );
    }

    #[test]
    fn rejects_non_json_and_wrong_types() {
        for bad in [
            "not json",
            "",
            "{}",
            r#"{"sensor_value": "hot", "sensor_type": "temperature", "id1": "ABC", "id2": 17, "timestamp": "2026-11-25T07:00:00Z"}"#,
            r#"{"sensor_value": 1, "sensor_type": "temperature", "id1": "ABC", "id2": 17.5, "timestamp": "2026-11-25T07:00:00Z"}"#,
            r#"{"sensor_value": 1, "sensor_type": "temperature", "id1": "ABC", "id2": 17, "timestamp": "2026-11-25T07:00:00Z", "extra": 1}"#,
        ] {
            assert!(
                matches!(decode(TOPIC, bad), Err(DecodeError::Json(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_an_empty_array() {
        assert_eq!(decode(TOPIC, "[]"), Err(DecodeError::Empty));
    }

    #[test]
    fn rejects_payload_that_disagrees_with_topic() {
        let err = decode("sensors/temperature/ABC/18", GOOD).unwrap_err();
        assert!(
            matches!(err, DecodeError::TopicMismatch { field: "id2", .. }),
            "{err}"
        );
        let err = decode("sensors/humidity/ABC/17", GOOD).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TopicMismatch {
                field: "sensor_type",
                ..
            }
        ));
        let err = decode("sensors/temperature/XYZ/17", GOOD).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TopicMismatch { field: "id1", .. }
        ));
    }

    #[test]
    fn rejects_invalid_field_values_naming_the_field() {
        let cases = [
            (GOOD.replace("\"ABC\"", "\"abc\""), "id1"),
            (GOOD.replace("17,", "-17,"), "id2"),
            (
                GOOD.replace("2026-11-25T07:00:00.123456Z", "yesterday"),
                "timestamp",
            ),
            (GOOD.replace("2026-11-25T07", "1999-11-25T07"), "timestamp"),
        ];
        for (payload, field) in cases {
            match decode(TOPIC, &payload) {
                Err(DecodeError::Invalid { source, .. }) => assert_eq!(source.field(), field),
                other => panic!("{payload}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_the_bad_element_of_an_array() {
        let payload = format!("[{GOOD},{}]", GOOD.replace("\"ABC\"", "\"abc\""));
        let err = decode(TOPIC, &payload).unwrap_err();
        assert!(err.to_string().starts_with("element 1: id1"), "{err}");
    }

    #[test]
    fn rejects_oversized_payloads_before_parsing() {
        let limits = DecodeLimits {
            max_payload_bytes: 10,
            ..DecodeLimits::default()
        };
        let err = decode_message(TOPIC, GOOD.as_bytes(), &limits, now()).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
    }

    #[test]
    fn rejects_bad_topics() {
        assert!(matches!(
            decode("sensors/x", GOOD),
            Err(DecodeError::Topic(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep; the ingestor's fuzz test goes further.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            let _ = decode_message(TOPIC, &bytes, &DecodeLimits::default(), now());
        }
    }
}
