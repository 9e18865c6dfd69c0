//! The ingestor: MQTT → validate → batch → store, acknowledging each
//! message only after the batch holding it is committed.
//!
//! Two tasks per ingestor:
//!
//! * the [`receiver`] polls the MQTT connection (QoS 1, persistent session,
//!   manual acks, shared subscription `$share/{group}/sensors/#`) and decodes
//!   each message into a [`delivery::Delivery`];
//! * the [`writer`] (`BatchWriter`) groups deliveries into batches by size and
//!   age, commits each batch with one insert-or-ignore transaction, then acks
//!   its messages in arrival order. Invalid messages are published to
//!   `datastream/deadletter/{sensor_type}` and acked in their turn.
//!
//! A crash or database outage therefore loses nothing: unacked messages stay
//! with the broker and come back, and the unique key turns redelivered
//! readings into counted duplicates.
//!
//! Architecture invariant: the ingestor knows the store only through
//! `datastream_domain::Store`; it never builds SQL.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod background_task;
mod batch_size;
mod broker_backlog;
mod config;
mod dead_letter;
mod delivery;
mod gauges;
mod group_exit;
mod lag;
mod live_feed;
mod log_limit;
mod metrics;
mod receiver;
mod retention_sweeper;
mod rollup_refresher;
mod status;
mod writer;

pub use config::{IngestConfig, DEFAULT_DRAIN_BATCH_MAX};
pub use live_feed::LiveFeed;
pub use metrics::IngestMetrics;
pub use retention_sweeper::{retention_pause, RetentionSweeper, RETENTION_DELETE_CHUNK};
pub use rollup_refresher::RollupRefresher;
pub use status::{IngestProbe, IngestStatus};

use datastream_domain::topic::{shared_readings_filter, READINGS_FILTER};
use datastream_domain::MqttUrl;
use datastream_store::SharedStore;
use rumqttc::AsyncClient;
use status::AckLedger;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest MQTT packet the ingestor accepts from the broker: the protocol's
/// own maximum (the largest remaining length MQTT can encode), so that no
/// message a broker delivers can be refused here. A refused packet would
/// break the connection and come back forever; an accepted one reaches the
/// decoder and, when over `INGEST_MAX_PAYLOAD_BYTES`, is dead-lettered. The
/// broker's packet limit (1 MiB in the project's settings) bounds what one
/// message costs in memory.
const MAX_INCOMING_PACKET: usize = 268_435_455;
/// Largest packet the ingestor sends: acks, subscriptions and dead letters,
/// whose body is bounded and whose topic is short.
const MAX_OUTGOING_PACKET: usize = 2 * dead_letter::MAX_DEAD_LETTER_BYTES;

/// A running ingestor.
pub struct Ingestor {
    probe: IngestProbe,
    task: JoinHandle<()>,
    refresher: RollupRefresher,
    sweeper: Option<RetentionSweeper>,
}

impl Ingestor {
    /// Starts an ingestor that runs until `shutdown` is cancelled, then
    /// commits and acks what it holds and disconnects.
    pub fn start(config: IngestConfig, store: SharedStore, shutdown: CancellationToken) -> Self {
        let ledger = AckLedger::new();
        let probe = IngestProbe::new(ledger.clone());
        // The writer of readings also keeps their rollups exact.
        let refresher = RollupRefresher::start(store.clone(), shutdown.clone());
        let sweeper = config
            .retention
            .map(|policy| RetentionSweeper::start(store.clone(), policy, shutdown.clone()));
        let task = tokio::spawn(run(config, store, shutdown, ledger));
        Self {
            probe,
            task,
            refresher,
            sweeper,
        }
    }

    /// Waits until the ingestor is subscribed to its shared group (so
    /// readings published from now on reach it), or `timeout` passes.
    /// Returns whether it is subscribed.
    pub async fn wait_subscribed(&mut self, timeout: Duration) -> bool {
        let mut status = self.probe.watch();
        tokio::time::timeout(timeout, status.wait_for(|s| s.subscribed))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A handle that follows this ingestor's status and counts (for
    /// readiness checks).
    pub fn probe(&self) -> IngestProbe {
        self.probe.clone()
    }

    /// Waits until the ingestor has stopped.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "ingestor task failed");
        }
        self.refresher.join().await;
        if let Some(sweeper) = self.sweeper {
            sweeper.join().await;
        }
    }
}

