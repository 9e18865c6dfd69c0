//! Dead letters: what is published when a message cannot be stored.
//!
//! A dead letter is built from whatever arrived, so its size must not depend
//! on the input: a payload near the broker's packet limit, JSON-escaped
//! whole, would itself exceed that limit, the broker would drop the
//! connection, and the message would come back forever (issue 14). So a
//! dead letter carries the payload whole only when it is short, otherwise a
//! bounded excerpt, always with the payload's size and SHA-256; the topic
//! and the reason are cut too. [`MAX_DEAD_LETTER_BYTES`] is the bound, and a
//! property test holds every input to it.

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Payload bytes a dead letter carries at most (whole when the payload is
/// no longer, otherwise a prefix).
pub(crate) const PAYLOAD_EXCERPT_BYTES: usize = 1024;
/// Bytes of the original topic a dead letter carries at most.
const TOPIC_EXCERPT_BYTES: usize = 256;
/// Characters of the reason a dead letter carries at most.
const REASON_CHARS: usize = 256;
/// The largest dead letter, whatever arrived: every field above at its
/// bound, JSON-escaped at its worst (6 bytes per control character), plus
/// the fixed fields. Brokers accept far larger packets (Mosquitto's project
/// setting and rumqttd's default are 1 MiB).
pub(crate) const MAX_DEAD_LETTER_BYTES: usize = 12 * 1024;

/// A dead letter, ready to publish: its topic and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `datastream/deadletter/{sensor_type}` (or `…/_invalid`).
    pub topic: String,
    /// The JSON body, at most [`MAX_DEAD_LETTER_BYTES`].
    pub body: Vec<u8>,
}

/// The JSON body of a dead letter.
#[derive(Serialize)]
struct Body<'a> {
    reason: &'a str,
    /// The original topic, cut to [`TOPIC_EXCERPT_BYTES`].
    topic: &'a str,
    /// The payload as text (whole, or its first bytes when
    /// `payload_truncated`), when those bytes are UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    /// The payload's first bytes in base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    payload_truncated: bool,
    payload_bytes: usize,
    /// Lower-case hex SHA-256 of the whole payload, to match a dead letter
    /// with what a device sent.
    payload_sha256: String,
    received_at: String,
}

