//! `GeneratorService`: a fleet process's control plane.
//!
//! The broker is the source of truth. Every generator's config is a
//! retained message on `datastream/generators/{name}/config`; every fleet
//! process subscribes to all of them, keeps a catalog of every generator
//! (in any fleet), and runs exactly those whose `fleet` is its own. REST
//! changes are published the same way and confirmed when the broker echoes
//! them back, so a restarted fleet, or a fleet elsewhere, sees the same
//! generators.
//!
//! A fleet name is held by one process at a time: its retained
//! `datastream/fleets/{fleet}/status` says `online` with an instance id
//! (and, by last will, `offline` when the process dies). A process refuses
//! to start a fleet another instance holds; if two start at once, the one
//! with the larger instance id yields on seeing the other.

use crate::config::{apply_patch, claimed_fleet, config_json, parse_config, GeneratorConfig};
use crate::fleet::{ConnectionEvent, Fleet, FleetConnection};
use crate::grpc_readings::GrpcReadings;
use crate::reading_sink::ReadingSink;
use crate::spec::{check_identifier, GeneratorSpec, SpecError, DEFAULT_FLEET};
use crate::status::{
    config_topic, generator_name, status_topic, GeneratorState, GeneratorStatus, LastStatus,
    StatusReporter,
};
use datastream_domain::MqttUrl;
use rand::Rng;
use rumqttc::{AsyncClient, LastWill, Publish, QoS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{mpsc::UnboundedReceiver, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long to wait for the broker when starting, and for it to confirm a
/// change.
const BROKER_WAIT: Duration = Duration::from_secs(10);
/// After a subscription is acknowledged, how long retained messages are
/// given to arrive before the catalog counts as loaded.
const RETAINED_SETTLE: Duration = Duration::from_millis(300);

/// Why the service failed or refused an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The broker did not accept the connection in time.
    #[error("the MQTT broker did not answer within {0:?}")]
    BrokerUnreachable(Duration),
    /// Another process runs this fleet.
    #[error("fleet {fleet:?} is already running (instance {instance}); stop it first or use another --fleet")]
    FleetTaken {
        /// The fleet.
        fleet: String,
        /// The instance holding it.
        instance: String,
    },
    /// No generator has this name.
    #[error("no generator named {0:?}")]
    NotFound(String),
    /// A generator with this name exists.
    #[error("a generator named {0:?} already exists")]
    Conflict(String),
    /// The config is invalid.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// The broker did not confirm a change in time.
    #[error("the MQTT broker did not confirm the change within {0:?}: is this MQTT user allowed to read and write datastream/generators/# (and datastream/fleets/#)? (MQTT_GENERATOR_URL gives the generators a login of their own)")]
    Unconfirmed(Duration),
}

/// What the catalog knows about one generator.
#[derive(Debug, Clone, Default)]
struct CatalogEntry {
    /// The last valid config.
    spec: Option<GeneratorSpec>,
    /// Why the latest config was refused, if it was.
    rejected: Option<String>,
    /// The last status seen on its status topic.
    status: Option<GeneratorStatus>,
    /// Whether this process published the retained error status.
    error_reported_here: bool,
}

/// A generator as the REST API shows it: its config and its status.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GeneratorView {
    /// Its configuration.
    #[serde(flatten)]
    pub config: GeneratorConfig,
    /// Live for generators in this process's fleet; the last retained
    /// status for others; null before any was seen.
    pub status: Option<GeneratorStatus>,
}

/// The retained document on `datastream/fleets/{fleet}/status`.
#[derive(Debug, Serialize, Deserialize)]
struct FleetStatus {
    state: String,
    instance: String,
}

fn fleet_topic(fleet: &str) -> String {
    format!("datastream/fleets/{fleet}/status")
}

const CONFIG_FILTER: &str = "datastream/generators/+/config";
const STATUS_FILTER: &str = "datastream/generators/+/status";

/// A fleet process's control plane; cheap to clone.
#[derive(Clone)]
pub struct GeneratorService {
    inner: Arc<Inner>,
}

struct Inner {
    fleet_name: String,
    instance: String,
    client_id: String,
    mqtt: MqttUrl,
    client: AsyncClient,
    fleet: Fleet,
    catalog: Mutex<BTreeMap<String, CatalogEntry>>,
    version: watch::Sender<u64>,
    reporters: tokio::sync::Mutex<HashMap<String, StatusReporter>>,
    connected: AtomicBool,
}

