//! `bench alerts`: the alerter beside an ingestor under a steady stream —
//! 10,000 devices, three rules each, 5,000 readings/s by default — against
//! the same ingest without an alerter, in interleaved rounds.
//!
//! Every round publishes the same shape of readings for a fresh sensor
//! type: each device reports in turn, and a fixed number of readings per
//! second cross a threshold (the device's next reading goes back, which
//! resolves it). The three rules every device is under: `above 90` with
//! `for 0s` (the crossings), `below -50` with `for 2s` (never fires, judged
//! on every reading), and a 60 s silence rule (tracks every device: timers,
//! and arrival times written within their slack). Measured per round:
//!
//! - ingest: readings landed per second, from the first publish to the
//!   last row counted (the same in both kinds of round, so the ratio shows
//!   what the alerter takes from ingest);
//! - crossing latency: a crossing reading's timestamp (stamped as it is
//!   published) to the moment its firing notification arrives on
//!   `datastream/alerts/#` (broker acknowledged, retained);
//! - the alerter's peak resident memory and CPU seconds, and whether every
//!   crossing was notified;
//! - the load average and each process's CPU seconds, beside the figures.

use crate::figures::{cpu_seconds, load_average, median, percentile, wait_until_landed};
use crate::service_process::{IngestorSpec, ServiceCommand, ServiceProcess};
use anyhow::{bail, Context, Result};
use chrono::{SubsecRound, Utc};
use datastream_domain::alert::{AlertEvent, AlertNotice, RuleDraft, ALERTS_FILTER};
use datastream_domain::timestamp::{format_timestamp, parse_timestamp};
use datastream_domain::{FilterParams, MqttUrl, ReadingFilter};
use datastream_store::SharedStore;
use rand::distr::{Alphanumeric, SampleString};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Publishing connections, each for its share of the devices.
const PUBLISHERS: usize = 4;

/// What to run.
#[derive(Debug, Clone)]
pub struct AlertsBench {
    /// Devices the readings are spread over.
    pub devices: u32,
    /// Readings published per second, over all devices.
    pub rate: f64,
    /// Of those, readings per second that cross the threshold.
    pub crossings: f64,
    /// Seconds of publishing per round.
    pub seconds: u64,
    /// Rounds of each kind, interleaved (without, with, without, with…).
    pub rounds: usize,
}

/// Where to run it.
#[derive(Clone)]
pub struct AlertsTarget {
    /// The database the ingestor and the alerter use.
    pub database_url: String,
    /// The broker, with credentials that may publish readings and read
    /// alerts.
    pub mqtt: MqttUrl,
    /// The `datastream` binary the ingestor and the alerter run as.
    pub binary: PathBuf,
    /// The store, for the rules and for counting rows.
    pub store: SharedStore,
}

/// One round's figures.
#[derive(Debug, Clone)]
pub struct AlertsRound {
    /// Whether the alerter ran.
    pub alerter: bool,
    /// Readings published.
    pub published: u64,
    /// Readings published per second (the offered load, as achieved).
    pub published_per_sec: f64,
    /// Readings landed per second, first publish to last row.
    pub landed_per_sec: f64,
    /// From the last publish to the last row counted (rows are counted
    /// every 100 ms).
    pub landing_tail: Duration,
    /// Crossings published, and firing notifications received for them.
    pub crossings: (u64, u64),
    /// Crossing → notification, milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    /// The alerter's peak resident memory, bytes.
    pub alerter_peak_rss: Option<u64>,
    /// CPU seconds of the ingestor and of the alerter over the round.
    pub cpu_seconds: (f64, Option<f64>),
    /// The 1-minute load average at the end of the round.
    pub load_average: f64,
}

/// Every round, in the order run.
#[derive(Debug, Clone)]
pub struct AlertsReport {
    /// The rounds.
    pub rounds: Vec<AlertsRound>,
}

/// Runs the rounds.
pub async fn run(target: &AlertsTarget, bench: &AlertsBench) -> Result<AlertsReport> {
    let mut rounds = Vec::new();
    for i in 0..bench.rounds.max(1) * 2 {
        let alerter = i % 2 == 1;
        eprintln!(
            "round {} of {}: ingest {} the alerter…",
            i + 1,
            bench.rounds.max(1) * 2,
            if alerter { "with" } else { "without" }
        );
        rounds.push(round(target, bench, alerter).await?);
    }
    Ok(AlertsReport { rounds })
}

