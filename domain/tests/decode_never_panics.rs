//! Property tests: no topic or payload, however malformed, makes the decoder
//! panic; whatever it accepts satisfies every validation rule.

use chrono::{TimeZone, Utc};
use datastream_domain::{decode_message, DecodeLimits, ReadingTopic};
use proptest::prelude::*;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap()
}

/// JSON-ish text built from the pieces a reading is made of, so the search
/// reaches deep into the decoder instead of failing at the first byte.
fn reading_like_json() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        "\"[A-Za-z0-9_/#+ -]{0,40}\"",
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1e999".to_owned()),
        Just("\"2026-11-25T07:00:00.123456Z\"".to_owned()),
        Just("\"2026-11-25T07:00:00+14:00\"".to_owned()),
        Just("\"ABC\"".to_owned()),
        Just("\"temperature\"".to_owned()),
    ];
    let key = prop_oneof![
        Just("sensor_value"),
        Just("sensor_type"),
        Just("id1"),
        Just("id2"),
        Just("timestamp"),
        Just("extra"),
    ];
    let object = prop::collection::vec((key, value), 0..7).prop_map(|fields| {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!("{{{}}}", body.join(", "))
    });
    prop_oneof![
        object.clone(),
        prop::collection::vec(object, 0..4).prop_map(|objs| format!("[{}]", objs.join(","))),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("sensors/temperature/ABC/17".to_owned()),
        "sensors/[a-z0-9_#+-]{0,8}/[A-Za-z0-9]{0,6}/[0-9-]{0,12}",
        "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(topic in topic(), payload in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_message(&topic, &payload, &DecodeLimits::default(), now());
    }

    #[test]
    fn reading_like_json_never_panics_and_accepted_readings_are_valid(
        topic in topic(),
        payload in reading_like_json(),
    ) {
        if let Ok(readings) = decode_message(&topic, payload.as_bytes(), &DecodeLimits::default(), now()) {
            let parsed = ReadingTopic::parse(&topic).expect("accepted only on a valid topic");
            prop_assert!(!readings.is_empty());
            for r in readings {
                prop_assert!(r.sensor_value().is_finite());
                prop_assert_eq!(r.sensor_type(), parsed.sensor_type());
                prop_assert_eq!(r.id1(), parsed.id1());
                prop_assert_eq!(r.id2(), parsed.id2());
                prop_assert!(r.timestamp() <= now() + chrono::Duration::days(1));
            }
        }
    }
}
