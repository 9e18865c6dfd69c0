//! How big the ingestor's batches are (`ingestor/src/batch_size.rs`): the
//! live size while the database keeps up, bigger while a backlog drains,
//! and back to the live size once it is drained. Real `datastream
//! ingestor` processes, a Mosquitto of the test's own and MariaDB.

use crate::support::{count_rows, reading_messages, spawn_ingestor_with, wait_for_rows};
use datastream_bench::service_process::ServiceProcess;
use datastream_store::connect;
use datastream_test_support::{publish_all_acked, unique_id1, unique_name, OwnMosquitto, TestDb};
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(30);
const LAND: Duration = Duration::from_secs(90);
const LIVE_SIZE: u64 = 100;
const DRAIN_CEILING: u64 = 1600;
const BACKLOG: usize = 30_000;
const TARGET: &str = "datastream_ingest_batch_target_readings";

/// Samples the ingestor's batch target every 10 ms until `done` says so;
/// returns the largest seen.
async fn largest_target_until(
    ingestor: &ServiceProcess,
    mut done: impl AsyncFnMut() -> bool,
) -> f64 {
    let mut largest = 0.0f64;
    let deadline = Instant::now() + LAND;
    while !done().await && Instant::now() < deadline {
        if let Some(target) = ingestor.metric(TARGET).await {
            largest = largest.max(target);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    largest
}

/// A standalone ingestor of a group of its own, started after `BACKLOG`
/// readings were queued for its session; and the backlog's id1.
async fn ingestor_started_on_a_backlog(
    db: &TestDb,
    mosquitto: &OwnMosquitto,
    settings: &[(&str, &str)],
) -> (ServiceProcess, String) {
    let (group, client_id) = (unique_name("grp"), unique_name("ing"));
    let start = || async {
        let mut ingestor = spawn_ingestor_with(
            db.url(),
            &mosquitto.ingestor_url(),
            Some(&group),
            &client_id,
            settings,
        );
        ingestor.wait_ready(READY).await.unwrap();
        ingestor
    };
    // Subscribed once, then stopped: the broker queues the backlog.
    start().await.terminate().unwrap();
    let id1 = unique_id1();
    publish_all_acked(mosquitto.publisher_url(), reading_messages(&id1, BACKLOG)).await;
    (start().await, id1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_drains_in_bigger_batches_and_live_readings_go_back_to_the_live_size() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let store = connect(db.url()).await.unwrap();
    let (live, ceiling) = (LIVE_SIZE.to_string(), DRAIN_CEILING.to_string());
    let settings = [
        ("INGEST_BATCH_MAX", live.as_str()),
        ("INGEST_DRAIN_BATCH_MAX", ceiling.as_str()),
    ];
    let (ingestor, id1) = ingestor_started_on_a_backlog(&db, &mosquitto, &settings).await;
    let largest = largest_target_until(&ingestor, async || {
        count_rows(&store, &id1).await >= BACKLOG as u64
    })
    .await;
    assert!(
        largest > LIVE_SIZE as f64 && largest <= DRAIN_CEILING as f64,
        "the backlog drained in batches bigger than {LIVE_SIZE}, at most {DRAIN_CEILING}: largest {largest}"
    );

    // Live: a trickle the database keeps up with, from devices of their own.
    let live_id1 = unique_id1();
    for _ in 0..10 {
        publish_all_acked(mosquitto.publisher_url(), reading_messages(&live_id1, 20)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(wait_for_rows(&store, &live_id1, 200, LAND).await, 200);
    assert_eq!(
        ingestor.metric(TARGET).await,
        Some(LIVE_SIZE as f64),
        "live readings went back to batches of {LIVE_SIZE}"
    );
    assert_eq!(
        count_rows(&store, &id1).await,
        BACKLOG as u64,
        "none stored twice"
    );
    ingestor.terminate().unwrap();
}

/// Its first batches commit while the process is still starting: they are
/// counted too (they were lost while the metrics recorder was installed
/// after the ingestor started).
#[tokio::test(flavor = "multi_thread")]
async fn an_ingestor_started_on_a_backlog_counts_every_reading_from_its_first_batch() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let store = connect(db.url()).await.unwrap();
    let (ingestor, id1) = ingestor_started_on_a_backlog(&db, &mosquitto, &[]).await;
    assert_eq!(
        wait_for_rows(&store, &id1, BACKLOG as u64, LAND).await,
        BACKLOG as u64
    );
    // Counted when each commit is finished, just after its rows are visible.
    let counted = ingestor
        .metric_until(
            r#"datastream_ingest_readings_total{outcome="inserted"}"#,
            |counted| counted >= BACKLOG as f64,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        counted,
        Some(BACKLOG as f64),
        "readings counted as inserted"
    );
    ingestor.terminate().unwrap();
}
