//! One generator's task: make readings on schedule and hand them to the
//! fleet's [`ReadingSink`] (its MQTT client, or the gRPC gateway). Its spec can be swapped while it runs (a PATCH, a
//! new config message) without losing its place or its devices' values.

use crate::model::{ModelKind, ModelSettings};
use crate::reading_sink::ReadingSink;
use crate::schedule::RateSchedule;
use crate::spec::GeneratorSpec;
use chrono::{DateTime, Utc};
use datastream_domain::{Id2, Reading, TimestampBounds};
use rand::{rngs::SmallRng, SeedableRng};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shortest wait between two rounds of publishing; faster generators
/// publish several readings a round.
const MIN_TICK: Duration = Duration::from_millis(1);

/// Live counters of one generator, and why its readings fail, if they do.
#[derive(Debug, Default)]
pub struct GeneratorCounters {
    published: AtomicU64,
    /// The fleet's count of readings published, over all its generators.
    fleet_published: Arc<AtomicU64>,
    errors: AtomicU64,
    skipped: AtomicU64,
    /// Why the current spec's last reading failed validation; cleared when
    /// the spec changes.
    fault: std::sync::Mutex<Option<String>>,
}

/// How often a generator whose readings keep failing logs it.
const FAULT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A snapshot of [`GeneratorCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterValues {
    /// Readings handed to the MQTT client.
    pub published: u64,
    /// Readings that could not be made or sent.
    pub errors: u64,
    /// Readings not made because they fell due during a stall.
    pub skipped: u64,
}

impl GeneratorCounters {
    /// The current values.
    pub fn values(&self) -> CounterValues {
        CounterValues {
            published: self.published.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// Why the current spec's readings fail validation, if they do.
    pub fn fault(&self) -> Option<String> {
        self.fault_slot().clone()
    }

    fn set_fault(&self, fault: Option<String>) {
        *self.fault_slot() = fault;
    }

    fn fault_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A plain value replaced whole: a panic cannot leave it half-written.
        self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A generator running on a fleet's connection.
#[derive(Debug)]
pub struct RunningGenerator {
    spec: watch::Sender<GeneratorSpec>,
    counters: Arc<GeneratorCounters>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningGenerator {
    /// Starts publishing `spec`'s readings through `sink`, counting each
    /// also in `fleet_published`.
    pub fn start(spec: GeneratorSpec, sink: ReadingSink, fleet_published: Arc<AtomicU64>) -> Self {
        let (tx, rx) = watch::channel(spec);
        let counters = Arc::new(GeneratorCounters {
            fleet_published,
            ..GeneratorCounters::default()
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(rx, sink, counters.clone(), stop.clone()));
        Self {
            spec: tx,
            counters,
            stop,
            task,
        }
    }

    /// The spec it runs.
    pub fn spec(&self) -> GeneratorSpec {
        self.spec.borrow().clone()
    }

    /// Switches to `spec` (same name) at once; `false` if it was the same.
    pub fn reconfigure(&self, spec: GeneratorSpec) -> bool {
        self.spec.send_if_modified(|current| {
            let changed = *current != spec;
            *current = spec;
            changed
        })
    }

    /// Its counters.
    pub fn counters(&self) -> CounterValues {
        self.counters.values()
    }

    /// Why its readings fail validation, if they do (its status says
    /// `error` then).
    pub fn fault(&self) -> Option<String> {
        self.counters.fault()
    }

    /// Stops it and waits until it has.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Per-device state that survives a reconfiguration as long as the
/// devices and the model stay the same.
struct Devices {
    first_id2: i32,
    count: u32,
    model: ModelSettings,
    /// Random walks: each device's last value. Empty for sine models.
    positions: Vec<f64>,
    next: u32,
    topic_prefix: String,
}

impl Devices {
    fn for_spec(spec: &GeneratorSpec) -> Self {
        let model = *spec.model();
        let positions = match model.kind() {
            ModelKind::RandomWalk => vec![model.start(); spec.devices() as usize],
            ModelKind::Sine => Vec::new(),
        };
        Self {
            first_id2: spec.id2().get(),
            count: spec.devices(),
            model,
            positions,
            next: 0,
            topic_prefix: format!("sensors/{}/{}/", spec.sensor_type(), spec.id1()),
        }
    }

    fn fits(&self, spec: &GeneratorSpec) -> bool {
        let fresh = Self::for_spec(spec);
        (self.first_id2, self.count, self.model, &self.topic_prefix)
            == (
                fresh.first_id2,
                fresh.count,
                fresh.model,
                &fresh.topic_prefix,
            )
    }
}

async fn run(
    mut spec_rx: watch::Receiver<GeneratorSpec>,
    sink: ReadingSink,
    counters: Arc<GeneratorCounters>,
    stop: CancellationToken,
) {
    let mut maker = ReadingMaker::new(counters.clone());
    let mut devices: Option<Devices> = None;
    let mut topic = String::with_capacity(96);
    'configs: loop {
        let spec = spec_rx.borrow_and_update().clone();
        maker.new_spec();
        if !devices.as_ref().is_some_and(|d| d.fits(&spec)) {
            devices = None;
        }
        let state = devices.get_or_insert_with(|| Devices::for_spec(&spec));
        if spec.paused() {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = spec_rx.changed() => if changed.is_err() { return } else { continue 'configs },
            }
        }
        let mut schedule = RateSchedule::new(spec.total_rate(), Instant::now().into_std());
        let mut last_round = Instant::now();
        loop {
            let wake = Instant::from_std(schedule.next_at()).max(last_round + MIN_TICK);
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = spec_rx.changed() => if changed.is_err() { return } else { continue 'configs },
                _ = tokio::time::sleep_until(wake) => {}
            }
            last_round = Instant::now();
            let due = schedule.due(last_round.into_std());
            counters.skipped.fetch_add(due.skipped, Ordering::Relaxed);
            for _ in 0..due.now {
                let Some(reading) = maker.make(&spec, state, &mut topic) else {
                    continue;
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    sent = sink.send(&topic, &reading) => {
                        if sent.is_err() {
                            // The connection task is gone: the fleet is stopping.
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        counters.published.fetch_add(1, Ordering::Relaxed);
                        counters.fleet_published.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Makes a generator's readings, one device after the other.
struct ReadingMaker {
    rng: SmallRng,
    bounds: TimestampBounds,
    /// Timestamps never repeat within a generator (the unique key would
    /// drop one).
    last_timestamp: DateTime<Utc>,
    last_fault_log: Option<Instant>,
    counters: Arc<GeneratorCounters>,
}

impl ReadingMaker {
    fn new(counters: Arc<GeneratorCounters>) -> Self {
        Self {
            rng: SmallRng::from_os_rng(),
            bounds: TimestampBounds::default(),
            last_timestamp: DateTime::<Utc>::MIN_UTC,
            last_fault_log: None,
            counters,
        }
    }

    /// A new spec: no fault yet.
    fn new_spec(&mut self) {
        self.counters.set_fault(None);
        self.last_fault_log = None;
    }

    /// The next device's reading, taken now, with its topic written into
    /// `topic`; `None` if it fails validation (counted).
    fn make(
        &mut self,
        spec: &GeneratorSpec,
        state: &mut Devices,
        topic: &mut String,
    ) -> Option<Reading> {
        let now = Utc::now().max(self.last_timestamp + chrono::Duration::microseconds(1));
        self.last_timestamp = now;
        let index = state.next;
        state.next = (state.next + 1) % state.count;
        let id2 = state.first_id2 + index as i32;
        let mut scratch = state.model.start();
        let position = state
            .positions
            .get_mut(index as usize)
            .unwrap_or(&mut scratch);
        let value = state.model.next_value(now, position, &mut self.rng);
        let reading = Id2::new(i64::from(id2)).and_then(|id2| {
            Reading::builder()
                .sensor_value(value)
                .sensor_type(spec.sensor_type().clone())
                .id1(spec.id1().clone())
                .id2(id2)
                .timestamp(now)
                .build(&self.bounds, now)
        });
        match reading {
            Ok(reading) => {
                topic.clear();
                topic.push_str(&state.topic_prefix);
                let _ = write!(topic, "{id2}");
                Some(reading)
            }
            Err(error) => {
                self.fault(spec, &error);
                None
            }
        }
    }

    /// Defence in depth: configs are validated so that a reading cannot
    /// fail. If one does, the status says why, and the log says so once a
    /// minute, not once a reading.
    fn fault(&mut self, spec: &GeneratorSpec, error: &datastream_domain::ReadingError) {
        let errors = self.counters.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if self
            .last_fault_log
            .is_none_or(|t| t.elapsed() >= FAULT_LOG_INTERVAL)
        {
            self.last_fault_log = Some(Instant::now());
            tracing::error!(generator = spec.name(), %error, errors, "made an invalid reading");
            self.counters
                .set_fault(Some(format!("made an invalid reading: {error}")));
        }
    }
}
