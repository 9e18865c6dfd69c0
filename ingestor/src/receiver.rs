//! The MQTT side of the ingestor: keeps the connection alive, (re)subscribes
//! to the shared group, decodes messages and hands them to the writer.
//!
//! This task is the only one that polls the rumqttc event loop. It never
//! blocks on the writer: the channel between them is unbounded, and what
//! bounds it is the number of unacked messages, capped twice: by the
//! broker's per-client in-flight window, and by `max_backlog` here — at the
//! cap the receiver stops polling, and the broker keeps the rest.
//!
//! rumqttc writes acks only while its event loop is polled, and each poll
//! may read more messages as well. So the receiver stops polling only when
//! the backlog is full *and* every ack the writer queued has gone out;
//! while acks wait, it polls (reading at most what the broker's in-flight
//! window lets through). Stopping with acks still queued would deadlock:
//! the writer waits for room in the request queue, the receiver for acks.

use crate::delivery::{Content, Delivery};
use crate::metrics::IngestMetrics;
use crate::status::Shared;
use chrono::Utc;
use datastream_schema::{decode_message, DecodeLimits};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, Outgoing, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest wait between reconnection attempts. Short on purpose: after a
/// broker restart, brokers that do not persist shared subscriptions
/// (Mosquitto 2.0) drop what is published until an ingestor resubscribes.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub(crate) struct Receiver {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    /// `$share/{group}/sensors/#`, or `sensors/#` without a group.
    pub filter: String,
    pub limits: DecodeLimits,
    pub deliveries: mpsc::UnboundedSender<Delivery>,
    pub metrics: IngestMetrics,
    pub shared: Arc<Shared>,
    pub max_backlog: usize,
}

impl Receiver {
    /// Runs until the writer has disconnected the client. After `stop` is
    /// cancelled, new messages are no longer forwarded (they stay unacked,
    /// so the broker redelivers them), but polling continues so that the
    /// writer's last acks and the disconnect reach the broker.
    pub async fn run(mut self, stop: CancellationToken) {
        let filter = self.filter.clone();
        let mut connected = false;
        let mut reconnect_delay = Duration::from_millis(100);
        let mut paused = false;
        loop {
            if self.shared.unacked() >= self.max_backlog
                && self.shared.acks_pending() == 0
                && !stop.is_cancelled()
            {
                self.metrics
                    .unacked(self.shared.unacked(), self.shared.acks_pending());
                if !paused {
                    tracing::warn!(
                        unacked = self.shared.unacked(),
                        "backlog full; pausing intake until the database catches up"
                    );
                    paused = true;
                }
                tokio::select! {
                    _ = self.shared.wait_for_writer(self.max_backlog) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            // Resume (for the log) only with some room, so a backlog hovering
            // at its limit does not log every batch.
            if paused && self.shared.unacked() < self.max_backlog - self.max_backlog / 10 {
                tracing::info!("backlog below its limit; resuming intake");
                paused = false;
            }
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
                Ok(Event::Incoming(Incoming::SubAck(_))) => self.shared.set_subscribed(true),
                Ok(Event::Incoming(Incoming::Publish(publish))) => {
                    if stop.is_cancelled() {
                        continue;
                    }
                    let delivery = self.decode(publish);
                    let unacked = self.shared.received();
                    if unacked % 256 == 0 {
                        self.metrics.unacked(unacked, self.shared.acks_pending());
                    }
                    if self.deliveries.send(delivery).is_err() {
                        // The writer has gone: nothing more can be acked.
                        return;
                    }
                }
                Ok(Event::Outgoing(Outgoing::PubAck(_))) => self.shared.ack_sent(),
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
                    self.shared.set_subscribed(false);
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
