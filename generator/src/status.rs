//! Generator status on `datastream/generators/{name}/status`: retained, so
//! anyone subscribing learns every generator's state at once; refreshed
//! with counters every [`STATUS_INTERVAL`]; and marked `offline` by the
//! broker itself (the last will) if the process dies.
//!
//! MQTT allows one last will per connection, so each generator running
//! here reports through a small connection of its own ([`StatusReporter`]);
//! readings still share the fleet's connection.

use crate::fleet::{ConnectionEvent, FleetConnection};
use crate::runner::CounterValues;
use chrono::{DateTime, Utc};
use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, LastWill, QoS};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a running generator's retained status is refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The topic generator `name`'s config is on.
pub fn config_topic(name: &str) -> String {
    format!("datastream/generators/{name}/config")
}

/// The topic generator `name`'s status is on.
pub fn status_topic(name: &str) -> String {
    format!("datastream/generators/{name}/status")
}

/// The name in a `datastream/generators/{name}/{leaf}` topic.
pub fn generator_name<'t>(topic: &'t str, leaf: &str) -> Option<&'t str> {
    topic
        .strip_prefix("datastream/generators/")?
        .strip_suffix(leaf)?
        .strip_suffix('/')
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// What a generator is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorState {
    /// Publishing.
    Running,
    /// Configured but paused.
    Paused,
    /// Its config was refused (and no earlier valid config runs), or its
    /// readings fail validation; `error` says why.
    Error,
    /// Its fleet process is gone.
    Offline,
}

/// The status document of one generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GeneratorStatus {
    /// What it is doing.
    pub state: GeneratorState,
    /// The fleet reporting it.
    pub fleet: String,
    /// Readings handed to the broker since it started in that fleet.
    #[serde(default)]
    pub published: u64,
    /// Readings that could not be made or sent.
    #[serde(default)]
    pub errors: u64,
    /// Readings not made because they fell due while publishing stalled.
    #[serde(default)]
    pub skipped: u64,
    /// Why its last config was refused, or why its readings fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When this status was written.
    pub at: DateTime<Utc>,
}

impl GeneratorStatus {
    /// A status with no counters.
    pub fn new(state: GeneratorState, fleet: &str, error: Option<String>) -> Self {
        Self {
            state,
            fleet: fleet.to_owned(),
            published: 0,
            errors: 0,
            skipped: 0,
            error,
            at: Utc::now(),
        }
    }

    /// With `counters`.
    pub fn with_counters(mut self, counters: CounterValues) -> Self {
        self.published = counters.published;
        self.errors = counters.errors;
        self.skipped = counters.skipped;
        self
    }

    /// The JSON text of the status.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a GeneratorStatus always serializes")
    }
}

/// What the reporter publishes next: the state and refused-config error,
/// plus a way to read fresh counters.
pub type StatusSource = Box<dyn Fn() -> GeneratorStatus + Send + Sync>;

/// What a closing [`StatusReporter`] leaves behind.
#[derive(Debug)]
pub enum LastStatus {
    /// This status (the process is stopping: `offline`).
    Final(GeneratorStatus),
    /// Nothing: the generator was deleted.
    Cleared,
    /// Whatever is there: the generator moved to another fleet, which
    /// reports it now.
    Untouched,
}

/// Reports one generator's status over its own connection.
pub struct StatusReporter {
    topic: String,
    client: AsyncClient,
    changed: watch::Sender<()>,
    task: JoinHandle<()>,
    connection: Option<FleetConnection>,
}

impl StatusReporter {
    /// Connects as `client_id` with a last will marking generator `name`
    /// offline in `fleet`, and publishes `source()` now, on every
    /// reconnect, on [`changed`](Self::changed) and every
    /// [`STATUS_INTERVAL`].
    pub fn start(
        mqtt: &MqttUrl,
        client_id: &str,
        name: &str,
        fleet: &str,
        source: StatusSource,
    ) -> Self {
        let topic = status_topic(name);
        let will = LastWill::new(
            &topic,
            GeneratorStatus::new(GeneratorState::Offline, fleet, None).to_json(),
            QoS::AtLeastOnce,
            true,
        );
        let mut connection = FleetConnection::open(mqtt, client_id, Some(will));
        let mut events = connection.events.take();
        let client = connection.client.clone();
        let (changed, mut changed_rx) = watch::channel(());
        let task = tokio::spawn({
            let (client, topic) = (client.clone(), topic.clone());
            async move {
                let mut refresh = tokio::time::interval(STATUS_INTERVAL);
                loop {
                    tokio::select! {
                        _ = refresh.tick() => {}
                        c = changed_rx.changed() => if c.is_err() { return },
                        event = next_event(&mut events) => match event {
                            // The broker may have sent our last will while
                            // we were away: say again that we are here.
                            Some(ConnectionEvent::Connected) => {}
                            Some(_) => continue,
                            None => { events = None; continue }
                        },
                    }
                    let status = source().to_json();
                    if client
                        .publish(topic.as_str(), QoS::AtLeastOnce, true, status)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Self {
            topic,
            client,
            changed,
            task,
            connection: Some(connection),
        }
    }

    /// Publishes the status again now (the state or the error changed).
    pub fn changed(&self) {
        let _ = self.changed.send(());
    }

    /// Leaves `last` as the retained status, then disconnects cleanly so
    /// the last will is not sent.
    pub async fn close(mut self, last: LastStatus) {
        self.task.abort();
        let payload = match last {
            LastStatus::Final(status) => Some(status.to_json()),
            LastStatus::Cleared => Some(Vec::new()),
            LastStatus::Untouched => None,
        };
        if let Some(payload) = payload {
            let _ = self
                .client
                .publish(self.topic.as_str(), QoS::AtLeastOnce, true, payload)
                .await;
        }
        if let Some(connection) = self.connection.take() {
            connection.close().await;
        }
    }
}

async fn next_event(
    events: &mut Option<tokio::sync::mpsc::UnboundedReceiver<ConnectionEvent>>,
) -> Option<ConnectionEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_out_of_control_topics() {
        assert_eq!(
            generator_name("datastream/generators/t-1/config", "config"),
            Some("t-1")
        );
        assert_eq!(
            generator_name("datastream/generators/t-1/status", "config"),
            None
        );
        assert_eq!(
            generator_name("datastream/generators//config", "config"),
            None
        );
        assert_eq!(
            generator_name("datastream/generators/a/b/config", "config"),
            None
        );
        assert_eq!(generator_name("sensors/t/ABC/1", "config"), None);
    }

    #[test]
    fn a_status_round_trips_through_json() {
        let s = GeneratorStatus::new(
            GeneratorState::Error,
            "edge",
            Some("frequency_hz: …".into()),
        );
        let back: GeneratorStatus = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }
}
