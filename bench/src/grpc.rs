//! `bench grpc`: the same readings landed through the gRPC gateway and
//! published straight to the broker, in interleaved rounds (MQTT, gRPC,
//! MQTT, gRPC…), with one ingestor storing both.
//!
//! A round sends `readings` readings over `streams` connections at once (MQTT
//! clients publishing at QoS 1, or gRPC `Ingest.Publish` streams), each
//! connection its own device, every reading stamped as it is sent. Measured
//! per round: readings landed per second (first send to last row counted),
//! for gRPC each reading's ack latency (sent → PUBLISHED, which includes the
//! broker's PUBACK), the gateway's resident memory, the CPU seconds of the
//! ingestor and the gateway, and the load average.

use crate::figures::{cpu_seconds, load_average, median, percentile, range, wait_until_landed};
use crate::publish::{publish, PublishPlan};
use crate::service_process::{IngestorSpec, ServiceCommand, ServiceProcess};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, SubsecRound, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_domain::{Id1, MqttUrl, ReadingFilter, Role, Username};
use datastream_grpc::proto::{ack::Status as AckStatus, ingest_client::IngestClient, Reading};
use datastream_http::TokenKeys;
use datastream_store::SharedStore;
use rand::distr::{Alphabetic, Alphanumeric, SampleString};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;

/// What to run.
#[derive(Debug, Clone)]
pub struct GrpcBench {
    /// Readings per round.
    pub readings: u64,
    /// Connections (and devices) the readings are spread over.
    pub streams: usize,
    /// Rounds of each kind, interleaved.
    pub rounds: usize,
}

/// Where to run it.
#[derive(Clone)]
pub struct GrpcTarget {
    /// The database the ingestor and the gateway use.
    pub database_url: String,
    /// The broker, with credentials that may publish readings.
    pub mqtt: MqttUrl,
    /// The `datastream` binary the ingestor and the gateway run as.
    pub binary: PathBuf,
    /// The store, for the bench's user and for counting rows.
    pub store: SharedStore,
}

/// How a round's readings went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Published to the broker directly.
    Mqtt,
    /// Through the gRPC gateway.
    Grpc,
}

/// One round's figures.
#[derive(Debug, Clone)]
pub struct GrpcRound {
    /// How the readings went in.
    pub path: Path,
    /// Readings landed per second, first send to last row.
    pub landed_per_sec: f64,
    /// Readings acknowledged per second (PUBACK or PUBLISHED).
    pub acked_per_sec: f64,
    /// gRPC: sent → PUBLISHED, milliseconds, sorted.
    pub ack_ms: Vec<f64>,
    /// The gateway's resident memory at the end of the round, bytes.
    pub gateway_rss: Option<u64>,
    /// CPU seconds of the ingestor and the gateway over the round.
    pub cpu_seconds: (f64, f64),
    /// The 1-minute load average at the end of the round.
    pub load_average: f64,
}

/// Every round, in the order run, and the gateway's peak memory.
#[derive(Debug, Clone)]
pub struct GrpcReport {
    /// The rounds.
    pub rounds: Vec<GrpcRound>,
    /// The gateway's peak resident memory over the whole run, bytes.
    pub gateway_peak_rss: Option<u64>,
}

/// The processes every round shares.
struct Services {
    ingestor: ServiceProcess,
    gateway: ServiceProcess,
    grpc_url: String,
    token: String,
}

/// Runs the rounds; removes the bench's user afterwards.
pub async fn run(target: &GrpcTarget, bench: &GrpcBench) -> Result<GrpcReport> {
    let tag = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_ascii_lowercase();
    let username = Username::parse(&format!("grpcbench-{tag}"))?;
    target
        .store
        .create_user(&username, "$argon2id$unused", Role::Admin)
        .await?;
    let outcome = run_with_user(target, bench, &tag, &username).await;
    target.store.delete_user(&username).await?;
    outcome
}

