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

use crate::broker_drops::BrokerDrops;
use crate::publish::{publish, PublishPlan};
use anyhow::{Context, Result};
use chrono::{Duration as ChronoDuration, Utc};
use datastream_schema::timestamp::format_timestamp;
use datastream_schema::{
    FilterParams, Id1, Id2, MqttUrl, Order, Reading, ReadingFilter, SensorType, SharedStore,
    TimestampBounds,
};
use datastream_test_support::process::{IngestorSpec, ServiceCommand, ServiceProcess};
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
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Direct multi-row inserts, rows/s.
    pub storage_rows_per_sec: f64,
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
    let store = target.store.clone();
    let run_id = Alphabetic
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_uppercase();
    eprintln!(
        "bench ingest: broker {mqtt}, database {}; {} reading(s) per message; readings use id1 BENCH{run_id}*",
        datastream_schema::store::redact_url(&target.database_url),
        bench.per_message
    );
    let mut drops =
        BrokerDrops::follow(&mqtt, &format!("bench-sys-{run_id}").to_ascii_lowercase()).await;

    eprintln!("[1/4] storage limit: direct INSERT IGNORE, batches of 1000");
    let storage_rows_per_sec =
        direct_insert_rate(&store, &format!("BENCH{run_id}D"), bench.count).await?;

    eprintln!("[2/4] naive pipeline: INGEST_BATCH_MAX=1");
    let naive = {
        let ingestors = start_ingestors(target, &run_id, "n", 1, Some(1)).await?;
        let run = Pipeline {
            store: &store,
            mqtt: &mqtt,
            ingestors: &ingestors,
            publishers: bench.publishers,
            // The naive consumer's pattern: one reading per message and transaction.
            per_message: 1,
        }
        .run(
            &format!("BENCH{run_id}N"),
            bench.naive_count,
            None,
            &mut drops,
        )
        .await?;
        stop(ingestors, &mqtt).await;
        run
    };

    eprintln!(
        "[3/4] pipeline at full speed, {} ingestor(s)",
        bench.ingestors
    );
    let ingestors = start_ingestors(target, &run_id, "p", bench.ingestors, None).await?;
    let full = Pipeline {
        store: &store,
        mqtt: &mqtt,
        ingestors: &ingestors,
        publishers: bench.publishers,
        per_message: bench.per_message,
    }
    .run(
        &format!("BENCH{run_id}F"),
        bench.count,
        bench.rate,
        &mut drops,
    )
    .await?;

    let paced = if bench.rate.is_none() {
        let rate = (full.landed_per_sec / 2.0).max(1.0);
        eprintln!("[4/4] pipeline at half the landed rate: {rate:.0}/s");
        Some(
            Pipeline {
                store: &store,
                mqtt: &mqtt,
                ingestors: &ingestors,
                publishers: bench.publishers,
                per_message: bench.per_message,
            }
            .run(
                &format!("BENCH{run_id}H"),
                bench.count,
                Some(rate),
                &mut drops,
            )
            .await?,
        )
    } else {
        eprintln!("[4/4] skipped: --rate given");
        None
    };
    let ingestor_peak_rss = ingestors.iter().filter_map(|i| i.peak_rss_bytes()).max();
    stop(ingestors, &mqtt).await;

    Ok(IngestReport {
        storage_rows_per_sec,
        naive,
        full,
        paced,
        ingestor_peak_rss,
    })
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
            env: batch_max
                .map(|b| ("INGEST_BATCH_MAX".to_owned(), b.to_string()))
                .into_iter()
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