/// A started service: its handle, and the task that ends when the service
/// has stopped (with an error if it had to give up its fleet).
pub struct RunningService {
    /// The control plane.
    pub service: GeneratorService,
    /// Ends after shutdown, or early with [`ServiceError::FleetTaken`].
    pub task: JoinHandle<Result<(), ServiceError>>,
}

impl GeneratorService {
    /// Connects, claims fleet `fleet`, loads every retained config and
    /// starts this fleet's generators; runs until `shutdown`.
    pub async fn start(
        mqtt: &MqttUrl,
        fleet: &str,
        shutdown: CancellationToken,
    ) -> Result<RunningService, ServiceError> {
        Self::start_publishing(mqtt, fleet, None, shutdown).await
    }

    /// Like [`GeneratorService::start`], with the generators' readings
    /// published through `grpc` (the gRPC gateway) when given; the control
    /// plane and statuses stay on the broker.
    pub async fn start_publishing(
        mqtt: &MqttUrl,
        fleet: &str,
        grpc: Option<GrpcReadings>,
        shutdown: CancellationToken,
    ) -> Result<RunningService, ServiceError> {
        check_identifier("fleet", fleet)?;
        let instance = format!("{:016x}", rand::rng().random::<u64>());
        let client_id = format!("datastream-fleet-{fleet}-{instance}");
        let offline = serde_json::to_vec(&FleetStatus {
            state: "offline".into(),
            instance: instance.clone(),
        })
        .expect("serializable");
        let will = LastWill::new(fleet_topic(fleet), offline, QoS::AtLeastOnce, true);
        let mut connection = FleetConnection::open(mqtt, &client_id, Some(will));
        let mut events = connection
            .events
            .take()
            .expect("a new connection has its events");
        let (version, _) = watch::channel(0);
        let service = GeneratorService {
            inner: Arc::new(Inner {
                fleet_name: fleet.to_owned(),
                instance,
                client_id,
                mqtt: mqtt.clone(),
                client: connection.client.clone(),
                fleet: Fleet::new(match grpc {
                    Some(grpc) => ReadingSink::Grpc(grpc),
                    None => ReadingSink::Mqtt(connection.client.clone()),
                }),
                catalog: Mutex::new(BTreeMap::new()),
                version,
                reporters: tokio::sync::Mutex::new(HashMap::new()),
                connected: AtomicBool::new(false),
            }),
        };
        match service.claim_and_load(&mut events).await {
            Ok(()) => {}
            Err(error) => {
                connection.close().await;
                return Err(error);
            }
        }
        let task = tokio::spawn({
            let service = service.clone();
            async move {
                let result = service.run(events, shutdown).await;
                service.stop().await;
                connection.close().await;
                result
            }
        });
        Ok(RunningService { service, task })
    }

    /// Whether the broker connection is up.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Changes whenever the catalog changes (a config created, changed or
    /// removed, by anyone).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Readings this process's generators have published since it started.
    pub fn readings_published(&self) -> u64 {
        self.inner.fleet.published()
    }

    /// This process's fleet.
    pub fn fleet_name(&self) -> &str {
        &self.inner.fleet_name
    }

    /// Every generator with a valid config, in any fleet, by name.
    pub fn list(&self) -> Vec<GeneratorView> {
        let catalog = self.inner.catalog();
        catalog
            .iter()
            .filter_map(|(name, entry)| self.inner.view(name, entry))
            .collect()
    }

    /// Generator `name`.
    pub fn get(&self, name: &str) -> Option<GeneratorView> {
        let catalog = self.inner.catalog();
        catalog
            .get(name)
            .and_then(|entry| self.inner.view(name, entry))
    }

    /// Creates a generator by publishing its config; returns once the
    /// broker has confirmed it.
    pub async fn create(&self, spec: GeneratorSpec) -> Result<GeneratorView, ServiceError> {
        if self.spec_of(spec.name()).is_some() {
            return Err(ServiceError::Conflict(spec.name().to_owned()));
        }
        self.publish_config(&spec).await
    }

