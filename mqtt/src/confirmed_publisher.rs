//! [`ConfirmedPublisher`]: publishes at QoS 1 on a connection of its own
//! and says when the broker has acknowledged each message (alert
//! notifications, readings arriving over gRPC).
//!
//! rumqttc reports a publish's packet id when it writes it
//! (`Outgoing::Publish`), in the order publishes were asked for, and the
//! broker's PUBACK names that id: a FIFO of waiting callers matches the
//! two. A lost connection fails every waiting caller (each decides
//! whether to try again: the alerter's outbox does, with the same
//! notification id; a gRPC client is told to resend) and is replaced by a fresh
//! client and event loop, so nothing of the old one is written later and
//! mismatched with a waiter.

use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

/// Publishes in flight at most.
const INFLIGHT: u16 = 500;
/// Requests queued in the client.
const REQUEST_QUEUE: usize = 4096;

type Answer = oneshot::Sender<Result<(), String>>;

/// The current connection's client and its waiting callers.
struct Shared {
    client: AsyncClient,
    /// Asked for, not yet written (in order).
    queued: VecDeque<Answer>,
    /// Written, waiting for the PUBACK of their packet id.
    sent: HashMap<u16, Answer>,
}

impl Shared {
    fn fail_all(&mut self, reason: &str) {
        for tx in self
            .queued
            .drain(..)
            .chain(self.sent.drain().map(|(_, tx)| tx))
        {
            let _ = tx.send(Err(reason.to_owned()));
        }
    }
}

/// A connection whose publishes are answered when the broker acknowledges.
pub struct ConfirmedPublisher {
    shared: Arc<Mutex<Shared>>,
    /// One per publish not yet answered, at most the client's request
    /// queue: a caller beyond it waits for room rather than failing.
    room: Semaphore,
    driver: JoinHandle<()>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConfirmedPublisher {
    /// Connects as `client_id` (clean session).
    pub fn open(mqtt: &MqttUrl, client_id: &str) -> Self {
        let mut options = crate::client_options(mqtt, client_id);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_inflight(INFLIGHT)
            .set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, eventloop) = AsyncClient::new(options.clone(), REQUEST_QUEUE);
        let shared = Arc::new(Mutex::new(Shared {
            client,
            queued: VecDeque::new(),
            sent: HashMap::new(),
        }));
        let driver = tokio::spawn(drive(eventloop, options, shared.clone()));
        Self {
            shared,
            room: Semaphore::new(REQUEST_QUEUE),
            driver,
        }
    }

    /// Publishes `payload` to `topic` at QoS 1 (`retain` as asked);
    /// returns when the broker has acknowledged it, or with why not.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), String> {
        let _room = self
            .room
            .acquire()
            .await
            .map_err(|_| "the publisher is closed".to_owned())?;
        let (tx, rx) = oneshot::channel();
        {
            // The waiter and the request under one lock: the order of
            // waiters is the order of requests.
            let mut shared = lock(&self.shared);
            shared
                .client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|e| format!("could not queue the publish: {e}"))?;
            shared.queued.push_back(tx);
        }
        rx.await
            .unwrap_or_else(|_| Err("the connection closed".into()))
    }

    /// Disconnects.
    pub async fn close(self) {
        let client = lock(&self.shared).client.clone();
        let _ = client.disconnect().await;
        let mut driver = self.driver;
        if tokio::time::timeout(Duration::from_secs(2), &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }
}

async fn drive(mut eventloop: EventLoop, options: MqttOptions, shared: Arc<Mutex<Shared>>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut s = lock(&shared);
                if let Some(tx) = s.queued.pop_front() {
                    s.sent.insert(pkid, tx);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(tx) = lock(&shared).sent.remove(&ack.pkid) {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(error) => {
                {
                    let mut s = lock(&shared);
                    s.fail_all(&format!("MQTT connection lost: {error}"));
                    let (client, fresh) = AsyncClient::new(options.clone(), REQUEST_QUEUE);
                    s.client = client;
                    eventloop = fresh;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
