//! MQTT topic names: where readings, dead letters and subscriptions live.
//!
//! Topic strings are built and parsed only here, so the layout
//! `sensors/{sensor_type}/{id1}/{id2}` is written down once.

use crate::reading::{Id1, Id2, ReadingError, SensorType};

/// Prefix under which every reading is published.
pub const READINGS_ROOT: &str = "sensors";
/// Filter that matches every reading topic (what `mosquitto_sub` watches).
pub const READINGS_FILTER: &str = "sensors/#";
/// Prefix of the dead-letter topics.
pub const DEAD_LETTER_ROOT: &str = "datastream/deadletter";

/// The shared-subscription filter an ingestor in `group` subscribes to.
pub fn shared_readings_filter(group: &str) -> String {
    format!("$share/{group}/{READINGS_FILTER}")
}

/// The dead-letter topic for messages that claimed `sensor_type`. Anything
/// that is not a valid sensor type goes to `…/_invalid` so a bad topic cannot
/// inject wildcards or extra levels.
pub fn dead_letter_topic(sensor_type: &str) -> String {
    match SensorType::parse(sensor_type) {
        Ok(t) => format!("{DEAD_LETTER_ROOT}/{t}"),
        Err(_) => format!("{DEAD_LETTER_ROOT}/_invalid"),
    }
}

/// Why a topic is not a reading topic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic does not have the shape `sensors/{sensor_type}/{id1}/{id2}`.
    #[error("topic must be sensors/{{sensor_type}}/{{id1}}/{{id2}}, got {0:?}")]
    Shape(String),
    /// A segment has the right position but an invalid value.
    #[error("topic segment {0}")]
    Segment(#[from] ReadingError),
}

/// A parsed reading topic: the device a message claims to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingTopic {
    sensor_type: SensorType,
    id1: Id1,
    id2: Id2,
}

impl ReadingTopic {
    /// Builds the topic for a device.
    pub fn new(sensor_type: SensorType, id1: Id1, id2: Id2) -> Self {
        Self {
            sensor_type,
            id1,
            id2,
        }
    }

    /// Parses `sensors/{sensor_type}/{id1}/{id2}`, validating every segment.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let shape = || TopicError::Shape(topic.chars().take(120).collect());
        let mut parts = topic.split('/');
        if parts.next() != Some(READINGS_ROOT) {
            return Err(shape());
        }
        let (Some(st), Some(id1), Some(id2), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        Ok(Self {
            sensor_type: SensorType::parse(st)?,
            id1: Id1::parse(id1)?,
            id2: Id2::parse(id2)?,
        })
    }

    /// The sensor type segment.
    pub fn sensor_type(&self) -> &SensorType {
        &self.sensor_type
    }
    /// The id1 segment.
    pub fn id1(&self) -> &Id1 {
        &self.id1
    }
    /// The id2 segment.
    pub fn id2(&self) -> Id2 {
        self.id2
    }
}

impl std::fmt::Display for ReadingTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{READINGS_ROOT}/{}/{}/{}",
            self.sensor_type, self.id1, self.id2
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_reading_topic() {
        let t = ReadingTopic::parse("sensors/temperature/ABC/17").unwrap();
        assert_eq!(t.sensor_type().as_str(), "temperature");
        assert_eq!(t.id1().as_str(), "ABC");
        assert_eq!(t.id2().get(), 17);
    }

    #[test]
    fn display_round_trips_through_parse() {
        let t = ReadingTopic::parse("sensors/co2/XYZ/0").unwrap();
        assert_eq!(t.to_string(), "sensors/co2/XYZ/0");
        assert_eq!(ReadingTopic::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn rejects_wrong_shapes() {
        for bad in [
            "",
            "sensors",
            "sensors/temperature/ABC",
            "sensors/temperature/ABC/1/extra",
            "other/temperature/ABC/1",
            "/sensors/temperature/ABC/1",
        ] {
            assert!(
                matches!(ReadingTopic::parse(bad), Err(TopicError::Shape(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_invalid_segments_naming_the_field() {
        let cases = [
            ("sensors/Temp/ABC/1", "sensor_type"),
            ("sensors/temp/abc/1", "id1"),
            ("sensors/temp/ABC/-1", "id2"),
            ("sensors/temp/ABC/x", "id2"),
        ];
        for (topic, field) in cases {
            match ReadingTopic::parse(topic) {
                Err(TopicError::Segment(e)) => assert_eq!(e.field(), field, "{topic}"),
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn shared_filter_and_dead_letter_topics() {
        assert_eq!(
            shared_readings_filter("ingestors"),
            "$share/ingestors/sensors/#"
        );
        assert_eq!(
            dead_letter_topic("humidity"),
            "datastream/deadletter/humidity"
        );
        assert_eq!(dead_letter_topic("a/#"), "datastream/deadletter/_invalid");
    }
}