/// Inserts `count` readings straight into the table in batches of 1,000.
async fn direct_insert_rate(store: &SharedStore, id1: &str, count: usize) -> Result<f64> {
    let id1 = Id1::parse(id1)?;
    let sensor_type = SensorType::parse("bench")?;
    let base = Utc::now() - ChronoDuration::hours(2);
    let bounds = TimestampBounds::default();
    let now = Utc::now();
    let readings: Vec<Reading> = (0..count)
        .map(|i| {
            Reading::new(
                i as f64 * 0.01,
                sensor_type.clone(),
                id1.clone(),
                Id2::new((i % 16) as i64)?,
                base + ChronoDuration::microseconds(i as i64),
                &bounds,
                now,
            )
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for chunk in readings.chunks(1000) {
        store.insert_batch(chunk.into()).await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// What a pipeline run publishes to and measures.
struct Pipeline<'a> {
    store: &'a SharedStore,
    mqtt: &'a MqttUrl,
    ingestors: &'a [ServiceProcess],
    publishers: usize,
    per_message: usize,
}

impl Pipeline<'_> {
    /// Publishes `count` readings for `id1` and measures how fast and how
    /// completely they land; `drops` names the broker's part in any loss.
    async fn run(
        &self,
        id1: &str,
        count: usize,
        rate: Option<f64>,
        drops: &mut Option<BrokerDrops>,
    ) -> Result<PipelineRun> {
        let (store, mqtt, ingestors) = (self.store, self.mqtt, self.ingestors);
        let drop_mark = drops.as_ref().map(BrokerDrops::mark);
        let per_message = self.per_message;
        let publishers = self.publishers.clamp(1, count.max(1));
        let duplicates_before = total(ingestors, "duplicate").await;
        let inserted_before = total(ingestors, "inserted").await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..publishers {
            let share = count / publishers + usize::from(p < count % publishers);
            tasks.push(tokio::spawn(publish(PublishPlan {
                mqtt: mqtt.clone(),
                client_id: format!("bench-pub-{id1}-{p}").to_ascii_lowercase(),
                id1: id1.to_owned(),
                id2: p as u32,
                count: share,
                rate: rate.map(|r| r / publishers as f64),
                per_message,
            })));
        }
        let mut publish_time = Duration::ZERO;
        for t in tasks {
            publish_time = publish_time.max(t.await??);
        }

        // Progress comes from the ingestors' own counters: polling COUNT(*) on
        // the table would compete with the inserts being measured.
        let mut landed = 0;
        let mut last_progress = Instant::now();
        let landed_at = loop {
            let now_count = total(ingestors, "inserted").await - inserted_before;
            if now_count > landed {
                landed = now_count;
                last_progress = Instant::now();
            }
            if landed >= count as u64 {
                break started.elapsed();
            }
            if last_progress.elapsed() > Duration::from_secs(30) {
                break started.elapsed() - Duration::from_secs(30);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let filter = ReadingFilter::default().with_id1(Id1::parse(id1)?);
        let stored = store.count(&filter).await?;
        let mut latencies = latencies(store, id1, publishers).await?;
        latencies.sort();
        let lost = count as u64 - stored.min(count as u64);
        // Worth a wait for the broker's $SYS updates (20–30 s) only when
        // something is missing.
        let broker_dropped = match (drops.as_mut(), drop_mark) {
            (Some(drops), Some(mark)) if lost > 0 => drops.since(mark).await,
            _ => None,
        };
        Ok(PipelineRun {
            rate,
            published_per_sec: count as f64 / publish_time.as_secs_f64(),
            landed_per_sec: landed as f64 / landed_at.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            lost,
            broker_dropped,
            per_message,
            duplicates: total(ingestors, "duplicate").await - duplicates_before,
        })
    }
}

/// `datastream_ingest_readings_total{outcome}` summed over the ingestors.
async fn total(ingestors: &[ServiceProcess], outcome: &str) -> u64 {
    let mut sum = 0;
    for i in ingestors {
        sum += i.readings_total(outcome).await;
    }
    sum
}

/// `created_at − timestamp` of every stored reading of the run: the
/// timestamp is the publish time, `created_at` the database's insert time.
async fn latencies(store: &SharedStore, id1: &str, publishers: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::new();
    for p in 0..publishers {
        let id2 = p.to_string();
        let mut from: Option<String> = None;
        loop {
            let filter = ReadingFilter::parse(
                FilterParams {
                    id1: Some(id1),
                    id2: Some(&id2),
                    from: from.as_deref(),
                    limit: Some("10000"),
                    order: Some("asc"),
                    ..Default::default()
                },
                Utc::now() + ChronoDuration::days(1),
            )?
            .with_order(Order::Asc);
            let page = store.query(&filter).await?;
            let Some(last) = page.last() else { break };
            from = Some(format_timestamp(
                last.timestamp + ChronoDuration::microseconds(1),
            ));
            out.extend(
                page.iter()
                    .map(|r| (r.created_at - r.timestamp).to_std().unwrap_or_default()),
            );
        }
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
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

impl IngestReport {
    /// Every pipeline run, in the order they ran.
    fn runs(&self) -> impl Iterator<Item = &PipelineRun> {
        [&self.naive, &self.full]
            .into_iter()
            .chain(self.paced.as_ref())
    }

    /// The report as printed by `datastream bench ingest`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let row = |name: &str, r: &PipelineRun| {
            format!(
                "  {name:<34} {:>9.0}/s published {:>9.0}/s landed   p50 {:>6.1} ms  p99 {:>7.1} ms   lost {}{}  duplicates absorbed {}\n",
                r.published_per_sec,
                r.landed_per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.lost,
                r.broker_dropped.map_or(String::new(), |n| format!(
                    " (broker dropped {n} message{})",
                    if n == 1 { "" } else { "s" }
                )),
                r.duplicates
            )
        };
        s.push_str("results\n");
        s.push_str(&format!(
            "  {:<34} {:>9.0}/s rows\n",
            "storage limit (INSERT IGNORE ×1000)", self.storage_rows_per_sec
        ));
        s.push_str(&row("naive pipeline (batch of 1)", &self.naive));
        s.push_str(&row("pipeline, full speed", &self.full));
        if let Some(p) = &self.paced {
            let name = format!("pipeline at {:.0}/s", p.rate.unwrap_or_default());
            s.push_str(&row(&name, p));
        }
        s.push_str("ratios\n");
        s.push_str(&format!(
            "  landed ÷ storage limit   {:>6.2}   (target ≥ 0.6)\n",
            self.full.landed_per_sec / self.storage_rows_per_sec
        ));
        s.push_str(&format!(
            "  landed ÷ naive pipeline  {:>6.1}   (target ≥ 10)\n",
            self.full.landed_per_sec / self.naive.landed_per_sec
        ));
        if let Some(p) = &self.paced {
            s.push_str(&format!(
                "  p99 at half rate         {:>6.1} ms (target < 250 ms)\n",
                p.p99.as_secs_f64() * 1e3
            ));
        }
        if let Some(rss) = self.ingestor_peak_rss {
            s.push_str(&format!(
                "  ingestor peak RSS        {:>6.1} MiB (target < 64 MiB)\n",
                rss as f64 / (1024.0 * 1024.0)
            ));
        }
        if self.runs().any(|r| r.broker_dropped.unwrap_or(0) > 0) {
            s.push_str(
                "note: the broker dropped messages, so readings were lost before any ingestor saw them: its\n\
                 \x20     per-client queue filled (Mosquitto's max_queued_messages, 1000 unless set); run it with\n\
                 \x20     the project's mosquitto.conf, which lifts the limit\n",
            );
        }
        let unexplained: u64 = self.runs().filter_map(PipelineRun::unexplained_loss).sum();
        if unexplained > 0 {
            s.push_str(&format!(
                "WARNING: {unexplained} reading(s) lost beyond what the broker dropped: the pipeline lost data; please report it\n"
            ));
        }
        s
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
