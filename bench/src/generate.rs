//! `datastream bench generate`: how many readings one generator process
//! makes on one core, and what each costs.
//!
//! Each scenario runs a [`Fleet`] alone on a thread with a current-thread
//! runtime (one core, MQTT event loop included), counts what arrives on
//! the broker with a separate subscriber, and reads the generator thread's
//! own CPU time from `/proc/self/task/{tid}/stat`. The baseline is the
//! floor of the same job: pre-encoded payloads published through the same
//! MQTT client as fast as it goes, on the same kind of thread.

use crate::thread_cpu::thread_cpu;
use anyhow::{bail, Context, Result};
use datastream_domain::MqttUrl;
use datastream_generator::{Fleet, FleetConnection, GeneratorSpec};
use rand::distr::{Alphabetic, SampleString};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct GenerateBench {
    /// Devices of the many-devices scenario (at 1 Hz each).
    pub devices: u32,
    /// Total rate of the fast scenario, readings/s.
    pub fast_rate: f64,
    /// Measured seconds per scenario (after one second of warm-up).
    pub seconds: u64,
}

/// One scenario's figures.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// What ran.
    pub name: String,
    /// Readings/s asked for; `None` for as fast as possible.
    pub target: Option<f64>,
    /// Readings/s that arrived at a subscriber.
    pub received_per_sec: f64,
    /// Share of one core the generator thread used.
    pub core_share: f64,
    /// Generator-thread CPU per 1,000 readings, in milliseconds.
    pub cpu_ms_per_1000: f64,
    /// The 1-minute load average when it started.
    pub load_average: f64,
}

/// Runs the baseline and both scenarios against `mqtt`.
pub async fn run(mqtt: &MqttUrl, bench: &GenerateBench) -> Result<Vec<ScenarioResult>> {
    if !std::path::Path::new("/proc/thread-self").exists() {
        bail!("bench generate reads thread CPU time from /proc (Linux only)");
    }
    let window = Duration::from_secs(bench.seconds.max(1));
    let mut results = Vec::new();
    results.push(
        measure(
            mqtt,
            "baseline: pre-encoded publish, full speed",
            None,
            window,
            Job::Baseline,
        )
        .await?,
    );

    let many = spec("many", bench.devices, 1.0)?;
    results.push(
        measure(
            mqtt,
            &format!("{} devices × 1 Hz, one generator", bench.devices),
            Some(many.total_rate()),
            window,
            Job::Fleet(vec![many]),
        )
        .await?,
    );

    // 10 kHz per device is the cap, so the fast generator spreads its rate
    // over a few devices.
    let devices = (bench.fast_rate / 5_000.0).ceil().max(1.0) as u32;
    let fast = spec("fast", devices, bench.fast_rate / f64::from(devices))?;
    results.push(
        measure(
            mqtt,
            &format!(
                "one generator at {:.0} readings/s ({devices} devices)",
                fast.total_rate()
            ),
            Some(fast.total_rate()),
            window,
            Job::Fleet(vec![fast]),
        )
        .await?,
    );
    Ok(results)
}

fn spec(name: &str, devices: u32, hz: f64) -> Result<GeneratorSpec> {
    let id1 = Alphabetic
        .sample_string(&mut rand::rng(), 10)
        .to_ascii_uppercase();
    Ok(
        GeneratorSpec::parse(&format!("bench-{name}"), "bench_gen", &id1, 1, hz)?
            .with_last_id2(i64::from(devices))?,
    )
}

enum Job {
    Baseline,
    Fleet(Vec<GeneratorSpec>),
}

impl Job {
    fn filter(&self, tag: &str) -> String {
        match self {
            Job::Baseline => format!("bench_gen/baseline/{tag}"),
            Job::Fleet(specs) => format!("sensors/bench_gen/{}/#", specs[0].id1()),
        }
    }
}

