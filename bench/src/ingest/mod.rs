//! `datastream bench ingest`: how fast readings go from MQTT into the
//! database, against two baselines measured in the same run:
//!
//! * **storage limit**: the same readings written straight into the table
//!   with multi-row `INSERT IGNORE` batches of 1,000 (no MQTT at all);
//! * **naive pipeline**: the same ingestor with `INGEST_BATCH_MAX=1`, one
//!   reading per transaction, the pattern of a hand-written consumer.
//!
//! Ingestors run as real child processes (`datastream ingestor`), so their
//! memory can be read and nothing is shared with the publishers.

mod backlog;
mod bare_subscriber;
mod drain;
mod pipeline;
mod report;

pub use drain::DrainReport;

use crate::broker_drops::BrokerDrops;
use crate::service_process::{IngestorSpec, ServiceCommand, ServiceProcess};
use anyhow::{Context, Result};
use backlog::Backlog;
use chrono::Utc;
use datastream_domain::{MqttUrl, Reading};
use datastream_store::SharedStore;
use pipeline::Pipeline;
use rand::distr::{Alphabetic, SampleString};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct IngestBench {
    /// Readings per pipeline run.
    pub count: usize,
    /// Total publish rate; `None` runs at full speed, then again at half the
    /// rate that landed (the latency measurement).
    pub rate: Option<f64>,
    /// Concurrent publishers.
    pub publishers: usize,
    /// Ingestor processes in the shared group.
    pub ingestors: usize,
    /// Readings for the one-per-transaction baseline (it is slow).
    pub naive_count: usize,
    /// Readings per MQTT message (a JSON array when more than one).
    pub per_message: usize,
    /// Readings in each backlog drained and in each of its baselines (0
    /// skips that step).
    pub drain_count: usize,
    /// Rounds of the drain step (drain, both baselines, a variant drain).
    pub drain_rounds: usize,
    /// Only the drain step.
    pub drain_only: bool,
}

/// One pipeline run's figures.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    /// Target rate, if throttled.
    pub rate: Option<f64>,
    /// Readings published per second (until the broker acked the last).
    pub published_per_sec: f64,
    /// Rows landed per second (first publish to last row counted).
    pub landed_per_sec: f64,
    /// Median publish → stored latency.
    pub p50: Duration,
    /// 99th percentile publish → stored latency.
    pub p99: Duration,
    /// Published but not stored.
    pub lost: u64,
    /// Messages the broker says it dropped during the run (any client's),
    /// read when something was lost and the broker publishes the figure.
    pub broker_dropped: Option<u64>,
    /// Readings per MQTT message in this run.
    pub per_message: usize,
    /// Redelivered readings the unique key absorbed.
    pub duplicates: u64,
    /// The 1-minute load average when it started.
    pub load_average: f64,
    /// CPU seconds of the ingestor processes from the first publish until
    /// the last reading landed.
    pub ingestor_cpu: f64,
    /// CPU seconds of the database server meanwhile, when it runs here.
    pub database_cpu: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Steps 1 to 4 (none with `drain_only`).
    pub pipeline: Option<PipelineReport>,
    /// Step 5, the backlog drain rounds.
    pub drain: Option<DrainReport>,
}

/// Steps 1 to 4: the pipeline against its baselines.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Direct multi-row inserts, rows/s.
    pub storage_rows_per_sec: f64,
    /// `LOAD DATA LOCAL INFILE` of a file through the `mariadb` client,
    /// rows/s (MySQL with the client installed).
    pub load_data_file_rows_per_sec: Option<f64>,
    /// Pipeline with one reading per transaction, rows/s.
    pub naive: PipelineRun,
    /// Pipeline at full speed.
    pub full: PipelineRun,
    /// Pipeline at the latency rate.
    pub paced: Option<PipelineRun>,
    /// Highest peak RSS among the ingestor processes, bytes.
    pub ingestor_peak_rss: Option<u64>,
}

/// Where the benchmark runs.
pub struct IngestTarget {
    /// The database, opened.
    pub store: SharedStore,
    /// Its URL, for the ingestor processes.
    pub database_url: String,
    /// The external broker's URL, credentials included.
    pub mqtt_url: String,
    /// The `datastream` binary the ingestors run as.
    pub binary: std::path::PathBuf,
}

/// Runs the benchmark against `target`'s broker and database.
pub async fn run(target: &IngestTarget, bench: &IngestBench) -> Result<IngestReport> {
    let mqtt = MqttUrl::parse(&target.mqtt_url)?;
    let run_id = Alphabetic
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_uppercase();
    eprintln!(
        "bench ingest: broker {mqtt}, database {}; {} reading(s) per message; readings use id1 BENCH{run_id}*",
        datastream_store::redact_url(&target.database_url),
        bench.per_message
    );
    let pipeline = if bench.drain_only {
        None
    } else {
        Some(pipeline_steps(target, bench, &mqtt, &run_id).await?)
    };
    let drain = if bench.drain_count > 0 {
        Some(drain_backlog(target, bench, &mqtt, &run_id).await?)
    } else {
        None
    };
    Ok(IngestReport { pipeline, drain })
}

