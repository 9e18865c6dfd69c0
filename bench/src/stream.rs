//! `bench stream`: many Server-Sent-Event clients on the API's live stream
//! while readings are published at a steady rate, beside `mosquitto_sub`
//! on the same broker receiving the same readings in the same run.
//!
//! The API runs as its own process (`datastream api`, with `MQTT_URL` for
//! its live feed and a throwaway SQLite database), so its resident memory
//! is its own. Clients are shaped like dashboards: each watches one device
//! (`id1` + `id2`), and a few watch the whole sensor type. Latency is a
//! reading's timestamp (stamped as it is published) to the moment a client
//! has parsed its event; only readings published in the measured window
//! count, after a second of warm-up.

use crate::service_process::{ServiceCommand, ServiceProcess};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use datastream_domain::timestamp::{format_timestamp, parse_timestamp};
use datastream_domain::MqttUrl;
use rand::distr::{Alphabetic, Alphanumeric, SampleString};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The sensor type of the benchmark's readings (no generator uses it).
const SENSOR_TYPE: &str = "streambench";
/// Unmeasured publishing before the window, while clients settle.
const WARM_UP: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Debug, Clone)]
pub struct StreamBench {
    /// Concurrent stream clients.
    pub clients: usize,
    /// Of those, how many watch the whole sensor type.
    pub type_watchers: usize,
    /// Readings published per second, over all devices.
    pub rate: f64,
    /// Devices the readings are spread over, round robin.
    pub devices: u32,
    /// Seconds measured.
    pub seconds: u64,
}

/// Where to run it.
#[derive(Debug, Clone)]
pub struct StreamTarget {
    /// The broker (credentials included) the publisher, the API's feed and
    /// `mosquitto_sub` use.
    pub mqtt_url: String,
    /// The `datastream` binary the API runs as.
    pub binary: PathBuf,
}

/// Latency percentiles of one set of deliveries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Deliveries measured.
    pub count: u64,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// Readings published in the measured window.
    pub published: u64,
    /// Events the clients should have received: for each, the readings of
    /// its device (or type) that the broker delivered to `mosquitto_sub`.
    pub expected: u64,
    /// Events they did receive.
    pub delivered: u64,
    /// Clients that received fewer than expected.
    pub clients_short: usize,
    /// Clients the API ended with `overflow` (they fell behind).
    pub clients_overflowed: usize,
    /// Publish → stream client.
    pub stream: Latency,
    /// Publish → `mosquitto_sub`, if it ran.
    pub mosquitto_sub: Option<Latency>,
    /// The API's resident memory before the clients connected, bytes.
    pub api_idle_rss: Option<u64>,
    /// Its peak during the run, bytes.
    pub api_peak_rss: Option<u64>,
    /// The 1-minute load average when publishing started.
    pub load_average: f64,
    /// CPU seconds of the API process while publishing and streaming.
    pub api_cpu: f64,
}