async fn run(
    config: IngestConfig,
    store: SharedStore,
    shutdown: CancellationToken,
    ledger: Arc<AckLedger>,
) {
    let mut options = datastream_mqtt::client_options(&config.mqtt, &config.client_id);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(15))
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    // Room for an ack and a dead letter per message the backlog can hold,
    // so the writer never waits on a receiver that has paused (receiver.rs).
    let max_backlog = config.max_backlog.max(1);
    // Where the database takes concurrent writers (InnoDB), a second batch
    // commits while the first finishes; on a single writer (SQLite) it would
    // only wait for the lock.
    let commits_in_flight = if store.concurrent_writers() { 2 } else { 1 };
    let batch_size = batch_size::BatchSize::new(
        config.batch_max,
        config
            .drain_batch_max
            .min(max_backlog / (commits_in_flight + 1)),
    );
    let (client, eventloop) =
        AsyncClient::new(options, 2 * max_backlog + 2 * batch_size.ceiling() + 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let metrics = IngestMetrics;
    tracing::info!(
        mqtt = %config.mqtt,
        group = config.group.as_deref().unwrap_or("(none: direct subscription)"),
        client_id = %config.client_id,
        batch_max = config.batch_max,
        drain_batch_max = batch_size.ceiling(),
        flush_ms = config.flush_interval.as_millis() as u64,
        store = store.backend_name(),
        "ingestor starting"
    );

    let lag = lag::IngestLag::new();
    let filter = match &config.group {
        Some(group) => shared_readings_filter(group),
        None => READINGS_FILTER.to_owned(),
    };
    let intake = group_exit::Intake::start(&config, &client, &filter, &ledger, &shutdown);
    let receiver = receiver::Receiver {
        client: client.clone(),
        eventloop,
        filter,
        limits: config.decode_limits,
        deliveries: tx,
        metrics: metrics.clone(),
        ledger: ledger.clone(),
        lag: lag.clone(),
        max_backlog,
        login: match config.mqtt.credentials() {
            Some((user, _)) => format!("MQTT user {user:?}"),
            None => "an anonymous MQTT client".to_owned(),
        },
    };
    let gauges = gauges::IngestGauges::start(&config, lag.clone(), ledger.clone(), metrics.clone());
    let writer = writer::BatchWriter {
        store,
        client,
        batch_size,
        flush_interval: config.flush_interval,
        commits_in_flight,
        metrics,
        ledger: ledger.clone(),
        lag,
        dead_letter_log: log_limit::LogLimiter::new(Duration::from_secs(1)),
        unpublished_log: log_limit::LogLimiter::new(Duration::from_secs(1)),
    };
    let receiving = tokio::spawn(receiver.run(intake.closed.clone()));
    writer.run(rx, intake.closed.clone()).await;
    // The writer has queued its last acks and the disconnect; let the
    // receiver send them.
    if tokio::time::timeout(Duration::from_secs(5), receiving)
        .await
        .is_err()
    {
        tracing::warn!("MQTT connection did not close within 5 s");
    }
    gauges.stop().await;
    intake.finish(&config, &ledger).await;
}

/// Why [`end_session`] could not ask the broker.
#[derive(Debug, thiserror::Error)]
pub enum SessionEndError {
    /// TLS to the broker is misconfigured, or its certificate refused.
    #[error(transparent)]
    Tls(#[from] datastream_mqtt::MqttTlsError),
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] rumqttc::ConnectionError),
}

/// What [`end_session`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The broker held a session for the client id; it is gone now, with
    /// whatever it had queued.
    Ended,
    /// The broker held no session for the client id.
    NoSession,
}

/// Ends the persistent session of `client_id` on the broker. Use it when an
/// ingestor replica is removed for good; until then the broker keeps
/// queueing its share of the stream (and, for a group whose members are all
/// gone, every message).
///
/// MQTT 3.1.1 says whether a session existed only to a client that asks to
/// resume it, so this connects twice: first resuming (acking nothing it is
/// sent, so nothing queued is consumed by the look), then with a clean
/// session, which discards it.
pub async fn end_session(mqtt: &MqttUrl, client_id: &str) -> Result<SessionEnd, SessionEndError> {
    datastream_mqtt::check_broker_certificate(mqtt).await?;
    let existed = connect_once(mqtt, client_id, false).await?;
    connect_once(mqtt, client_id, true).await?;
    Ok(if existed {
        SessionEnd::Ended
    } else {
        SessionEnd::NoSession
    })
}

/// Connects as `client_id` and disconnects at once; returns whether the
/// broker said a session was present.
async fn connect_once(
    mqtt: &MqttUrl,
    client_id: &str,
    clean_session: bool,
) -> Result<bool, SessionEndError> {
    let mut options = datastream_mqtt::client_options(mqtt, client_id);
    options
        .set_clean_session(clean_session)
        .set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let mut present = false;
    loop {
        match eventloop.poll().await? {
            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)) => {
                present = ack.session_present;
                let _ = client.disconnect().await;
            }
            rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect) => return Ok(present),
            _ => {}
        }
    }
}