/// Steps 1 to 4: the baselines, the naive pipeline, the pipeline at full
/// speed and at half the rate that landed.
async fn pipeline_steps(
    target: &IngestTarget,
    bench: &IngestBench,
    mqtt: &MqttUrl,
    run_id: &str,
) -> Result<PipelineReport> {
    let mqtt = mqtt.clone();
    let mut drops =
        BrokerDrops::follow(&mqtt, &format!("bench-sys-{run_id}").to_ascii_lowercase()).await;

    eprintln!("[1/5] storage limit: direct INSERT IGNORE, batches of 1000; LOAD DATA from a file");
    let (storage_rows_per_sec, load_data_file_rows_per_sec) =
        storage_baselines(target, run_id, bench.count, bench.publishers).await?;

    eprintln!("[2/5] naive pipeline: INGEST_BATCH_MAX=1");
    let naive = {
        let ingestors = start_ingestors(target, run_id, "n", 1, Some(1)).await?;
        // The naive consumer's pattern: one reading per message and transaction.
        let pipeline = pipeline(target, &mqtt, &ingestors, bench.publishers, 1);
        let id1 = format!("BENCH{run_id}N");
        let run = pipeline
            .run(&id1, bench.naive_count, None, &mut drops)
            .await?;
        stop(ingestors, &mqtt).await;
        run
    };

    eprintln!(
        "[3/5] pipeline at full speed, {} ingestor(s)",
        bench.ingestors
    );
    let ingestors = start_ingestors(target, run_id, "p", bench.ingestors, None).await?;
    let pipeline = pipeline(
        target,
        &mqtt,
        &ingestors,
        bench.publishers,
        bench.per_message,
    );
    let id1 = format!("BENCH{run_id}F");
    let full = pipeline
        .run(&id1, bench.count, bench.rate, &mut drops)
        .await?;
    let paced = match bench.rate {
        None => {
            let rate = (full.landed_per_sec / 2.0).max(1.0);
            eprintln!("[4/5] pipeline at half the landed rate: {rate:.0}/s");
            let id1 = format!("BENCH{run_id}H");
            Some(
                pipeline
                    .run(&id1, bench.count, Some(rate), &mut drops)
                    .await?,
            )
        }
        Some(_) => {
            eprintln!("[4/5] skipped: --rate given");
            None
        }
    };
    let ingestor_peak_rss = ingestors.iter().filter_map(|i| i.peak_rss_bytes()).max();
    stop(ingestors, &mqtt).await;
    Ok(PipelineReport {
        storage_rows_per_sec,
        load_data_file_rows_per_sec,
        naive,
        full,
        paced,
        ingestor_peak_rss,
    })
}

/// Step 1: `count` readings straight into the table, as multi-row INSERT
/// IGNOREs and (MySQL) as LOAD DATA from a file; rows/s. The readings are
/// laid out as the pipeline publishes them: a device per publisher.
async fn storage_baselines(
    target: &IngestTarget,
    run_id: &str,
    count: usize,
    publishers: usize,
) -> Result<(f64, Option<f64>)> {
    let readings =
        |tag: &str| Backlog::of_run(run_id, tag, publishers, count, 2).readings(Utc::now());
    let insert = direct_insert_rate(&target.store, &readings("D")?).await?;
    let file = load_data_file_rate(&target.database_url, &readings("L")?)?;
    Ok((insert, file.map(|(rate, _)| rate)))
}

/// Step 5: a backlog drained: the broker alone, both writers, rollups on
/// and off, and both baselines between the runs.
async fn drain_backlog(
    target: &IngestTarget,
    bench: &IngestBench,
    mqtt: &MqttUrl,
    run_id: &str,
) -> Result<drain::DrainReport> {
    eprintln!(
        "[5/5] draining a backlog of {} readings: the broker alone, then {} rounds of the drain, INSERT IGNORE ×1000, LOAD DATA from a file and a variant drain (insert writer / rollups off), in rotating order",
        bench.drain_count, bench.drain_rounds
    );
    let drain = drain::Drain {
        target,
        mqtt,
        run_id,
        count: bench.drain_count,
        rounds: bench.drain_rounds.max(1),
        publishers: bench.publishers,
        per_message: bench.per_message,
    };
    drain.measure().await
}

/// A pipeline over `target`'s store and these ingestors.
fn pipeline<'a>(
    target: &'a IngestTarget,
    mqtt: &'a MqttUrl,
    ingestors: &'a [ServiceProcess],
    publishers: usize,
    per_message: usize,
) -> Pipeline<'a> {
    Pipeline {
        store: &target.store,
        mqtt,
        ingestors,
        publishers,
        per_message,
    }
}