/// Runs the benchmark.
pub async fn run(target: &StreamTarget, bench: &StreamBench) -> Result<StreamReport> {
    let mqtt = MqttUrl::parse(&target.mqtt_url)?;
    let id1 = format!(
        "STREAM{}",
        Alphabetic
            .sample_string(&mut rand::rng(), 6)
            .to_ascii_uppercase()
    );
    // The API's throwaway database; removed when the run ends.
    let dir = tempfile::tempdir()?;
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 48);
    let command = ServiceCommand::api(
        &format!("sqlite://{}/stream-bench.db", dir.path().display()),
        &[
            ("JWT_SECRET", secret.as_str()),
            ("ADMIN_PASSWORD", password.as_str()),
            ("MQTT_URL", target.mqtt_url.as_str()),
        ],
    );
    let api = ServiceProcess::start(&target.binary, command, Duration::from_secs(30))
        .await
        .context("starting datastream api")?;
    let base = api.base_url();
    let token = login(&base, &password)?;
    let api_idle_rss = api.rss_bytes();
    eprintln!(
        "bench stream: {} clients ({} on the whole type) on {base}, {} readings/s over {} devices of {id1}, broker {mqtt}",
        bench.clients, bench.type_watchers, bench.rate, bench.devices
    );

    let window_start = Utc::now() + chrono::Duration::from_std(WARM_UP + Duration::from_secs(1))?;
    let ends_at =
        Instant::now() + WARM_UP + Duration::from_secs(1 + bench.seconds) + Duration::from_secs(2);
    let clients = start_clients(&base, &token, &id1, bench, window_start, ends_at);
    let baseline = MosquittoSub::start(&mqtt, &id1, window_start);
    // Let the connections open before publishing.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let load_average = crate::figures::load_average();
    let api_cpu = crate::figures::cpu_seconds(api.pid());
    let published = publish(&mqtt, &id1, bench, window_start).await?;

    let results = tokio::task::spawn_blocking(move || {
        clients
            .into_iter()
            .map(|c| c.join().unwrap_or_default())
            .collect::<Vec<ClientResult>>()
    })
    .await?;
    let baseline = match baseline {
        Some(b) => Some(b.finish()?),
        None => None,
    };
    // VmHWM: the most the process has held, clients connected included.
    let api_peak_rss = api.peak_rss_bytes();
    let api_cpu = crate::figures::cpu_seconds(api.pid()) - api_cpu;
    drop(api);

    let process = ProcessFigures {
        api_idle_rss,
        api_peak_rss,
        api_cpu,
        load_average,
    };
    Ok(tally(&results, baseline, &published, process))
}

/// What was read off the API process and the machine around the run.
struct ProcessFigures {
    api_idle_rss: Option<u64>,
    api_peak_rss: Option<u64>,
    api_cpu: f64,
    load_average: f64,
}

/// The report from what every client and `mosquitto_sub` received.
fn tally(
    results: &[ClientResult],
    baseline: Option<Received>,
    published: &Published,
    process: ProcessFigures,
) -> StreamReport {
    // What a client should have had: what the broker delivered to
    // mosquitto_sub (so a message the broker or the publisher lost at the
    // window's edges is not blamed on the API), else what was published.
    let expected_for = |c: &ClientResult| match (&baseline, c.device) {
        (Some(b), Some(id2)) => b.per_device.get(&id2).copied().unwrap_or(0),
        (Some(b), None) => b.latencies_us.len() as u64,
        (None, Some(id2)) => published.per_device[id2 as usize],
        (None, None) => published.total,
    };
    let mut latencies: Vec<u64> = Vec::new();
    let (mut expected, mut delivered, mut short, mut overflowed) = (0, 0, 0, 0);
    for c in results {
        let want = expected_for(c);
        expected += want;
        delivered += c.latencies_us.len() as u64;
        short += usize::from((c.latencies_us.len() as u64) < want);
        overflowed += usize::from(c.overflowed);
        latencies.extend(&c.latencies_us);
    }
    StreamReport {
        published: published.total,
        expected,
        delivered,
        clients_short: short,
        clients_overflowed: overflowed,
        stream: percentiles(latencies),
        mosquitto_sub: baseline.map(|b| percentiles(b.latencies_us)),
        api_idle_rss: process.api_idle_rss,
        api_peak_rss: process.api_peak_rss,
        load_average: process.load_average,
        api_cpu: process.api_cpu,
    }
}

