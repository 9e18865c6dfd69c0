//! `Intake`: the alerter's subscription to every reading, on a persistent
//! session of its own, with manual acknowledgements.
//!
//! Only the lease holder connects, always with the deployment's one
//! alerter client id: a new holder resumes the session (and what the
//! broker queued while no alerter was connected), and its connect takes
//! the session from a holder that stalled (an MQTT broker closes the older
//! connection of a client id). A reading is acknowledged by the evaluator
//! only after what it changed is committed.

use chrono::{DateTime, Utc};
use datastream_domain::topic::READINGS_FILTER;
use datastream_domain::{decode_message, DecodeLimits, MqttUrl, Reading};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Requests queued in the client: room for an ack per message in flight.
const REQUEST_QUEUE: usize = 65_536;

/// One message, decoded, with when it arrived.
#[derive(Debug)]
pub struct Arrival {
    /// Its readings; empty when it did not decode (the ingestor
    /// dead-letters those; the alerter only acknowledges them).
    pub readings: Vec<Reading>,
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// The message, to acknowledge.
    pub publish: Publish,
}

/// The subscription: messages come out of `arrivals`; acks go in through
/// `client`.
pub struct Intake {
    /// Acknowledges messages.
    pub client: AsyncClient,
    /// Messages as they arrive.
    pub arrivals: mpsc::UnboundedReceiver<Arrival>,
    driver: JoinHandle<()>,
}

impl Intake {
    /// Connects as `client_id` (persistent session) and subscribes to every
    /// reading.
    pub fn open(mqtt: &MqttUrl, client_id: &str, limits: DecodeLimits) -> Self {
        let mut options = datastream_mqtt::client_options(mqtt, client_id);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(15))
            .set_max_packet_size(1024 * 1024, 256 * 1024);
        let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        let (tx, arrivals) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(eventloop, client.clone(), tx, limits));
        Self {
            client,
            arrivals,
            driver,
        }
    }

    /// Disconnects (what is unacknowledged stays queued for the next
    /// holder) and waits, at most 2 s, for the connection to close.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let mut driver = self.driver;
        if tokio::time::timeout(Duration::from_secs(2), &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }
}

async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    arrivals: mpsc::UnboundedSender<Arrival>,
    limits: DecodeLimits,
) {
    let mut connected = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected = true;
                tracing::info!(
                    session_present = ack.session_present,
                    "alerter connected to MQTT broker"
                );
                // Subscribing again is harmless with a kept session.
                if let Err(error) = client.try_subscribe(READINGS_FILTER, QoS::AtLeastOnce) {
                    tracing::error!(%error, "could not queue the alerter's subscription");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let at = Utc::now();
                let readings = decode_message(&publish.topic, &publish.payload, &limits, at)
                    .unwrap_or_default();
                if arrivals
                    .send(Arrival {
                        readings,
                        at,
                        publish,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                return;
            }
            Ok(_) => {}
            Err(error) => {
                if std::mem::replace(&mut connected, false) {
                    tracing::warn!(%error, "alerter lost the MQTT broker; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
