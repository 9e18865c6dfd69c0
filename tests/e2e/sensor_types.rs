//! The sensor-type catalog through the REST API: seeded units, admin
//! edits, types seen only in readings, bad fields named.

use crate::support::TestSystem;
use datastream_test_support::{unique_id1, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn catalog(sys: &TestSystem, token: &str) -> Vec<Value> {
    let resp = sys.get("/api/v1/sensor-types", token).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<Vec<Value>>().await.unwrap()
}

fn entry<'a>(catalog: &'a [Value], name: &str) -> Option<&'a Value> {
    catalog.iter().find(|e| e["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_seeded_with_the_default_generators_units() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let viewer = sys.user_token("vic", "viewer").await;
    let all = catalog(&sys, &viewer).await;
    for (name, unit) in [
        ("temperature", "°C"),
        ("humidity", "%"),
        ("pressure", "hPa"),
    ] {
        let e = entry(&all, name).unwrap_or_else(|| panic!("{name} missing: {all:?}"));
        assert_eq!(
            (e["unit"].as_str(), e["catalogued"].as_bool()),
            (Some(unit), Some(true))
        );
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_change_and_remove_entries_and_types_seen_only_in_readings_are_listed_without_a_unit(
) {
    catalog_round_trip(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_change_and_remove_entries_on_mariadb() {
    if let Some(db) = TestDb::mysql().await {
        catalog_round_trip(db).await;
    }
}

async fn catalog_round_trip(db: TestDb) {
    let sys = TestSystem::start(db, None, vec![]).await;
    let admin = sys.admin_token().await;
    let id1 = unique_id1();
    sys.publish_now("windspeed", &id1, 1, 3.5).await;
    sys.wait_for_readings(&format!("id1={id1}"), 1, Duration::from_secs(15))
        .await;

    let all = catalog(&sys, &admin).await;
    let wind = entry(&all, "windspeed").expect("a type seen in readings is listed");
    assert_eq!(
        (wind["unit"].clone(), wind["catalogued"].clone()),
        (Value::Null, json!(false))
    );
    assert_eq!(wind["has_readings"], true);
    assert_eq!(
        entry(&all, "light").unwrap()["has_readings"],
        false,
        "seeded, never seen"
    );

    let body =
        json!({"unit": "m/s", "display_name": "Wind speed", "expected_min": 0, "expected_max": 60});
    let resp = sys
        .send(
            Method::PUT,
            "/api/v1/sensor-types/windspeed",
            &admin,
            Some(body),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let all = catalog(&sys, &admin).await;
    let wind = entry(&all, "windspeed").unwrap();
    assert_eq!(wind["unit"], "m/s");
    assert_eq!(wind["display_name"], "Wind speed");
    assert_eq!(
        (wind["expected_min"].as_f64(), wind["expected_max"].as_f64()),
        (Some(0.0), Some(60.0))
    );

    // A PUT replaces the whole entry.
    let resp = sys
        .send(
            Method::PUT,
            "/api/v1/sensor-types/windspeed",
            &admin,
            Some(json!({"unit": "km/h"})),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let wind = entry(&catalog(&sys, &admin).await, "windspeed")
        .unwrap()
        .clone();
    assert_eq!(
        (wind["unit"].as_str(), wind["display_name"].clone()),
        (Some("km/h"), Value::Null)
    );

    let resp = sys
        .send(
            Method::DELETE,
            "/api/v1/sensor-types/windspeed",
            &admin,
            None,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    let wind = entry(&catalog(&sys, &admin).await, "windspeed")
        .unwrap()
        .clone();
    assert_eq!(
        (wind["unit"].clone(), wind["catalogued"].clone()),
        (Value::Null, json!(false))
    );
    let resp = sys
        .send(
            Method::DELETE,
            "/api/v1/sensor-types/windspeed",
            &admin,
            None,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalog_entries_are_refused_naming_the_field() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    for (path, body, field) in [
        ("/api/v1/sensor-types/Temp", json!({"unit": "K"}), "name"),
        (
            "/api/v1/sensor-types/temperature",
            json!({"unit": ""}),
            "unit",
        ),
        (
            "/api/v1/sensor-types/temperature",
            json!({"unit": "a-unit-far-too-long"}),
            "unit",
        ),
        (
            "/api/v1/sensor-types/temperature",
            json!({"display_name": "x\u{7}"}),
            "display_name",
        ),
        (
            "/api/v1/sensor-types/temperature",
            json!({"expected_min": 1}),
            "expected_max",
        ),
        (
            "/api/v1/sensor-types/temperature",
            json!({"expected_min": 5, "expected_max": 1}),
            "expected_max",
        ),
        (
            "/api/v1/sensor-types/temperature",
            json!({"expected_min": -1e300, "expected_max": 1}),
            "expected_min",
        ),
        (
            "/api/v1/sensor-types/temperature",
            json!({"colour": "red"}),
            "colour",
        ),
    ] {
        let resp = sys
            .send(Method::PUT, path, &admin, Some(body.clone()))
            .await;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
    }
    let temperature = entry(&catalog(&sys, &admin).await, "temperature")
        .unwrap()
        .clone();
    assert_eq!(
        temperature["unit"], "°C",
        "refused changes leave the entry as it was"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_export_can_carry_each_readings_unit_from_the_catalog() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let viewer = sys.user_token("uma", "viewer").await;
    let id1 = unique_id1();
    sys.publish_now("temperature", &id1, 3, 19.5).await;
    sys.wait_for_readings(&format!("id1={id1}"), 1, Duration::from_secs(15))
        .await;
    let csv = sys
        .get(
            &format!("/api/v1/readings/export?id1={id1}&units=true"),
            &viewer,
        )
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",updated_at,unit"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].ends_with(",°C"), "{csv}");
    let refused = sys
        .get(
            &format!("/api/v1/readings/export?id1={id1}&units=true&format=ndjson"),
            &viewer,
        )
        .await;
    assert_eq!(refused.status().as_u16(), 400);
    sys.stop().await;
}
