//! `Fleet`: the generators running in this process, sharing one MQTT
//! connection; and [`FleetConnection`], that connection's driver.

use crate::grpc_readings::{GrpcReadings, GrpcTarget};
use crate::reading_sink::ReadingSink;
use crate::runner::{CounterValues, RunningGenerator};
use crate::spec::GeneratorSpec;
use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Outgoing, Packet, Publish};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Readings queued in the client before a generator waits (and, if the
/// wait outlasts its schedule's catch-up, skips).
const REQUEST_QUEUE: usize = 4096;
/// Unacknowledged QoS 1 publishes in flight to the broker.
const INFLIGHT: u16 = 1000;

/// What the connection reports to whoever controls the fleet.
#[derive(Debug)]
pub enum ConnectionEvent {
    /// (Re)connected: subscriptions and retained state must be renewed.
    Connected,
    /// The connection dropped; it is being re-established.
    Disconnected,
    /// A subscription was acknowledged.
    Subscribed,
    /// A message arrived on a subscribed topic.
    Message(Publish),
}

/// An MQTT connection polled by its own task.
pub struct FleetConnection {
    /// Publishes and subscribes through the connection.
    pub client: AsyncClient,
    /// Connection events, for a control plane; [`None`] once taken.
    pub events: Option<mpsc::UnboundedReceiver<ConnectionEvent>>,
    driver: JoinHandle<()>,
}

impl FleetConnection {
    /// Connects as `client_id` (clean session) with an optional last will.
    /// Reconnects by itself, every second, until [`close`](Self::close).
    pub fn open(mqtt: &MqttUrl, client_id: &str, will: Option<LastWill>) -> Self {
        let mut options = datastream_mqtt::client_options(mqtt, client_id);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_inflight(INFLIGHT);
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some(will) = will {
            options.set_last_will(will);
        }
        let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(eventloop, tx, client_id.to_owned()));
        Self {
            client,
            events: Some(rx),
            driver,
        }
    }

    /// Flushes what is queued, disconnects cleanly (so no last will is
    /// sent) and waits, at most 5 s, for the driver to finish.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let mut driver = self.driver;
        if tokio::time::timeout(Duration::from_secs(5), &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }
}

/// Polls the event loop (which sends, receives acks and reconnects) until
/// the disconnect has gone out.
async fn drive(
    mut eventloop: EventLoop,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    client_id: String,
) {
    let mut connected = false;
    let mut lost_at_least_once = false;
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Every generator has a status connection: first connects
                // are debug, reconnects are news.
                if lost_at_least_once {
                    tracing::info!(client_id, "reconnected to MQTT broker");
                } else {
                    tracing::debug!(client_id, "connected to MQTT broker");
                }
                connected = true;
                Some(ConnectionEvent::Connected)
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => Some(ConnectionEvent::Subscribed),
            Ok(Event::Incoming(Packet::Publish(p))) => Some(ConnectionEvent::Message(p)),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                drain_until_closed(&mut eventloop).await;
                break;
            }
            Ok(_) => None,
            Err(error) => {
                let was_connected = std::mem::replace(&mut connected, false);
                if was_connected {
                    lost_at_least_once = true;
                    tracing::warn!(client_id, %error, "lost the MQTT broker; reconnecting");
                    let _ = events.send(ConnectionEvent::Disconnected);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                None
            }
        };
        if let Some(event) = event {
            // Unbounded so the event loop never waits on the control plane
            // (which itself publishes through this loop). Control traffic is
            // small; nobody listening (a plain fleet) drops the event.
            let _ = events.send(event);
        }
    }
}

/// After the DISCONNECT has gone out, reads what the broker still sends
/// until it closes the connection (at most a second). Closing a socket
/// with unread data makes the kernel reset it instead, which can reach the
/// broker before the DISCONNECT: the broker then sees a connection lost and
/// publishes the last will (a fleet `offline` after a clean stop).
async fn drain_until_closed(eventloop: &mut EventLoop) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}

/// How applying a spec changed the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was not running here; now it is.
    Started,
    /// It was running with another spec; it switched.
    Reconfigured,
    /// It was running with exactly this spec.
    Unchanged,
}

