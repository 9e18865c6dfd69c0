//! `datastream bench retention`: what removing one day of readings from a
//! large table costs, and what it does to ingest, in one run:
//!
//! * **ingest alone** (the baseline): batches of 1,000 readings written
//!   through the store, one after another, for `seconds`;
//! * **ingest while retention removes the table's oldest day**, paced as
//!   the ingestors' sweeper paces it;
//! * on MySQL/MariaDB, **the alternative**: the same table copied into one
//!   partitioned by day (its primary key widened to `(id, timestamp)`, as
//!   partitioning requires) and the day dropped with
//!   `ALTER TABLE … DROP PARTITION`, through the `mariadb` client.
//!
//! It uses `bench query`'s table (`rows` readings of 1,000 devices over 30
//! days, loaded when missing) and removes its oldest remaining day for
//! good: run it on a database of its own (each run removes the next day).

use crate::mariadb_cli::{sql_time, MariadbCli};
use crate::query::load;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use datastream_domain::{
    FilterParams, Id1, Id2, Reading, ReadingFilter, RetentionPolicy, SensorType, TimestampBounds,
};
use datastream_ingestor::{retention_pause, RETENTION_DELETE_CHUNK};
use datastream_store::SharedStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct RetentionBench {
    /// Readings in the table (loaded if missing).
    pub rows: u64,
    /// Seconds of ingest alone, the baseline.
    pub seconds: u64,
    /// The database's URL, for the partitioned alternative.
    pub database_url: String,
}

/// Ingest over a stretch of time.
#[derive(Debug, Clone, Copy)]
pub struct IngestFigures {
    /// Rows written per second.
    pub rows_per_sec: f64,
    /// 99th percentile of one batch's commit.
    pub p99: Duration,
    /// Batches written.
    pub batches: usize,
}