/// Starts `n` ingestor processes in one group and waits until all are ready.
async fn start_ingestors(
    target: &IngestTarget,
    run_id: &str,
    tag: &str,
    n: usize,
    batch_max: Option<usize>,
) -> Result<Vec<ServiceProcess>> {
    let group = format!("bench-{run_id}-{tag}").to_ascii_lowercase();
    let mut ingestors = Vec::with_capacity(n);
    for i in 0..n {
        let spec = IngestorSpec {
            database_url: target.database_url.clone(),
            mqtt_url: target.mqtt_url.clone(),
            group: Some(group.clone()),
            client_id: format!("{group}-{i}"),
            // A fixed batch size: live and while draining alike.
            env: batch_max
                .into_iter()
                .flat_map(|b| {
                    [
                        ("INGEST_BATCH_MAX".to_owned(), b.to_string()),
                        ("INGEST_DRAIN_BATCH_MAX".to_owned(), b.to_string()),
                    ]
                })
                .collect(),
        };
        let command = ServiceCommand::ingestor(&spec);
        ingestors.push(
            ServiceProcess::start(&target.binary, command, Duration::from_secs(30))
                .await
                .context("starting an ingestor")?,
        );
    }
    Ok(ingestors)
}

/// Stops the ingestors and ends their broker sessions: a group whose
/// members are all gone would otherwise keep queueing every later message.
async fn stop(ingestors: Vec<ServiceProcess>, mqtt: &MqttUrl) {
    for i in ingestors {
        let client_id = i.name().to_owned();
        let _ = i.terminate();
        if let Err(error) = datastream_ingestor::end_session(mqtt, &client_id).await {
            eprintln!("could not end the session of {client_id}: {error}");
        }
    }
}

/// Inserts `readings` straight into the table in batches of 1,000.
pub(super) async fn direct_insert_rate(store: &SharedStore, readings: &[Reading]) -> Result<f64> {
    let started = Instant::now();
    for chunk in readings.chunks(1000) {
        store.insert_batch(chunk.into()).await?;
    }
    Ok(readings.len() as f64 / started.elapsed().as_secs_f64())
}

/// `readings` written to a file in their order and loaded with `mariadb -e
/// "LOAD DATA LOCAL INFILE …"`, timed with the client's start: rows/s and
/// the client's CPU seconds; `None` without MySQL or the client.
pub(super) fn load_data_file_rate(
    database_url: &str,
    readings: &[Reading],
) -> Result<Option<(f64, f64)>> {
    use std::io::Write as _;
    let Some(cli) = crate::mariadb_cli::MariadbCli::for_url(database_url) else {
        return Ok(None);
    };
    let mut file = tempfile::NamedTempFile::new()?;
    {
        let mut out = std::io::BufWriter::new(&mut file);
        for r in readings {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                r.sensor_value(),
                r.sensor_type(),
                r.id1(),
                r.id2().get(),
                r.timestamp().format("%Y-%m-%d %H:%M:%S%.6f")
            )?;
        }
        out.flush()?;
    }
    let path = file.path().to_string_lossy().into_owned();
    if path.contains('\'') {
        anyhow::bail!("temporary file path {path:?} cannot be quoted");
    }
    let children_cpu = crate::figures::ended_children_cpu_seconds();
    let (_, took) = cli.run(&format!(
        "SET time_zone = '+00:00'; LOAD DATA LOCAL INFILE '{path}' IGNORE INTO TABLE sensor_data \
         CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '' LINES TERMINATED BY '\\n' \
         (sensor_value, sensor_type, id1, id2, `timestamp`)"
    ))?;
    let client_cpu = crate::figures::ended_children_cpu_seconds() - children_cpu;
    Ok(Some((
        readings.len() as f64 / took.as_secs_f64(),
        client_cpu,
    )))
}

impl PipelineRun {
    /// Readings lost that the broker's own drops do not account for (only
    /// known where the broker reported its drops).
    pub fn unexplained_loss(&self) -> Option<u64> {
        let dropped = self.broker_dropped?;
        Some(
            self.lost
                .saturating_sub(dropped.saturating_mul(self.per_message as u64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineRun;
    use std::time::Duration;

    fn run(lost: u64, broker_dropped: Option<u64>, per_message: usize) -> PipelineRun {
        PipelineRun {
            rate: None,
            published_per_sec: 1.0,
            landed_per_sec: 1.0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            lost,
            broker_dropped,
            per_message,
            duplicates: 0,
            load_average: 0.0,
            ingestor_cpu: 0.0,
            database_cpu: None,
        }
    }

    #[test]
    fn loss_the_broker_dropped_is_explained() {
        assert_eq!(run(980, Some(980), 1).unexplained_loss(), Some(0));
        assert_eq!(run(980, Some(98), 10).unexplained_loss(), Some(0));
    }

    #[test]
    fn loss_beyond_the_broker_drops_is_unexplained() {
        assert_eq!(run(1000, Some(980), 1).unexplained_loss(), Some(20));
        assert_eq!(run(1000, Some(0), 10).unexplained_loss(), Some(1000));
    }

    #[test]
    fn without_the_broker_figure_nothing_is_claimed() {
        assert_eq!(run(1000, None, 1).unexplained_loss(), None);
    }
}
