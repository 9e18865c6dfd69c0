//! The MQTT side of the ingestor: keeps the connection alive, (re)subscribes
//! to the shared group, decodes messages and hands them to the writer.
//!
//! This task is the only one that polls the rumqttc event loop. It never
//! blocks on the writer: the channel between them is unbounded, and what
//! bounds it is the number of unacked messages, capped twice: by the
//! broker's per-client in-flight window, and by `max_backlog` here — at the
//! cap the receiver stops polling, and the broker keeps the rest.
//!
//! Acks go out a batch at a time: the writer queues a batch's first ack in
//! the MQTT client, a doorbell that wakes the event loop; when it has gone
//! out, this task writes the rest of the batch straight to the connection
//! with one flush (`write_acks`). rumqttc writes queued requests only while
//! its event loop is polled, so the receiver stops polling only when the
//! backlog is full *and* no doorbell waits; stopping with one queued would
//! deadlock (the receiver waiting for acks that need a poll to go out).

use crate::dead_letter::DeadLetter;
use crate::delivery::{Content, Delivery};
use crate::lag::IngestLag;
use crate::metrics::IngestMetrics;
use crate::status::AckLedger;
use chrono::Utc;
use datastream_domain::{decode_message, DecodeLimits};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, Outgoing, Packet, PubAck, QoS,
    SubAck, SubscribeReasonCode,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest wait between reconnection attempts. Short on purpose: after a
/// broker restart, brokers that do not persist shared subscriptions
/// (Mosquitto 2.0) drop what is published until an ingestor resubscribes.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// How long a refused subscription waits before it is asked for again (an
/// operator may have fixed the broker's ACL meanwhile).
const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// How long a granted subscription may stay silent before the log says
/// that the broker may be filtering everything out.
const QUIET_WARNING: Duration = Duration::from_secs(60);

/// The connection's state between events.
struct Link {
    connected: bool,
    reconnect_delay: Duration,
    /// Intake paused for a full backlog (for the log).
    paused: bool,
    /// When the broker last granted the subscription, until the first
    /// message arrives or the silence has been reported.
    quiet_since: Option<Instant>,
    /// When the broker last refused the subscription.
    refused_at: Option<Instant>,
}

/// Whether the receiver carries on after an event.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

pub(crate) struct Receiver {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    /// `$share/{group}/sensors/#`, or `sensors/#` without a group.
    pub filter: String,
    pub limits: DecodeLimits,
    pub deliveries: mpsc::UnboundedSender<Delivery>,
    pub metrics: IngestMetrics,
    pub ledger: Arc<AckLedger>,
    /// Counts the readings decoded, for the backlog gauge.
    pub lag: Arc<IngestLag>,
    pub max_backlog: usize,
    /// Who the ingestor logs in as, for messages about permissions.
    pub login: String,
}