/// The partitioned alternative's figures.
#[derive(Debug, Clone, Copy)]
pub struct PartitionFigures {
    /// Copying the table into the partitioned one.
    pub copy: Duration,
    /// `ALTER TABLE … DROP PARTITION` of the day.
    pub drop: Duration,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct RetentionReport {
    /// Readings of the day removed.
    pub day_rows: u64,
    /// Ingest alone.
    pub alone: IngestFigures,
    /// Ingest while retention ran.
    pub during: IngestFigures,
    /// How long retention took to remove the day.
    pub removal: Duration,
    /// Retention steps it took.
    pub steps: u64,
    /// The partitioned alternative, on MySQL with the `mariadb` client.
    pub partitioned: Option<PartitionFigures>,
}

/// Runs the benchmark on `store`.
pub async fn run(store: SharedStore, bench: &RetentionBench) -> Result<RetentionReport> {
    let end = load::load(&store, bench.rows).await?;
    let start = oldest_day(&store).await?;
    let day_end = start + ChronoDuration::days(1);
    let kept_days = (end - day_end).num_days();
    if kept_days < 1 {
        bail!("only one day of readings is left: load the table again on a new database");
    }
    let (from, to) = (start.to_rfc3339(), day_end.to_rfc3339());
    let first_day = ReadingFilter::parse(
        FilterParams {
            id1: Some(crate::query::ID1),
            from: Some(&from),
            to: Some(&to),
            ..FilterParams::default()
        },
        Utc::now(),
    )?;
    let day_rows = store.count(&first_day).await?;
    if day_rows == 0 {
        bail!(
            "the table's oldest day has no readings: run bench retention on a database of its own"
        );
    }
    eprintln!(
        "bench retention: removing the oldest day of bench query's table, {day_rows} readings ({start} to {day_end})"
    );
    // The sweeper finds settled hours clean (the refresher runs in every
    // ingestor): rebuild the day's rollups first, outside the timing.
    while store
        .refresh_rollups(day_end + ChronoDuration::hours(2), 24)
        .await?
        > 0
    {}
    let partitioned = match MariadbCli::for_url(&bench.database_url) {
        Some(cli) => {
            eprintln!("[1/4] copying the table into one partitioned by day");
            Some(Partitioned::copy(&cli, day_end)?)
        }
        None => {
            eprintln!(
                "[1/4] skipped: the partitioned alternative needs MySQL and the mariadb client"
            );
            None
        }
    };
    eprintln!("[2/4] ingest alone for {} s", bench.seconds);
    let alone = ingest_until(store.clone(), "RETBENCHA", Stop::after(bench.seconds)).await?;
    eprintln!("[3/4] ingest while retention removes the day");
    let stop = Stop::default();
    let ingest = tokio::spawn(ingest_until(store.clone(), "RETBENCHB", stop.clone()));
    let (removal, steps) = remove_day(&store, end, kept_days).await;
    stop.now();
    let during = ingest.await??;
    let (removal, steps) = (removal?, steps);
    let left = store.count(&first_day).await?;
    if left != 0 {
        bail!("retention left {left} readings of the day");
    }
    let partitioned = match (partitioned, MariadbCli::for_url(&bench.database_url)) {
        (Some(p), Some(cli)) => {
            eprintln!("[4/4] DROP PARTITION of the same day");
            Some(p.drop_day(&cli)?)
        }
        _ => None,
    };
    Ok(RetentionReport {
        day_rows,
        alone,
        during,
        removal,
        steps,
        partitioned,
    })
}

/// The start of the day of the table's oldest reading.
async fn oldest_day(store: &SharedStore) -> Result<DateTime<Utc>> {
    let oldest = ReadingFilter::parse(
        FilterParams {
            id1: Some(crate::query::ID1),
            order: Some("asc"),
            limit: Some("1"),
            ..FilterParams::default()
        },
        Utc::now(),
    )?;
    let Some(first) = store.query(&oldest).await?.into_iter().next() else {
        bail!("the table is empty");
    };
    Ok(first.timestamp.duration_trunc(ChronoDuration::days(1))?)
}

/// Applies a retention of `kept_days` at `end`, the table's last day, until
/// nothing is due: its oldest day goes. Paced like the sweeper.
async fn remove_day(
    store: &SharedStore,
    end: DateTime<Utc>,
    kept_days: i64,
) -> (Result<Duration>, u64) {
    let policy = match RetentionPolicy::parse(&format!("{kept_days}d"), None) {
        Ok(p) => p,
        Err(e) => return (Err(e.into()), 0),
    };
    let started = Instant::now();
    let mut steps = 0;
    loop {
        let step_started = Instant::now();
        match store
            .apply_retention(&policy, end, RETENTION_DELETE_CHUNK)
            .await
        {
            Ok(step) => {
                steps += 1;
                if !step.more && !step.busy {
                    return (Ok(started.elapsed()), steps);
                }
            }
            Err(e) => return (Err(e.into()), steps),
        }
        tokio::time::sleep(retention_pause(step_started.elapsed())).await;
    }
}

/// When an ingest loop stops.
#[derive(Clone, Default)]
struct Stop {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Stop {
    fn after(seconds: u64) -> Self {
        Self {
            flag: Arc::default(),
            deadline: Some(Instant::now() + Duration::from_secs(seconds)),
        }
    }