fn login(base: &str, password: &str) -> Result<String> {
    let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    let mut resp = ureq::post(&format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .context("logging in")?;
    let text = resp.body_mut().read_to_string()?;
    let token = text
        .split("\"access_token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no access_token in the login answer")?;
    Ok(token.to_owned())
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientResult {
    /// The device it watched, or `None` for the whole type.
    device: Option<u32>,
    latencies_us: Vec<u64>,
    overflowed: bool,
}

/// One thread per client, each with one streaming connection until
/// `ends_at`.
fn start_clients(
    base: &str,
    token: &str,
    id1: &str,
    bench: &StreamBench,
    window_start: DateTime<Utc>,
    ends_at: Instant,
) -> Vec<std::thread::JoinHandle<ClientResult>> {
    (0..bench.clients)
        .map(|i| {
            let device = (i >= bench.type_watchers)
                .then(|| (i - bench.type_watchers) as u32 % bench.devices.max(1));
            let query = match device {
                Some(id2) => format!("id1={id1}&id2={id2}"),
                None => format!("sensor_type={SENSOR_TYPE}"),
            };
            let url = format!("{base}/api/v1/readings/stream?{query}");
            let authorization = format!("Bearer {token}");
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || watch(&url, &authorization, device, window_start, ends_at))
                .expect("spawning a client thread")
        })
        .collect()
}

/// Reads one stream until `ends_at`, timing each reading of the window.
fn watch(
    url: &str,
    authorization: &str,
    device: Option<u32>,
    window_start: DateTime<Utc>,
    ends_at: Instant,
) -> ClientResult {
    let mut result = ClientResult {
        device,
        ..ClientResult::default()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(ends_at.saturating_duration_since(Instant::now())))
        .build()
        .into();
    let Ok(mut resp) = agent.get(url).header("Authorization", authorization).call() else {
        return result;
    };
    let reader = BufReader::new(resp.body_mut().with_config().limit(u64::MAX).reader());
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.starts_with("event: overflow") {
            result.overflowed = true;
        } else if let Some(at) = line.strip_prefix("data: ").and_then(reading_time) {
            if at >= window_start {
                result.latencies_us.push(micros_since(at));
            }
        }
    }
    result
}

/// The `id2` of a reading's JSON, if it is one.
fn reading_device(json: &str) -> Option<u32> {
    let rest = json.split("\"id2\":").nth(1)?;
    rest.split([',', '}']).next()?.trim().parse().ok()
}

/// The `timestamp` of a reading's JSON, if it is one.
fn reading_time(json: &str) -> Option<DateTime<Utc>> {
    let rest = json.split("\"timestamp\":\"").nth(1)?;
    parse_timestamp(rest.split('"').next()?).ok()
}

fn micros_since(at: DateTime<Utc>) -> u64 {
    (Utc::now() - at).num_microseconds().unwrap_or(0).max(0) as u64
}

/// Readings published in the window, in all and per device.
struct Published {
    total: u64,
    per_device: Vec<u64>,
}

/// Publishes at `bench.rate` over the devices, round robin, at QoS 1,
/// until `bench.seconds` after `window_start`; counts what falls in the
/// window.
async fn publish(
    mqtt: &MqttUrl,
    id1: &str,
    bench: &StreamBench,
    window_start: DateTime<Utc>,
) -> Result<Published> {
    let mut options = MqttOptions::new(
        format!("bench-stream-pub-{}", id1.to_ascii_lowercase()),
        mqtt.host(),
        mqtt.port(),
    );
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    if let Some((user, pass)) = mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let polling = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return Ok(()),
                Ok(Event::Incoming(Packet::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publisher lost the broker: {e}")),
            }
        }
    });
    let devices = bench.devices.max(1);
    let mut published = Published {
        total: 0,
        per_device: vec![0; devices as usize],
    };
    let started = Instant::now();
    let stop_at = window_start + chrono::Duration::seconds(bench.seconds as i64);
    let mut sent = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    while Utc::now() < stop_at {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * bench.rate) as u64;
        while sent < due {
            let id2 = (sent % u64::from(devices)) as u32;
            let now = Utc::now();
            let payload = format!(
                r#"{{"sensor_value":{},"sensor_type":"{SENSOR_TYPE}","id1":"{id1}","id2":{id2},"timestamp":"{}"}}"#,
                sent % 1000,
                format_timestamp(now)
            );
            client
                .publish(
                    format!("sensors/{SENSOR_TYPE}/{id1}/{id2}"),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await?;
            if now >= window_start {
                published.total += 1;
                published.per_device[id2 as usize] += 1;
            }
            sent += 1;
        }
    }
    client.disconnect().await?;
    if tokio::time::timeout(Duration::from_secs(10), polling)
        .await
        .is_err()
    {
        bail!("the publisher's last messages did not go out within 10 s");
    }
    Ok(published)
}

