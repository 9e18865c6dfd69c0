//! The rate at which an ingestor drains a backlog queued on the broker,
//! against the database's own limits measured in the same rounds.
//!
//! A drain queues `count` readings for a stopped ingestor's persistent
//! session, then starts it and times from its start until all are stored.
//! The readings are stamped one to three hours back (a gateway catching up
//! after an outage; each figure three hours of its own further back, so
//! that no drain rebuilds another's rows), so their hours have ended and the
//! refresher rebuilds them while the backlog drains: the whole cost of
//! rollups, marks and rebuilds, is in the figure.
//!
//! Each round measures four things, in an order that rotates from round to
//! round so that drift of the machine weighs on every side alike: the
//! drain with the default settings (the figure the targets are about);
//! `INSERT IGNORE` ×1,000 and `LOAD DATA` of a file of the same readings
//! (`backlog.rs`), straight into the table; and a variant drain (the INSERT
//! writer in the first, third and fifth rounds, rollups off in the others).
//! Every figure carries the load average when it started and the CPU
//! seconds of the process that wrote, of the database server and, for
//! drains, of the broker. The broker's own figure comes first: a bare
//! subscriber draining the same backlog, storing nothing.

use super::backlog::Backlog;
use super::bare_subscriber::BareSubscriber;
use super::{stop, IngestTarget};
use crate::figures::{
    cpu_seconds, database_server_pid, listening_process, load_average, wait_until_idle,
};
use crate::publish::publish;
use crate::service_process::{IngestorSpec, ServiceCommand, ServiceProcess};
use anyhow::{bail, Context, Result};
use chrono::Utc;
use datastream_domain::{Id1, MqttUrl, ReadingFilter};
use datastream_store::SharedStore;
use std::time::{Duration, Instant};

/// How a drain's ingestor writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainSetting {
    /// `INGEST_WRITER`: `insert` or `auto`.
    pub writer: &'static str,
    /// `ROLLUPS`.
    pub rollups: bool,
}

impl DrainSetting {
    /// The defaults: LOAD DATA where the server allows it, rollups on.
    pub const DEFAULT: Self = Self {
        writer: "auto",
        rollups: true,
    };
    /// The INSERT writer, rollups on.
    pub const INSERT_WRITER: Self = Self {
        writer: "insert",
        rollups: true,
    };
    /// The default writer, rollups off.
    pub const ROLLUPS_OFF: Self = Self {
        writer: "auto",
        rollups: false,
    };
}

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// An ingestor draining the backlog.
    Drain(DrainSetting),
    /// `INSERT IGNORE` batches of 1,000 straight into the table, from this
    /// process.
    InsertBaseline,
    /// `LOAD DATA LOCAL INFILE` of a file through the `mariadb` client.
    FileBaseline,
}

/// One figure of one round.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub what: Measured,
    /// Its round, from 0.
    pub round: usize,
    /// Readings (rows) stored per second.
    pub rate: f64,
    /// The 1-minute load average when it started.
    pub load_average: f64,
    /// CPU seconds of the process that wrote (the ingestor; this process
    /// for `INSERT IGNORE`; the `mariadb` client for the file).
    pub writer_cpu: f64,
    /// CPU seconds of the database server, when it runs on this machine.
    pub database_cpu: Option<f64>,
    /// Drains: CPU seconds of the broker handing out the backlog, when it
    /// runs on this machine.
    pub broker_cpu: Option<f64>,
    /// Drains with rollups: how long after the last reading landed the
    /// refresher had rebuilt every hour the backlog touched.
    pub caught_up: Option<Duration>,
    /// Drains: the ingestor's largest batch, read from its metrics.
    pub largest_batch: Option<f64>,
    /// Drains: the ingestor's peak resident memory, bytes.
    pub peak_rss: Option<u64>,
}

/// Drain rates and their baselines, round by round.
#[derive(Debug, Clone)]
pub struct DrainReport {
    /// Readings per drain and per baseline.
    pub count: usize,
    /// A bare subscriber draining the same backlog (the broker's limit).
    pub broker_alone: f64,
    /// Cores of this machine, which the broker, the ingestor and the
    /// database share while a drain runs.
    pub cores: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Every figure, in the order measured.
    pub figures: Vec<Figure>,
}