    fn now(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    fn reached(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Writes batches of 1,000 new readings of `id1` until `stop`.
async fn ingest_until(store: SharedStore, id1: &str, stop: Stop) -> Result<IngestFigures> {
    let (id1, sensor_type) = (Id1::parse(id1)?, SensorType::parse("bench")?);
    let bounds = TimestampBounds::default();
    let base = Utc::now() - ChronoDuration::minutes(30);
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut n: i64 = 0;
    while !stop.reached() {
        let now = Utc::now();
        let batch: Vec<Reading> = (n..n + 1_000)
            .map(|i| {
                Reading::builder()
                    .sensor_value((i % 1000) as f64)
                    .sensor_type(sensor_type.clone())
                    .id1(id1.clone())
                    .id2(Id2::new(i % 100)?)
                    .timestamp(base + ChronoDuration::microseconds(i))
                    .build(&bounds, now)
            })
            .collect::<Result<_, _>>()?;
        n += 1_000;
        let t = Instant::now();
        store.insert_batch(batch.into()).await?;
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let p99 = latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    Ok(IngestFigures {
        rows_per_sec: n as f64 / elapsed,
        p99,
        batches: latencies.len(),
    })
}

/// The table copied into one partitioned by day.
struct Partitioned {
    copy: Duration,
}

const PARTITIONED: &str = "bench_retention_partitioned";

impl Partitioned {
    /// Copies `sensor_data` into a table whose first partition holds
    /// everything before `day_end`.
    fn copy(cli: &MariadbCli, day_end: DateTime<Utc>) -> Result<Self> {
        let started = Instant::now();
        cli.run(&format!(
            "DROP TABLE IF EXISTS {PARTITIONED}; CREATE TABLE {PARTITIONED} LIKE sensor_data; \
             ALTER TABLE {PARTITIONED} DROP PRIMARY KEY, ADD PRIMARY KEY (id, `timestamp`) \
             PARTITION BY RANGE (TO_DAYS(`timestamp`)) ( \
               PARTITION p_oldest VALUES LESS THAN (TO_DAYS('{}')), \
               PARTITION p_rest VALUES LESS THAN MAXVALUE); \
             INSERT INTO {PARTITIONED} SELECT * FROM sensor_data",
            sql_time(day_end)
        ))?;
        Ok(Self {
            copy: started.elapsed(),
        })
    }

    /// Drops the day's partition, timed, then the table.
    fn drop_day(self, cli: &MariadbCli) -> Result<PartitionFigures> {
        let (_, drop) = cli.run(&format!(
            "ALTER TABLE {PARTITIONED} DROP PARTITION p_oldest"
        ))?;
        cli.run(&format!("DROP TABLE {PARTITIONED}"))?;
        Ok(PartitionFigures {
            copy: self.copy,
            drop,
        })
    }
}

impl RetentionReport {
    /// The report as printed by `datastream bench retention`.
    pub fn render(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let ingest = |name: &str, f: &IngestFigures| {
            format!(
                "  {name:<38} {:>9.0} rows/s   p99 per batch of 1,000 {:>7.1} ms   ({} batches)\n",
                f.rows_per_sec,
                ms(f.p99),
                f.batches
            )
        };
        let mut s = String::from("results\n");
        s.push_str(&ingest("ingest alone", &self.alone));
        s.push_str(&ingest("ingest while retention runs", &self.during));
        s.push_str(&format!(
            "  {:<38} {:>9.1} s        {:.0} rows/s removed, {} steps (chunks of {RETENTION_DELETE_CHUNK}, paced as the sweeper paces them)\n",
            format!("retention: one day, {} rows", self.day_rows),
            self.removal.as_secs_f64(),
            self.day_rows as f64 / self.removal.as_secs_f64(),
            self.steps
        ));
        if let Some(p) = &self.partitioned {
            s.push_str(&format!(
                "  {:<38} {:>9.1} ms       (copying the table into the partitioned one took {:.1} s)\n",
                "partitioned table: DROP PARTITION",
                ms(p.drop),
                p.copy.as_secs_f64()
            ));
        }
        s.push_str("ratios\n");
        s.push_str(&format!(
            "  ingest during retention ÷ alone        {:>6.2}   (rows/s; p99 {:.2}×)\n",
            self.during.rows_per_sec / self.alone.rows_per_sec,
            ms(self.during.p99) / ms(self.alone.p99).max(f64::MIN_POSITIVE)
        ));
        if let Some(p) = &self.partitioned {
            s.push_str(&format!(
                "  chunked delete ÷ DROP PARTITION        {:>6.0}×  (time to remove the day)\n",
                self.removal.as_secs_f64() / p.drop.as_secs_f64().max(1e-6)
            ));
        }
        s
    }
}