    /// Changes generator `name` with a PATCH document.
    pub async fn update(&self, name: &str, patch: &[u8]) -> Result<GeneratorView, ServiceError> {
        let current = self
            .spec_of(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        let changed = apply_patch(&current, patch)?;
        self.publish_config(&changed).await
    }

    /// Deletes generator `name` by clearing its retained config.
    pub async fn delete(&self, name: &str) -> Result<(), ServiceError> {
        if self.spec_of(name).is_none() {
            return Err(ServiceError::NotFound(name.to_owned()));
        }
        self.publish(&config_topic(name), Vec::new()).await?;
        // A late status message may leave an entry behind; the config is
        // what must be gone.
        self.confirmed(|catalog| catalog.get(name).and_then(|e| e.spec.as_ref()).is_none())
            .await
    }

    /// Creates `specs` (moved into this fleet) if this fleet has no
    /// generators yet: the defaults of `datastream up`.
    pub async fn seed_if_empty(&self, specs: Vec<GeneratorSpec>) -> Result<(), ServiceError> {
        let mine = self.fleet_name().to_owned();
        let empty = !self
            .inner
            .catalog()
            .values()
            .any(|e| e.spec.as_ref().is_some_and(|s| s.fleet() == mine));
        if empty {
            for spec in specs {
                match self.create(spec.with_fleet(&mine)?).await {
                    Ok(_) | Err(ServiceError::Conflict(_)) => {}
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(())
    }

    fn spec_of(&self, name: &str) -> Option<GeneratorSpec> {
        self.inner.catalog().get(name).and_then(|e| e.spec.clone())
    }

    async fn publish_config(&self, spec: &GeneratorSpec) -> Result<GeneratorView, ServiceError> {
        self.publish(&config_topic(spec.name()), config_json(spec))
            .await?;
        let name = spec.name();
        self.confirmed(|catalog| catalog.get(name).and_then(|e| e.spec.as_ref()) == Some(spec))
            .await?;
        self.get(name).ok_or(ServiceError::Unconfirmed(BROKER_WAIT))
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), ServiceError> {
        self.inner
            .client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|_| ServiceError::Unconfirmed(BROKER_WAIT))
    }

    /// Waits until the catalog satisfies `done` (the broker echoed a
    /// change back).
    async fn confirmed(
        &self,
        done: impl Fn(&BTreeMap<String, CatalogEntry>) -> bool,
    ) -> Result<(), ServiceError> {
        let mut version = self.inner.version.subscribe();
        let deadline = Instant::now() + BROKER_WAIT;
        loop {
            if done(&self.inner.catalog()) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(ServiceError::Unconfirmed(BROKER_WAIT)),
            }
        }
    }

    /// Connects, makes sure no other process holds the fleet, announces
    /// this one, and loads the retained configs.
    async fn claim_and_load(
        &self,
        events: &mut UnboundedReceiver<ConnectionEvent>,
    ) -> Result<(), ServiceError> {
        let deadline = Instant::now() + BROKER_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ConnectionEvent::Connected)) => {
                    self.inner.connected.store(true, Ordering::Relaxed);
                    break;
                }
                Ok(Some(_)) => {}
                _ => return Err(ServiceError::BrokerUnreachable(BROKER_WAIT)),
            }
        }
        let inner = &self.inner;
        let fleet_topic = fleet_topic(&inner.fleet_name);
        let _ = inner
            .client
            .subscribe(fleet_topic.as_str(), QoS::AtLeastOnce)
            .await;
        for message in settle(events, deadline).await? {
            if let Some(holder) = self.other_holder(&message) {
                return Err(ServiceError::FleetTaken {
                    fleet: inner.fleet_name.clone(),
                    instance: holder,
                });
            }
        }
        self.announce().await;
        self.subscribe_control().await;
        for message in settle(events, deadline).await? {
            self.handle(message).await?;
        }
        Ok(())
    }

    /// Handles events until `shutdown`.
    async fn run(
        &self,
        mut events: UnboundedReceiver<ConnectionEvent>,
        shutdown: CancellationToken,
    ) -> Result<(), ServiceError> {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                event = events.recv() => event,
            };
            match event {
                Some(ConnectionEvent::Disconnected) => {
                    self.inner.connected.store(false, Ordering::Relaxed);
                }
                Some(ConnectionEvent::Connected) => {
                    self.inner.connected.store(true, Ordering::Relaxed);
                    // A clean session forgets subscriptions, and the broker
                    // may have published our last will meanwhile.
                    self.announce().await;
                    let _ = self
                        .inner
                        .client
                        .subscribe(fleet_topic(&self.inner.fleet_name), QoS::AtLeastOnce)
                        .await;
                    self.subscribe_control().await;
                }
                Some(ConnectionEvent::Message(message)) => self.handle(message).await?,
                Some(ConnectionEvent::Subscribed) => {}
                None => return Ok(()),
            }
        }
    }

    async fn announce(&self) {
        let online = serde_json::to_vec(&FleetStatus {
            state: "online".into(),
            instance: self.inner.instance.clone(),
        })
        .expect("serializable");
        let _ = self
            .publish(&fleet_topic(&self.inner.fleet_name), online)
            .await;
    }

    async fn subscribe_control(&self) {
        for filter in [CONFIG_FILTER, STATUS_FILTER] {
            let _ = self.inner.client.subscribe(filter, QoS::AtLeastOnce).await;
        }
    }

    /// The instance id in a fleet-status message, if another instance
    /// says it is online.
    fn other_holder(&self, message: &Publish) -> Option<String> {
        if message.topic != fleet_topic(&self.inner.fleet_name) {
            return None;
        }
        let status: FleetStatus = serde_json::from_slice(&message.payload).ok()?;
        (status.state == "online" && status.instance != self.inner.instance)
            .then_some(status.instance)
    }

    async fn handle(&self, message: Publish) -> Result<(), ServiceError> {
        if let Some(holder) = self.other_holder(&message) {
            // Two processes started the same fleet at once: the larger
            // instance id yields, so exactly one keeps it.
            if holder < self.inner.instance {
                tracing::error!(
                    fleet = self.fleet_name(),
                    holder,
                    "another process runs this fleet; stopping"
                );
                return Err(ServiceError::FleetTaken {
                    fleet: self.inner.fleet_name.clone(),
                    instance: holder,
                });
            }
            tracing::warn!(
                fleet = self.fleet_name(),
                other = holder,
                "another process tried to run this fleet; it will yield"
            );
            self.announce().await;
        } else if let Some(name) = generator_name(&message.topic, "config") {
            if message.payload.is_empty() {
                self.removed(name).await;
            } else {
                match parse_config(Some(name), &message.payload, DEFAULT_FLEET) {
                    Ok(spec) => self.configured(spec).await,
                    Err(error) => {
                        self.refused(name, &claimed_fleet(&message.payload), error)
                            .await
                    }
                }
            }
        } else if let Some(name) = generator_name(&message.topic, "status") {
            let status = serde_json::from_slice::<GeneratorStatus>(&message.payload).ok();
            let mut catalog = self.inner.catalog();
            if let Some(entry) = catalog.get_mut(name) {
                entry.status = status;
            } else if let Some(status) = status {
                catalog.entry(name.to_owned()).or_default().status = Some(status);
            }
        }
        self.inner.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// A valid config for `spec.name()` arrived.
    async fn configured(&self, spec: GeneratorSpec) {
        let name = spec.name().to_owned();
        let mine = spec.fleet() == self.fleet_name();
        {
            let mut catalog = self.inner.catalog();
            let entry = catalog.entry(name.clone()).or_default();
            entry.spec = Some(spec.clone());
            entry.rejected = None;
        }
        if mine {
            self.inner.fleet.apply(spec);
            let mut reporters = self.inner.reporters.lock().await;
            match reporters.get(&name) {
                Some(reporter) => reporter.changed(),
                None => {
                    let reporter = self.inner.reporter(&name);
                    reporters.insert(name, reporter);
                }
            }
        } else if self.inner.fleet.remove(&name).await {
            tracing::info!(
                generator = name,
                to = spec.fleet(),
                "generator moved to another fleet"
            );
            if let Some(reporter) = self.inner.reporters.lock().await.remove(&name) {
                reporter.close(LastStatus::Untouched).await;
            }
        }
    }

    /// An invalid config arrived: keep whatever runs, and say why.
    async fn refused(&self, name: &str, claimed: &str, error: SpecError) {
        let message = error.to_string();
        let runs_here = self.inner.fleet.runs(name);
        let report = runs_here || claimed == self.fleet_name();
        {
            let mut catalog = self.inner.catalog();
            let entry = catalog.entry(name.to_owned()).or_default();
            entry.rejected = Some(message.clone());
            entry.error_reported_here |= report && !runs_here;
        }
        if !report {
            return;
        }
        tracing::warn!(generator = name, field = error.field(), %error, "refused a generator config");
        if runs_here {
            if let Some(reporter) = self.inner.reporters.lock().await.get(name) {
                reporter.changed();
            }
        } else {
            let status =
                GeneratorStatus::new(GeneratorState::Error, self.fleet_name(), Some(message));
            let _ = self.publish(&status_topic(name), status.to_json()).await;
        }
    }

    /// The config was deleted.
    async fn removed(&self, name: &str) {
        let entry = self.inner.catalog().remove(name);
        if self.inner.fleet.remove(name).await {
            if let Some(reporter) = self.inner.reporters.lock().await.remove(name) {
                reporter.close(LastStatus::Cleared).await;
            }
        } else if entry.is_some_and(|e| e.error_reported_here) {
            let _ = self.publish(&status_topic(name), Vec::new()).await;
        }
    }

    /// Stops every generator and marks them offline; clears the fleet's
    /// retained status.
    async fn stop(&self) {
        self.inner.fleet.stop_all().await;
        let reporters: Vec<_> = self.inner.reporters.lock().await.drain().collect();
        for (_, reporter) in reporters {
            let offline = GeneratorStatus::new(GeneratorState::Offline, self.fleet_name(), None);
            reporter.close(LastStatus::Final(offline)).await;
        }
        // A clean stop frees the fleet's name and leaves nothing retained
        // behind on the broker (a crash leaves the will's `offline`).
        let _ = self
            .publish(&fleet_topic(&self.inner.fleet_name), Vec::new())
            .await;
        tracing::info!(fleet = self.fleet_name(), "generator fleet stopped");
    }
}

