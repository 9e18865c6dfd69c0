//! The live feed: a plain subscription to `sensors/#` and
//! `datastream/alerts/#` (its own clean session, QoS 0, outside any shared
//! group) whose valid readings and alert notifications go to callbacks —
//! an API process's live streams.
//!
//! It stores nothing and acks nothing, so it can never hold back or lose
//! what the ingestors store: a reading it misses (a reconnect, a full
//! client buffer) is still in the database, where a stream that reconnects
//! with `Last-Event-ID` reads it. Invalid messages are skipped here; the
//! ingestors dead-letter them.

use chrono::Utc;
use datastream_domain::alert::{AlertNotice, ALERTS_FILTER};
use datastream_domain::{decode_message, DecodeLimits, MqttUrl, Reading};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The topics a feed watches.
const FILTER: &str = "sensors/#";
/// Wait between reconnection attempts.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// A live feed's connection settings.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    /// The broker, credentials included.
    pub mqtt: MqttUrl,
    /// Its MQTT client id (unique per process).
    pub client_id: String,
    /// What a message must satisfy to be passed on.
    pub limits: DecodeLimits,
}

impl LiveFeed {
    /// Passes every valid reading to `on_reading` and every alert
    /// notification to `on_alert` (not the retained states a subscription
    /// starts with: a stream reads those from the store), reconnecting
    /// after failures (logged), until `stop`.
    pub async fn run(
        self,
        on_reading: impl Fn(Reading) + Send,
        on_alert: impl Fn(AlertNotice) + Send,
        stop: CancellationToken,
    ) {
        let mut options = datastream_mqtt::client_options(&self.mqtt, &self.client_id);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(15))
            .set_max_packet_size(crate::MAX_INCOMING_PACKET, crate::MAX_OUTGOING_PACKET);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        tracing::info!(mqtt = %self.mqtt, client_id = %self.client_id, "live feed starting");
        let mut connected = false;
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // A clean session forgets subscriptions: subscribe on
                    // every connection.
                    for filter in [FILTER, ALERTS_FILTER] {
                        if let Err(error) = client.try_subscribe(filter, QoS::AtMostOnce) {
                            tracing::warn!(%error, filter, "live feed could not subscribe");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if !connected {
                        tracing::info!("live feed subscribed");
                    }
                    connected = true;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.starts_with("datastream/") => {
                    if !p.retain {
                        if let Ok(notice) = serde_json::from_slice::<AlertNotice>(&p.payload) {
                            on_alert(notice);
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(readings) =
                        decode_message(&p.topic, &p.payload, &self.limits, Utc::now())
                    {
                        readings.into_iter().for_each(&on_reading);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    if connected {
                        tracing::warn!(%error, "live feed lost the broker; reconnecting");
                        connected = false;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                }
            }
        }
        let _ = client.try_disconnect();
    }
}