async fn measure(
    mqtt: &MqttUrl,
    name: &str,
    target: Option<f64>,
    window: Duration,
    job: Job,
) -> Result<ScenarioResult> {
    let tag = Alphabetic.sample_string(&mut rand::rng(), 8);
    let received = Arc::new(AtomicU64::new(0));
    let counter = count_messages(mqtt, &job.filter(&tag), received.clone()).await?;

    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = std::thread::spawn({
        let (mqtt, stop, tag) = (mqtt.clone(), stop.clone(), tag.clone());
        move || run_job(&mqtt, &tag, job, &stop, &tid_tx)
    });
    let tid = tid_rx.recv().context("the generator thread started")?;
    tokio::time::sleep(Duration::from_secs(1)).await; // connect and warm up
    let load_average = crate::figures::load_average();
    let (cpu0, n0, t0) = (
        thread_cpu(tid)?,
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (cpu1, n1, elapsed) = (
        thread_cpu(tid)?,
        received.load(Ordering::Relaxed),
        t0.elapsed(),
    );
    stop.cancel();
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
    counter.abort();

    let readings = (n1 - n0) as f64;
    let cpu = (cpu1 - cpu0).as_secs_f64();
    Ok(ScenarioResult {
        name: name.to_owned(),
        target,
        received_per_sec: readings / elapsed.as_secs_f64(),
        core_share: cpu / elapsed.as_secs_f64(),
        cpu_ms_per_1000: if readings > 0.0 {
            cpu * 1e6 / readings
        } else {
            f64::NAN
        },
        load_average,
    })
}

/// Runs `job` on this thread, alone on a runtime of its own, until `stop`;
/// first sends this thread's id, for its CPU time.
fn run_job(
    mqtt: &MqttUrl,
    tag: &str,
    job: Job,
    stop: &tokio_util::sync::CancellationToken,
    tid_tx: &std::sync::mpsc::Sender<u32>,
) -> Result<()> {
    let tid = std::fs::read_link("/proc/thread-self")?
        .file_name()
        .and_then(|t| t.to_str())
        .and_then(|t| t.parse::<u32>().ok())
        .context("reading this thread's id")?;
    let _ = tid_tx.send(tid);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let connection = FleetConnection::open(mqtt, &format!("bench-gen-{tag}"), None);
            match job {
                Job::Fleet(specs) => {
                    let fleet = Fleet::new(datastream_generator::ReadingSink::Mqtt(
                        connection.client.clone(),
                    ));
                    for spec in specs {
                        fleet.apply(spec);
                    }
                    stop.cancelled().await;
                    fleet.stop_all().await;
                }
                Job::Baseline => {
                    publish_flat_out(
                        &connection.client,
                        &format!("bench_gen/baseline/{tag}"),
                        stop,
                    )
                    .await;
                }
            }
            connection.close().await;
        });
    Ok(())
}

/// The floor: one fixed, pre-encoded reading published at QoS 1 as fast as
/// the client takes it.
async fn publish_flat_out(
    client: &AsyncClient,
    topic: &str,
    stop: &tokio_util::sync::CancellationToken,
) {
    let payload: Vec<u8> = br#"{"sensor_value":21.5,"sensor_type":"bench_gen","id1":"BASELINE","id2":1,"timestamp":"2026-11-25T07:00:00.123456Z"}"#.to_vec();
    while !stop.is_cancelled() {
        tokio::select! {
            _ = stop.cancelled() => break,
            sent = client.publish(topic, QoS::AtLeastOnce, false, payload.clone()) => if sent.is_err() { break },
        }
    }
}

/// Counts messages on `filter` in the background.
async fn count_messages(
    mqtt: &MqttUrl,
    filter: &str,
    received: Arc<AtomicU64>,
) -> Result<tokio::task::JoinHandle<()>> {
    let id = format!(
        "bench-gen-count-{}",
        Alphabetic.sample_string(&mut rand::rng(), 8)
    );
    let mut options = MqttOptions::new(id, mqtt.host(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, pass)) = mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtMostOnce).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline.into(), eventloop.poll())
            .await
            .context("the broker did not acknowledge the counting subscription")?;
        if let Event::Incoming(Packet::SubAck(_)) = event.context("counting subscriber")? {
            break;
        }
    }
    Ok(tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }))
}

/// The report.
pub fn render(results: &[ScenarioResult], bench: &GenerateBench) -> String {
    let mut out = format!(
        "bench generate: {} s per scenario, generators alone on one core (current-thread runtime)\n\n",
        bench.seconds
    );
    out.push_str(&format!(
        "{:<46} {:>10} {:>12} {:>9} {:>12} {:>10} {:>6}\n",
        "scenario", "target/s", "received/s", "achieved", "core used", "ms CPU/1k", "load"
    ));
    let baseline_cost = results.first().map(|r| r.cpu_ms_per_1000);
    for r in results {
        out.push_str(&format!(
            "{:<46} {:>10} {:>12.0} {:>9} {:>11.0}% {:>10.3} {:>6.2}\n",
            r.name,
            r.target
                .map(|t| format!("{t:.0}"))
                .unwrap_or_else(|| "max".into()),
            r.received_per_sec,
            r.target
                .map(|t| format!("{:.2}×", r.received_per_sec / t))
                .unwrap_or_else(|| "-".into()),
            r.core_share * 100.0,
            r.cpu_ms_per_1000,
            r.load_average,
        ));
    }
    if let Some(base) = baseline_cost {
        out.push_str("\nCPU per reading ÷ baseline (bare pre-encoded publish):\n");
        for r in results.iter().skip(1) {
            out.push_str(&format!(
                "  {:<46} {:.2}×\n",
                r.name,
                r.cpu_ms_per_1000 / base
            ));
        }
    }
    out
}
