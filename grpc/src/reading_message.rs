//! The edge from the protobuf `Reading` to the domain's: the same checks as
//! a reading arriving over MQTT (`decode_message`), field by field. (The
//! way back is `datastream-proto`'s `From<&Reading>`.)

use crate::proto;
use chrono::{DateTime, Utc};
use datastream_domain::timestamp::parse_timestamp;
use datastream_domain::{DecodeLimits, Id1, Id2, Reading, ReadingError, SensorType};

/// A domain reading from a message, or the first field that is wrong.
pub(crate) fn to_domain(
    message: &proto::Reading,
    limits: &DecodeLimits,
    now: DateTime<Utc>,
) -> Result<Reading, ReadingError> {
    Reading::builder()
        .sensor_value(message.sensor_value)
        .sensor_type(SensorType::parse(&message.sensor_type)?)
        .id1(Id1::parse(&message.id1)?)
        .id2(Id2::new(message.id2)?)
        .timestamp(parse_timestamp(&message.timestamp)?)
        .build(&limits.bounds, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> proto::Reading {
        proto::Reading {
            seq: 7,
            sensor_value: 21.5,
            sensor_type: "temperature".into(),
            id1: "ABC".into(),
            id2: 17,
            timestamp: "2026-11-25T07:00:00.123456Z".into(),
        }
    }

    #[test]
    fn a_valid_message_round_trips_through_the_domain() {
        let now = "2026-11-25T08:00:00Z".parse().unwrap();
        let reading = to_domain(&message(), &DecodeLimits::default(), now).unwrap();
        assert_eq!(
            proto::Reading::from(&reading),
            proto::Reading {
                seq: 0,
                ..message()
            }
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let now = "2026-11-25T08:00:00Z".parse().unwrap();
        type Spoil = fn(&mut proto::Reading);
        let cases: [(&str, Spoil); 6] = [
            ("sensor_value", |m| m.sensor_value = f64::NAN),
            ("sensor_type", |m| m.sensor_type = "Bad Type".into()),
            ("id1", |m| m.id1 = "abc".into()),
            ("id2", |m| m.id2 = -1),
            ("timestamp", |m| m.timestamp = "yesterday".into()),
            ("timestamp", |m| m.timestamp = "2016-12-31T23:59:60Z".into()),
        ];
        for (field, spoil) in cases {
            let mut m = message();
            spoil(&mut m);
            let error = to_domain(&m, &DecodeLimits::default(), now).unwrap_err();
            assert_eq!(error.field(), field, "{error}");
        }
    }
}
