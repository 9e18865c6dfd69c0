//! Ingest metrics, recorded through the `metrics` facade; whoever installs a
//! recorder (the API's Prometheus exporter) publishes them.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

/// Handles for the ingest metrics named in DESIGN.md.
#[derive(Debug, Clone, Default)]
pub struct IngestMetrics;

impl IngestMetrics {
    /// Counts a committed batch.
    pub fn committed(&self, inserted: u64, duplicate: u64, batch_size: usize, took: Duration) {
        counter!("datastream_ingest_readings_total", "outcome" => "inserted").increment(inserted);
        counter!("datastream_ingest_readings_total", "outcome" => "duplicate").increment(duplicate);
        histogram!("datastream_ingest_batch_size").record(batch_size as f64);
        histogram!("datastream_ingest_commit_seconds").record(took.as_secs_f64());
    }

    /// The size the open batch fills to (`batch_size.rs`): the live size,
    /// or more while a backlog drains.
    pub fn batch_target(&self, readings: usize) {
        gauge!("datastream_ingest_batch_target_readings").set(readings as f64);
    }

    /// Counts a dead-lettered message (as one, whatever it held).
    pub fn dead_letter(&self) {
        counter!("datastream_ingest_readings_total", "outcome" => "dead_letter").increment(1);
    }

    /// Counts a dead letter that could not be published (its message is
    /// acked anyway).
    pub fn dead_letter_unpublished(&self) {
        counter!("datastream_ingest_dead_letters_unpublished_total").increment(1);
    }

    /// Counts a failed commit attempt.
    pub fn commit_failed(&self) {
        counter!("datastream_ingest_commit_failures_total").increment(1);
    }

    /// Counts a lost broker connection.
    pub fn reconnect(&self) {
        counter!("datastream_ingest_mqtt_reconnects_total").increment(1);
    }

    /// How long the oldest message received and not yet committed has
    /// waited in this ingestor.
    pub fn oldest_unacked(&self, age: Duration) {
        gauge!("datastream_ingest_oldest_unacked_seconds").set(age.as_secs_f64());
    }

    /// How far behind the ingestor is (`lag.rs`): the metric to scale on.
    pub fn lag(&self, lag: Duration) {
        gauge!("datastream_ingest_lag_seconds").set(lag.as_secs_f64());
    }

    /// Messages the broker holds for its persistent sessions, as it last
    /// reported (`broker_backlog.rs`).
    pub fn broker_queued(&self, messages: u64) {
        gauge!("datastream_ingest_broker_queued_messages").set(messages as f64);
    }

    /// Readings received and held in memory, waiting for a commit.
    pub fn backlog(&self, readings: u64) {
        gauge!("datastream_ingest_backlog_readings").set(readings as f64);
    }

    /// Messages received and not yet acknowledged, and acks queued in the
    /// MQTT client but not yet written to the broker.
    pub fn unacked(&self, messages: usize, acks_pending: usize) {
        gauge!("datastream_ingest_unacked_messages").set(messages as f64);
        gauge!("datastream_ingest_acks_pending").set(acks_pending as f64);
    }
}