impl DrainReport {
    /// The figures of `what`, in round order.
    pub fn of(&self, what: Measured) -> Vec<&Figure> {
        self.figures.iter().filter(|f| f.what == what).collect()
    }

    /// The rates of `what`.
    pub fn rates(&self, what: Measured) -> Vec<f64> {
        self.of(what).iter().map(|f| f.rate).collect()
    }

    /// Per round where both were measured: `a`'s rate ÷ `b`'s.
    pub fn ratios(&self, a: Measured, b: Measured) -> Vec<f64> {
        (0..self.rounds)
            .filter_map(|round| {
                let rate = |what| {
                    self.figures
                        .iter()
                        .find(|f| f.what == what && f.round == round)
                        .map(|f| f.rate)
                };
                Some(rate(a)? / rate(b)?)
            })
            .collect()
    }
}

/// The servers a drain shares the machine with, where they run on it.
#[derive(Debug, Clone, Copy)]
struct Servers {
    database: Option<u32>,
    broker: Option<u32>,
}

/// What every drain shares.
pub(super) struct Drain<'a> {
    pub(super) target: &'a IngestTarget,
    pub(super) mqtt: &'a MqttUrl,
    pub(super) run_id: &'a str,
    pub(super) count: usize,
    pub(super) rounds: usize,
    pub(super) publishers: usize,
    pub(super) per_message: usize,
}

