//! `up`'s end-to-end readiness: what its own generators publish must reach
//! its ingestor.
//!
//! A broker may grant the ingestor's subscription and then deliver nothing
//! (Mosquitto does exactly that when its ACL denies the ingestor's user read
//! access to `sensors/#`). The ingestor alone cannot tell that from a quiet
//! system; `up` can, because it runs the publishers too. Every
//! [`SAMPLE_EVERY`] this check compares how many readings the generators
//! published with how many messages the ingestor received over the last
//! [`WINDOW`]: published but none received is a problem, reported by
//! `/readyz` and in the log.

use datastream_domain::MqttUrl;
use datastream_generator::GeneratorService;
use datastream_ingestor::IngestProbe;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the counts are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How far back the comparison looks.
const WINDOW: Duration = Duration::from_secs(10);
/// Readings the generators must have published in the window before
/// silence on the ingestor's side counts as a problem.
const ENOUGH_PUBLISHED: u64 = 5;

/// The check, shared between the sampling task and `/readyz`.
#[derive(Clone)]
pub(crate) struct PipelineCheck {
    inner: Arc<Inner>,
}

struct Inner {
    ingestor: IngestProbe,
    /// Who the ingestor logs in as, for the message.
    login: String,
    problem: Mutex<Option<String>>,
}

/// Counts at one moment: readings published, messages received.
#[derive(Debug, Clone, Copy)]
struct Sample {
    published: u64,
    received: u64,
}

impl PipelineCheck {
    pub(crate) fn new(ingestor: IngestProbe, ingestor_url: &MqttUrl) -> Self {
        let login = match ingestor_url.credentials() {
            Some((user, _)) => format!("MQTT user {user:?}"),
            None => "an anonymous MQTT client".to_owned(),
        };
        Self {
            inner: Arc::new(Inner {
                ingestor,
                login,
                problem: Mutex::new(None),
            }),
        }
    }

    /// The current problem, if there is one.
    pub(crate) fn problem(&self) -> Option<String> {
        self.slot().clone()
    }

    /// Samples `generators` against the ingestor until `stop`.
    pub(crate) fn watch(&self, generators: GeneratorService, stop: CancellationToken) {
        let check = self.clone();
        tokio::spawn(async move {
            let keep = (WINDOW.as_secs_f64() / SAMPLE_EVERY.as_secs_f64()).ceil() as usize + 1;
            let mut samples: VecDeque<Sample> = VecDeque::with_capacity(keep + 1);
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                samples.push_back(Sample {
                    published: generators.readings_published(),
                    received: check.inner.ingestor.messages_received(),
                });
                if samples.len() > keep {
                    samples.pop_front();
                }
                if samples.len() == keep {
                    check.update(samples[0], samples[keep - 1]);
                }
            }
        });
    }

    /// Compares the oldest and the newest sample of the window.
    fn update(&self, then: Sample, now: Sample) {
        let published = now.published.saturating_sub(then.published);
        let received = now.received.saturating_sub(then.received);
        let problem = (published >= ENOUGH_PUBLISHED && received == 0).then(|| {
            format!(
                "the generators published {published} readings in the last {} s and the ingestor received none: {} may not be allowed to read sensors/# (Mosquitto accepts the subscription and then withholds what its ACL denies); give the ingestor its own login with MQTT_INGESTOR_URL",
                WINDOW.as_secs(),
                self.inner.login
            )
        });
        let mut slot = self.slot();
        match (&*slot, &problem) {
            (None, Some(problem)) => tracing::error!("not ready: {problem}"),
            (Some(_), None) => {
                tracing::info!("the ingestor receives the generators' readings again")
            }
            _ => {}
        }
        *slot = problem;
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Replaced whole: a panic cannot leave it half-written.
        self.inner.problem.lock().unwrap_or_else(|p| p.into_inner())
    }
}
