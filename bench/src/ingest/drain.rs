//! The rate at which an ingestor drains a backlog queued on the broker:
//! with each batch writer (`INGEST_WRITER=insert`, and `auto`, which is
//! LOAD DATA on MySQL), and with `ROLLUPS=off` and `on`.
//!
//! Each run queues `count` readings for a stopped ingestor's persistent
//! session, then starts it and times until all are stored. The readings are
//! stamped one to three hours back (a gateway catching up after an outage),
//! so their hours have ended and the refresher rebuilds them while the
//! backlog drains: the whole cost of rollups, marks and rebuilds, is in the
//! figure. The six runs interleave the settings (insert, auto, auto with
//! rollups off, auto, insert, auto with rollups off), so that drift of the
//! machine weighs on every side alike. The broker's own figure comes first:
//! a bare subscriber draining the same backlog, storing nothing.

use super::bare_subscriber::BareSubscriber;
use super::{stop, IngestTarget};
use crate::publish::{publish, PublishPlan};
use crate::service_process::{IngestorSpec, ServiceCommand, ServiceProcess};
use anyhow::{bail, Context, Result};
use chrono::Duration as ChronoDuration;
use chrono::Utc;
use datastream_domain::{Id1, MqttUrl, ReadingFilter};
use datastream_store::SharedStore;
use std::time::{Duration, Instant};

/// How one drain run's ingestor writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainSetting {
    /// `INGEST_WRITER`: `insert` or `auto`.
    pub writer: &'static str,
    /// `ROLLUPS`.
    pub rollups: bool,
}

/// The runs, in order.
const RUNS: [DrainSetting; 6] = [
    DrainSetting {
        writer: "insert",
        rollups: true,
    },
    DrainSetting {
        writer: "auto",
        rollups: true,
    },
    DrainSetting {
        writer: "auto",
        rollups: false,
    },
    DrainSetting {
        writer: "auto",
        rollups: true,
    },
    DrainSetting {
        writer: "insert",
        rollups: true,
    },
    DrainSetting {
        writer: "auto",
        rollups: false,
    },
];

/// One drain run.
#[derive(Debug, Clone)]
pub struct DrainRun {
    /// How its ingestor wrote.
    pub setting: DrainSetting,
    /// Readings stored per second.
    pub rate: f64,
    /// With rollups on, how long after the last reading landed the
    /// ingestor's refresher had rebuilt every hour the backlog touched.
    pub caught_up: Option<Duration>,
}

/// Drain rates measured, readings per second.
#[derive(Debug, Clone)]
pub struct DrainReport {
    /// Readings per run.
    pub count: usize,
    /// A bare subscriber draining the same backlog (the broker's limit).
    pub broker_alone: f64,
    /// Every run, in order.
    pub runs: Vec<DrainRun>,
    /// `INSERT IGNORE` ×1,000 of `count` readings straight into the table,
    /// rows/s, measured between the runs (before the first, after the
    /// third and after the last), so the table and the machine are as the
    /// drains found them.
    pub insert_baseline: Vec<f64>,
    /// `LOAD DATA LOCAL INFILE` of a file of `count` readings through the
    /// `mariadb` client, rows/s, at the same moments (MySQL only).
    pub file_baseline: Vec<f64>,
}

impl DrainReport {
    /// Mean rate of the runs with `writer` and `rollups`.
    pub fn mean(&self, writer: &str, rollups: bool) -> f64 {
        let rates: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.setting.writer == writer && r.setting.rollups == rollups)
            .map(|r| r.rate)
            .collect();
        mean(&rates)
    }

    /// Mean of the `INSERT IGNORE` baselines.
    pub fn insert_baseline(&self) -> f64 {
        mean(&self.insert_baseline)
    }

    /// Mean of the LOAD DATA-from-a-file baselines, when measured.
    pub fn file_baseline(&self) -> Option<f64> {
        (!self.file_baseline.is_empty()).then(|| mean(&self.file_baseline))
    }

    /// Rollups on ÷ off, with the default writer.
    pub fn rollups_ratio(&self) -> f64 {
        self.mean("auto", true) / self.mean("auto", false)
    }

    /// How long the refresher took to catch up after each run with rollups.
    pub fn caught_up(&self) -> impl Iterator<Item = Duration> + '_ {
        self.runs.iter().filter_map(|r| r.caught_up)
    }
}

