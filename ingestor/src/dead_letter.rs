//! Dead letters: what is published when a message cannot be stored.

use serde_json::json;

/// Builds the dead-letter payload: the reason, the original topic, the
/// original payload as text (lossy for non-UTF-8 bytes) and its size.
pub fn dead_letter_payload(topic: &str, payload: &[u8], reason: &str) -> Vec<u8> {
    let original = String::from_utf8_lossy(payload);
    serde_json::to_vec(&json!({
        "reason": reason,
        "topic": topic,
        "payload": original,
        "payload_bytes": payload.len(),
        "received_at": datastream_schema::wire::format_timestamp(chrono::Utc::now()),
    }))
    .expect("a JSON value always serializes")
}

/// The sensor type a topic claims, for choosing the dead-letter topic.
pub fn claimed_sensor_type(topic: &str) -> &str {
    topic.split('/').nth(1).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_reason_topic_and_original_payload() {
        let v: serde_json::Value =
            serde_json::from_slice(&dead_letter_payload("sensors/x/A/1", b"oops", "bad")).unwrap();
        assert_eq!(v["reason"], "bad");
        assert_eq!(v["topic"], "sensors/x/A/1");
        assert_eq!(v["payload"], "oops");
        assert_eq!(v["payload_bytes"], 4);
    }

    #[test]
    fn binary_payloads_survive_as_lossy_text() {
        let v: serde_json::Value =
            serde_json::from_slice(&dead_letter_payload("t", &[0xff, 0x00, 0x41], "r")).unwrap();
        assert_eq!(v["payload_bytes"], 3);
    }

    #[test]
    fn claimed_sensor_type_is_the_second_segment() {
        assert_eq!(claimed_sensor_type("sensors/humidity/A/1"), "humidity");
        assert_eq!(claimed_sensor_type("sensors"), "");
    }
}
