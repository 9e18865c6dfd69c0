//! Aggregates, the device catalog and export through the REST API, on
//! readings that came in over MQTT and were then edited and deleted.

use crate::support::{publish, TestSystem};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_test_support::{unique_id1, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The start of the hour five hours ago: the refresher has settled it.
fn five_hours_ago() -> DateTime<Utc> {
    (Utc::now() - ChronoDuration::hours(5))
        .duration_trunc(ChronoDuration::hours(1))
        .unwrap()
}

/// Publishes, for `id1`, one reading per device (id2 0 and 1) every 10
/// minutes over three hours from `start` (36 readings), value = minutes
/// from `start`; waits until all are stored.
async fn seed(sys: &TestSystem, id1: &str, start: DateTime<Utc>) {
    let client = sys.publisher().await;
    for minute in (0..180).step_by(10) {
        for id2 in 0..2 {
            let at = start + ChronoDuration::minutes(minute);
            let body = json!({"sensor_value": minute as f64, "sensor_type": "temperature",
                "id1": id1, "id2": id2, "timestamp": format_timestamp(at)});
            publish(
                &client,
                &format!("sensors/temperature/{id1}/{id2}"),
                body.to_string(),
            )
            .await;
        }
    }
    let stored = sys
        .wait_for_readings(&format!("id1={id1}&limit=100"), 36, Duration::from_secs(15))
        .await;
    assert_eq!(stored.len(), 36);
}

/// Waits until the ingestor's refresher has rebuilt every dirty hour, so
/// that the answers below come from rollups.
async fn wait_for_clean_rollups(sys: &TestSystem) {
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.dirty_hours(Utc::now()).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "rollups still dirty after 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_json(sys: &TestSystem, path: &str, token: &str) -> (u16, Value) {
    let resp = sys.get(path, token).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_devices_and_exports_follow_edits_and_deletes() {
    analytics_follow_edits_and_deletes(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_devices_and_exports_follow_edits_and_deletes_on_mariadb() {
    if let Some(db) = TestDb::mysql().await {
        analytics_follow_edits_and_deletes(db).await;
    }
}

async fn analytics_follow_edits_and_deletes(db: TestDb) {
    let sys = TestSystem::start(db, None, vec![]).await;
    let id1 = unique_id1();
    let start = five_hours_ago();
    seed(&sys, &id1, start).await;
    wait_for_clean_rollups(&sys).await;
    let token = sys.admin_token().await;
    let window = format!(
        "from={}&to={}",
        urlencode(&format_timestamp(start)),
        urlencode(&format_timestamp(start + ChronoDuration::hours(3)))
    );

    let (status, body) = get_json(
        &sys,
        &format!("/api/v1/readings/aggregate?id1={id1}&{window}&interval=1h&group_by=none"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["interval"], "1h");
    let hours = body["data"].as_array().unwrap();
    assert_eq!(hours.len(), 3);
    // Hour 0 holds minutes 0..50 of both devices: 12 readings.
    let first = &hours[0];
    assert_eq!(first["bucket"], format_timestamp(start));
    assert_eq!(
        (
            first["count"].as_u64(),
            first["min"].as_f64(),
            first["max"].as_f64()
        ),
        (Some(12), Some(0.0), Some(50.0))
    );
    assert_eq!(
        (first["sum"].as_f64(), first["avg"].as_f64()),
        (Some(300.0), Some(25.0))
    );
    assert_eq!(
        (first["first"].as_f64(), first["last"].as_f64()),
        (Some(0.0), Some(50.0))
    );
    assert!(first.get("id1").is_none() && first.get("sensor_type").is_none());

    let (_, devices) = get_json(&sys, &format!("/api/v1/devices?id1={id1}"), &token).await;
    let devices = devices["data"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0]["count"], 18);
    assert_eq!(devices[0]["last_value"], 170.0);

    // Delete device 1 and edit device 0: answers change at once, before
    // the refresher has caught up.
    let deleted = sys
        .send(
            Method::DELETE,
            &format!("/api/v1/readings?id1={id1}&id2=1"),
            &token,
            None,
        )
        .await;
    assert_eq!(deleted.status().as_u16(), 200);
    let patched = sys
        .send(
            Method::PATCH,
            &format!("/api/v1/readings?id1={id1}&id2=0"),
            &token,
            Some(json!({"sensor_value": 2.5})),
        )
        .await;
    assert_eq!(patched.status().as_u16(), 200);
    let (_, body) = get_json(
        &sys,
        &format!("/api/v1/readings/aggregate?id1={id1}&{window}&interval=1h"),
        &token,
    )
    .await;
    let hours = body["data"].as_array().unwrap();
    assert_eq!(hours.len(), 3);
    assert!(hours
        .iter()
        .all(|h| h["id2"] == 0 && h["count"] == 6 && h["sum"] == 15.0));
    let (_, devices) = get_json(&sys, &format!("/api/v1/devices?id1={id1}"), &token).await;
    assert_eq!(devices["data"].as_array().unwrap().len(), 1);
    assert_eq!(devices["data"][0]["last_value"], 2.5);

    // The export holds what is left, oldest first, in both formats.
    let csv = sys
        .get(
            &format!("/api/v1/readings/export?id1={id1}&format=csv"),
            &token,
        )
        .await;
    assert_eq!(csv.status().as_u16(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,sensor_value,sensor_type,id1,id2,timestamp,created_at,updated_at"
    );
    assert_eq!(lines.len(), 1 + 18);
    let times: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(5).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let ndjson = sys
        .get(
            &format!("/api/v1/readings/export?id1={id1}&format=ndjson"),
            &token,
        )
        .await
        .text()
        .await
        .unwrap();
    let readings: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(readings.len(), 18);
    assert!(readings
        .iter()
        .all(|r| r["sensor_value"] == 2.5 && r["id2"] == 0));

    wait_for_clean_rollups(&sys).await;
    let (_, after) = get_json(
        &sys,
        &format!("/api/v1/readings/aggregate?id1={id1}&{window}&interval=1h"),
        &token,
    )
    .await;
    assert_eq!(after, body, "rebuilt rollups answer as the rows did");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_refuse_bad_parameters_naming_the_field() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let cases = [
        ("/api/v1/readings/aggregate?interval=0s", "interval"),
        ("/api/v1/readings/aggregate?interval=31d", "interval"),
        (
            "/api/v1/readings/aggregate?interval=1s&duration=30d",
            "interval",
        ),
        ("/api/v1/readings/aggregate?group_by=site", "group_by"),
        ("/api/v1/readings/aggregate?max_points=0", "max_points"),
        ("/api/v1/readings/aggregate?limit=0", "limit"),
        ("/api/v1/readings/aggregate?cursor=forged", "cursor"),
        (
            "/api/v1/readings/aggregate?interval=1s&max_points=10000&limit=1000",
            "limit",
        ),
        ("/api/v1/devices?limit=10001", "limit"),
        ("/api/v1/devices?cursor=forged", "cursor"),
        ("/api/v1/readings/aggregate?id2=x", "id2"),
        ("/api/v1/devices?silent_for=soon", "silent_for"),
        ("/api/v1/devices?search=AB1", "search"),
        ("/api/v1/devices?search=AB/x", "search"),
        ("/api/v1/devices?from=2026-01-01T00:00:00Z", "from"),
        ("/api/v1/readings/export?format=xlsx", "format"),
        ("/api/v1/readings/export?order=desc", "order"),
    ];
    for (path, field) in cases {
        let (status, body) = get_json(&sys, path, &token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_analytics_and_nobody_writes_there() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let viewer = sys.user_token("vic", "viewer").await;
    let admin = sys.admin_token().await;
    for path in [
        "/api/v1/readings/aggregate",
        "/api/v1/devices",
        "/api/v1/readings/export",
    ] {
        assert_eq!(
            sys.get(path, &viewer).await.status().as_u16(),
            200,
            "{path}"
        );
        for method in [Method::POST, Method::PATCH, Method::DELETE] {
            let resp = sys.send(method.clone(), path, &admin, None).await;
            assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
            assert_eq!(resp.headers()["allow"], "GET");
        }
        let anonymous = sys
            .http
            .get(format!("{}{path}", sys.base))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status().as_u16(), 401, "{path}");
    }
    sys.stop().await;
}

/// `+` in an offset must reach the server as `%2B`.
fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Issue 25: with 200,000 devices `/devices` answered 31.6 MB unpaged and
/// `aggregate?max_points=1` 33 MB (max_points bounds buckets, not groups),
/// and ten at once took the API to 600-760 MB. Both answer a page of
/// groups now; paging through gives every device exactly once, and ten
/// requests at once cost a page's worth (on MariaDB, which streams rows:
/// SQLite's driver reads a query's rows into memory before the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_and_aggregates_over_many_devices_are_paged_with_bounded_memory() {
    let (db, streams_rows) = match TestDb::mysql().await {
        Some(db) => (db, true),
        None => (TestDb::sqlite(), false),
    };
    let store = datastream_store::connect(db.url()).await.unwrap();
    let (id1s, per_id1) = (25usize, 1_000i64); // 25,000 devices
    let start = five_hours_ago();
    let readings: Vec<datastream_domain::Reading> = (0..id1s)
        .flat_map(|i| {
            let id1 = format!("MANY{}", char::from(b'A' + i as u8));
            (0..per_id1).map(move |id2| {
                datastream_test_support::reading()
                    .value(id2 as f64)
                    .sensor_type("many")
                    .id1(&id1)
                    .id2(id2)
                    .at(start + ChronoDuration::seconds(id2))
                    .build()
            })
        })
        .collect();
    for chunk in readings.chunks(5_000) {
        store.insert_batch(chunk.to_vec().into()).await.unwrap();
    }
    store
        .refresh_rollups(Utc::now() + ChronoDuration::days(1), 100)
        .await
        .unwrap();
    // A connection for each of the twenty requests sent at once below, so
    // that all of them are in flight together (with fewer, the rest wait
    // for a connection, and on a busy machine past the 5 s checkout: 503).
    let api = crate::support::start_api_with(db.url(), &[("DATABASE_POOL_SIZE", "20")]).await;
    let base = api.base_url();
    let http = reqwest::Client::new();
    let token = crate::support::admin_token_at(&base).await;
    let get = |path: String| {
        let (http, token, base) = (http.clone(), token.clone(), base.clone());
        async move {
            let asked = std::time::Instant::now();
            let answer = http
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            assert_eq!(status, 200, "{path} after {:?}: {body}", asked.elapsed());
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    // Every device once, a page at a time.
    let (mut seen, mut cursor, mut pages) = (std::collections::BTreeSet::new(), None::<String>, 0);
    loop {
        let path = match &cursor {
            None => "/api/v1/devices?sensor_type=many&limit=5000".to_owned(),
            Some(c) => format!("/api/v1/devices?sensor_type=many&limit=5000&cursor={c}"),
        };
        let page = get(path).await;
        for d in page["data"].as_array().unwrap() {
            assert!(seen.insert((d["id1"].to_string(), d["id2"].as_i64().unwrap())));
        }
        pages += 1;
        match page["page"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (id1s * per_id1 as usize, 5));
    // The aggregate of every device in one bucket: the first 1,000 groups.
    let window = format!(
        "from={}&to={}",
        format_timestamp(start),
        format_timestamp(start + ChronoDuration::hours(1))
    );
    let first = get(format!(
        "/api/v1/readings/aggregate?sensor_type=many&{window}&max_points=1&group_by=device"
    ))
    .await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1_000);
    assert!(first["page"]["next_cursor"].is_string());
    // Ten of each at once: memory for twenty pages, not twenty catalogs.
    let idle = api.rss_bytes().unwrap();
    let burst = (0..10).flat_map(|_| {
        [
            get("/api/v1/devices?sensor_type=many".to_owned()),
            get(format!(
                "/api/v1/readings/aggregate?sensor_type=many&{window}&max_points=1&group_by=device"
            )),
        ]
    });
    let answers = futures_util::future::join_all(burst).await;
    assert!(answers
        .iter()
        .all(|a| a["data"].as_array().unwrap().len() == 1_000));
    let peak = api.peak_rss_bytes().unwrap();
    assert!(
        !streams_rows || peak < idle + 96 * 1024 * 1024,
        "twenty requests over 25,000 devices took the API from {} to {} MiB",
        idle / (1024 * 1024),
        peak / (1024 * 1024)
    );
}