/// What every drain run shares.
pub(super) struct Drain<'a> {
    pub(super) target: &'a IngestTarget,
    pub(super) mqtt: &'a MqttUrl,
    pub(super) run_id: &'a str,
    pub(super) count: usize,
    pub(super) publishers: usize,
    pub(super) per_message: usize,
}

impl Drain<'_> {
    /// The broker alone, then the six runs with the baselines between them.
    pub(super) async fn measure(&self) -> Result<DrainReport> {
        let broker_alone = self.broker_alone().await?;
        eprintln!("  broker alone (a bare subscriber): {broker_alone:.0} readings/s");
        let mut runs = Vec::new();
        let (mut insert_baseline, mut file_baseline) = (Vec::new(), Vec::new());
        for (n, setting) in RUNS.into_iter().enumerate() {
            if n % 3 == 0 {
                self.baselines(n, &mut insert_baseline, &mut file_baseline)
                    .await?;
            }
            // Every run starts from exact rollups, as a running system has
            // them: the one before may have left its hours dirty, or (off)
            // the rollups stale.
            settle_rollups(&self.target.store).await?;
            let (rate, caught_up) = self.run(n, setting).await?;
            eprintln!(
                "  writer {:<6} rollups {}: {rate:.0} readings/s{}",
                setting.writer,
                if setting.rollups { "on " } else { "off" },
                caught_up.map_or(String::new(), |d| format!(
                    ", every hour rebuilt {:.1} s after the last reading",
                    d.as_secs_f64()
                ))
            );
            runs.push(DrainRun {
                setting,
                rate,
                caught_up,
            });
        }
        self.baselines(RUNS.len(), &mut insert_baseline, &mut file_baseline)
            .await?;
        Ok(DrainReport {
            count: self.count,
            broker_alone,
            runs,
            insert_baseline,
            file_baseline,
        })
    }

    /// Both baselines once, with the same number of readings as a drain.
    async fn baselines(&self, n: usize, insert: &mut Vec<f64>, file: &mut Vec<f64>) -> Result<()> {
        let tag = char::from(b'a' + n as u8).to_ascii_uppercase();
        let rate = super::direct_insert_rate(
            &self.target.store,
            &format!("BENCH{}I{tag}", self.run_id),
            self.count,
        )
        .await?;
        insert.push(rate);
        let from_file = super::load_data_file_rate(
            &self.target.database_url,
            &format!("BENCH{}F{tag}", self.run_id),
            self.count,
        )?;
        eprintln!(
            "  baselines: INSERT IGNORE ×1000 {rate:.0} rows/s{}",
            from_file.map_or(String::new(), |f| format!(
                ", LOAD DATA from a file {f:.0} rows/s"
            ))
        );
        file.extend(from_file);
        Ok(())
    }

    /// A subscriber that stores nothing drains the same backlog: how fast
    /// the broker hands a queued session its messages.
    async fn broker_alone(&self) -> Result<f64> {
        let client_id = format!("bench-{}-bare", self.run_id).to_ascii_lowercase();
        let filter = format!("$share/{client_id}/sensors/#");
        let bare = BareSubscriber::new(self.mqtt, &client_id, &filter);
        bare.subscribe_and_leave().await?;
        let id1 = format!("BENCH{}BARE", self.run_id);
        self.queue_backlog(&id1).await?;
        let started = Instant::now();
        let messages = self.messages();
        let received = bare.drain(messages).await?;
        if received < messages {
            bail!("the bare subscriber received {received} of {messages} messages");
        }
        Ok(self.count as f64 / started.elapsed().as_secs_f64())
    }

    /// One run: queue the backlog, start the ingestor, time the drain (and
    /// with rollups on, until its refresher has caught up).
    async fn run(&self, n: usize, setting: DrainSetting) -> Result<(f64, Option<Duration>)> {
        let rollups = setting.rollups;
        // Letters only: an id1 takes no digits.
        let tag = format!("r{}", char::from(b'a' + n as u8));
        let group = format!("bench-{}-{tag}", self.run_id).to_ascii_lowercase();
        let spec = IngestorSpec {
            database_url: self.target.database_url.clone(),
            mqtt_url: self.target.mqtt_url.clone(),
            group: Some(group.clone()),
            client_id: format!("{group}-0"),
            env: vec![
                (
                    "ROLLUPS".to_owned(),
                    if rollups { "true" } else { "false" }.to_owned(),
                ),
                ("INGEST_WRITER".to_owned(), setting.writer.to_owned()),
            ],
        };
        // Subscribes once, so that the broker keeps a session to queue for.
        self.start(&spec).await?.terminate()?;
        let id1 = format!("BENCH{}{}", self.run_id, tag.to_ascii_uppercase());
        self.queue_backlog(&id1).await?;
        let started = Instant::now();
        let ingestor = self.start(&spec).await?;
        let drained = wait_inserted(&ingestor, self.count as u64).await;
        let took = started.elapsed();
        let caught_up = if rollups && drained {
            let landed = Instant::now();
            wait_clean(&self.target.store).await?;
            Some(landed.elapsed())
        } else {
            None
        };
        stop(vec![ingestor], self.mqtt).await;
        let filter = ReadingFilter::default().with_id1(Id1::parse(&id1)?);
        let stored = self.target.store.count(&filter).await?;
        if !drained || stored < self.count as u64 {
            bail!(
                "the backlog did not drain: {stored} of {} readings stored",
                self.count
            );
        }
        Ok((self.count as f64 / took.as_secs_f64(), caught_up))
    }

    async fn start(&self, spec: &IngestorSpec) -> Result<ServiceProcess> {
        ServiceProcess::start(
            &self.target.binary,
            ServiceCommand::ingestor(spec),
            Duration::from_secs(30),
        )
        .await
        .context("starting an ingestor")
    }

    /// Messages the backlog is published as.
    fn messages(&self) -> usize {
        let publishers = self.publishers.clamp(1, self.count.max(1));
        (0..publishers)
            .map(|p| {
                let share = self.count / publishers + usize::from(p < self.count % publishers);
                share.div_ceil(self.per_message.max(1))
            })
            .sum()
    }

    /// Publishes the backlog: each publisher a device of its own, stamped
    /// one, two or three hours back.
    async fn queue_backlog(&self, id1: &str) -> Result<()> {
        let publishers = self.publishers.clamp(1, self.count.max(1));
        let mut tasks = Vec::new();
        for p in 0..publishers {
            let share = self.count / publishers + usize::from(p < self.count % publishers);
            tasks.push(tokio::spawn(publish(PublishPlan {
                mqtt: self.mqtt.clone(),
                client_id: format!("bench-pub-{id1}-{p}").to_ascii_lowercase(),
                id1: id1.to_owned(),
                id2: p as u32,
                count: share,
                rate: None,
                per_message: self.per_message,
                backdate: ChronoDuration::hours(1 + (p % 3) as i64),
            })));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
}

/// Waits until `ingestor` has taken `count` readings (inserted, or found
/// already stored), or made no progress for 30 s; returns whether it got
/// there.
async fn wait_inserted(ingestor: &ServiceProcess, count: u64) -> bool {
    let mut landed = 0;
    let mut last_progress = Instant::now();
    loop {
        // Inserted, or found already stored: a broker that redelivers after
        // a reconnect under load hands the ingestor readings it has stored
        // (the caller counts the rows afterwards).
        let now =
            ingestor.readings_total("inserted").await + ingestor.readings_total("duplicate").await;
        if now >= count {
            return true;
        }
        if now > landed {
            landed = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > Duration::from_secs(30) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rebuilds what is dirty or stale from the benchmark's own store (as a
/// refresher would), so that the next run starts clean. The current hour,
/// which the other steps wrote, is left as the refresher leaves it.
async fn settle_rollups(store: &SharedStore) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if store.refresh_rollups(Utc::now(), 64).await? > 0 {
            continue;
        }
        if store.dirty_hours(Utc::now()).await? == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("rollups still dirty after 90 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long the ingestor's refresher may take to rebuild what a drain
/// dirtied. After the drain with rollups off every hour is rebuilt, and
/// that takes longer the more earlier drains left in the database: about
/// 120 s after the fourth drain of 100,000 on a 2-core machine.
const REFRESH_DEADLINE: Duration = Duration::from_secs(300);

/// Waits until no hour that has ended is dirty: the ingestor's refresher
/// has rebuilt every hour the backlog touched.
async fn wait_clean(store: &SharedStore) -> Result<()> {
    let deadline = Instant::now() + REFRESH_DEADLINE;
    while store.dirty_hours(Utc::now()).await? > 0 {
        if Instant::now() > deadline {
            bail!(
                "the refresher had not caught up {} s after the backlog drained",
                REFRESH_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn mean(rates: &[f64]) -> f64 {
    rates.iter().sum::<f64>() / rates.len().max(1) as f64
}