impl DeadLetter {
    /// Builds the dead letter for a message on `topic` with `payload`,
    /// rejected for `reason`. Its size is bounded whatever the input.
    pub fn new(topic: &str, payload: &[u8], reason: &str) -> Self {
        let excerpt = &payload[..payload.len().min(PAYLOAD_EXCERPT_BYTES)];
        let (text, binary) = match std::str::from_utf8(excerpt) {
            Ok(text) => (Some(text), None),
            // A prefix may end inside a character: keep the valid part as
            // text when everything before the cut is UTF-8.
            Err(e) if e.error_len().is_none() && payload.len() > excerpt.len() => {
                let valid = &excerpt[..e.valid_up_to()];
                (std::str::from_utf8(valid).ok(), None)
            }
            Err(_) => (None, Some(base64_of(excerpt))),
        };
        let shown = text.map_or(excerpt.len(), str::len);
        let body = Body {
            reason: prefix_chars(reason, REASON_CHARS),
            topic: prefix_bytes(topic, TOPIC_EXCERPT_BYTES),
            payload: text,
            payload_base64: binary,
            payload_truncated: shown < payload.len(),
            payload_bytes: payload.len(),
            payload_sha256: hex(&Sha256::digest(payload)),
            received_at: datastream_domain::timestamp::format_timestamp(chrono::Utc::now()),
        };
        Self {
            topic: datastream_domain::topic::dead_letter_topic(claimed_sensor_type(topic)),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

/// The sensor type a topic claims, for choosing the dead-letter topic.
pub fn claimed_sensor_type(topic: &str) -> &str {
    topic.split('/').nth(1).unwrap_or("")
}

fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn prefix_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn prefix_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn body(letter: &DeadLetter) -> Value {
        serde_json::from_slice(&letter.body).unwrap()
    }

    #[test]
    fn a_short_payload_travels_whole_with_reason_topic_size_and_hash() {
        let letter = DeadLetter::new("sensors/humidity/A/1", b"oops", "bad");
        assert_eq!(letter.topic, "datastream/deadletter/humidity");
        let v = body(&letter);
        assert_eq!(v["reason"], "bad");
        assert_eq!(v["topic"], "sensors/humidity/A/1");
        assert_eq!(v["payload"], "oops");
        assert_eq!(v["payload_truncated"], false);
        assert_eq!(v["payload_bytes"], 4);
        assert_eq!(
            v["payload_sha256"],
            "d13f2eadd4ed5b027fa773a29520cc0d65ce374365d641112de786f8a029c2fe"
        );
    }

    #[test]
    fn a_large_payload_travels_as_a_bounded_excerpt() {
        let payload = vec![b'x'; 500_000];
        let v = body(&DeadLetter::new("sensors/t/A/1", &payload, "too large"));
        assert_eq!(v["payload"].as_str().unwrap().len(), PAYLOAD_EXCERPT_BYTES);
        assert_eq!(v["payload_truncated"], true);
        assert_eq!(v["payload_bytes"], 500_000);
    }

    #[test]
    fn control_bytes_that_json_escapes_sixfold_stay_under_the_bound() {
        // The payload of issue 14: 180,000 bytes of 0x01, ~1.08 MB escaped.
        let payload = vec![1u8; 180_000];
        let letter = DeadLetter::new("sensors/temperature/ABC/1", &payload, "not json");
        assert!(letter.body.len() <= MAX_DEAD_LETTER_BYTES);
        assert_eq!(body(&letter)["payload_bytes"], 180_000);
    }

    #[test]
    fn binary_payloads_travel_as_base64() {
        let v = body(&DeadLetter::new("t", &[0xff, 0x00, 0x41], "r"));
        assert_eq!(v["payload_base64"], "/wBB");
        assert!(v.get("payload").is_none());
        assert_eq!(v["payload_bytes"], 3);
        assert_eq!(v["payload_truncated"], false);
    }

    #[test]
    fn a_cut_inside_a_character_keeps_the_text_before_it() {
        let mut payload = vec![b'a'; PAYLOAD_EXCERPT_BYTES - 1];
        payload.extend("é and more".as_bytes());
        let v = body(&DeadLetter::new("t", &payload, "r"));
        assert_eq!(
            v["payload"].as_str().unwrap().len(),
            PAYLOAD_EXCERPT_BYTES - 1
        );
        assert_eq!(v["payload_truncated"], true);
    }

    #[test]
    fn a_topic_that_is_not_a_sensor_type_goes_to_invalid() {
        let letter = DeadLetter::new("sensors/Temp+#/A/1", b"{}", "r");
        assert_eq!(letter.topic, "datastream/deadletter/_invalid");
    }

    #[test]
    fn claimed_sensor_type_is_the_second_segment() {
        assert_eq!(claimed_sensor_type("sensors/humidity/A/1"), "humidity");
        assert_eq!(claimed_sensor_type("sensors"), "");
    }

    fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4096),
            (any::<u8>(), 0usize..300_000).prop_map(|(b, n)| vec![b; n]),
            (0usize..100_000).prop_map(|n| "\"\\".repeat(n).into_bytes()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn no_input_makes_a_dead_letter_larger_than_the_bound(
            payload in hostile_bytes(),
            topic in prop_oneof![
                "[\\x00-\\x7f]{0,300}",
                (0usize..70_000).prop_map(|n| "\u{1}".repeat(n)),
            ],
            reason in prop_oneof![
                "\\PC{0,100}",
                (0usize..10_000).prop_map(|n| "\u{1f}\"".repeat(n)),
            ],
        ) {
            let letter = DeadLetter::new(&topic, &payload, &reason);
            prop_assert!(letter.body.len() <= MAX_DEAD_LETTER_BYTES, "{} bytes", letter.body.len());
            prop_assert!(letter.topic.len() <= 100);
            let v: Value = serde_json::from_slice(&letter.body).unwrap();
            prop_assert_eq!(v["payload_bytes"].as_u64(), Some(payload.len() as u64));
        }
    }
}
