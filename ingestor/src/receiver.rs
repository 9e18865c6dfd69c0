//! The MQTT side of the ingestor: keeps the connection alive, (re)subscribes
//! to the shared group, decodes messages and hands them to the writer.
//!
//! This task is the only one that polls the rumqttc event loop, and it
//! never waits on anything else: pings, acks and dead letters must keep
//! flowing while the writer waits on the database, or the writer's acks
//! could deadlock against a receiver stuck on a full channel. The channel to
//! the writer is therefore unbounded; what bounds it is the broker's
//! in-flight window (QoS 1 messages sent but not yet acked), which the
//! broker enforces per client.

use crate::delivery::{Content, Delivery};
use crate::metrics::IngestMetrics;
use chrono::Utc;
use datastream_schema::{decode_message, topic::shared_readings_filter, DecodeLimits};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, Outgoing, QoS};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

pub(crate) struct Receiver {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub group: String,
    pub limits: DecodeLimits,
    pub deliveries: mpsc::UnboundedSender<Delivery>,
    pub metrics: IngestMetrics,
    /// True while subscribed to the shared group.
    pub subscribed: watch::Sender<bool>,
}

impl Receiver {
    /// Runs until the writer has disconnected the client. After `stop` is
    /// cancelled, new messages are no longer forwarded (they stay unacked,
    /// so the broker redelivers them), but polling continues so that the
    /// writer's last acks and the disconnect reach the broker.
    pub async fn run(mut self, stop: CancellationToken) {
        let filter = shared_readings_filter(&self.group);
        let mut connected = false;
        let mut reconnect_delay = Duration::from_millis(100);
        loop {
            let event = self.eventloop.poll().await;
            match event {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    tracing::info!(
                        session_present = ack.session_present,
                        filter = %filter,
                        "ingestor connected to MQTT broker"
                    );
                    connected = true;
                    reconnect_delay = Duration::from_millis(100);
                    // Subscribing again is harmless when the session kept the
                    // subscription, and required when the broker forgot it.
                    if let Err(error) = self.client.try_subscribe(&filter, QoS::AtLeastOnce) {
                        tracing::error!(%error, "could not queue the subscription");
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    self.subscribed.send_replace(true);
                }
                Ok(Event::Incoming(Incoming::Publish(publish))) => {
                    if stop.is_cancelled() {
                        continue;
                    }
                    let delivery = self.decode(publish);
                    if self.deliveries.send(delivery).is_err() {
                        // The writer has gone: nothing more can be acked.
                        return;
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(error) => {
                    if stop.is_cancelled() && matches!(error, ConnectionError::RequestsDone) {
                        return;
                    }
                    if connected {
                        tracing::warn!(%error, "lost the MQTT broker; reconnecting");
                    } else {
                        tracing::debug!(%error, "MQTT broker still unreachable");
                    }
                    connected = false;
                    self.subscribed.send_replace(false);
                    self.metrics.reconnect();
                    if stop.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(reconnect_delay).await;
                    reconnect_delay = (reconnect_delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        }
    }

    fn decode(&self, mut publish: rumqttc::Publish) -> Delivery {
        let received = Instant::now();
        let payload = std::mem::take(&mut publish.payload);
        let content = match decode_message(&publish.topic, &payload, &self.limits, Utc::now()) {
            Ok(readings) => Content::Readings(readings),
            Err(reason) => Content::Rejected { reason, payload },
        };
        Delivery {
            ack: publish,
            received,
            content,
        }
    }
}
