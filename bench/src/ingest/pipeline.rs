//! One pipeline run: publish readings, watch them land, measure how fast,
//! how late and how completely.

use super::PipelineRun;
use crate::broker_drops::BrokerDrops;
use crate::figures::{cpu_seconds, database_server_pid, load_average};
use crate::publish::{publish, PublishPlan};
use crate::service_process::ServiceProcess;
use anyhow::Result;
use chrono::{Duration as ChronoDuration, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_domain::{FilterParams, Id1, MqttUrl, Order, ReadingFilter};
use datastream_store::SharedStore;
use std::time::{Duration, Instant};

/// What a pipeline run publishes to and measures.
pub(super) struct Pipeline<'a> {
    pub(super) store: &'a SharedStore,
    pub(super) mqtt: &'a MqttUrl,
    pub(super) ingestors: &'a [ServiceProcess],
    pub(super) publishers: usize,
    pub(super) per_message: usize,
}

impl Pipeline<'_> {
    /// Publishes `count` readings for `id1` and measures how fast and how
    /// completely they land; `drops` names the broker's part in any loss.
    pub(super) async fn run(
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
        let load_average = load_average();
        let database = database_server_pid();
        let cpu = |database: Option<u32>| {
            let ingestors: f64 = ingestors.iter().map(|i| cpu_seconds(i.pid())).sum();
            (ingestors, database.map(cpu_seconds))
        };
        let cpu_before = cpu(database);
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
                backdate: ChronoDuration::zero(),
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
        let cpu_after = cpu(database);
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
            load_average,
            ingestor_cpu: cpu_after.0 - cpu_before.0,
            database_cpu: cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b),
        })
    }
}

/// `datastream_ingest_readings_total{outcome}` summed over the ingestors.
pub(super) async fn total(ingestors: &[ServiceProcess], outcome: &str) -> u64 {
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
