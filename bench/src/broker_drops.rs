//! The broker's own count of messages it dropped, read from Mosquitto's
//! `$SYS` tree, so that `bench ingest` can say when readings it counts as
//! lost were dropped by the broker (its queue limit, `max_queued_messages`)
//! rather than by datastream.
//!
//! Mosquitto publishes `$SYS` topics every `sys_interval` (10 s by default),
//! retained, and a counter only once it has changed: a broker that never
//! dropped anything has no `dropped` topic, and `uptime`, which changes
//! every interval, shows that an update has happened. Brokers without a
//! `$SYS` tree (the embedded one, most others) give no figure, and neither
//! does a Mosquitto whose ACL hides the counter (the project's lets anyone
//! read it).

use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const DROPPED: &str = "$SYS/broker/publish/messages/dropped";
const UPTIME: &str = "$SYS/broker/uptime";
/// Longest wait for the retained `$SYS` values after subscribing.
const FIRST_UPDATE: Duration = Duration::from_secs(3);
/// Longest wait for the next periodic update: Mosquitto's default
/// `sys_interval` of 10 s, and a margin.
const NEXT_UPDATE: Duration = Duration::from_secs(12);

/// What has been read so far.
#[derive(Debug, Clone, Copy, Default)]
struct SysState {
    /// Messages the broker dropped since it started, once it has said.
    dropped: Option<u64>,
    /// `$SYS` updates seen (uptime messages).
    updates: u64,
}

/// Follows the broker's dropped-message counter for the benchmark's
/// lifetime; the subscription ends when this is dropped.
pub struct BrokerDrops {
    state: watch::Receiver<SysState>,
    client: AsyncClient,
    task: JoinHandle<()>,
}

/// The counter's value at some moment, to count drops since.
#[derive(Debug, Clone, Copy)]
pub struct DropMark(Option<u64>);

impl BrokerDrops {
    /// Subscribes; `None` when the broker publishes no `$SYS` tree, or
    /// refuses the counter (an ACL), within a few seconds.
    pub async fn follow(mqtt: &MqttUrl, client_id: &str) -> Option<Self> {
        let mut options = MqttOptions::new(client_id, mqtt.host(), mqtt.port());
        options.set_keep_alive(Duration::from_secs(30));
        if let Some((user, pass)) = mqtt.credentials() {
            options.set_credentials(user, pass);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        // Two subscriptions, in this order: Mosquitto answers each with its
        // SUBACK and retained messages before it reads the next, so once
        // `uptime`'s retained value is here, `dropped`'s (if any) came first.
        client.subscribe(DROPPED, QoS::AtMostOnce).await.ok()?;
        client.subscribe(UPTIME, QoS::AtMostOnce).await.ok()?;
        let (tx, rx) = watch::channel(SysState::default());
        let setup = async {
            let mut counter_granted = None;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(ack))) if counter_granted.is_none() => {
                        counter_granted = Some(
                            ack.return_codes
                                .iter()
                                .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
                        );
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        record(&tx, &p);
                        if tx.borrow().updates > 0 {
                            return counter_granted == Some(true);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        };
        if !tokio::time::timeout(FIRST_UPDATE, setup)
            .await
            .unwrap_or(false)
        {
            return None;
        }
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => record(&tx, &p),
                    Ok(_) => {}
                    // rumqttc reconnects on the next poll; a figure that
                    // cannot be read is left out of the report.
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        });
        Some(Self {
            state: rx,
            client,
            task,
        })
    }

    /// The counter as last published.
    pub fn mark(&self) -> DropMark {
        DropMark(self.state.borrow().dropped)
    }

    /// Messages dropped since `mark`, after waiting until a whole `$SYS`
    /// update made after now has been read (two to three of the broker's
    /// `sys_interval`s, 20–30 s by default) so that the count covers
    /// everything up to now. Counts every client's drops, not only the
    /// benchmark's.
    /// `None` while the counter has never been seen: the broker has
    /// dropped nothing since it started, or an ACL hides the topic (Mosquitto
    /// grants the subscription either way), and the two look alike.
    pub async fn since(&mut self, mark: DropMark) -> Option<u64> {
        // The first update to arrive may have been made just before the
        // caller's last messages were handled, and still be on its way; the
        // second was made an interval later. Mosquitto sends `uptime` first
        // in an update and `dropped` (only when it changed) after it, so
        // the second update has been read whole once the third's `uptime`
        // is here. Waiting for one update, as this once did, could read
        // `dropped` before it arrived (the unit test below failed once
        // under load, which fits that).
        let seen = self.state.borrow_and_update().updates;
        let next = tokio::time::timeout(
            3 * NEXT_UPDATE,
            self.state.wait_for(|s| s.updates >= seen + 3),
        )
        .await;
        match next {
            Ok(Ok(state)) => state
                .dropped
                .map(|now| now.saturating_sub(mark.0.unwrap_or(0))),
            _ => None,
        }
    }
}

