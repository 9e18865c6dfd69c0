//! No single MQTT message can stop ingestion or grow the ingestor's memory:
//! hostile payloads of every kind up to the broker's packet limit are
//! dead-lettered (each dead letter small), and valid readings published
//! after them all land. Real `datastream ingestor` processes, on the
//! embedded broker and on a Mosquitto of the test's own.

use crate::support::{reading_messages, spawn_ingestor, wait_for_rows};
use datastream_store::connect;
use datastream_test_support::{
    clear_mqtt_session, embedded_broker, publish_all_acked, unique_id1, unique_name, MessageTap,
    OwnMosquitto, TestDb,
};
use serde_json::Value;
use std::time::Duration;

/// The largest MQTT "remaining length" each broker accepts with the
/// project's settings: rumqttd refuses more than `max_payload_bytes`
/// (1 MiB); Mosquitto refuses a remaining length + 1 over `max_packet_size`
/// (1 MiB), measured with `mosquitto_pub` on 2.0.11.
const RUMQTTD_MAX_REMAINING: usize = 1024 * 1024;
const MOSQUITTO_MAX_REMAINING: usize = 1024 * 1024 - 1;

/// The size of the largest payload a QoS 1 publish on `topic` can carry
/// with this remaining length (topic length prefix, topic, packet id).
fn payload_at_limit(topic: &str, max_remaining: usize) -> usize {
    max_remaining - 2 - topic.len() - 2
}

/// Every kind of hostile payload, on a valid reading topic: each must be
/// dead-lettered, whatever it does to a JSON encoder or a decoder.
fn hostile_messages(id1: &str, max_remaining: usize) -> Vec<(String, Vec<u8>)> {
    let topic = format!("sensors/temperature/{id1}/1");
    let at_limit = payload_at_limit(&topic, max_remaining);
    let nested = |open: &str, close: &str, depth: usize| {
        format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
    };
    let payloads: Vec<Vec<u8>> = vec![
        // The report's message: JSON-escaped whole it was ~1.08 MB.
        vec![0x01; 180_000],
        // Control bytes up to the packet limit (6 MB once escaped).
        vec![0x01; at_limit],
        // Quotes and backslashes, which escape to twice their size.
        "\"\\".repeat(at_limit / 2).into_bytes(),
        // Not UTF-8 at all.
        [0xff, 0xfe, 0x80].repeat(at_limit / 3),
        // A valid prefix whose cut falls inside a multi-byte character.
        "é".repeat(200_000).into_bytes(),
        // Deeply nested JSON, under and over the decode limit.
        nested("[", "]", 100_000),
        nested("{\"a\":", "}", 50_000),
        nested("[", "]", (at_limit - 1) / 2),
        // Empty, and exactly at the limit with valid-looking JSON text.
        Vec::new(),
        {
            let mut p = b"{\"sensor_value\": \"".to_vec();
            p.resize(at_limit - 2, b'x');
            p.extend(b"\"}");
            p
        },
    ];
    let mut messages: Vec<(String, Vec<u8>)> = payloads
        .into_iter()
        .chain(poison_readings(id1).into_iter().map(|(_, p)| p))
        .map(|p| (topic.clone(), p))
        .collect();
    // A topic far longer than any reading topic, with a tiny payload.
    messages.push((
        format!("sensors/{}/A/1", "x".repeat(60_000)),
        b"{}".to_vec(),
    ));
    messages
}

/// Readings valid in every field but one value no database column or sum
/// can hold: a leap second (MySQL stored it as the zero date, which then
/// failed every read) and values beyond ±1e15 (whose sums overflowed).
/// Each with the field its dead letter must name.
fn poison_readings(id1: &str) -> Vec<(&'static str, Vec<u8>)> {
    let reading = |value: &str, timestamp: &str| {
        format!(
            r#"{{"sensor_value":{value},"sensor_type":"temperature","id1":"{id1}","id2":1,"timestamp":"{timestamp}"}}"#
        )
        .into_bytes()
    };
    vec![
        ("timestamp", reading("21.5", "2025-06-30T23:59:60Z")),
        ("timestamp", reading("21.5", "2025-06-30T12:30:60.5Z")),
        ("sensor_value", reading("1.7e308", "2025-06-30T12:00:00Z")),
        ("sensor_value", reading("-1e16", "2025-06-30T12:00:01Z")),
    ]
}