impl Receiver {
    /// Runs until the writer has disconnected the client. After `stop` is
    /// cancelled (intake closed: at shutdown, or once a group is left),
    /// new messages are no longer forwarded (they stay unacked, so the
    /// broker redelivers them), but polling continues so that the writer's
    /// last acks and the disconnect reach the broker.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut link = Link {
            connected: false,
            reconnect_delay: FIRST_RECONNECT_DELAY,
            paused: false,
            quiet_since: None,
            refused_at: None,
        };
        loop {
            if self.backlog_full(&stop) {
                self.pause(&mut link, &stop).await;
                continue;
            }
            // Resume (for the log) only with some room, so a backlog hovering
            // at its limit does not log every batch.
            if link.paused && self.ledger.unacked() < self.max_backlog - self.max_backlog / 10 {
                tracing::info!("backlog below its limit; resuming intake");
                link.paused = false;
            }
            let event = self.eventloop.poll().await;
            if self.handle(event, &mut link, &stop).await == Flow::Stop {
                return;
            }
        }
    }

    /// Whether intake must pause: the backlog is at its bound and no ack
    /// waits to go out (stopping with one queued would deadlock, see the
    /// module docs).
    fn backlog_full(&self, stop: &CancellationToken) -> bool {
        self.ledger.unacked() >= self.max_backlog
            && self.ledger.acks_pending() == 0
            && !stop.is_cancelled()
    }

    /// Waits, not polling, until the writer has acked some of the backlog.
    async fn pause(&mut self, link: &mut Link, stop: &CancellationToken) {
        if !link.paused {
            tracing::warn!(
                unacked = self.ledger.unacked(),
                "backlog full; pausing intake until the database catches up"
            );
            link.paused = true;
        }
        tokio::select! {
            _ = self.ledger.wait_for_writer(self.max_backlog) => {}
            _ = stop.cancelled() => {}
        }
    }

    /// Handles one event of the connection.
    async fn handle(
        &mut self,
        event: Result<Event, ConnectionError>,
        link: &mut Link,
        stop: &CancellationToken,
    ) -> Flow {
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                tracing::info!(
                    session_present = ack.session_present,
                    filter = %self.filter,
                    "ingestor connected to MQTT broker"
                );
                link.connected = true;
                link.reconnect_delay = FIRST_RECONNECT_DELAY;
                if self.ledger.leaving() {
                    // Leaving the group (group_exit.rs): a reconnection must
                    // not join it again.
                    if let Err(error) = self.client.try_unsubscribe(&self.filter) {
                        tracing::error!(%error, "could not queue the unsubscription");
                    }
                } else if let Err(error) = self.client.try_subscribe(&self.filter, QoS::AtLeastOnce)
                {
                    // Subscribing again is harmless when the session kept the
                    // subscription, and required when the broker forgot it.
                    tracing::error!(%error, "could not queue the subscription");
                }
            }
            Ok(Event::Incoming(Incoming::UnsubAck(_))) => self.ledger.set_left(),
            Ok(Event::Incoming(Incoming::SubAck(ack))) => self.subscription_answered(&ack, link),
            Ok(Event::Incoming(Incoming::Publish(publish))) if !stop.is_cancelled() => {
                link.quiet_since = None;
                return self.forward(publish);
            }
            Ok(Event::Incoming(Incoming::PingResp)) => self.check_subscription(link),
            Ok(Event::Outgoing(Outgoing::PubAck(pkid))) => {
                if let Some(rest) = self.ledger.ack_sent(pkid) {
                    self.write_acks(rest).await;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return Flow::Stop,
            Ok(_) => {}
            Err(error) => return self.lost(error, link, stop).await,
        }
        Flow::Continue
    }

    /// The broker answered the subscription: granted, or refused (a
    /// failure code, as EMQX, HiveMQ and others answer a subscription their
    /// ACL denies).
    fn subscription_answered(&mut self, ack: &SubAck, link: &mut Link) {
        if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
            let reason = format!(
                "the broker refused the subscription to {} (SUBACK failure): {} may not read it",
                self.filter, self.login
            );
            tracing::error!(filter = %self.filter, "{reason}; asking again every {} s", REFUSED_RETRY.as_secs());
            self.ledger.set_refused(reason);
            link.refused_at = Some(Instant::now());
            link.quiet_since = None;
        } else {
            self.ledger.set_subscribed(true);
            link.refused_at = None;
            link.quiet_since = Some(Instant::now());
        }
    }

    /// On every keep-alive: asks again for a refused subscription, and
    /// reports a granted one that has delivered nothing for a long time
    /// (Mosquitto grants a subscription whose messages its ACL then
    /// withholds, so silence is all an ingestor sees of that).
    fn check_subscription(&mut self, link: &mut Link) {
        if link
            .refused_at
            .is_some_and(|at| at.elapsed() >= REFUSED_RETRY)
        {
            link.refused_at = Some(Instant::now());
            if let Err(error) = self.client.try_subscribe(&self.filter, QoS::AtLeastOnce) {
                tracing::error!(%error, "could not queue the subscription");
            }
        }
        if link
            .quiet_since
            .is_some_and(|at| at.elapsed() >= QUIET_WARNING)
        {
            link.quiet_since = None;
            tracing::warn!(
                filter = %self.filter,
                "no message in {} s since subscribing; if readings are being published, check that {} may read sensors/# (Mosquitto accepts the subscription and then withholds what its ACL denies)",
                QUIET_WARNING.as_secs(),
                self.login
            );
        }
    }

    /// Decodes a message and hands it to the writer.
    fn forward(&mut self, publish: rumqttc::Publish) -> Flow {
        let delivery = self.decode(publish);
        if let Content::Readings(readings) = &delivery.content {
            self.lag.received(readings.len());
        }
        // The unacked gauges are published once a second (gauges.rs).
        self.ledger.received();
        if self.deliveries.send(delivery).is_err() {
            // The writer has gone: nothing more can be acked.
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// The connection failed: wait (growing to a second) before rumqttc's
    /// next poll reconnects, unless stopping.
    async fn lost(
        &mut self,
        error: ConnectionError,
        link: &mut Link,
        stop: &CancellationToken,
    ) -> Flow {
        if stop.is_cancelled() && matches!(error, ConnectionError::RequestsDone) {
            return Flow::Stop;
        }
        if link.connected {
            tracing::warn!(%error, "lost the MQTT broker; reconnecting");
        } else {
            tracing::debug!(%error, "MQTT broker still unreachable");
        }
        link.connected = false;
        self.ledger.set_subscribed(false);
        self.metrics.reconnect();
        if stop.is_cancelled() {
            return Flow::Stop;
        }
        tokio::time::sleep(link.reconnect_delay).await;
        link.reconnect_delay = (link.reconnect_delay * 2).min(MAX_RECONNECT_DELAY);
        Flow::Continue
    }

    /// Writes the rest of an ack batch whose doorbell just went out, with
    /// one flush. Without a connection they are dropped: the broker
    /// redelivers those messages and the unique key absorbs them.
    async fn write_acks(&mut self, pkids: Vec<u16>) {
        if pkids.is_empty() {
            return;
        }
        let Some(network) = self.eventloop.network.as_mut() else {
            tracing::debug!(acks = pkids.len(), "no connection to write acks on");
            return;
        };
        for pkid in pkids {
            if let Err(error) = network.write(Packet::PubAck(PubAck::new(pkid))).await {
                tracing::debug!(%error, "writing acks failed; the broker will redeliver");
                return;
            }
        }
        if let Err(error) = network.flush().await {
            tracing::debug!(%error, "flushing acks failed; the broker will redeliver");
        }
    }

    fn decode(&self, mut publish: rumqttc::Publish) -> Delivery {
        let received = Instant::now();
        let payload = std::mem::take(&mut publish.payload);
        let content = match decode_message(&publish.topic, &payload, &self.limits, Utc::now()) {
            Ok(readings) => Content::Readings(readings),
            Err(reason) => Content::Rejected {
                letter: DeadLetter::new(&publish.topic, &payload, &reason.to_string()),
                reason,
            },
        };
        Delivery {
            ack: publish,
            received,
            content,
        }
    }
}
