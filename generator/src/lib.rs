//! The simulated sensor fleet.
//!
//! A [`GeneratorSpec`] names one device of one sensor type and a rate; a
//! fleet runs many specs over one MQTT connection, publishing each reading
//! at QoS 1 to `sensors/{sensor_type}/{id1}/{id2}` in the wire format of
//! `datastream_schema::wire`.
//!
//! Architecture invariant: generators only publish; they know nothing about
//! ingestors, databases or the API.
#![deny(missing_docs)]

mod model;
mod spec;

pub use model::ValueModel;
pub use spec::{default_fleet, GeneratorSpec, SpecError, MAX_FREQUENCY_HZ, MIN_FREQUENCY_HZ};

use chrono::Utc;
use datastream_schema::{encode_reading, MqttUrl, Reading, ReadingTopic, TimestampBounds};
use rand::{rngs::StdRng, SeedableRng};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, QoS};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The shortest timer tick; faster generators publish several readings a tick.
const MIN_TICK: Duration = Duration::from_millis(1);

/// Runs `specs` until `shutdown` is cancelled, then disconnects cleanly.
pub async fn run_fleet(
    mqtt: &MqttUrl,
    client_id: &str,
    specs: Vec<GeneratorSpec>,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(client_id, mqtt.host(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(15));
    if let Some((user, pass)) = mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    let (client, eventloop) = AsyncClient::new(options, 1024);

    let generators_done = CancellationToken::new();
    let mut generators = JoinSet::new();
    for spec in specs {
        tracing::info!(
            generator = spec.name(),
            sensor_type = %spec.sensor_type(),
            id1 = %spec.id1(),
            id2 = %spec.id2(),
            frequency_hz = spec.frequency_hz(),
            "generator started"
        );
        generators.spawn(run_generator(spec, client.clone(), shutdown.clone()));
    }
    let network = tokio::spawn(drive_connection(eventloop, generators_done.clone()));
    while generators.join_next().await.is_some() {}
    // Every generator has stopped: flush what is queued and say goodbye.
    let _ = client.disconnect().await;
    generators_done.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), network).await;
}

/// Publishes one generator's readings until `shutdown`.
async fn run_generator(spec: GeneratorSpec, client: AsyncClient, shutdown: CancellationToken) {
    let topic =
        ReadingTopic::new(spec.sensor_type().clone(), spec.id1().clone(), spec.id2()).to_string();
    let mut model = ValueModel::for_sensor_type(spec.sensor_type().as_str());
    let mut rng = StdRng::from_os_rng();
    let bounds = TimestampBounds::default();
    let period = Duration::from_secs_f64(1.0 / spec.frequency_hz());
    let tick = period.max(MIN_TICK);
    let per_tick = tick.as_secs_f64() * spec.frequency_hz();
    let mut owed = 0.0;
    let mut ticker = tokio::time::interval(tick);
    // After a stall, carry on at the set rate instead of bursting to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let now = Utc::now();
            let value = model.next_value(now, &mut rng);
            let reading = match Reading::new(
                value,
                spec.sensor_type().clone(),
                spec.id1().clone(),
                spec.id2(),
                now,
                &bounds,
                now,
            ) {
                Ok(r) => r,
                Err(error) => {
                    tracing::error!(generator = spec.name(), %error, "generated an invalid reading");
                    continue;
                }
            };
            let payload = encode_reading(&reading);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                sent = client.publish(topic.as_str(), QoS::AtLeastOnce, false, payload) => {
                    if sent.is_err() {
                        return; // the connection task is gone: the fleet is stopping
                    }
                }
            }
        }
    }
    tracing::info!(generator = spec.name(), "generator stopped");
}

/// Polls the MQTT event loop (which sends, receives acks and reconnects)
/// until `done` and the disconnect has gone out.
async fn drive_connection(mut eventloop: EventLoop, done: CancellationToken) {
    let mut connected = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                if !connected {
                    tracing::info!("generator fleet connected to MQTT broker");
                }
                connected = true;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(error) => {
                if done.is_cancelled() {
                    break;
                }
                if connected {
                    tracing::warn!(%error, "generator fleet lost the MQTT broker; reconnecting");
                }
                connected = false;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
