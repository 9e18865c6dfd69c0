//! The generator service: generators created, changed and deleted over
//! REST and by retained config messages, fleets that never share a
//! generator, and status with a last will.

use crate::support::{start_generator_fleet, TestSystem};
use chrono::Utc;
use datastream_domain::{decode_message, DecodeLimits, MqttUrl};
use datastream_generator::{GeneratorService, ServiceError};
use datastream_test_support::{
    embedded_broker, external_mqtt, mqtt_client, unique_id1, unique_name, MessageTap, TestDb,
};
use reqwest::Method;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A generator body for `POST /api/v1/generators`.
fn generator(name: &str, sensor_type: &str, id1: &str, frequency_hz: f64) -> Value {
    json!({"name": name, "sensor_type": sensor_type, "id1": id1, "id2": 1, "frequency_hz": frequency_hz})
}

/// Messages the tap receives during `window`, starting now.
async fn count_during(tap: &MessageTap, window: Duration) -> usize {
    tap.take();
    tokio::time::sleep(window).await;
    tap.take().len()
}

async fn error_field(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Publishes a retained config message (empty: delete) and waits for the
/// broker's acknowledgement.
async fn publish_config(mqtt_url: &str, name: &str, payload: Vec<u8>) {
    let client = mqtt_client(mqtt_url, &unique_name("ctl")).await;
    client
        .publish(
            format!("datastream/generators/{name}/config"),
            QoS::AtLeastOnce,
            true,
            payload,
        )
        .await
        .unwrap();
    // A clean disconnect goes out after the publish is written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_rate_follows_frequency_hz_after_a_patch() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let tap = MessageTap::start(&sys.mqtt_url, &format!("sensors/vibration/{id1}/#")).await;

    let created = sys
        .send_generators(
            Method::POST,
            "/api/v1/generators",
            &token,
            Some(generator("rate", "vibration", &id1, 10.0)),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_10_hz = count_during(&tap, Duration::from_secs(3)).await;

    let patched = sys
        .send_generators(
            Method::PATCH,
            "/api/v1/generators/rate",
            &token,
            Some(json!({"frequency_hz": 40})),
        )
        .await;
    assert_eq!(patched.status().as_u16(), 200);
    let body: Value = patched.json().await.unwrap();
    assert_eq!(body["frequency_hz"], 40.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_40_hz = count_during(&tap, Duration::from_secs(3)).await;

    assert!((20..=40).contains(&at_10_hz), "10 Hz for 3 s: {at_10_hz}");
    assert!((90..=150).contains(&at_40_hz), "40 Hz for 3 s: {at_40_hz}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_generator_publishes_nothing_until_resumed() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let tap = MessageTap::start(&sys.mqtt_url, &format!("sensors/light/{id1}/#")).await;
    let mut body = generator("paused", "light", &id1, 20.0);
    body["paused"] = json!(true);
    let created = sys
        .send_generators(Method::POST, "/api/v1/generators", &token, Some(body))
        .await;
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(count_during(&tap, Duration::from_secs(1)).await, 0);

    let resumed = sys
        .send_generators(
            Method::PATCH,
            "/api/v1/generators/paused",
            &token,
            Some(json!({"paused": false})),
        )
        .await;
    assert_eq!(resumed.status().as_u16(), 200);
    assert!(count_during(&tap, Duration::from_secs(1)).await >= 10);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_config_message_creates_a_generator_whose_readings_validate_and_land() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let id1 = unique_id1();
    let tap = MessageTap::start(&sys.mqtt_url, &format!("sensors/co2/{id1}/#")).await;
    let config = json!({"sensor_type": "co2", "id1": id1, "id2": 5, "id2_end": 7, "frequency_hz": 4,
                        "model": "random_walk", "min": 400, "max": 450, "fleet": sys.settings.generator_fleet});
    publish_config(&sys.mqtt_url, "by-mqtt", config.to_string().into_bytes()).await;

    let readings = sys
        .wait_for_readings(&format!("id1={id1}&limit=100"), 9, Duration::from_secs(10))
        .await;
    assert!(readings.len() >= 9, "readings landed: {}", readings.len());
    let messages = tap.take();
    let mut devices: Vec<i64> = Vec::new();
    for message in &messages {
        let decoded = decode_message(
            &message.topic,
            &message.payload,
            &DecodeLimits::default(),
            Utc::now(),
        )
        .expect("generated readings are valid");
        let value = decoded[0].sensor_value();
        assert!((400.0..=450.0).contains(&value), "{value}");
        devices.push(i64::from(decoded[0].id2().get()));
    }
    devices.sort_unstable();
    devices.dedup();
    assert_eq!(
        devices,
        vec![5, 6, 7],
        "one generator stands for three devices"
    );

    let token = sys.admin_token().await;
    let view: Value = sys
        .send_generators(Method::GET, "/api/v1/generators/by-mqtt", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"]["state"], "running");
    assert!(view["status"]["published"].as_u64().unwrap() >= 9);
    publish_config(&sys.mqtt_url, "by-mqtt", Vec::new()).await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_retained_config_message_removes_the_generator() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let tap = MessageTap::start(&sys.mqtt_url, &format!("sensors/humidity/{id1}/#")).await;
    let created = sys
        .send_generators(
            Method::POST,
            "/api/v1/generators",
            &token,
            Some(generator("short-lived", "humidity", &id1, 20.0)),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    assert!(tap
        .wait_for(Duration::from_secs(5), |_| true)
        .await
        .is_some());

    publish_config(&sys.mqtt_url, "short-lived", Vec::new()).await;
    let mut gone = false;
    for _ in 0..50 {
        let resp = sys
            .send_generators(Method::GET, "/api/v1/generators/short-lived", &token, None)
            .await;
        if resp.status().as_u16() == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the generator is gone from the API");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count_during(&tap, Duration::from_secs(1)).await, 0);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_over_rest_stops_the_generator_and_clears_its_config() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let tap = MessageTap::start(&sys.mqtt_url, &format!("sensors/pressure/{id1}/#")).await;
    let config_tap = MessageTap::start(&sys.mqtt_url, "datastream/generators/doomed/config").await;
    let path = "/api/v1/generators/doomed";
    let body = generator("doomed", "pressure", &id1, 20.0);
    let created = sys
        .send_generators(Method::POST, "/api/v1/generators", &token, Some(body))
        .await;
    assert_eq!(created.status().as_u16(), 201);
    assert!(tap
        .wait_for(Duration::from_secs(5), |_| true)
        .await
        .is_some());

    let deleted = sys
        .send_generators(Method::DELETE, path, &token, None)
        .await;
    assert_eq!(deleted.status().as_u16(), 204);
    let again = sys
        .send_generators(Method::DELETE, path, &token, None)
        .await;
    assert_eq!(again.status().as_u16(), 404);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count_during(&tap, Duration::from_secs(1)).await, 0);
    let cleared = config_tap
        .wait_for(Duration::from_secs(2), |p| p.payload.is_empty())
        .await;
    assert!(cleared.is_some(), "the retained config was cleared");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_over_rest_get_400_naming_the_field() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let cases = [
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 0}),
            "frequency_hz",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 20000}),
            "frequency_hz",
        ),
        (
            json!({"name": "g", "id1": id1, "id2": 1, "frequency_hz": 1}),
            "sensor_type",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": "lower", "id2": 1, "frequency_hz": 1}),
            "id1",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": "one", "frequency_hz": 1}),
            "id2",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": 9, "id2_end": 2, "frequency_hz": 1}),
            "id2_end",
        ),
        (
            json!({"name": "a/b", "sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 1}),
            "name",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 1, "min": 5, "max": 1}),
            "min",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 1, "model": "chaos"}),
            "model",
        ),
        (
            json!({"name": "g", "sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 1, "colour": "red"}),
            "colour",
        ),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let resp = sys
            .send_generators(
                Method::POST,
                "/api/v1/generators",
                &token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(error_field(resp).await, (400, field.to_owned()), "{body}");
    }

    let ok = generator("valid", "co2", &id1, 1.0);
    let created = sys
        .send_generators(Method::POST, "/api/v1/generators", &token, Some(ok.clone()))
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let duplicate = sys
        .send_generators(Method::POST, "/api/v1/generators", &token, Some(ok))
        .await;
    assert_eq!(duplicate.status().as_u16(), 409);
    for (patch, field) in [
        (json!({"sensor_type": "humidity"}), "sensor_type"),
        (json!({"frequency_hz": -1}), "frequency_hz"),
        (json!({"noise": "loud"}), "noise"),
    ] {
        let resp = sys
            .send_generators(
                Method::PATCH,
                "/api/v1/generators/valid",
                &token,
                Some(patch),
            )
            .await;
        assert_eq!(error_field(resp).await, (400, field.to_owned()));
    }
    let missing = sys
        .send_generators(
            Method::PATCH,
            "/api/v1/generators/nope",
            &token,
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(missing.status().as_u16(), 404);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_message_gets_an_error_status_and_the_fleet_carries_on() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let fleet = sys.settings.generator_fleet.clone();
    let status_tap = MessageTap::start(&sys.mqtt_url, "datastream/generators/broken/status").await;
    let bad = json!({"sensor_type": "co2", "id1": "ABC", "id2": 1, "frequency_hz": "fast", "fleet": fleet});
    publish_config(&sys.mqtt_url, "broken", bad.to_string().into_bytes()).await;
    let status = status_tap
        .wait_for(Duration::from_secs(5), |p| !p.payload.is_empty())
        .await
        .expect("an error status");
    let status: Value = serde_json::from_slice(&status.payload).unwrap();
    assert_eq!(status["state"], "error");
    assert!(
        status["error"].as_str().unwrap().contains("frequency_hz"),
        "{status}"
    );
    publish_config(&sys.mqtt_url, "garbage", b"\xff not json".to_vec()).await;

    // The service still takes good configs.
    let token = sys.admin_token().await;
    let created = sys
        .send_generators(
            Method::POST,
            "/api/v1/generators",
            &token,
            Some(generator("after-bad", "co2", &unique_id1(), 1.0)),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    publish_config(&sys.mqtt_url, "broken", Vec::new()).await;
    publish_config(&sys.mqtt_url, "garbage", Vec::new()).await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_tokens_can_read_generators_but_not_change_them() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let viewer = sys.user_token(&unique_name("viewer"), "viewer").await;
    let id1 = unique_id1();
    let created = sys
        .send_generators(
            Method::POST,
            "/api/v1/generators",
            &admin,
            Some(generator("watched", "co2", &id1, 1.0)),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);

    let list = sys
        .send_generators(Method::GET, "/api/v1/generators", &viewer, None)
        .await;
    assert_eq!(list.status().as_u16(), 200);
    let one = sys
        .send_generators(Method::GET, "/api/v1/generators/watched", &viewer, None)
        .await;
    assert_eq!(one.status().as_u16(), 200);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/generators",
            Some(generator("mine", "co2", &id1, 1.0)),
        ),
        (
            Method::PATCH,
            "/api/v1/generators/watched",
            Some(json!({"frequency_hz": 9})),
        ),
        (Method::DELETE, "/api/v1/generators/watched", None),
    ] {
        let resp = sys
            .send_generators(method.clone(), path, &viewer, body)
            .await;
        assert_eq!(resp.status().as_u16(), 403, "{method} {path}");
    }
    let anonymous = reqwest::get(format!("{}/api/v1/generators", sys.generators_base))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let view: Value = sys
        .send_generators(Method::GET, "/api/v1/generators/watched", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["frequency_hz"], 1.0, "unchanged");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fleets_never_run_the_same_generator_and_a_fleet_runs_in_one_process() {
    let broker = embedded_broker();
    let mqtt = MqttUrl::parse(&broker.url()).unwrap();
    let stop = CancellationToken::new();
    let (fleet_a, fleet_b) = (unique_name("fa"), unique_name("fb"));
    let a = GeneratorService::start(&mqtt, &fleet_a, stop.clone())
        .await
        .unwrap();
    let b = GeneratorService::start(&mqtt, &fleet_b, stop.clone())
        .await
        .unwrap();
    let taken = GeneratorService::start(&mqtt, &fleet_a, stop.clone()).await;
    assert!(
        matches!(taken, Err(ServiceError::FleetTaken { .. })),
        "a second process for fleet a is refused"
    );

    let id1 = unique_id1();
    let tap = MessageTap::start(&broker.url(), &format!("sensors/temperature/{id1}/#")).await;
    let spec = datastream_generator::GeneratorSpec::parse("shared", "temperature", &id1, 1, 20.0)
        .unwrap()
        .with_fleet(&fleet_a)
        .unwrap();
    // Created through b's API, it runs in a: the config says so.
    b.service.create(spec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_a = count_during(&tap, Duration::from_secs(2)).await;

    b.service
        .update("shared", json!({"fleet": fleet_b}).to_string().as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_b = count_during(&tap, Duration::from_secs(2)).await;

    // 20 Hz for 2 s is 40; twice that would mean both ran it.
    assert!((30..=50).contains(&in_a), "in fleet a: {in_a}");
    assert!((30..=50).contains(&in_b), "in fleet b: {in_b}");
    let view = a.service.get("shared").unwrap();
    assert_eq!(view.config.fleet, fleet_b);
    stop.cancel();
    a.task.await.unwrap().unwrap();
    b.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fleet_is_marked_offline_and_comes_back_with_its_generators() {
    // Last wills and retained configs across a restart, on Mosquitto.
    let Some(mqtt_url) = external_mqtt() else {
        return;
    };
    let fleet = unique_name("fleet");
    let name = unique_name("gen");
    let id1 = unique_id1();
    let status_tap =
        MessageTap::start(&mqtt_url, &format!("datastream/generators/{name}/status")).await;
    let readings = MessageTap::start(&mqtt_url, &format!("sensors/co2/{id1}/#")).await;
    let process = start_generator_fleet(&mqtt_url, &fleet).await;
    let config =
        json!({"sensor_type": "co2", "id1": id1, "id2": 1, "frequency_hz": 10, "fleet": fleet});
    publish_config(&mqtt_url, &name, config.to_string().into_bytes()).await;
    let state_is = |state: &'static str| {
        move |p: &rumqttc::Publish| {
            serde_json::from_slice::<Value>(&p.payload).is_ok_and(|s| s["state"] == state)
        }
    };
    assert!(status_tap
        .wait_for(Duration::from_secs(10), state_is("running"))
        .await
        .is_some());
    assert!(readings
        .wait_for(Duration::from_secs(5), |_| true)
        .await
        .is_some());

    status_tap.take();
    process.kill();
    let offline = status_tap
        .wait_for(Duration::from_secs(30), state_is("offline"))
        .await;
    assert!(
        offline.is_some(),
        "the last will marks the generator offline"
    );

    let restarted = start_generator_fleet(&mqtt_url, &fleet).await;
    assert!(status_tap
        .wait_for(Duration::from_secs(10), state_is("running"))
        .await
        .is_some());
    readings.take();
    assert!(
        readings
            .wait_for(Duration::from_secs(5), |_| true)
            .await
            .is_some(),
        "the restarted fleet publishes again"
    );
    publish_config(&mqtt_url, &name, Vec::new()).await;
    // A clean stop: no last will, and the fleet's status is cleared.
    restarted.terminate().unwrap();
    // Leave nothing retained behind on the shared broker.
    let cleanup = mqtt_client(&mqtt_url, &unique_name("clean")).await;
    for topic in [
        format!("datastream/generators/{name}/status"),
        format!("datastream/fleets/{fleet}/status"),
    ] {
        cleanup
            .publish(topic, QoS::AtLeastOnce, true, Vec::new())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_api_serves_its_openapi_document_and_swagger_ui() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let doc: Value = reqwest::get(format!("{}/api-docs/openapi.json", sys.generators_base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/generators", &["get", "post"][..]),
        ("/api/v1/generators/{name}", &["get", "patch", "delete"][..]),
    ] {
        for method in methods {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} documented"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer_auth"].is_object());
    assert!(doc["components"]["schemas"]["GeneratorConfig"].is_object());
    let ui = reqwest::get(format!("{}/swagger-ui/", sys.generators_base))
        .await
        .unwrap();
    assert_eq!(ui.status().as_u16(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
    sys.stop().await;
}

/// Issue 14: a range whose span overflows made only infinite readings, and
/// was accepted over both paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_range_that_overflows_is_refused_over_rest_and_mqtt() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let fleet = sys.settings.generator_fleet.clone();
    let absurd = json!({"name": "absurd", "sensor_type": "co2", "id1": "ADV", "id2": 7,
        "frequency_hz": 1, "min": -1e308, "max": 1e308, "noise": 1e308, "fleet": fleet});
    let token = sys.admin_token().await;
    let resp = sys
        .send_generators(
            Method::POST,
            "/api/v1/generators",
            &token,
            Some(absurd.clone()),
        )
        .await;
    assert_eq!(error_field(resp).await, (400, "min".to_owned()));

    let status_tap = MessageTap::start(&sys.mqtt_url, "datastream/generators/absurd/status").await;
    publish_config(&sys.mqtt_url, "absurd", absurd.to_string().into_bytes()).await;
    let status = status_tap
        .wait_for(Duration::from_secs(5), |p| !p.payload.is_empty())
        .await
        .expect("a status for the refused config");
    let status: Value = serde_json::from_slice(&status.payload).unwrap();
    assert_eq!(status["state"], "error", "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("min"),
        "{status}"
    );
    sys.stop().await;
}

/// A config naming a fleet that cannot exist is reported by the default
/// fleet (where it would run without one), not left unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_with_an_invalid_fleet_name_gets_an_error_status() {
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.generator_fleet = "default".into();
    })
    .await;
    let status_tap = MessageTap::start(&sys.mqtt_url, "datastream/generators/nowhere/status").await;
    let bad =
        json!({"sensor_type": "co2", "id1": "ABC", "id2": 1, "frequency_hz": 1, "fleet": "a/b"});
    publish_config(&sys.mqtt_url, "nowhere", bad.to_string().into_bytes()).await;
    let status = status_tap
        .wait_for(Duration::from_secs(5), |p| !p.payload.is_empty())
        .await
        .expect("an error status");
    let status: Value = serde_json::from_slice(&status.payload).unwrap();
    assert_eq!(status["state"], "error", "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("fleet"),
        "{status}"
    );
    sys.stop().await;
}

/// The embedded broker forgets retained configs when it stops: `up` keeps
/// them in a file and comes back with the generators it had, as changed,
/// instead of its defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_the_embedded_broker_comes_back_with_the_generators_it_had() {
    let defaults = || vec![datastream_generator::default_fleet().remove(0)];
    let sys = TestSystem::start(TestDb::sqlite(), None, defaults()).await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let created = sys
        .send_generators(
            Method::POST,
            "/api/v1/generators",
            &token,
            Some(generator("kept", "humidity", &id1, 3.0)),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let default_name = defaults()[0].name().to_owned();
    let removed = sys
        .send_generators(
            Method::DELETE,
            &format!("/api/v1/generators/{default_name}"),
            &token,
            None,
        )
        .await;
    assert_eq!(removed.status().as_u16(), 204);
    let paused = sys
        .send_generators(
            Method::PATCH,
            "/api/v1/generators/kept",
            &token,
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(paused.status().as_u16(), 200);
    let db = sys.stop().await;

    let sys = TestSystem::start(db, None, defaults()).await;
    let token = sys.admin_token().await;
    let listed: Value = sys
        .send_generators(Method::GET, "/api/v1/generators", &token, None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["kept"], "{listed}");
    let kept = &listed[0];
    assert_eq!(kept["id1"], id1.as_str());
    assert_eq!(kept["frequency_hz"], 3.0);
    assert_eq!(kept["paused"], true);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_passes_generator_requests_on_so_the_dashboard_needs_one_origin() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let viewer = sys.user_token("gina", "viewer").await;
    let id1 = unique_id1();

    let created = sys
        .send(
            Method::POST,
            "/api/v1/generators",
            &admin,
            Some(generator("through-api", "light", &id1, 2.0)),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let listed: Value = sys
        .get("/api/v1/generators", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "through-api"),
        "{listed}"
    );
    // The generator service still decides who may do what, and names bad
    // fields, through the API as directly.
    let refused = sys
        .send(
            Method::PATCH,
            "/api/v1/generators/through-api",
            &viewer,
            Some(json!({"frequency_hz": 3})),
        )
        .await;
    assert_eq!(refused.status().as_u16(), 403);
    let bad = sys
        .send(
            Method::PATCH,
            "/api/v1/generators/through-api",
            &admin,
            Some(json!({"frequency_hz": -1})),
        )
        .await;
    assert_eq!(bad.status().as_u16(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["field"], "frequency_hz", "{bad}");
    let changed = sys
        .send(
            Method::PATCH,
            "/api/v1/generators/through-api",
            &admin,
            Some(json!({"frequency_hz": 4})),
        )
        .await;
    assert_eq!(changed.status().as_u16(), 200);
    let deleted = sys
        .send(
            Method::DELETE,
            "/api/v1/generators/through-api",
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status().as_u16(), 204);
    let without_token = sys
        .http
        .get(format!("{}/api/v1/generators", sys.base))
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status().as_u16(), 401);
    sys.stop().await;
}
