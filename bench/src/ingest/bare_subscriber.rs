//! `BareSubscriber`: the broker alone. A persistent session that subscribes
//! the way an ingestor does (QoS 1, a shared group of its own), leaves while
//! a backlog is queued for it, then comes back and takes every message,
//! acking each at once and storing nothing: how fast the broker hands a
//! queued session its messages, the ceiling any drain meets.

use anyhow::{bail, Result};
use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

/// A subscriber whose session outlives its connections.
pub(super) struct BareSubscriber {
    mqtt: MqttUrl,
    client_id: String,
    filter: String,
}

impl BareSubscriber {
    pub(super) fn new(mqtt: &MqttUrl, client_id: &str, filter: &str) -> Self {
        Self {
            mqtt: mqtt.clone(),
            client_id: client_id.to_owned(),
            filter: filter.to_owned(),
        }
    }

    fn connect(&self) -> (AsyncClient, EventLoop) {
        let mut options = MqttOptions::new(&self.client_id, self.mqtt.host(), self.mqtt.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_inflight(1_000)
            .set_max_packet_size(2 * 1024 * 1024, 64 * 1024);
        if let Some((user, pass)) = self.mqtt.credentials() {
            options.set_credentials(user, pass);
        }
        AsyncClient::new(options, 1_000)
    }

    /// Subscribes, then disconnects: the broker now queues for the session.
    pub(super) async fn subscribe_and_leave(&self) -> Result<()> {
        let (client, mut eventloop) = self.connect();
        client.subscribe(&self.filter, QoS::AtLeastOnce).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("the bare subscriber could not subscribe: {e}"),
                Err(_) => bail!("the broker did not acknowledge the subscription"),
            }
            if Instant::now() > deadline {
                bail!("the broker did not acknowledge the subscription");
            }
        }
        client.disconnect().await?;
        while !matches!(
            eventloop.poll().await,
            Err(_) | Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))
        ) {}
        Ok(())
    }

    /// Comes back and takes messages until `count` arrived or none came
    /// for 10 s; returns how many arrived. Ends the session, leaving nothing
    /// on the broker.
    pub(super) async fn drain(&self, count: usize) -> Result<usize> {
        let (client, mut eventloop) = self.connect();
        let mut received = 0;
        while received < count {
            match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => received += 1,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("the bare subscriber lost its connection: {e}"),
                Err(_) => break,
            }
        }
        // Leave nothing queued for a session nobody will resume.
        client.unsubscribe(&self.filter).await?;
        client.disconnect().await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
        // The broker keeps an empty session until told otherwise.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            datastream_ingestor::end_session(&self.mqtt, &self.client_id),
        )
        .await;
        Ok(received)
    }
}
