//! The alerter: alert rules (`datastream_domain::alert`) evaluated on the
//! broker's reading stream, with notifications over MQTT and webhooks.
//!
//! Several alerters may run; the one holding the lease ([`lease`])
//! evaluates, the others wait to take over. The active one:
//!
//! 1. resumes from the store (states, firing alerts) and follows the rules
//!    table every second;
//! 2. reads every reading on the deployment's alerter session ([`intake`]),
//!    and judges each ([`evaluator`]); silence deadlines and repeats are
//!    timers, each run at its time;
//! 3. commits what changed — states, alerts, and the notifications they
//!    cause, in one transaction fenced by the lease — and only then
//!    acknowledges the readings;
//! 4. delivers the notifications from that outbox ([`delivery`]): retained
//!    on `datastream/alerts/…` ([`datastream_mqtt::ConfirmedPublisher`]) and to webhooks
//!    ([`webhook`]), at least once, each with a stable id.
//!
//! A crash between 3 and the acks redelivers readings that are then judged
//! late (already judged) and change nothing; a crash before 3 loses only
//! memory: the readings come again.
#![forbid(unsafe_code)]

pub mod delivery;
pub mod evaluator;
pub mod intake;
pub mod lease;
pub mod webhook;

use chrono::Utc;
use datastream_domain::{DecodeLimits, MqttUrl, StoreError};
use datastream_mqtt::ConfirmedPublisher as Publisher;
use datastream_store::SharedStore;
use evaluator::Evaluator;
use intake::{Arrival, Intake};
use lease::LeaseKeeper;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Most messages judged between two commits.
const BATCH_MAX: usize = 2000;
/// How often a standby asks for the lease.
const STANDBY_POLL: Duration = Duration::from_millis(250);
/// How often the rules table is read.
const RULES_POLL: Duration = Duration::from_secs(1);

/// How an alerter runs.
#[derive(Debug, Clone)]
pub struct AlerterConfig {
    /// The broker.
    pub mqtt: MqttUrl,
    /// The deployment's alerter client id: the same for every alerter of
    /// one database, so each new lease holder resumes the one session.
    pub client_id: String,
    /// This alerter's name in the lease: unique per process.
    pub holder: String,
    /// How long a lease lasts unrenewed: a standby takes over at most this
    /// long (plus [`STANDBY_POLL`]) after the active alerter died.
    pub lease_ttl: Duration,
    /// What a message must be to be judged.
    pub limits: DecodeLimits,
    /// CA certificates `https://` webhooks are trusted with besides the
    /// system's (`ALERT_WEBHOOK_CA_FILE`).
    pub webhook_ca_file: Option<std::path::PathBuf>,
}

/// A running alerter.
pub struct Alerter {
    task: JoinHandle<()>,
}

impl Alerter {
    /// Starts waiting for the lease; runs until `shutdown`.
    pub fn start(config: AlerterConfig, store: SharedStore, shutdown: CancellationToken) -> Self {
        Self {
            task: tokio::spawn(run(config, store, shutdown)),
        }
    }

    /// Waits until it has stopped (after `shutdown`).
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "alerter task failed");
        }
    }
}

async fn run(config: AlerterConfig, store: SharedStore, shutdown: CancellationToken) {
    tracing::info!(holder = %config.holder, client_id = %config.client_id, "alerter standing by for the lease");
    let mut announced_standby = false;
    while !shutdown.is_cancelled() {
        match LeaseKeeper::try_acquire(&store, &config.holder, config.lease_ttl).await {
            Ok(Some(keeper)) => {
                tracing::info!(
                    epoch = keeper.lease.epoch,
                    "alerter took the lease; evaluating"
                );
                metrics::gauge!("datastream_alerter_active").set(1.0);
                let release = Active::new(&config, &store, keeper).run(&shutdown).await;
                metrics::gauge!("datastream_alerter_active").set(0.0);
                if let Some(keeper) = release {
                    keeper.release(&store).await;
                }
                announced_standby = false;
            }
            Ok(None) => {
                if !announced_standby {
                    tracing::info!("another alerter holds the lease; standing by");
                    announced_standby = true;
                }
            }
            Err(error) => tracing::warn!(%error, "could not ask for the alerter lease"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(STANDBY_POLL) => {}
        }
    }
}

/// The lease holder's work.
struct Active<'a> {
    config: &'a AlerterConfig,
    store: &'a SharedStore,
    keeper: LeaseKeeper,
}

/// Why evaluation stopped.
enum Stop {
    /// Shutting down: the lease is given up.
    Shutdown,
    /// The lease is gone.
    Lost,
}

impl<'a> Active<'a> {
    fn new(config: &'a AlerterConfig, store: &'a SharedStore, keeper: LeaseKeeper) -> Self {
        Self {
            config,
            store,
            keeper,
        }
    }

