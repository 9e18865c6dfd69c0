//! `ServiceProcess`: one `datastream` service run as a child process — an
//! ingestor, an API or a generator fleet — as the benchmarks and the fault
//! tests run them: a real process that can be SIGKILLed, whose health
//! endpoint can be polled and whose memory can be read.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Why a service process could not be started or did not get ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// Spawning, signalling or waiting failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process exited before it was ready.
    #[error("{role} exited with {status}; log:\n{log}")]
    Exited {
        /// The service.
        role: String,
        /// How it ended.
        status: ExitStatus,
        /// What it logged.
        log: String,
    },
    /// It did not get ready in time.
    #[error("{role} not ready after {timeout:?}; log:\n{log}")]
    NotReady {
        /// The service.
        role: String,
        /// How long it was given.
        timeout: Duration,
        /// What it logged.
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Io { what, source }
}

/// How to start one ingestor process.
#[derive(Debug, Clone)]
pub struct IngestorSpec {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `MQTT_URL`.
    pub mqtt_url: String,
    /// Shared group, or `None` for a direct subscription.
    pub group: Option<String>,
    /// `INGEST_CLIENT_ID`.
    pub client_id: String,
    /// Extra environment, e.g. `INGEST_BATCH_MAX`.
    pub env: Vec<(String, String)>,
}

impl IngestorSpec {
    /// An ingestor of shared group `group` (client id `{group}-ing`) on
    /// `database_url` and the broker `mqtt` (its password handed on).
    pub fn in_group(database_url: &str, mqtt: &datastream_domain::MqttUrl, group: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            mqtt_url: mqtt.to_url_with_password(),
            group: Some(group.to_owned()),
            client_id: format!("{group}-ing"),
            env: vec![],
        }
    }
}

/// What a service is started with: its subcommand, the setting that says
/// where it serves HTTP, and its environment.
#[derive(Debug, Clone)]
pub struct ServiceCommand {
    /// The subcommand and its arguments, e.g. `["ingestor"]`.
    pub args: Vec<String>,
    /// The variable naming its HTTP address (`INGEST_LISTEN`, `API_LISTEN`,
    /// `GENERATOR_LISTEN`); a free port is chosen for it.
    pub listen_var: &'static str,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// A name for logs and errors, e.g. its client id.
    pub name: String,
}

impl ServiceCommand {
    /// `datastream ingestor` as `spec` describes it.
    pub fn ingestor(spec: &IngestorSpec) -> Self {
        let mut env = vec![
            ("DATABASE_URL".to_owned(), spec.database_url.clone()),
            ("MQTT_URL".to_owned(), spec.mqtt_url.clone()),
            (
                "INGEST_GROUP".to_owned(),
                spec.group.clone().unwrap_or_else(|| "ingestors".to_owned()),
            ),
            ("INGEST_SHARED".to_owned(), spec.group.is_some().to_string()),
            ("INGEST_CLIENT_ID".to_owned(), spec.client_id.clone()),
        ];
        env.extend(spec.env.iter().cloned());
        Self {
            args: vec!["ingestor".to_owned()],
            listen_var: "INGEST_LISTEN",
            env,
            name: spec.client_id.clone(),
        }
    }

    /// `datastream api` on `database_url`, with `env` besides.
    pub fn api(database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut all = vec![("DATABASE_URL".to_owned(), database_url.to_owned())];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Self {
            args: vec!["api".to_owned()],
            listen_var: "API_LISTEN",
            env: all,
            name: "api".to_owned(),
        }
    }

    /// `datastream alerter` on `database_url` and the broker at `mqtt_url`,
    /// named `name` (its logs), with `env` besides (e.g. `ALERT_CLIENT_ID`).
    pub fn alerter(database_url: &str, mqtt_url: &str, name: &str, env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("MQTT_URL".to_owned(), mqtt_url.to_owned()),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Self {
            args: vec!["alerter".to_owned()],
            listen_var: "ALERTER_LISTEN",
            env: all,
            name: name.to_owned(),
        }
    }

    /// `datastream grpc` on `database_url` (its accounts) and the broker at
    /// `mqtt_url`, with `env` besides (`JWT_SECRET`, `GRPC_LISTEN`); its
    /// HTTP health on the free port.
    pub fn grpc(database_url: &str, mqtt_url: &str, env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("MQTT_URL".to_owned(), mqtt_url.to_owned()),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Self {
            args: vec!["grpc".to_owned()],
            listen_var: "GRPC_HEALTH_LISTEN",
            env: all,
            name: "grpc".to_owned(),
        }
    }

    /// `datastream generator --fleet FLEET` on the broker at `mqtt_url`.
    pub fn generator_fleet(mqtt_url: &str, fleet: &str, env: &[(&str, &str)]) -> Self {
        let mut all = vec![("MQTT_URL".to_owned(), mqtt_url.to_owned())];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Self {
            args: vec![
                "generator".to_owned(),
                "--fleet".to_owned(),
                fleet.to_owned(),
            ],
            listen_var: "GENERATOR_LISTEN",
            env: all,
            name: format!("generator-{fleet}"),
        }
    }
}