async fn run_with_user(
    target: &GrpcTarget,
    bench: &GrpcBench,
    tag: &str,
    username: &Username,
) -> Result<GrpcReport> {
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 48);
    let user = target
        .store
        .find_user(username)
        .await?
        .context("the bench's user vanished")?;
    let token = TokenKeys::new(secret.as_bytes(), Duration::from_secs(3600))?.issue(&user);
    let services = start_services(target, tag, &secret, token).await?;
    let mut rounds = Vec::new();
    let total = bench.rounds.max(1) * 2;
    for i in 0..total {
        let path = if i % 2 == 0 { Path::Mqtt } else { Path::Grpc };
        eprintln!("round {} of {total}: {path:?}…", i + 1);
        rounds.push(round(target, bench, &services, path).await?);
    }
    let gateway_peak_rss = services.gateway.peak_rss_bytes();
    services.gateway.terminate()?;
    services.ingestor.terminate()?;
    Ok(GrpcReport {
        rounds,
        gateway_peak_rss,
    })
}

async fn start_services(
    target: &GrpcTarget,
    tag: &str,
    secret: &str,
    token: String,
) -> Result<Services> {
    let ingestor = ServiceProcess::start(
        &target.binary,
        ServiceCommand::ingestor(&IngestorSpec::in_group(
            &target.database_url,
            &target.mqtt,
            &format!("grpcbench-{tag}"),
        )),
        Duration::from_secs(60),
    )
    .await?;
    let grpc_addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let gateway = ServiceProcess::start(
        &target.binary,
        ServiceCommand::grpc(
            &target.database_url,
            &target.mqtt.to_url_with_password(),
            &[
                ("JWT_SECRET", secret),
                ("GRPC_LISTEN", &grpc_addr.to_string()),
            ],
        ),
        Duration::from_secs(60),
    )
    .await?;
    Ok(Services {
        ingestor,
        gateway,
        grpc_url: format!("http://{grpc_addr}"),
        token,
    })
}

