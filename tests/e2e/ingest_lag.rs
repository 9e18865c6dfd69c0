//! The lag metric to scale ingestors on (`datastream_ingest_lag_seconds`,
//! docs/SCALING.md): it grows while readings wait and falls to near zero
//! once the ingestors catch up. Real `datastream ingestor` processes, a
//! Mosquitto of the test's own, MariaDB, and a publisher that keeps
//! publishing readings stamped with the current time, as generators do.

use crate::support::{count_rows, proxied_mysql, spawn_ingestor, start_ingestor, wait_for_rows};
use datastream_bench::service_process::ServiceProcess;
use datastream_store::connect;
use datastream_test_support::{
    publish_all_acked, unique_id1, unique_name, MessageTap, OwnMosquitto, TestDb,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(30);
const LAND: Duration = Duration::from_secs(90);
/// How long readings pile up in each test.
const OUTAGE: Duration = Duration::from_secs(6);
/// Lag at or under this is "near zero": the flush interval (50 ms in
/// these tests), a commit and the once-a-second sampling.
const NEAR_ZERO_SECONDS: f64 = 1.0;
/// Where Mosquitto publishes how many messages its store holds.
const BROKER_STORE_COUNT: &str = "$SYS/broker/store/messages/count";

/// Publishes 200 readings a second of device family `id1`, each stamped
/// with the time it is published, until stopped; counts the readings the
/// broker acknowledged.
struct SteadyPublisher {
    running: Arc<AtomicBool>,
    published: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SteadyPublisher {
    fn start(url: String, id1: String) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let published = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (running, published) = (running.clone(), published.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while running.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let now = chrono::Utc::now();
                    let messages: Vec<(String, Vec<u8>)> = (0..20)
                        .map(|i| {
                            let ts = now + chrono::Duration::microseconds(i);
                            let payload = serde_json::json!({
                                "sensor_value": 20.0,
                                "sensor_type": "temperature",
                                "id1": id1,
                                "id2": i % 5,
                                "timestamp": datastream_domain::timestamp::format_timestamp(ts),
                            });
                            (
                                format!("sensors/temperature/{id1}/{}", i % 5),
                                payload.to_string().into_bytes(),
                            )
                        })
                        .collect();
                    let n = messages.len();
                    publish_all_acked(url.clone(), messages).await;
                    published.fetch_add(n, Ordering::Relaxed);
                }
            }
        });
        Self {
            running,
            published,
            task,
        }
    }

    /// Stops after the round in progress; returns how many were published.
    async fn stop(self) -> usize {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.expect("publisher task");
        self.published.load(Ordering::Relaxed)
    }
}

/// `datastream_ingest_lag_seconds` of `ingestor`, once it answers.
async fn lag(ingestor: &ServiceProcess) -> Option<f64> {
    ingestor.metric("datastream_ingest_lag_seconds").await
}

