//! `BrokerBacklog`: what the broker says it holds for its persistent
//! sessions, where it says it: messages waiting that no ingestor has taken
//! yet, which the ingestor's own lag cannot count until they arrive.
//!
//! Mosquitto publishes, every `sys_interval` seconds, how many messages its
//! store holds (`$SYS/broker/store/messages/count`: each message once,
//! however many sessions it is queued for, plus the retained ones) and how
//! many are retained (`$SYS/broker/retained messages/count`); the
//! difference is what waits in persistent sessions: the ingestors' group,
//! and any other durable subscriber's (an alerter's, other deployments' on
//! a shared broker). It is broker-wide: MQTT has no per-subscription
//! figure, and brokers that have one (EMQX) export it through their own
//! metrics (docs/SCALING.md). Brokers that publish neither topic, or an
//! ACL that withholds them, leave the gauge unset.
//!
//! A connection of its own (clean session, QoS 0) so that these messages
//! never mix with readings, which are acknowledged only after commit.

use crate::metrics::IngestMetrics;
use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, Event, Incoming, QoS, SubscribeReasonCode};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Messages in Mosquitto's store, queued and retained.
const STORED_TOPIC: &str = "$SYS/broker/store/messages/count";
/// Retained messages in Mosquitto's store.
const RETAINED_TOPIC: &str = "$SYS/broker/retained messages/count";

const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// The two counts as last published.
#[derive(Debug, Default)]
struct Counts {
    stored: Option<u64>,
    retained: Option<u64>,
}

impl Counts {
    /// Records one `$SYS` message; returns the messages queued when both
    /// counts are known.
    fn update(&mut self, topic: &str, payload: &[u8]) -> Option<u64> {
        let value = std::str::from_utf8(payload)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        match topic {
            STORED_TOPIC => self.stored = Some(value),
            RETAINED_TOPIC => self.retained = Some(value),
            _ => return None,
        }
        Some(self.stored?.saturating_sub(self.retained?))
    }
}

/// Follows the broker's counts until `stop`, setting
/// `datastream_ingest_broker_queued_messages`.
pub(crate) async fn follow_broker_backlog(
    mqtt: MqttUrl,
    client_id: String,
    metrics: IngestMetrics,
    stop: CancellationToken,
) {
    let mut options = datastream_mqtt::client_options(&mqtt, &format!("{client_id}-backlog"));
    options
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    let mut counts = Counts::default();
    let mut delay = Duration::from_secs(1);
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                delay = Duration::from_secs(1);
                for topic in [STORED_TOPIC, RETAINED_TOPIC] {
                    if let Err(error) = client.try_subscribe(topic, QoS::AtMostOnce) {
                        tracing::debug!(%error, "could not queue a $SYS subscription");
                    }
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(ack)))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::info!(
                    "the broker refused $SYS counts; datastream_ingest_broker_queued_messages is not reported"
                );
                break;
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                if let Some(queued) = counts.update(&publish.topic, &publish.payload) {
                    metrics.broker_queued(queued);
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "broker backlog connection lost; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        }
    }
    let _ = client.try_disconnect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_is_stored_minus_retained_once_both_are_known() {
        let mut counts = Counts::default();
        assert_eq!(counts.update(STORED_TOPIC, b"353"), None);
        assert_eq!(counts.update(RETAINED_TOPIC, b"53"), Some(300));
        assert_eq!(counts.update(STORED_TOPIC, b"60"), Some(7));
    }

    #[test]
    fn a_count_that_is_not_a_number_or_below_the_retained_is_no_backlog() {
        let mut counts = Counts::default();
        assert_eq!(counts.update(STORED_TOPIC, b"many"), None);
        counts.update(RETAINED_TOPIC, b"10");
        assert_eq!(counts.update(STORED_TOPIC, b"4"), Some(0));
    }
}