async fn round(
    target: &GrpcTarget,
    bench: &GrpcBench,
    services: &Services,
    path: Path,
) -> Result<GrpcRound> {
    // Each round its own devices: rows are counted by id1.
    let id1 = Alphabetic
        .sample_string(&mut rand::rng(), 10)
        .to_ascii_uppercase();
    let streams = bench.streams.max(1);
    let share = bench.readings.div_ceil(streams as u64);
    let total = share * streams as u64;
    let pids = (services.ingestor.pid(), services.gateway.pid());
    let cpu_before = (cpu_seconds(pids.0), cpu_seconds(pids.1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        tasks.push(match path {
            Path::Mqtt => {
                let plan = PublishPlan {
                    mqtt: target.mqtt.clone(),
                    client_id: format!("grpcbench-pub-{id1}-{s}"),
                    id1: id1.clone(),
                    id2: s as u32,
                    count: share as usize,
                    rate: None,
                    per_message: 1,
                    backdate: chrono::Duration::zero(),
                };
                tokio::spawn(async move { publish(plan).await.map(|_| Vec::new()) })
            }
            Path::Grpc => tokio::spawn(publish_stream(
                services.grpc_url.clone(),
                services.token.clone(),
                id1.clone(),
                s as i64,
                share,
            )),
        });
    }
    let mut ack_ms = Vec::new();
    for t in tasks {
        ack_ms.extend(t.await??);
    }
    let acked_in = started.elapsed();
    let landed_in = wait_until_landed(
        &target.store,
        &ReadingFilter::default().with_id1(Id1::parse(&id1)?),
        total,
        Duration::from_secs(180),
        Duration::from_millis(50),
    )
    .await?
        - started;
    ack_ms.sort_by(f64::total_cmp);
    Ok(GrpcRound {
        path,
        landed_per_sec: total as f64 / landed_in.as_secs_f64(),
        acked_per_sec: total as f64 / acked_in.as_secs_f64(),
        ack_ms,
        gateway_rss: services.gateway.rss_bytes(),
        cpu_seconds: (
            cpu_seconds(pids.0) - cpu_before.0,
            cpu_seconds(pids.1) - cpu_before.1,
        ),
        load_average: load_average(),
    })
}

/// Sends `count` readings of device `id1`/`id2` over one Publish stream as
/// fast as the stream takes them; returns each reading's ack latency (ms).
async fn publish_stream(
    url: String,
    token: String,
    id1: String,
    id2: i64,
    count: u64,
) -> Result<Vec<f64>> {
    let channel = tonic::transport::Channel::from_shared(url)?
        .connect()
        .await?;
    let mut client = IngestClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(vec![None; count as usize]));
    let sender = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut last: DateTime<Utc> = DateTime::<Utc>::MIN_UTC;
            for seq in 0..count {
                let now = Utc::now().trunc_subsecs(6);
                let at = if now > last {
                    now
                } else {
                    last + chrono::Duration::microseconds(1)
                };
                last = at;
                let reading = Reading {
                    seq,
                    sensor_value: seq as f64 * 0.01,
                    sensor_type: "bench".into(),
                    id1: id1.clone(),
                    id2,
                    timestamp: format_timestamp(at),
                };
                sent_at.lock().unwrap_or_else(|p| p.into_inner())[seq as usize] =
                    Some(Instant::now());
                if tx.send(reading).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut acks = client.publish(request).await?.into_inner();
    let mut latencies = Vec::with_capacity(count as usize);
    while let Some(ack) = acks.message().await? {
        if ack.status() != AckStatus::Published {
            bail!(
                "reading {} answered {:?}: {}",
                ack.seq,
                ack.status(),
                ack.message
            );
        }
        let sent = sent_at.lock().unwrap_or_else(|p| p.into_inner())[ack.seq as usize];
        if let Some(sent) = sent {
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    sender.await?;
    if latencies.len() as u64 != count {
        bail!("{} of {count} readings acked", latencies.len());
    }
    Ok(latencies)
}

impl GrpcReport {
    /// Each round, each gRPC round beside the MQTT round before it, then the
    /// medians and ranges.
    pub fn render(&self, bench: &GrpcBench) -> String {
        let mut out = format!(
            "bench grpc: {} readings per round over {} connections, one ingestor\n\n",
            bench.readings, bench.streams
        );
        out.push_str("round  path  acked/s  landed/s  ÷ MQTT  ack p50 ms  ack p99 ms  gateway RSS  CPU s ingestor/gateway  load\n");
        let mut ratios = Vec::new();
        let mut baseline = None;
        for (i, r) in self.rounds.iter().enumerate() {
            let ratio = match r.path {
                Path::Mqtt => {
                    baseline = Some(r.landed_per_sec);
                    None
                }
                Path::Grpc => baseline.map(|b: f64| r.landed_per_sec / b),
            };
            ratios.extend(ratio);
            let grpc = r.path == Path::Grpc;
            out.push_str(&format!(
                "{:>5}  {:<4}  {:>7.0}  {:>8.0}  {:>6}  {:>10}  {:>10}  {:>11}  {:>22}  {:.2}\n",
                i + 1,
                if grpc { "gRPC" } else { "MQTT" },
                r.acked_per_sec,
                r.landed_per_sec,
                ratio.map_or("-".into(), |x| format!("{x:.3}")),
                if grpc {
                    format!("{:.1}", percentile(&r.ack_ms, 0.5))
                } else {
                    "-".into()
                },
                if grpc {
                    format!("{:.1}", percentile(&r.ack_ms, 0.99))
                } else {
                    "-".into()
                },
                r.gateway_rss
                    .map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
                format!("{:.1} / {:.1}", r.cpu_seconds.0, r.cpu_seconds.1),
                r.load_average,
            ));
        }
        let grpc: Vec<&GrpcRound> = self
            .rounds
            .iter()
            .filter(|r| r.path == Path::Grpc)
            .collect();
        let (lo, hi) = range(&ratios);
        out.push_str(&format!(
            "\nmedian over rounds: landed via gRPC ÷ via MQTT {:.3} (range {lo:.3}–{hi:.3}; goal ≥ 0.8), ack p50 {:.1} ms, p99 {:.1} ms; gateway peak RSS {}\n",
            median(ratios.clone()),
            median(grpc.iter().map(|r| percentile(&r.ack_ms, 0.5)).collect()),
            median(grpc.iter().map(|r| percentile(&r.ack_ms, 0.99)).collect()),
            self.gateway_peak_rss
                .map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
        ));
        out
    }
}
