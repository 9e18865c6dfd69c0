//! What live streams cost a standalone API process, measured on its
//! resident memory and open descriptors: streams for devices that never
//! send, resumes with `Last-Event-ID`, and clients that stop reading. Each
//! must cost a bounded amount, and give it back when the stream ends.

use crate::support::{admin_token_at, start_api_with};
use chrono::{Duration as ChronoDuration, Utc};
use datastream_bench::service_process::ServiceProcess;
use datastream_domain::Reading;
use datastream_store::connect;
use datastream_test_support::{embedded_broker, unique_id1, TestDb};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// Opens `/api/v1/readings/stream?{query}` (resuming after `last_id`),
/// reads until at least `bytes` arrived, and closes it. Returns the status.
async fn open_read_close(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    last_id: Option<&str>,
    bytes: usize,
) -> u16 {
    let mut request = http
        .get(format!("{base}/api/v1/readings/stream?{query}"))
        .bearer_auth(token);
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("stream request");
    let status = response.status().as_u16();
    let mut response = response;
    let mut read = 0;
    while read < bytes {
        match tokio::time::timeout(Duration::from_secs(10), response.chunk()).await {
            Ok(Ok(Some(chunk))) => read += chunk.len(),
            _ => break,
        }
    }
    status
}

/// Resident memory of `api` once every stream its clients closed has
/// ended (its sockets are back to `sockets`), in bytes. A stream notices
/// its client has gone when a heartbeat cannot be written: within two.
async fn settled_rss(api: &ServiceProcess, sockets: usize) -> u64 {
    let deadline = Instant::now() + 3 * datastream_api::routes::stream::HEARTBEAT;
    while api.open_sockets().unwrap_or(0) > sockets + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = api.open_sockets().unwrap_or(0);
    assert!(
        left <= sockets + 2,
        "streams still open: {left} sockets, {sockets} before"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.rss_bytes().expect("reading the API's memory")
}

/// A standalone API with a live feed from an embedded broker of its own.
async fn api_with_live_feed(db: &TestDb) -> (ServiceProcess, datastream_broker::EmbeddedBroker) {
    let broker = embedded_broker();
    let api = start_api_with(db.url(), &[("MQTT_URL", &broker.url())]).await;
    (api, broker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_for_devices_that_never_send_give_their_memory_back() {
    let db = TestDb::sqlite();
    let (api, _broker) = api_with_live_feed(&db).await;
    let (base, token) = (api.base_url(), admin_token_at(&api.base_url()).await);
    let http = reqwest::Client::new();
    let run = |from: usize, count: usize| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            futures_util::stream::iter(from..from + count)
                .for_each_concurrent(50, |n| {
                    let (http, base, token) = (http.clone(), base.clone(), token.clone());
                    async move {
                        let query = format!("id1=LEAK&id2={n}");
                        let status = open_read_close(&http, &base, &token, &query, None, 1).await;
                        assert_eq!(status, 200);
                    }
                })
                .await;
        }
    };
    let sockets = api.open_sockets().unwrap();
    run(0, 1_000).await; // the allocator's working set
    let before = settled_rss(&api, sockets).await;
    run(1_000, 10_000).await;
    let first = settled_rss(&api, sockets).await;
    run(11_000, 10_000).await;
    let second = settled_rss(&api, sockets).await;
    // Each device's ring was ~13 KB and never freed: every 10,000 streams
    // kept ~130 MiB more, for good. Without the leak the second 10,000 have
    // added 0–43 MiB (the allocator's keep, more on a loaded machine).
    assert!(
        first < before + 64 * MIB && second < first + 64 * MIB,
        "resident: {} MiB, after 10,000 device streams {} MiB, after 10,000 more {} MiB",
        before / MIB,
        first / MIB,
        second / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_resumes_at_once_are_all_served_and_give_their_memory_back() {
    let db = TestDb::sqlite();
    // 20,000 readings of one type in the last four minutes: more than a
    // resume may send.
    let store = connect(db.url()).await.unwrap();
    let id1 = unique_id1();
    let now = Utc::now();
    let readings: Vec<Reading> = (0..20_000i64)
        .map(|i| {
            datastream_test_support::reading()
                .value(i as f64)
                .sensor_type("resumed")
                .id1(&id1)
                .id2(i % 10)
                .at(now - ChronoDuration::minutes(4) + ChronoDuration::milliseconds(i * 10))
                .build()
        })
        .collect();
    store.insert_batch(readings.into()).await.unwrap();
    let (api, _broker) = api_with_live_feed(&db).await;
    let (base, token) = (api.base_url(), admin_token_at(&api.base_url()).await);
    let http = reqwest::Client::new();
    let sockets = api.open_sockets().unwrap();
    let before = settled_rss(&api, sockets).await;
    let started = Instant::now();
    let statuses: Vec<u16> = futures_util::future::join_all((0..200).map(|_| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            // The resumed events: 1,000 of ~190 bytes. A resume that waited
            // its 5 s for a turn is a 503 with Retry-After: a client comes
            // back then, as EventSource does, and is served.
            let mut status = 0;
            for _ in 0..5 {
                status = open_read_close(
                    &http,
                    &base,
                    &token,
                    "sensor_type=resumed",
                    Some("0"),
                    150_000,
                )
                .await;
                if status != 503 {
                    break;
                }
                tokio::time::sleep(datastream_api::routes::stream::RESUME_WAIT).await;
            }
            status
        }
    }))
    .await;
    let took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let after = settled_rss(&api, sockets).await;
    // Each resume held ~2.5 MB, and 200 kept ~350 MB after they closed.
    assert!(
        after < before + 48 * MIB,
        "200 resumes left {} MiB behind (took {took:?})",
        (after.saturating_sub(before)) / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_whose_clients_stop_reading_are_closed_within_the_send_timeout() {
    use std::io::Write;
    let db = TestDb::sqlite();
    let (api, broker) = api_with_live_feed(&db).await;
    let token = admin_token_at(&api.base_url()).await;
    let idle_fds = api.open_sockets().expect("reading the API's sockets");
    // Clients that send their request and never read a byte, with the
    // smallest receive window the kernel allows.
    let mut clients = Vec::new();
    for _ in 0..20 {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(1).unwrap();
        socket.connect(&api.addr().into()).unwrap();
        let mut stream: std::net::TcpStream = socket.into();
        write!(
            stream,
            "GET /api/v1/readings/stream?sensor_type=flood HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        clients.push(stream);
    }
    // Enough readings to fill every buffer on the way.
    let id1 = unique_id1();
    let messages: Vec<(String, Vec<u8>)> = (0..20_000)
        .map(|i| {
            let topic = format!("sensors/flood/{id1}/{}", i % 10);
            let payload = serde_json::json!({
                "sensor_value": i, "sensor_type": "flood", "id1": id1, "id2": i % 10,
                "timestamp": datastream_domain::timestamp::format_timestamp(
                    Utc::now() - ChronoDuration::seconds(60) + ChronoDuration::microseconds(i)),
            });
            (topic, payload.to_string().into_bytes())
        })
        .collect();
    datastream_test_support::publish_all_acked(broker.url(), messages).await;
    let held = api.open_sockets().unwrap();
    assert!(
        held > idle_fds + 10,
        "the clients are connected ({idle_fds} → {held})"
    );
    let deadline = Instant::now() + datastream_http::SEND_TIMEOUT + Duration::from_secs(20);
    while api.open_sockets().unwrap() > idle_fds + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let left = api.open_sockets().unwrap();
    assert!(
        left <= idle_fds + 2,
        "{} of 20 never-reading clients still held a socket after {:?}",
        left.saturating_sub(idle_fds),
        datastream_http::SEND_TIMEOUT + Duration::from_secs(20)
    );
    drop(clients);
}