/// Publishes the hostile messages twice over, then valid readings, and
/// checks: every valid reading lands within seconds, every hostile message
/// became one dead letter of bounded size, and the ingestor's memory did
/// not grow with them.
async fn hostile_messages_never_hold_the_stream(
    db_url: &str,
    mqtt_url: &str,
    publish_url: &str,
    tap_url: &str,
    group: Option<&str>,
    max_remaining: usize,
) {
    let store = connect(db_url)
        .await
        .expect("connecting to the test database");
    let (client_id, id1) = (unique_name("ing"), unique_id1());
    let mut ingestor = spawn_ingestor(db_url, mqtt_url, group, &client_id);
    ingestor
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("the ingestor gets ready");
    let dead_letters = MessageTap::start(tap_url, "datastream/deadletter/#").await;
    let idle_rss = ingestor.rss_bytes().expect("reading the ingestor's memory");

    let hostile: Vec<_> = [
        hostile_messages(&id1, max_remaining),
        hostile_messages(&id1, max_remaining),
    ]
    .concat();
    let valid = 500;
    publish_all_acked(publish_url.to_owned(), hostile.clone()).await;
    publish_all_acked(publish_url.to_owned(), reading_messages(&id1, valid)).await;

    let landed = wait_for_rows(&store, &id1, valid as u64, Duration::from_secs(20)).await;
    assert_eq!(
        landed,
        valid as u64,
        "valid readings after hostile ones land; ingestor log:\n{}",
        ingestor.log()
    );
    let letters = dead_letters
        .wait_until_count(hostile.len(), Duration::from_secs(20))
        .await;
    assert_eq!(
        letters.len(),
        hostile.len(),
        "one dead letter per hostile message"
    );
    for letter in &letters {
        assert!(
            letter.payload.len() <= 12 * 1024,
            "a dead letter of {} bytes",
            letter.payload.len()
        );
        let body: Value = serde_json::from_slice(&letter.payload).expect("dead letters are JSON");
        assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(body["payload_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64));
        assert!(body["payload_bytes"].is_u64());
    }
    assert_eq!(
        ingestor.readings_total("dead_letter").await,
        hostile.len() as u64
    );
    // Memory: what a few 1 MiB messages in flight cost, not what they would
    // cost held or escaped (the report saw 10-15 MB/s of growth).
    let grown = ingestor
        .rss_bytes()
        .expect("reading the ingestor's memory")
        .saturating_sub(idle_rss);
    assert!(
        grown < 48 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown / (1024 * 1024)
    );
    // Nothing is redelivered later: the hostile messages were acked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ingestor.readings_total("dead_letter").await,
        hostile.len() as u64
    );
    ingestor.terminate().expect("stopping the ingestor");
    clear_mqtt_session(mqtt_url, &client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_never_hold_the_stream_on_the_embedded_broker() {
    let broker = embedded_broker();
    let db = TestDb::sqlite();
    hostile_messages_never_hold_the_stream(
        db.url(),
        &broker.url(),
        &broker.url(),
        &broker.url(),
        None,
        RUMQTTD_MAX_REMAINING,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_never_hold_the_stream_on_mosquitto() {
    let (Some(mosquitto), Some(db)) = (OwnMosquitto::start(), TestDb::mysql().await) else {
        return;
    };
    hostile_messages_never_hold_the_stream(
        db.url(),
        &mosquitto.ingestor_url(),
        &mosquitto.publisher_url(),
        &mosquitto.url(),
        Some(&unique_name("grp")),
        MOSQUITTO_MAX_REMAINING,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leap_second_or_a_huge_value_is_dead_lettered_naming_the_field_and_reads_keep_working() {
    let db = match TestDb::mysql().await {
        Some(db) => db,
        None => TestDb::sqlite(),
    };
    let sys = crate::support::TestSystem::start(db, None, vec![]).await;
    let id1 = unique_id1();
    let topic = format!("sensors/temperature/{id1}/1");
    let dead_letters = MessageTap::start(&sys.mqtt_url, "datastream/deadletter/#").await;
    let poison = poison_readings(&id1);
    let mut messages: Vec<(String, Vec<u8>)> = poison
        .iter()
        .map(|(_, p)| (topic.clone(), p.clone()))
        .collect();
    messages.extend(reading_messages(&id1, 3));
    publish_all_acked(sys.mqtt_url.clone(), messages).await;

    let letters = dead_letters
        .wait_until_count(poison.len(), Duration::from_secs(20))
        .await;
    assert_eq!(letters.len(), poison.len());
    for ((field, _), letter) in poison.iter().zip(&letters) {
        let body: Value = serde_json::from_slice(&letter.payload).unwrap();
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(field), "{field}: {reason}");
    }
    assert_eq!(
        sys.wait_for_readings(&format!("id1={id1}"), 3, Duration::from_secs(20))
            .await
            .len(),
        3
    );
    // The reads that failed for good once the zero date was stored.
    let token = sys.admin_token().await;
    for path in [
        "/api/v1/readings?order=asc&limit=10000".to_owned(),
        "/api/v1/readings?to=2000-01-01T00:00:00Z".to_owned(),
        format!("/api/v1/readings/export?id1={id1}&format=ndjson&from=2000-01-01T00:00:00Z"),
    ] {
        let answer = sys.get(&path, &token).await;
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        answer.text().await.expect("a complete body");
    }
    sys.stop().await;
}