/// The generators running in this process.
pub struct Fleet {
    sink: ReadingSink,
    running: Mutex<HashMap<String, RunningGenerator>>,
    published: Arc<AtomicU64>,
}

impl Fleet {
    /// A fleet publishing through `sink`.
    pub fn new(sink: ReadingSink) -> Self {
        Self {
            sink,
            running: Mutex::new(HashMap::new()),
            published: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Readings handed to the MQTT client since the start, by every
    /// generator that ran here.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Starts `spec`, or switches the running generator of that name to it.
    pub fn apply(&self, spec: GeneratorSpec) -> Applied {
        let mut running = self.running();
        match running.get(spec.name()) {
            Some(generator) => {
                if generator.reconfigure(spec.clone()) {
                    log_spec(&spec, "generator reconfigured");
                    Applied::Reconfigured
                } else {
                    Applied::Unchanged
                }
            }
            None => {
                log_spec(&spec, "generator started");
                let name = spec.name().to_owned();
                let generator =
                    RunningGenerator::start(spec, self.sink.clone(), self.published.clone());
                running.insert(name, generator);
                Applied::Started
            }
        }
    }

    /// Stops and forgets generator `name`; `false` if it was not running.
    pub async fn remove(&self, name: &str) -> bool {
        let generator = self.running().remove(name);
        match generator {
            Some(generator) => {
                generator.stop().await;
                tracing::info!(generator = name, "generator stopped");
                true
            }
            None => false,
        }
    }

    /// Whether generator `name` runs here.
    pub fn runs(&self, name: &str) -> bool {
        self.running().contains_key(name)
    }

    /// Live counters of generator `name`, if it runs here.
    pub fn counters(&self, name: &str) -> Option<CounterValues> {
        self.running().get(name).map(|g| g.counters())
    }

    /// Why generator `name`'s readings fail validation, if it runs here
    /// and they do.
    pub fn fault(&self, name: &str) -> Option<String> {
        self.running().get(name).and_then(|g| g.fault())
    }

    /// Every running generator's spec and counters.
    pub fn snapshot(&self) -> Vec<(GeneratorSpec, CounterValues)> {
        let running = self.running();
        running.values().map(|g| (g.spec(), g.counters())).collect()
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, RunningGenerator>> {
        // Every change to the map is a single insert or remove: a panic
        // elsewhere cannot leave it half-written.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every generator.
    pub async fn stop_all(&self) {
        let all: Vec<_> = self.running().drain().collect();
        for (_, generator) in all {
            generator.stop().await;
        }
    }
}

fn log_spec(spec: &GeneratorSpec, message: &'static str) {
    tracing::info!(
        generator = spec.name(),
        fleet = spec.fleet(),
        sensor_type = %spec.sensor_type(),
        id1 = %spec.id1(),
        id2 = %spec.id2(),
        devices = spec.devices(),
        frequency_hz = spec.frequency_hz(),
        paused = spec.paused(),
        "{message}"
    );
}

/// Runs fixed `specs` until `shutdown`, with no control plane (the
/// standalone `datastream generator --sensor-type …`), publishing over
/// MQTT or, given a `grpc` target, through the gRPC gateway; then stops
/// cleanly after flushing what is queued.
pub async fn run_fleet(
    mqtt: &MqttUrl,
    client_id: &str,
    specs: Vec<GeneratorSpec>,
    grpc: Option<GrpcTarget>,
    shutdown: CancellationToken,
) {
    let (sink, connection, grpc_task) = match grpc {
        None => {
            let mut connection = FleetConnection::open(mqtt, client_id, None);
            drop(connection.events.take());
            (
                ReadingSink::Mqtt(connection.client.clone()),
                Some(connection),
                None,
            )
        }
        Some(target) => {
            let (readings, task) = GrpcReadings::start(target, shutdown.clone());
            (ReadingSink::Grpc(readings), None, Some(task))
        }
    };
    let fleet = Fleet::new(sink);
    for spec in specs {
        fleet.apply(spec);
    }
    shutdown.cancelled().await;
    fleet.stop_all().await;
    drop(fleet);
    if let Some(connection) = connection {
        connection.close().await;
    }
    if let Some(task) = grpc_task {
        let _ = task.await;
    }
}
