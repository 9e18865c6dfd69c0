//! Data flows from MQTT through the ingestor into the database and back out
//! of the authenticated API, unchanged.

use crate::support::{publish, TestSystem};
use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_domain::{Id1, ReadingFilter};
use datastream_generator::default_fleet;
use datastream_test_support::{external_mqtt, mqtt_client, unique_id1, unique_name, TestDb};
use rumqttc::{Event, Packet, QoS};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Publishes readings for a fresh device (four single objects and one
/// array of two) and returns what was sent, oldest first.
async fn publish_sample_readings(sys: &TestSystem, id1: &str) -> Vec<Value> {
    let client = sys.publisher().await;
    let base = Utc::now().trunc_subsecs(0) - ChronoDuration::minutes(5);
    let samples = [
        ("temperature", 21.53),
        ("humidity", -12.345678),
        ("temperature", 0.0),
        ("humidity", 1e-7),
        ("pressure", 123456.789),
        ("pressure", 99.5),
    ];
    let sent: Vec<Value> = samples
        .iter()
        .enumerate()
        .map(|(i, (sensor_type, value))| {
            let ts = base + ChronoDuration::microseconds(1_000_001 * i as i64 + 123_456);
            json!({
                "sensor_value": value,
                "sensor_type": sensor_type,
                "id1": id1,
                "id2": 17,
                "timestamp": format_timestamp(ts),
            })
        })
        .collect();
    for reading in &sent[..4] {
        let topic = format!(
            "sensors/{}/{id1}/17",
            reading["sensor_type"].as_str().unwrap()
        );
        publish(&client, &topic, reading.to_string()).await;
    }
    let array = Value::Array(sent[4..].to_vec());
    publish(
        &client,
        &format!("sensors/pressure/{id1}/17"),
        array.to_string(),
    )
    .await;
    sent
}

async fn assert_round_trip(sys: &TestSystem) {
    let id1 = unique_id1();
    let sent = publish_sample_readings(sys, &id1).await;
    let got = sys
        .wait_for_readings(
            &format!("id1={id1}&order=asc"),
            sent.len(),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(
        got.len(),
        sent.len(),
        "every published reading is stored once"
    );
    for (want, have) in sent.iter().zip(&got) {
        for field in ["sensor_value", "sensor_type", "id1", "id2", "timestamp"] {
            assert_eq!(have[field], want[field], "field {field} of {have}");
        }
        assert!(have["id"].as_i64().is_some());
        assert!(have["created_at"].as_str().is_some());
    }
    let token = sys.admin_token().await;
    let one: Value = sys
        .get(&format!("/api/v1/readings/{}", got[0]["id"]), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, got[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_round_trip_on_sqlite_and_the_embedded_broker() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    assert_round_trip(&sys).await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_round_trip_on_mariadb_and_mosquitto() {
    let (Some(db), Some(mqtt)) = (TestDb::mysql().await, external_mqtt()) else {
        return;
    };
    let sys = TestSystem::start(db, Some(mqtt), vec![]).await;
    assert_round_trip(&sys).await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_shows_three_sensor_types_within_ten_seconds() {
    let sys = TestSystem::start(TestDb::sqlite(), None, default_fleet()).await;
    let started = std::time::Instant::now();
    let mut types = BTreeSet::new();
    while types.len() < 3 && started.elapsed() < Duration::from_secs(10) {
        let data = sys
            .wait_for_readings("limit=100", 100, Duration::ZERO)
            .await;
        types = data
            .iter()
            .filter_map(|r| r["sensor_type"].as_str().map(str::to_owned))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(types.len(), 3, "sensor types seen within 10 s: {types:?}");
    sys.stop().await;
}

/// Subscribes to `filter` and waits for the SUBACK. The client is returned
/// because dropping it ends the event loop.
async fn watcher(mqtt_url: &str, filter: &str) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (host, port) = datastream_test_support::mqtt_host_port(mqtt_url);
    let mut options = rumqttc::MqttOptions::new(unique_name("watch"), host, port);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = eventloop.poll().await {
                break;
            }
        }
    })
    .await
    .expect("subscription acknowledged");
    (client, eventloop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_readings_are_visible_to_any_subscriber() {
    let sys = TestSystem::start(TestDb::sqlite(), None, default_fleet()).await;
    let (_client, mut eventloop) = watcher(&sys.mqtt_url, "sensors/#").await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                return p;
            }
        }
    })
    .await
    .expect("a live reading within 10 s");
    assert!(seen.topic.starts_with("sensors/"));
    let body: Value = serde_json::from_slice(&seen.payload).unwrap();
    assert!(body["sensor_value"].is_number());
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_message_is_dead_lettered_with_its_reason() {
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.ingest_max_payload_bytes = 2048;
    })
    .await;
    let (_watcher, mut dead_letters) = watcher(&sys.mqtt_url, "datastream/deadletter/#").await;
    let id1 = unique_id1();
    let topic = format!("sensors/temperature/{id1}/1");
    let reading = |id2: i64, ts: &str| {
        json!({"sensor_value": 1.5, "sensor_type": "temperature", "id1": id1, "id2": id2,
               "timestamp": ts})
        .to_string()
    };
    let recent = |secs: i64| format_timestamp(Utc::now() - ChronoDuration::seconds(secs));
    // (topic, payload, expected dead-letter topic, a phrase of the reason)
    let cases: Vec<(String, String, &str, &str)> = vec![
        (
            topic.clone(),
            "not json at all".into(),
            "temperature",
            "not a reading",
        ),
        (
            topic.clone(),
            reading(1, &recent(1)).replace("1.5", "\"warm\""),
            "temperature",
            "invalid type",
        ),
        (
            topic.clone(),
            reading(1, "1999-12-31T23:59:59Z"),
            "temperature",
            "timestamp",
        ),
        (
            topic.clone(),
            reading(1, "yesterday"),
            "temperature",
            "timestamp must be RFC 3339",
        ),
        (
            topic.clone(),
            reading(2, &recent(2)),
            "temperature",
            "id2 \"2\" does not match",
        ),
        (topic.clone(), "[]".into(), "temperature", "empty array"),
        (
            topic.clone(),
            format!("[{}]", reading(1, &recent(3)).repeat(40)),
            "temperature",
            "more than the limit",
        ),
        (
            format!("sensors/temperature/{id1}"),
            reading(1, &recent(4)),
            "temperature",
            "bad topic",
        ),
        (
            format!("sensors/Temp/{id1}/1"),
            reading(1, &recent(5)),
            "_invalid",
            "sensor_type",
        ),
    ];

    let client = mqtt_client(&sys.mqtt_url, &unique_name("pub")).await;
    publish(&client, &topic, reading(1, &recent(10))).await;
    for (t, payload, _, _) in &cases {
        publish(&client, t, payload.clone()).await;
    }
    publish(&client, &topic, reading(1, &recent(11))).await;

    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        while received.len() < cases.len() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = dead_letters.poll().await {
                received.push(p);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {} dead letters", received.len(), cases.len()));

    for (t, payload, dead_topic, phrase) in &cases {
        let letter = received
            .iter()
            .find_map(|p| {
                let body: Value = serde_json::from_slice(&p.payload).ok()?;
                // Short payloads travel whole; long ones as their first KiB.
                let shown = body["payload"].as_str()?;
                let same = body["topic"] == t.as_str()
                    && body["payload_bytes"] == payload.len()
                    && payload.starts_with(shown)
                    && (shown.len() == payload.len() || body["payload_truncated"] == true);
                same.then(|| (p.topic.clone(), body))
            })
            .unwrap_or_else(|| panic!("no dead letter for {t} {payload}"));
        assert_eq!(letter.0, format!("datastream/deadletter/{dead_topic}"));
        let reason = letter.1["reason"].as_str().unwrap();
        assert!(
            reason.contains(phrase),
            "{reason:?} should mention {phrase:?}"
        );
    }
    let stored = sys
        .wait_for_readings(&format!("id1={id1}"), 2, Duration::from_secs(10))
        .await;
    assert_eq!(
        stored.len(),
        2,
        "the good messages around the bad ones land"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_commits_the_open_batch() {
    // A flush interval far beyond the test keeps readings in the open batch
    // until the stop (fewer than an idle gap would commit early).
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.ingest_flush_ms = 600_000;
        s.ingest_batch_max = 100_000;
    })
    .await;
    let id1 = unique_id1();
    let client = sys.publisher().await;
    for i in 0..20 {
        let body = json!({"sensor_value": i, "sensor_type": "vibration", "id1": id1, "id2": 4,
            "timestamp": format_timestamp(Utc::now() - ChronoDuration::seconds(100 - i))});
        publish(
            &client,
            &format!("sensors/vibration/{id1}/4"),
            body.to_string(),
        )
        .await;
    }
    let none_yet = sys
        .wait_for_readings(&format!("id1={id1}"), 20, Duration::from_secs(2))
        .await;
    assert!(none_yet.is_empty(), "the batch is still open");
    let db = sys.stop().await;
    let store = datastream_store::connect(db.url()).await.unwrap();
    let filter = ReadingFilter::default().with_id1(Id1::parse(&id1).unwrap());
    assert_eq!(store.count(&filter).await.unwrap(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_mqtt_users_logs_its_parts_in_and_refuses_strangers() {
    let sys = TestSystem::start_with(TestDb::sqlite(), None, default_fleet(), |s| {
        s.mqtt_users = Some("ingestor:ingest-password,generator:generate-password".into());
    })
    .await;
    let data = sys
        .wait_for_readings("limit=10", 3, Duration::from_secs(10))
        .await;
    assert!(data.len() >= 3, "the generators and the ingestor got in");
    let stranger = tokio::time::timeout(
        Duration::from_secs(3),
        datastream_test_support::publish_all_acked(
            sys.mqtt_url.clone(),
            vec![("sensors/x/A/1".into(), b"{}".to_vec())],
        ),
    );
    let refused = tokio::spawn(stranger).await;
    assert!(
        refused.is_err() || refused.unwrap().is_err(),
        "anonymous clients are refused"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_pauses_intake_and_everything_still_lands() {
    // A backlog far smaller than the stream: intake pauses and resumes many
    // times, and every reading must land.
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.ingest_max_backlog = 50;
        s.ingest_batch_max = 20;
    })
    .await;
    let id1 = unique_id1();
    let n = 3_000;
    datastream_test_support::publish_all_acked(
        sys.mqtt_url.clone(),
        crate::support::reading_messages(&id1, n),
    )
    .await;
    let stored = sys
        .wait_for_readings(
            &format!("id1={id1}&limit=10000"),
            n,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(stored.len(), n);
    sys.stop().await;
}

/// Issue 25: on its embedded broker `up` stored ~900 readings/s of 2,000:
/// rumqttd sends at most 100 unacknowledged messages, and the ingestor
/// waited for its 100 ms flush timer with all 100 in hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_its_embedded_broker_keeps_up_with_2000_readings_a_second() {
    let id1 = datastream_test_support::unique_id1();
    let fast = datastream_generator::GeneratorSpec::parse("fast", "temperature", &id1, 1, 100.0)
        .unwrap()
        .with_last_id2(20)
        .unwrap();
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![fast], |s| {
        s.ingest_flush_ms = 100;
    })
    .await;
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    let count = || async {
        store
            .count(&datastream_domain::ReadingFilter::default())
            .await
            .unwrap()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (before, started) = (count().await, std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rate = (count().await - before) as f64 / started.elapsed().as_secs_f64();
    assert!(rate > 1_500.0, "stored {rate:.0} readings/s of 2,000");
    sys.stop().await;
}
