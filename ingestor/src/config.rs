//! `IngestConfig`: everything an ingestor needs to know.

use datastream_domain::{DecodeLimits, MqttUrl, RetentionPolicy};
use std::time::Duration;

/// `INGEST_DRAIN_BATCH_MAX` unless set: past it the drain rate stopped
/// rising on a 2-core machine with MariaDB while the ingestor's memory kept
/// growing (docs/PERFORMANCE.md, "Draining a backlog").
pub const DEFAULT_DRAIN_BATCH_MAX: usize = 4_000;

/// Settings of one ingestor.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The broker.
    pub mqtt: MqttUrl,
    /// AckLedger-subscription group (`INGEST_GROUP`); `None` subscribes to
    /// `sensors/#` directly, for a single ingestor on a broker whose shared
    /// subscriptions cannot be trusted (the embedded one; see DECISIONS.md).
    pub group: Option<String>,
    /// MQTT client id (`INGEST_CLIENT_ID`); the persistent session is keyed
    /// by it, so a restart with the same id resumes where it stopped.
    pub client_id: String,
    /// Flush when the open batch holds this many readings (`INGEST_BATCH_MAX`).
    pub batch_max: usize,
    /// Largest batch while a backlog drains (`INGEST_DRAIN_BATCH_MAX`;
    /// `batch_size.rs`): batches grow from `batch_max` towards it while the
    /// database is the limit. It is capped at `max_backlog` divided by the
    /// commits in flight plus one (a third on MySQL, where two batches
    /// commit at once; a half on SQLite), so that the batches committing
    /// and the one filling never pause intake.
    pub drain_batch_max: usize,
    /// Flush when the oldest reading in the open batch is this old
    /// (`INGEST_FLUSH_MS`).
    pub flush_interval: Duration,
    /// Most messages held unacknowledged in memory (`INGEST_MAX_BACKLOG`);
    /// at the limit the ingestor stops taking messages and the broker keeps
    /// them. About 300 bytes each.
    pub max_backlog: usize,
    /// On stop, leave the shared group and end the session once it is
    /// drained, instead of keeping it for a restart
    /// (`INGEST_LEAVE_GROUP_ON_STOP`; `group_exit.rs`).
    pub leave_group_on_stop: bool,
    /// Payload and timestamp limits for decoding.
    pub decode_limits: DecodeLimits,
    /// How long readings and rollups are kept (`RETENTION`,
    /// `ROLLUP_RETENTION`); `None` keeps everything.
    pub retention: Option<RetentionPolicy>,
}

impl IngestConfig {
    /// Defaults for everything but the broker and the client id.
    pub fn new(mqtt: MqttUrl, client_id: impl Into<String>) -> Self {
        Self {
            mqtt,
            group: Some("ingestors".into()),
            client_id: client_id.into(),
            batch_max: 1000,
            drain_batch_max: DEFAULT_DRAIN_BATCH_MAX,
            flush_interval: Duration::from_millis(100),
            max_backlog: 50_000,
            leave_group_on_stop: false,
            decode_limits: DecodeLimits::default(),
            retention: None,
        }
    }
}