impl Drain<'_> {
    /// The broker alone, then the rounds.
    pub(super) async fn measure(&self) -> Result<DrainReport> {
        let broker_alone = self.broker_alone().await?;
        eprintln!("  broker alone (a bare subscriber): {broker_alone:.0} readings/s");
        let servers = Servers {
            database: database_server_pid(),
            broker: listening_process(self.mqtt.port()),
        };
        let mut figures = Vec::new();
        for round in 0..self.rounds {
            let variant = if round % 2 == 0 {
                DrainSetting::INSERT_WRITER
            } else {
                DrainSetting::ROLLUPS_OFF
            };
            let mut plan = [
                Measured::Drain(DrainSetting::DEFAULT),
                Measured::InsertBaseline,
                Measured::FileBaseline,
                Measured::Drain(variant),
            ];
            let steps = plan.len();
            plan.rotate_left(round % steps);

            for (step, what) in plan.into_iter().enumerate() {
                let tag = format!("{}{}", letter(round), letter(step));
                // Hours of its own: a drain's refresher rebuilds the hours
                // it touched, and should not find another figure's rows in
                // them (the later in a round, the more it would find).
                let hours_back = 1 + 3 * (round * steps + step) as i64;
                let Some(figure) = self.figure(round, &tag, what, hours_back, servers).await?
                else {
                    continue;
                };
                eprintln!("  round {}: {}", round + 1, describe(&figure));
                figures.push(figure);
            }
        }
        Ok(DrainReport {
            count: self.count,
            broker_alone,
            rounds: self.rounds,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            figures,
        })
    }

    /// Measures `what` once, with the load and CPU beside it; `None` for
    /// the file baseline without MySQL or its client.
    async fn figure(
        &self,
        round: usize,
        tag: &str,
        what: Measured,
        hours_back: i64,
        servers: Servers,
    ) -> Result<Option<Figure>> {
        let database = servers.database;
        // Every drain starts from exact rollups, as a running system has
        // them: the one before may have left its hours dirty, or (off) the
        // rollups stale.
        if matches!(what, Measured::Drain(_)) {
            settle_rollups(&self.target.store).await?;
        }
        // And from a quiet database: InnoDB flushes what the figure before
        // wrote for a while after it, on the CPU the next one is charged.
        if let Some(pid) = database {
            wait_until_idle(pid).await;
        }
        let load_average = load_average();
        let database_before = database.map(cpu_seconds);
        let mut figure = Figure {
            what,
            round,
            rate: 0.0,
            load_average,
            writer_cpu: 0.0,
            database_cpu: None,
            broker_cpu: None,
            caught_up: None,
            largest_batch: None,
            peak_rss: None,
        };
        match what {
            Measured::Drain(setting) => {
                self.drain(tag, setting, hours_back, servers, &mut figure)
                    .await?
            }
            Measured::InsertBaseline => {
                let readings = self.backlog(tag, hours_back).readings(Utc::now())?;
                let cpu = cpu_seconds(std::process::id());
                figure.rate = super::direct_insert_rate(&self.target.store, &readings).await?;
                figure.writer_cpu = cpu_seconds(std::process::id()) - cpu;
            }
            Measured::FileBaseline => {
                let readings = self.backlog(tag, hours_back).readings(Utc::now())?;
                let Some((rate, client_cpu)) =
                    super::load_data_file_rate(&self.target.database_url, &readings)?
                else {
                    return Ok(None);
                };
                figure.rate = rate;
                figure.writer_cpu = client_cpu;
            }
        }
        // Drains count the database's CPU themselves, until the last row
        // and not while the refresher catches up afterwards.
        if !matches!(what, Measured::Drain(_)) {
            figure.database_cpu = database
                .zip(database_before)
                .map(|(pid, before)| cpu_seconds(pid) - before);
        }
        Ok(Some(figure))
    }

    /// A subscriber that stores nothing drains the same backlog: how fast
    /// the broker hands a queued session its messages.
    async fn broker_alone(&self) -> Result<f64> {
        let client_id = format!("bench-{}-bare", self.run_id).to_ascii_lowercase();
        let filter = format!("$share/{client_id}/sensors/#");
        let bare = BareSubscriber::new(self.mqtt, &client_id, &filter);
        bare.subscribe_and_leave().await?;
        let backlog = self.backlog("BARE", 1);
        self.queue_backlog(&backlog).await?;
        let started = Instant::now();
        let messages = backlog.messages(self.per_message);
        let received = bare.drain(messages).await?;
        if received < messages {
            bail!("the bare subscriber received {received} of {messages} messages");
        }
        Ok(self.count as f64 / started.elapsed().as_secs_f64())
    }

    /// One drain: queue the backlog, start the ingestor, time the drain (and
    /// with rollups on, until its refresher has caught up).
    async fn drain(
        &self,
        tag: &str,
        setting: DrainSetting,
        hours_back: i64,
        servers: Servers,
        figure: &mut Figure,
    ) -> Result<()> {
        let group = format!("bench-{}-{tag}", self.run_id).to_ascii_lowercase();
        let spec = IngestorSpec {
            database_url: self.target.database_url.clone(),
            mqtt_url: self.target.mqtt_url.clone(),
            group: Some(group.clone()),
            client_id: format!("{group}-0"),
            env: vec![
                (
                    "ROLLUPS".to_owned(),
                    if setting.rollups { "true" } else { "false" }.to_owned(),
                ),
                ("INGEST_WRITER".to_owned(), setting.writer.to_owned()),
            ],
        };
        // Subscribes once, so that the broker keeps a session to queue for.
        self.start(&spec).await?.terminate()?;
        let backlog = self.backlog(tag, hours_back);
        self.queue_backlog(&backlog).await?;
        let before = |pid: Option<u32>| pid.map(|pid| (pid, cpu_seconds(pid)));
        let (database_before, broker_before) = (before(servers.database), before(servers.broker));
        let started = Instant::now();
        let ingestor = self.start(&spec).await?;
        let inserted = wait_inserted(&ingestor, self.count as u64).await;
        let took = started.elapsed();
        let drained = inserted.all;
        figure.writer_cpu = cpu_seconds(ingestor.pid());
        let since = |before: Option<(u32, f64)>| before.map(|(pid, at)| cpu_seconds(pid) - at);
        figure.database_cpu = since(database_before);
        figure.broker_cpu = since(broker_before);
        figure.largest_batch = inserted.largest_batch;
        if setting.rollups && drained {
            let landed = Instant::now();
            wait_clean(&self.target.store).await?;
            figure.caught_up = Some(landed.elapsed());
        }
        figure.peak_rss = ingestor.peak_rss_bytes();
        stop(vec![ingestor], self.mqtt).await;
        let filter = ReadingFilter::default().with_id1(Id1::parse(&backlog.id1)?);
        let stored = self.target.store.count(&filter).await?;
        if !drained {
            bail!(
                "the drain stalled: the ingestor took nothing for 30 s ({stored} of {} readings stored)",
                self.count
            );
        }
        if stored != self.count as u64 {
            bail!(
                "the backlog did not drain exactly: {stored} of {} readings stored",
                self.count
            );
        }
        figure.rate = self.count as f64 / took.as_secs_f64();
        Ok(())
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

    /// The backlog of figure `tag`: a device per publisher, stamped
    /// `hours_back`, one or two more hours back; the baselines write the
    /// same readings.
    fn backlog(&self, tag: &str, hours_back: i64) -> Backlog {
        Backlog::of_run(self.run_id, tag, self.publishers, self.count, hours_back)
    }

    /// Publishes `backlog`, a publisher per device.
    async fn queue_backlog(&self, backlog: &Backlog) -> Result<()> {
        let tasks: Vec<_> = backlog
            .publish_plans(self.mqtt, self.per_message)
            .into_iter()
            .map(|plan| tokio::spawn(publish(plan)))
            .collect();
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
}

/// `A`, `B`, …: tags in client ids and id1s (an id1 takes no digits).
fn letter(n: usize) -> char {
    char::from(b'A' + (n % 26) as u8)
}

/// A figure as one progress line.
fn describe(f: &Figure) -> String {
    let what = match f.what {
        Measured::Drain(s) => format!(
            "drain, writer {}, rollups {}",
            s.writer,
            if s.rollups { "on" } else { "off" }
        ),
        Measured::InsertBaseline => "INSERT IGNORE ×1000".to_owned(),
        Measured::FileBaseline => "LOAD DATA from a file".to_owned(),
    };
    let mut line = format!(
        "{what}: {:.0}/s (load {:.2}; CPU s: writer {:.2}{}{})",
        f.rate,
        f.load_average,
        f.writer_cpu,
        f.broker_cpu
            .map_or(String::new(), |c| format!(", broker {c:.2}")),
        f.database_cpu
            .map_or(String::new(), |c| format!(", database {c:.2}"))
    );
    if let Some(batch) = f.largest_batch {
        line.push_str(&format!("; largest batch {batch:.0}"));
    }
    if let Some(c) = f.caught_up {
        line.push_str(&format!("; hours rebuilt {:.1} s after", c.as_secs_f64()));
    }
    if let Some(rss) = f.peak_rss {
        line.push_str(&format!(
            "; peak RSS {:.1} MiB",
            rss as f64 / (1024.0 * 1024.0)
        ));
    }
    line
}

/// Waits until `ingestor` has taken `count` readings (inserted, or found
/// already stored), or made no progress for 30 s; returns whether it got
/// there, and the largest batch size it reported meanwhile.
async fn wait_inserted(ingestor: &ServiceProcess, count: u64) -> Inserted {
    let mut landed = 0;
    let mut largest_batch: Option<f64> = None;
    let mut last_progress = Instant::now();
    loop {
        // Inserted, or found already stored: a broker that redelivers after
        // a reconnect under load hands the ingestor readings it has stored
        // (the caller counts the rows afterwards).
        let values = ingestor
            .metrics(&[
                "datastream_ingest_readings_total{outcome=\"inserted\"}",
                "datastream_ingest_readings_total{outcome=\"duplicate\"}",
                "datastream_ingest_batch_target_readings",
            ])
            .await;
        let now = values[..2].iter().flatten().sum::<f64>() as u64;
        if let Some(target) = values[2] {
            largest_batch = Some(largest_batch.map_or(target, |l| l.max(target)));
        }
        if now >= count || last_progress.elapsed() > Duration::from_secs(30) {
            return Inserted {
                all: now >= count,
                largest_batch,
            };
        }
        if now > landed {
            landed = now;
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What [`wait_inserted`] saw.
struct Inserted {
    /// Every reading was taken.
    all: bool,
    /// The largest batch target the ingestor reported.
    largest_batch: Option<f64>,
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