/// Polls the lag until it is near zero or `timeout` passes; returns every
/// value seen, in order.
async fn lag_until_near_zero(ingestor: &ServiceProcess, timeout: Duration) -> Vec<f64> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(value) = lag(ingestor).await {
            seen.push(value);
            if value <= NEAR_ZERO_SECONDS && seen.iter().any(|v| *v > NEAR_ZERO_SECONDS) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lag_grows_while_the_database_is_cut_off_and_falls_to_near_zero_when_it_returns() {
    let (Some(mosquitto), Some(db)) = (OwnMosquitto::start(), TestDb::mysql().await) else {
        return;
    };
    let store = connect(db.url()).await.unwrap();
    let (proxy, proxied_url) = proxied_mysql(db.url()).await;
    let ingestor = start_ingestor(&proxied_url, &mosquitto.ingestor_url()).await;
    let id1 = unique_id1();
    let publisher = SteadyPublisher::start(mosquitto.publisher_url(), id1.clone());
    wait_for_rows(&store, &id1, 200, LAND).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let keeping_up = lag(&ingestor).await.expect("the ingestor exports its lag");
    assert!(
        keeping_up <= NEAR_ZERO_SECONDS,
        "lag while keeping up: {keeping_up}"
    );

    proxy.cut();
    let mut during = Vec::new();
    let cut_at = Instant::now();
    while cut_at.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        during.extend(lag(&ingestor).await);
    }
    let waiting = ingestor
        .metric("datastream_ingest_backlog_readings")
        .await
        .unwrap_or(0.0);
    proxy.restore();
    let after = lag_until_near_zero(&ingestor, LAND).await;
    let published = publisher.stop().await;

    assert!(
        during.windows(2).all(|w| w[1] >= w[0]) && during.last() >= Some(&4.0),
        "the lag grew through the {OUTAGE:?} outage: {during:?}"
    );
    assert!(
        waiting >= 500.0,
        "readings received, not committed: {waiting}"
    );
    assert!(
        after.last().is_some_and(|v| *v <= NEAR_ZERO_SECONDS),
        "the lag fell to near zero after the outage: {after:?}"
    );
    assert_eq!(
        wait_for_rows(&store, &id1, published as u64, LAND).await,
        published as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_ingestor_comes_back_reporting_the_lag_it_missed_and_drains_it() {
    let Some(mosquitto) = OwnMosquitto::start_with(&[("sys_interval", "1")]) else {
        return;
    };
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let store = connect(db.url()).await.unwrap();
    let (group, client_id) = (unique_name("grp"), unique_name("ing"));
    let start = || {
        let url = mosquitto.ingestor_url();
        let (db, group, client_id) = (db.url().to_owned(), group.clone(), client_id.clone());
        async move {
            let mut ingestor = spawn_ingestor(&db, &url, Some(&group), &client_id);
            ingestor.wait_ready(READY).await.unwrap();
            ingestor
        }
    };
    let id1 = unique_id1();
    let ingestor = start().await;
    let publisher = SteadyPublisher::start(mosquitto.publisher_url(), id1.clone());
    wait_for_rows(&store, &id1, 200, LAND).await;
    ingestor.terminate().unwrap();

    // While no ingestor runs, only the broker can tell: its store grows
    // with the group's queue (the complement docs/SCALING.md describes).
    let stored = MessageTap::start(&mosquitto.ingestor_url(), BROKER_STORE_COUNT).await;
    tokio::time::sleep(OUTAGE).await;
    let broker_counts: Vec<u64> = stored
        .snapshot()
        .iter()
        .filter_map(|m| std::str::from_utf8(&m.payload).ok()?.parse().ok())
        .collect();

    let ingestor = start().await;
    let after = lag_until_near_zero(&ingestor, LAND).await;
    // Mosquitto publishes its counts once a `sys_interval` (1 s here), so
    // the gauge trails a drain that took less than that.
    let queued_after = ingestor
        .metric_until(
            "datastream_ingest_broker_queued_messages",
            |queued| queued < 500.0,
            Duration::from_secs(10),
        )
        .await;
    let published = publisher.stop().await;

    assert!(
        broker_counts.last().unwrap_or(&0) >= &(broker_counts.first().unwrap_or(&0) + 500),
        "the broker's store grew while the ingestor was stopped: {broker_counts:?}"
    );
    assert!(
        after.iter().any(|v| *v >= 3.0),
        "the restarted ingestor reported the {OUTAGE:?} it missed: {after:?}"
    );
    assert!(
        after.last().is_some_and(|v| *v <= NEAR_ZERO_SECONDS),
        "and its lag fell to near zero: {after:?}"
    );
    assert!(
        queued_after.is_some_and(|q| q < 500.0),
        "the broker's queue as the ingestor reports it, drained: {queued_after:?}"
    );
    assert_eq!(
        wait_for_rows(&store, &id1, published as u64, LAND).await,
        published as u64
    );
    assert_eq!(count_rows(&store, &id1).await, published as u64);
}
