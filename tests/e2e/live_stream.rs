//! `/api/v1/readings/stream`: live readings over Server-Sent Events, fed by
//! the API process's own subscription to the broker.

use crate::support::{publish, start_api, TestSystem};
use chrono::{Duration as ChronoDuration, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_test_support::{unique_id1, TestDb};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
struct Event {
    name: Option<String>,
    id: Option<String>,
    data: Option<Value>,
}

/// An open stream, read event by event.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// Opens `/api/v1/readings/stream?{query}`, resuming after `last_id`.
    async fn open(sys: &TestSystem, query: &str, token: &str, last_id: Option<&str>) -> Self {
        let mut request = sys
            .http
            .get(format!("{}/api/v1/readings/stream?{query}", sys.base))
            .bearer_auth(token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream request");
        assert_eq!(response.status(), 200, "opening the stream");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ends or
    /// nothing comes within `timeout`.
    async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Reading events until one satisfies `wanted`; panics after `timeout`.
    async fn until(&mut self, timeout: Duration, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(event) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            let done = wanted(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
        panic!("not seen within {timeout:?}; got {seen:?}");
    }
}

/// An event from its lines; `None` for a block of comments and settings.
fn parse_event(block: &str) -> Option<Event> {
    let mut event = Event::default();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            event.name = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("id: ") {
            event.id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            event.data = Some(serde_json::from_str(v).expect("data is JSON"));
        }
    }
    event.data.is_some().then_some(event)
}

/// Publishes one temperature reading of `id1`/`id2` with `value`, taken now.
async fn publish_reading(sys: &TestSystem, id1: &str, id2: i32, value: f64) {
    sys.publish_now("temperature", id1, id2, value).await;
}

/// Waits until a reading of `id1` with `value` is stored.
async fn wait_until_stored(sys: &TestSystem, token: &str, id1: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page: Value = sys
            .get(&format!("/api/v1/readings?id1={id1}&limit=100"), token)
            .await
            .json()
            .await
            .unwrap();
        let values = page["data"].as_array().unwrap();
        if values
            .iter()
            .any(|r| r["sensor_value"].as_f64() == Some(value))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{value} not stored: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value_of(event: &Event) -> Option<f64> {
    event.data.as_ref()?["sensor_value"].as_f64()
}

async fn start() -> TestSystem {
    TestSystem::start(TestDb::sqlite(), None, vec![]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sends_the_readings_its_filters_match_as_they_arrive() {
    let sys = start().await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let mut stream = Stream::open(&sys, &format!("id1={id1}&id2=1"), &token, None).await;
    // The feed subscribes alongside the API; publish until the stream sees one.
    let started = Instant::now();
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Event| value_of(e) == Some(1.0)) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing streamed: {seen:?}"
        );
        publish_reading(&sys, &id1, 2, 2.0).await;
        publish_reading(&sys, &id1, 1, 1.0).await;
        if let Some(e) = stream.next(Duration::from_millis(500)).await {
            seen.push(e);
        }
    }
    let published = Instant::now();
    publish_reading(&sys, &id1, 1, 3.0).await;
    seen.extend(
        stream
            .until(Duration::from_secs(2), |e| value_of(e) == Some(3.0))
            .await,
    );
    assert!(published.elapsed() < Duration::from_secs(2));
    for e in &seen {
        let data = e.data.as_ref().unwrap();
        assert_eq!(data["id1"], id1.as_str());
        assert_eq!(
            data["id2"], 1,
            "another device's reading was streamed: {data}"
        );
        assert!(e.id.is_some(), "every reading event has an id");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_last_event_id_first_gets_what_was_stored_meanwhile() {
    let sys = start().await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let query = format!("id1={id1}");
    let mut stream = Stream::open(&sys, &query, &token, None).await;
    let started = Instant::now();
    let first = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing streamed"
        );
        publish_reading(&sys, &id1, 1, 0.0).await;
        if let Some(e) = stream.next(Duration::from_millis(500)).await {
            break e;
        }
    };
    drop(stream);
    // While disconnected: three readings, stored.
    for v in [10.0, 11.0, 12.0] {
        publish_reading(&sys, &id1, 1, v).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until_stored(&sys, &token, &id1, 12.0).await;
    let mut resumed = Stream::open(&sys, &query, &token, first.id.as_deref()).await;
    let events = resumed
        .until(Duration::from_secs(5), |e| value_of(e) == Some(12.0))
        .await;
    let values: Vec<f64> = events.iter().filter_map(value_of).collect();
    let missed: Vec<f64> = values.iter().copied().filter(|v| *v >= 10.0).collect();
    assert_eq!(
        missed,
        vec![10.0, 11.0, 12.0],
        "in order, each once: {values:?}"
    );
    assert!(
        !events.iter().any(|e| e.id == first.id),
        "the event named by Last-Event-ID is not sent again"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_an_expired_event_when_its_token_expires() {
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| s.jwt_ttl_secs = 2).await;
    let token = sys.admin_token().await;
    let mut stream = Stream::open(&sys, "sensor_type=temperature", &token, None).await;
    let events = stream
        .until(Duration::from_secs(6), |e| {
            e.name.as_deref() == Some("expired")
        })
        .await;
    let last = events.last().unwrap();
    assert!(last.data.as_ref().unwrap()["reason"].is_string());
    assert!(
        stream.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after its final event"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refuses_a_missing_token_a_bad_filter_and_a_bad_last_event_id() {
    let sys = start().await;
    let token = sys.admin_token().await;
    let anonymous = sys
        .http
        .get(format!("{}/api/v1/readings/stream", sys.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    for (query, last_id, field) in [
        ("id2=x", None, "id2"),
        ("limit=5", None, "limit"),
        ("", Some("yesterday"), "Last-Event-ID"),
    ] {
        let mut request = sys
            .http
            .get(format!("{}/api/v1/readings/stream?{query}", sys.base))
            .bearer_auth(&token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{query} {last_id:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_may_watch_and_a_stored_gap_older_than_the_window_is_not_replayed() {
    let sys = start().await;
    let viewer = sys.user_token("live-viewer", "viewer").await;
    let id1 = unique_id1();
    let client = sys.publisher().await;
    let old = Utc::now() - ChronoDuration::minutes(30);
    let body = json!({"sensor_value": 5.0, "sensor_type": "temperature", "id1": id1,
        "id2": 1, "timestamp": format_timestamp(old)});
    publish(
        &client,
        &format!("sensors/temperature/{id1}/1"),
        body.to_string(),
    )
    .await;
    sys.wait_for_readings(&format!("id1={id1}"), 1, Duration::from_secs(10))
        .await;
    let hour_ago = (Utc::now() - ChronoDuration::hours(1)).timestamp_micros();
    let mut stream = Stream::open(
        &sys,
        &format!("id1={id1}"),
        &viewer,
        Some(&hour_ago.to_string()),
    )
    .await;
    assert!(
        stream.next(Duration::from_secs(1)).await.is_none(),
        "a reading 30 minutes old is beyond the 5-minute resume window"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_a_revoked_event_once_its_user_is_deleted() {
    let sys = start().await;
    let admin = sys.admin_token().await;
    let viewer = sys.user_token("live-revoked", "viewer").await;
    let mut stream = Stream::open(&sys, "sensor_type=temperature", &viewer, None).await;
    let deleted = sys
        .send(
            reqwest::Method::DELETE,
            "/api/v1/users/live-revoked",
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    // Checked at the next heartbeat (every 15 s).
    stream
        .until(Duration::from_secs(20), |e| {
            e.name.as_deref() == Some("revoked")
        })
        .await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_api_ends_open_streams_with_a_closing_event() {
    let sys = start().await;
    let token = sys.admin_token().await;
    let mut stream = Stream::open(&sys, "", &token, None).await;
    let stopping = tokio::spawn(sys.stop());
    stream
        .until(Duration::from_secs(5), |e| {
            e.name.as_deref() == Some("closing")
        })
        .await;
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the system stops without waiting for the stream")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_api_without_mqtt_url_answers_the_stream_with_503_naming_it() {
    let db = TestDb::sqlite();
    let api = start_api(db.url()).await;
    let http = reqwest::Client::new();
    let token = crate::support::admin_token_at(&api.base_url()).await;
    let response = http
        .get(format!("{}/api/v1/readings/stream", api.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MQTT_URL"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_resumes_never_holds_up_ups_ingestor() {
    // Two connections per pool: the API's are kept busy by resumes, the
    // ingestor's are its own.
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.database_pool_size = Some(2);
    })
    .await;
    let token = sys.admin_token().await;
    let id1 = unique_id1();
    let resumes: Vec<_> = (0..100)
        .map(|_| {
            let (http, base, token) = (sys.http.clone(), sys.base.clone(), token.clone());
            tokio::spawn(async move {
                let response = http
                    .get(format!("{base}/api/v1/readings/stream"))
                    .bearer_auth(&token)
                    .header("Last-Event-ID", "0")
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                drop(response);
                status
            })
        })
        .collect();
    let started = Instant::now();
    for v in 0..20 {
        publish_reading(&sys, &id1, 1, f64::from(v)).await;
    }
    let stored = sys
        .wait_for_readings(&format!("id1={id1}&limit=100"), 20, Duration::from_secs(10))
        .await;
    assert_eq!(stored.len(), 20, "stored during the burst");
    let took = started.elapsed();
    for resume in resumes {
        let status = resume.await.unwrap();
        assert!(status == 200 || status == 503, "{status}");
    }
    assert!(
        took < Duration::from_secs(5),
        "the readings took {took:?} to land"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_last_event_id_starts_a_stream_without_a_resume() {
    let sys = start().await;
    let token = sys.admin_token().await;
    let response = sys
        .http
        .get(format!("{}/api/v1/readings/stream", sys.base))
        .bearer_auth(&token)
        .header("Last-Event-ID", "")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    sys.stop().await;
}