impl Drop for BrokerDrops {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

/// Takes in one `$SYS` message.
fn record(tx: &watch::Sender<SysState>, p: &Publish) {
    tx.send_modify(|s| {
        if p.topic == DROPPED {
            if let Some(n) = parse_count(&p.payload) {
                s.dropped = Some(n);
            }
        } else if p.topic == UPTIME {
            s.updates += 1;
        }
    });
}

/// A `$SYS` counter's payload: decimal digits.
fn parse_count(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_count, BrokerDrops};
    use datastream_domain::MqttUrl;
    use datastream_test_support::{publish_all_acked, OwnMosquitto};
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use std::time::Duration;

    /// Leaves a persistent session subscribed to `topic` behind, as a
    /// consumer that went away does.
    async fn abandoned_session(url: &str, topic: &str) {
        let mqtt = MqttUrl::parse(url).expect("an mqtt:// URL");
        let mut options = MqttOptions::new("gone-away", mqtt.host(), mqtt.port());
        options.set_clean_session(false);
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        loop {
            match eventloop.poll().await.expect("broker") {
                Event::Incoming(Packet::SubAck(_)) => break,
                _ => continue,
            }
        }
        client.disconnect().await.expect("disconnect");
        let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
    }

    #[tokio::test]
    async fn counts_what_a_full_queue_made_mosquitto_drop() {
        let Some(broker) =
            OwnMosquitto::start_with(&[("sys_interval", "1"), ("max_queued_messages", "5")])
        else {
            return;
        };
        let topic = "sensors/droptest/DROP/1";
        abandoned_session(&broker.url(), topic).await;
        // As the benchmark connects: anonymous, under the project's ACL.
        let url = MqttUrl::parse(&broker.url()).expect("an mqtt:// URL");
        let mut drops = BrokerDrops::follow(&url, "drop-counter")
            .await
            .expect("Mosquitto publishes its $SYS tree and the ACL lets anyone read the counter");
        let mark = drops.mark();

        let messages = (0..20)
            .map(|i| (topic.to_owned(), vec![b'0' + i % 10]))
            .collect();
        publish_all_acked(broker.publisher_url(), messages).await;

        assert_eq!(drops.since(mark).await, Some(15), "5 queued, 15 dropped");
    }

    #[tokio::test]
    async fn a_broker_without_a_sys_tree_gives_no_figure() {
        let broker = datastream_test_support::embedded_broker();
        let url = MqttUrl::parse(&broker.url()).expect("an mqtt:// URL");
        assert!(BrokerDrops::follow(&url, "drop-counter").await.is_none());
    }

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_count(b"980"), Some(980));
        assert_eq!(parse_count(b" 7\n"), Some(7));
        assert_eq!(parse_count(b"-1"), None);
        assert_eq!(parse_count(b"\xff"), None);
    }
}