/// Waits for the next subscription acknowledgement, then collects what
/// arrives for [`RETAINED_SETTLE`] (the retained messages).
async fn settle(
    events: &mut UnboundedReceiver<ConnectionEvent>,
    deadline: Instant,
) -> Result<Vec<Publish>, ServiceError> {
    let mut messages = Vec::new();
    let mut settled_at: Option<Instant> = None;
    loop {
        let until = settled_at.unwrap_or(deadline);
        match tokio::time::timeout_at(until, events.recv()).await {
            Ok(Some(ConnectionEvent::Subscribed)) => {
                settled_at.get_or_insert(Instant::now() + RETAINED_SETTLE);
            }
            Ok(Some(ConnectionEvent::Message(m))) => messages.push(m),
            Ok(Some(ConnectionEvent::Connected | ConnectionEvent::Disconnected)) => {}
            Ok(None) => return Err(ServiceError::BrokerUnreachable(BROKER_WAIT)),
            Err(_) if settled_at.is_some() => return Ok(messages),
            Err(_) => return Err(ServiceError::BrokerUnreachable(BROKER_WAIT)),
        }
    }
}

impl Inner {
    fn catalog(&self) -> MutexGuard<'_, BTreeMap<String, CatalogEntry>> {
        // Entries are replaced whole: a panic cannot leave one half-written.
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self, name: &str, entry: &CatalogEntry) -> Option<GeneratorView> {
        let spec = entry.spec.as_ref()?;
        let status = if spec.fleet() == self.fleet_name && self.fleet.runs(name) {
            Some(self.live_status(spec, entry))
        } else {
            entry.status.clone()
        };
        Some(GeneratorView {
            config: GeneratorConfig::from(spec),
            status,
        })
    }

    fn live_status(&self, spec: &GeneratorSpec, entry: &CatalogEntry) -> GeneratorStatus {
        let fault = self.fleet.fault(spec.name());
        let state = if spec.paused() {
            GeneratorState::Paused
        } else if fault.is_some() {
            GeneratorState::Error
        } else {
            GeneratorState::Running
        };
        let error = entry.rejected.clone().or(fault);
        let status = GeneratorStatus::new(state, &self.fleet_name, error);
        match self.fleet.counters(spec.name()) {
            Some(counters) => status.with_counters(counters),
            None => status,
        }
    }

    /// A status reporter for generator `name`, reading its live status.
    fn reporter(self: &Arc<Self>, name: &str) -> StatusReporter {
        let weak: Weak<Inner> = Arc::downgrade(self);
        let (owned_name, fleet) = (name.to_owned(), self.fleet_name.clone());
        let source = Box::new(move || {
            let offline = || GeneratorStatus::new(GeneratorState::Offline, &fleet, None);
            let Some(inner) = weak.upgrade() else {
                return offline();
            };
            let catalog = inner.catalog();
            match catalog.get(&owned_name) {
                Some(
                    entry @ CatalogEntry {
                        spec: Some(spec), ..
                    },
                ) => inner.live_status(spec, entry),
                _ => offline(),
            }
        });
        let client_id = format!("{}-{name}", self.client_id);
        StatusReporter::start(&self.mqtt, &client_id, name, &self.fleet_name, source)
    }
}