async fn round(
    target: &AlertsTarget,
    bench: &AlertsBench,
    with_alerter: bool,
) -> Result<AlertsRound> {
    let tag = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_ascii_lowercase();
    let sensor_type = format!("alertbench-{tag}");
    let ingestor = ServiceProcess::start(
        &target.binary,
        ServiceCommand::ingestor(&IngestorSpec::in_group(
            &target.database_url,
            &target.mqtt,
            &format!("alertbench-{tag}"),
        )),
        Duration::from_secs(60),
    )
    .await?;
    let mut rule_ids = Vec::new();
    let alerter = if with_alerter {
        for draft in rules(&sensor_type) {
            let rule = draft
                .check()
                .map_err(|e| anyhow::anyhow!("bench rule: {e}"))?;
            rule_ids.push(target.store.create_alert_rule(&rule).await?.id);
        }
        let client_id = format!("alertbench-alr-{tag}");
        let process = ServiceProcess::start(
            &target.binary,
            ServiceCommand::alerter(
                &target.database_url,
                &target.mqtt.to_url_with_password(),
                &client_id,
                &[("ALERT_CLIENT_ID", &client_id)],
            ),
            Duration::from_secs(60),
        )
        .await?;
        wait_for_log(&process, "alerter connected", Duration::from_secs(30)).await?;
        Some(process)
    } else {
        None
    };
    let tap = NoticeTap::start(&target.mqtt, &format!("alertbench-tap-{tag}")).await?;
    // The subscriptions settle (the ingestor's group, the alerter's session).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = (
        cpu_seconds(ingestor.pid()),
        alerter.as_ref().map(|a| cpu_seconds(a.pid())),
    );

    let started = Instant::now();
    // Coprime with the device count, so crossings walk over every device
    // and no device crosses again before it has resolved.
    let mut crossing_every = (bench.rate / bench.crossings.max(0.001)).round().max(2.0) as u64;
    while gcd(crossing_every, u64::from(bench.devices)) != 1 {
        crossing_every += 1;
    }
    let total = (bench.rate * bench.seconds as f64) as u64;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        tasks.push(tokio::spawn(publish_share(
            target.mqtt.clone(),
            format!("alertbench-pub-{tag}-{p}"),
            sensor_type.clone(),
            Share {
                index: p as u64,
                of: PUBLISHERS as u64,
                devices: u64::from(bench.devices),
                total,
                rate: bench.rate / PUBLISHERS as f64,
                crossing_every,
            },
        )));
    }
    let mut crossings = 0;
    for t in tasks {
        crossings += t.await??;
    }
    let published_in = started.elapsed();
    let of_the_round = ReadingFilter::parse(
        FilterParams {
            sensor_type: Some(&sensor_type),
            ..FilterParams::default()
        },
        Utc::now(),
    )?;
    let landed_at = wait_until_landed(
        &target.store,
        &of_the_round,
        total,
        Duration::from_secs(120),
        Duration::from_millis(100),
    )
    .await?;
    let landed_in = landed_at.duration_since(started);
    let landed_per_sec = total as f64 / landed_in.as_secs_f64();

    let mut received = 0;
    if with_alerter {
        let deadline = Instant::now() + Duration::from_secs(30);
        while tap.firing() < crossings && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        received = tap.firing();
    }
    let cpu_after = (
        cpu_seconds(ingestor.pid()),
        alerter.as_ref().map(|a| cpu_seconds(a.pid())),
    );
    let alerter_peak_rss = alerter.as_ref().and_then(ServiceProcess::peak_rss_bytes);
    let load_average = load_average();
    let mut latencies_ms = tap.latencies_ms();
    latencies_ms.sort_by(f64::total_cmp);

    // Leave nothing behind: the rules (the alerter clears their retained
    // topics on its way), the processes, their sessions.
    for id in &rule_ids {
        target.store.delete_alert_rule(*id).await?;
    }
    if let Some(alerter) = alerter {
        tokio::time::sleep(Duration::from_secs(3)).await;
        alerter.terminate()?;
    }
    ingestor.terminate()?;
    tap.close().await;
    Ok(AlertsRound {
        alerter: with_alerter,
        published: total,
        published_per_sec: total as f64 / published_in.as_secs_f64(),
        landed_per_sec,
        landing_tail: landed_in.saturating_sub(published_in),
        crossings: (crossings, received),
        latencies_ms,
        alerter_peak_rss,
        cpu_seconds: (
            cpu_after.0 - cpu_before.0,
            cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b),
        ),
        load_average,
    })
}