/// `mosquitto_sub` on the same readings: the baseline.
struct MosquittoSub {
    child: std::process::Child,
    reader: std::thread::JoinHandle<Received>,
}

/// What `mosquitto_sub` received in the window.
#[derive(Default)]
struct Received {
    latencies_us: Vec<u64>,
    per_device: std::collections::HashMap<u32, u64>,
}

impl MosquittoSub {
    /// Starts it when installed (line-buffered through `stdbuf`).
    fn start(mqtt: &MqttUrl, id1: &str, window_start: DateTime<Utc>) -> Option<Self> {
        let mut command = Command::new("stdbuf");
        command.args([
            "-oL",
            "mosquitto_sub",
            "-h",
            mqtt.host(),
            "-p",
            &mqtt.port().to_string(),
            "-t",
            &format!("sensors/{SENSOR_TYPE}/{id1}/#"),
        ]);
        if let Some((user, pass)) = mqtt.credentials() {
            command.args(["-u", user, "-P", pass]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let reader = std::thread::spawn(move || {
            let mut seen = Received::default();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = reading_time(&line) {
                    if at >= window_start {
                        seen.latencies_us.push(micros_since(at));
                        if let Some(id2) = reading_device(&line) {
                            *seen.per_device.entry(id2).or_default() += 1;
                        }
                    }
                }
            }
            seen
        });
        Some(Self { child, reader })
    }

    fn finish(mut self) -> Result<Received> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reader
            .join()
            .map_err(|_| anyhow::anyhow!("mosquitto_sub's reader panicked"))
    }
}

fn percentiles(mut us: Vec<u64>) -> Latency {
    if us.is_empty() {
        return Latency::default();
    }
    us.sort_unstable();
    let pick = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    Latency {
        count: us.len() as u64,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
    }
}

impl StreamReport {
    /// The report, with the targets.
    pub fn render(&self, bench: &StreamBench) -> String {
        let mib = |b: Option<u64>| {
            b.map_or("n/a".to_owned(), |b| {
                format!("{:.1} MiB", b as f64 / 1_048_576.0)
            })
        };
        let mut s = format!(
            "results ({} clients, {} on the whole type; {} readings/s over {} devices; {} s measured; load {:.2}; API CPU {:.2} s; stream and mosquitto_sub measured at once)\n",
            bench.clients, bench.type_watchers, bench.rate, bench.devices, bench.seconds, self.load_average, self.api_cpu
        );
        s.push_str(&format!(
            "  readings published            {}\n  events expected / delivered   {} / {} ({} short: {} client(s) short, {} ended for falling behind)\n",
            self.published,
            self.expected,
            self.delivered,
            self.expected.saturating_sub(self.delivered),
            self.clients_short,
            self.clients_overflowed
        ));
        s.push_str(&format!(
            "  stream, publish → client      p50 {:>7.1} ms  p99 {:>7.1} ms (target p99 ≤ 100 ms)\n",
            self.stream.p50_ms, self.stream.p99_ms
        ));
        match &self.mosquitto_sub {
            Some(m) if m.count > 0 => s.push_str(&format!(
                "  mosquitto_sub, same readings  p50 {:>7.1} ms  p99 {:>7.1} ms ({} received) → stream p99 ÷ mosquitto_sub p99 {:.2} (target ≤ 2)\n",
                m.p50_ms,
                m.p99_ms,
                m.count,
                self.stream.p99_ms / m.p99_ms.max(0.001)
            )),
            _ => s.push_str("  mosquitto_sub baseline: n/a (needs mosquitto_sub and stdbuf)\n"),
        }
        s.push_str(&format!(
            "  API resident memory           {} idle, {} peak (target < 128 MiB at 1,000 clients)\n",
            mib(self.api_idle_rss),
            mib(self.api_peak_rss)
        ));
        s
    }
}