/// A running `datastream` service. Killed (SIGKILL) when dropped.
pub struct ServiceProcess {
    child: Child,
    command: ServiceCommand,
    addr: SocketAddr,
    log: PathBuf,
}

/// How many times a service is started again when the free port chosen for
/// it was taken before it could bind it.
const PORT_RETRIES: usize = 3;

impl ServiceProcess {
    /// Starts `binary` as `command` describes, its HTTP endpoint on a free
    /// port and its output in a log file in the temporary directory. Does
    /// not wait until it is ready ([`ServiceProcess::wait_ready`]).
    pub fn spawn(binary: &Path, command: ServiceCommand) -> Result<Self, ProcessError> {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("choosing a free port"))?;
        let log = std::env::temp_dir().join(format!("{}-{}.log", command.name, addr.port()));
        let out = std::fs::File::create(&log).map_err(io("creating the service log"))?;
        let err = out.try_clone().map_err(io("opening the service log"))?;
        let child = Command::new(binary)
            .args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .env(command.listen_var, addr.to_string())
            .env("RUST_LOG", "info,rumqttc=warn,actix_server=warn")
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!(
                "starting {} {}",
                binary.display(),
                command.name
            )))?;
        Ok(Self {
            child,
            command,
            addr,
            log,
        })
    }

    /// Starts it like [`ServiceProcess::spawn`] and waits until `/readyz`
    /// answers 200. A free port another process took in the meantime
    /// (the gap between choosing it and the service binding it) means a
    /// new port and another try.
    pub async fn start(
        binary: &Path,
        command: ServiceCommand,
        timeout: Duration,
    ) -> Result<Self, ProcessError> {
        let mut tries = 0;
        loop {
            let mut process = Self::spawn(binary, command.clone())?;
            match process.wait_ready(timeout).await {
                Err(ProcessError::Exited { log, .. })
                    if tries < PORT_RETRIES && log.contains("already in use") =>
                {
                    tries += 1;
                }
                Err(other) => return Err(other),
                Ok(()) => return Ok(process),
            }
        }
    }

    /// Its name (an ingestor's client id: its persistent session).
    pub fn name(&self) -> &str {
        &self.command.name
    }

    /// Where it serves HTTP (`/healthz`, `/readyz`, `/metrics`, and its API).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.readyz_status().await == 200 {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().map_err(io("waiting"))? {
                return Err(ProcessError::Exited {
                    role: self.command.name.clone(),
                    status,
                    log: self.log(),
                });
            }
            if Instant::now() > deadline {
                return Err(ProcessError::NotReady {
                    role: self.command.name.clone(),
                    timeout,
                    log: self.log(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status of `/readyz`, or 0 when it does not answer.
    pub async fn readyz_status(&self) -> u16 {
        get(format!("{}/readyz", self.base_url()))
            .await
            .map_or(0, |(status, _)| status)
    }

    /// `datastream_ingest_readings_total{outcome="…"}` from `/metrics`.
    pub async fn readings_total(&self, outcome: &str) -> u64 {
        self.metric(&format!(
            "datastream_ingest_readings_total{{outcome=\"{outcome}\"}}"
        ))
        .await
        .map_or(0, |v| v as u64)
    }

    /// The value of one series on `/metrics` (its name with labels as
    /// exported, e.g. `datastream_ingest_lag_seconds`), or `None` when it
    /// is not there or nothing answers.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.metrics(&[series]).await.pop().flatten()
    }

    /// The values of several series (as [`ServiceProcess::metric`]) from
    /// one read of `/metrics`, in the order asked.
    pub async fn metrics(&self, series: &[&str]) -> Vec<Option<f64>> {
        let body = get(format!("{}/metrics", self.base_url()))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        series
            .iter()
            .map(|name| {
                let key = format!("{name} ");
                body.lines()
                    .find_map(|l| l.strip_prefix(&key))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .collect()
    }

    /// Polls `series` (as [`ServiceProcess::metric`]) every 200 ms until
    /// `settled` holds for its value or `timeout` passes; returns the last
    /// value read. For gauges and counters that trail what they count (a
    /// commit counted just after its rows are visible, a broker's counts
    /// published once an interval).
    pub async fn metric_until(
        &self,
        series: &str,
        settled: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.metric(series).await;
            if value.is_some_and(&settled) || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Peak resident memory (VmHWM) in bytes, on Linux.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.memory_status("VmHWM:")
    }

    /// Resident memory now (VmRSS) in bytes, on Linux.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.memory_status("VmRSS:")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sockets it holds open (connections and listeners), on Linux.
    pub fn open_sockets(&self) -> Option<usize> {
        let dir = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).ok()?;
        Some(
            dir.filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count(),
        )
    }

    fn memory_status(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    }

    /// SIGKILL: no chance to commit or ack anything.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the clean exit.
    pub fn terminate(mut self) -> Result<ExitStatus, ProcessError> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(io("sending SIGTERM"))?;
        self.child.wait().map_err(io("waiting for the exit"))
    }
}

/// A GET on the local service, off the async workers: its status and body,
/// or `None` when nothing answers.
async fn get(url: String) -> Option<(u16, String)> {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.get(&url).call().ok()?;
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Some((resp.status().as_u16(), body))
    })
    .await
    .ok()
    .flatten()
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}