/// The three rules every device of the round is under.
fn rules(sensor_type: &str) -> [RuleDraft; 3] {
    let base = RuleDraft {
        sensor_type: Some(sensor_type.to_owned()),
        ..RuleDraft::default()
    };
    [
        RuleDraft {
            name: Some("bench: too high".into()),
            kind: Some("threshold".into()),
            above: Some(90.0),
            span: Some("0s".into()),
            ..base.clone()
        },
        RuleDraft {
            name: Some("bench: too low for 2 s".into()),
            kind: Some("threshold".into()),
            below: Some(-50.0),
            span: Some("2s".into()),
            ..base.clone()
        },
        RuleDraft {
            name: Some("bench: quiet for a minute".into()),
            kind: Some("silence".into()),
            span: Some("60s".into()),
            ..base
        },
    ]
}

/// One publisher's part: the readings `n` of the round whose device
/// `n % devices` is its own (`device % of == index`: one connection per
/// device keeps its readings in order), every `crossing_every`-th a
/// crossing.
struct Share {
    index: u64,
    of: u64,
    devices: u64,
    total: u64,
    rate: f64,
    crossing_every: u64,
}

/// Publishes a share at its rate; returns how many crossings it sent.
async fn publish_share(
    mqtt: MqttUrl,
    client_id: String,
    sensor_type: String,
    share: Share,
) -> Result<u64> {
    let mut options = MqttOptions::new(&client_id, mqtt.host(), mqtt.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    if let Some((user, pass)) = mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let driver = tokio::spawn({
        let acked = acked.clone();
        async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    });
    let started = Instant::now();
    let mut crossings = 0;
    let mut sent = 0u64;
    for n in 0..share.total {
        if (n % share.devices) % share.of != share.index {
            continue;
        }
        // Paced: reading k of this share is due at k / rate. Timers have a
        // millisecond's grain: sleep only when a whole one is owed.
        let due = started + Duration::from_secs_f64(sent as f64 / share.rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            if wait >= Duration::from_millis(1) {
                tokio::time::sleep(wait).await;
            }
        }
        let device = n % share.devices;
        let crossing = n.is_multiple_of(share.crossing_every);
        crossings += u64::from(crossing);
        let value = if crossing { 95.0 } else { 20.0 };
        let payload = format!(
            r#"{{"sensor_value":{value},"sensor_type":"{sensor_type}","id1":"BENCH","id2":{device},"timestamp":"{}"}}"#,
            format_timestamp(Utc::now().trunc_subsecs(6))
        );
        client
            .publish(
                format!("sensors/{sensor_type}/BENCH/{device}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await?;
        sent += 1;
    }
    // Every publish acknowledged, then the disconnect.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(std::sync::atomic::Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    Ok(crossings)
}

/// Firing notifications as they arrive, with crossing → arrival latency.
struct NoticeTap {
    client: AsyncClient,
    latencies: Arc<Mutex<Vec<f64>>>,
}

impl NoticeTap {
    async fn start(mqtt: &MqttUrl, client_id: &str) -> Result<Self> {
        let mut options = MqttOptions::new(client_id, mqtt.host(), mqtt.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1 << 20, 1 << 16);
        if let Some((user, pass)) = mqtt.credentials() {
            options.set_credentials(user, pass);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        client.subscribe(ALERTS_FILTER, QoS::AtLeastOnce).await?;
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn({
            let latencies = latencies.clone();
            async move {
                let mut subscribed = Some(subscribed_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if !p.retain => {
                            let arrived = Utc::now();
                            let Ok(notice) = serde_json::from_slice::<AlertNotice>(&p.payload)
                            else {
                                continue;
                            };
                            if notice.event != AlertEvent::Firing
                                || !notice.sensor_type.starts_with("alertbench-")
                            {
                                continue;
                            }
                            if let Ok(at) = parse_timestamp(&notice.started_at) {
                                let ms =
                                    (arrived - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                                latencies.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                            }
                        }
                        Ok(_) => {}
                        Err(rumqttc::ConnectionError::RequestsDone) => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .context("the broker did not acknowledge the alerts subscription")??;
        Ok(Self { client, latencies })
    }

    fn firing(&self) -> u64 {
        self.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64
    }

    fn latencies_ms(&self) -> Vec<f64> {
        self.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}

async fn wait_for_log(process: &ServiceProcess, text: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !process.log().contains(text) {
        if Instant::now() > deadline {
            bail!(
                "{} did not log {text:?} within {} s:\n{}",
                process.name(),
                timeout.as_secs(),
                process.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl AlertsReport {
    /// The report, each round beside its baseline, then the medians.
    pub fn render(&self, bench: &AlertsBench) -> String {
        let mut out = format!(
            "bench alerts: {} devices under 3 rules each, {} readings/s ({} crossings/s), {} s per round\n\n",
            bench.devices, bench.rate, bench.crossings, bench.seconds
        );
        out.push_str("round  alerter  published/s  landed/s  ÷ without  tail ms  crossings notified  p50 ms  p99 ms  max ms  alerter peak RSS  CPU s ingestor/alerter  load\n");
        let mut ratios = Vec::new();
        let mut baseline = None;
        for (i, r) in self.rounds.iter().enumerate() {
            let ratio = if r.alerter {
                baseline.map(|b: f64| r.landed_per_sec / b)
            } else {
                baseline = Some(r.landed_per_sec);
                None
            };
            if let Some(ratio) = ratio {
                ratios.push(ratio);
            }
            out.push_str(&format!(
                "{:>5}  {:<7}  {:>11.0}  {:>8.0}  {:>9}  {:>7}  {:>18}  {:>6}  {:>6}  {:>6}  {:>16}  {:>21}  {:.2}\n",
                i + 1,
                if r.alerter { "yes" } else { "no" },
                r.published_per_sec,
                r.landed_per_sec,
                ratio.map_or("-".into(), |x| format!("{x:.3}")),
                r.landing_tail.as_millis(),
                if r.alerter { format!("{} of {}", r.crossings.1, r.crossings.0) } else { "-".into() },
                fmt_ms(percentile(&r.latencies_ms, 0.5), r.alerter),
                fmt_ms(percentile(&r.latencies_ms, 0.99), r.alerter),
                fmt_ms(percentile(&r.latencies_ms, 1.0), r.alerter),
                r.alerter_peak_rss.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
                format!(
                    "{:.1} / {}",
                    r.cpu_seconds.0,
                    r.cpu_seconds.1.map_or("-".into(), |c| format!("{c:.1}"))
                ),
                r.load_average,
            ));
        }
        let with: Vec<&AlertsRound> = self.rounds.iter().filter(|r| r.alerter).collect();
        let p99s: Vec<f64> = with
            .iter()
            .map(|r| percentile(&r.latencies_ms, 0.99))
            .collect();
        let rss: Vec<f64> = with
            .iter()
            .filter_map(|r| r.alerter_peak_rss)
            .map(|b| b as f64 / 1048576.0)
            .collect();
        let all_notified = with.iter().all(|r| r.crossings.0 == r.crossings.1);
        out.push_str(&format!(
            "\nmedian over rounds: ingest with ÷ without {:.3} (range {:.3}–{:.3}; goal ≥ 0.95), crossing → notified p99 {:.0} ms (goal ≤ 200), alerter peak RSS {:.1} MiB (goal < 128); every crossing notified: {}\n",
            median(ratios.clone()),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            median(p99s),
            median(rss),
            if all_notified { "yes" } else { "NO" },
        ));
        out
    }
}

fn fmt_ms(v: f64, applies: bool) -> String {
    if applies && v.is_finite() {
        format!("{v:.0}")
    } else {
        "-".into()
    }
}