    /// Evaluates until shutdown or the lease is lost; returns the lease to
    /// release, if it is still held.
    async fn run(self, shutdown: &CancellationToken) -> Option<LeaseKeeper> {
        let Some(mut evaluator) = self.resume(shutdown).await else {
            return self.give_back(shutdown);
        };
        let publisher = Arc::new(Publisher::open(
            &self.config.mqtt,
            &format!("{}-notify", self.config.client_id),
        ));
        let (fresh_tx, fresh_rx) = mpsc::unbounded_channel();
        let delivery_stop = CancellationToken::new();
        let delivering = tokio::spawn(delivery::deliver(
            self.store.clone(),
            publisher.clone(),
            self.config.webhook_ca_file.clone(),
            fresh_rx,
            delivery_stop.clone(),
        ));
        let mut intake = Intake::open(
            &self.config.mqtt,
            &self.config.client_id,
            self.config.limits,
        );
        let stop = self
            .evaluate(&mut evaluator, &mut intake, &publisher, &fresh_tx, shutdown)
            .await;
        intake.close().await;
        delivery_stop.cancel();
        let _ = delivering.await;
        if let Ok(publisher) = Arc::try_unwrap(publisher) {
            publisher.close().await;
        }
        match stop {
            Stop::Shutdown => Some(self.keeper),
            Stop::Lost => None,
        }
    }

    fn give_back(self, shutdown: &CancellationToken) -> Option<LeaseKeeper> {
        shutdown.is_cancelled().then_some(self.keeper)
    }

    /// Loads what the store holds and the rules; `None` if the lease was
    /// lost or shutdown came first.
    async fn resume(&self, shutdown: &CancellationToken) -> Option<Evaluator> {
        loop {
            let loaded = async {
                let start = self.store.alert_evaluation_start().await?;
                let rules = self.store.alert_rules().await?;
                Ok::<_, StoreError>((start, rules))
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = self.keeper.lost.cancelled() => return None,
                loaded = loaded => match loaded {
                    Ok((start, rules)) => {
                        let mut evaluator = Evaluator::resume(
                            start.states,
                            start.firing,
                            start.last_alert_id,
                            start.last_notification_id,
                        );
                        evaluator.sync_rules(rules, Utc::now());
                        let (states, firing) = evaluator.size();
                        tracing::info!(states, firing, "alerter resumed");
                        return Some(evaluator);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not load the alerter's state; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    async fn evaluate(
        &self,
        evaluator: &mut Evaluator,
        intake: &mut Intake,
        publisher: &Publisher,
        fresh: &mpsc::UnboundedSender<Vec<datastream_domain::alert::Outgoing>>,
        shutdown: &CancellationToken,
    ) -> Stop {
        let mut batch: Vec<Arrival> = Vec::with_capacity(BATCH_MAX);
        let mut rules_tick = tokio::time::interval(RULES_POLL);
        loop {
            let timer = evaluator.next_deadline();
            let until_timer = async {
                match timer {
                    Some(at) => {
                        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                        tokio::time::sleep(wait).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.keeper.lost.cancelled() => return Stop::Lost,
                _ = shutdown.cancelled() => return Stop::Shutdown,
                _ = until_timer => evaluator.run_timers(Utc::now()),
                n = intake.arrivals.recv_many(&mut batch, BATCH_MAX) => {
                    if n == 0 {
                        return Stop::Lost;
                    }
                    for arrival in &batch {
                        for reading in &arrival.readings {
                            evaluator.judge(reading, arrival.at);
                        }
                    }
                    metrics::counter!("datastream_alerter_messages_total").increment(n as u64);
                }
                _ = rules_tick.tick() => match self.store.alert_rules().await {
                    Ok(rules) => evaluator.sync_rules(rules, Utc::now()),
                    Err(error) => tracing::warn!(%error, "could not read the alert rules"),
                },
            }
            if evaluator.has_changes() {
                let work = evaluator.take_commit();
                let notices = work.notices.clone();
                if !self.commit(work).await {
                    return Stop::Lost;
                }
                metrics::counter!("datastream_alerter_notifications_total")
                    .increment(notices.len() as u64);
                let _ = fresh.send(notices);
            }
            for topic in evaluator.take_cleared_topics() {
                if let Err(error) = publisher.publish(&topic, Vec::new(), true).await {
                    tracing::warn!(%topic, %error, "could not clear a deleted rule's alert topic");
                }
            }
            for arrival in batch.drain(..) {
                let _ = intake.client.ack(&arrival.publish).await;
            }
        }
    }

    /// Commits, retrying while the database is away; false when the lease
    /// is lost (nothing was written).
    async fn commit(&self, work: datastream_domain::alert::AlertCommit) -> bool {
        loop {
            let until = Utc::now() + self.config.lease_ttl;
            match self
                .store
                .commit_alerts(&self.keeper.lease, until, work.clone())
                .await
            {
                Ok(()) => return true,
                Err(StoreError::LeaseLost) => {
                    tracing::warn!("alerter lease taken over before a commit; standing down");
                    self.keeper.lost.cancel();
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not commit alert state; retrying");
                    tokio::select! {
                        _ = self.keeper.lost.cancelled() => return false,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }
}
