//! `IngestorProcess`: a `datastream ingestor` child process, as the
//! benchmark and the fault tests run it — a real process that can be
//! SIGKILLed, whose health endpoint can be polled and whose memory can be
//! read.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

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

/// A running `datastream ingestor`. Killed when dropped.
pub struct IngestorProcess {
    child: Child,
    client_id: String,
    health: SocketAddr,
    log: PathBuf,
}

impl IngestorProcess {
    /// Starts `binary ingestor` with its health endpoint on a free port and
    /// its output in a log file in the temporary directory.
    pub fn spawn(binary: &Path, spec: &IngestorSpec) -> Result<Self> {
        let health = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::env::temp_dir().join(format!("{}-{}.log", spec.client_id, health.port()));
        let out = std::fs::File::create(&log).context("creating the ingestor log")?;
        let child = Command::new(binary)
            .arg("ingestor")
            .env("DATABASE_URL", &spec.database_url)
            .env("MQTT_URL", &spec.mqtt_url)
            .env("INGEST_GROUP", spec.group.as_deref().unwrap_or("ingestors"))
            .env("INGEST_SHARED", spec.group.is_some().to_string())
            .env("INGEST_CLIENT_ID", &spec.client_id)
            .env("INGEST_LISTEN", health.to_string())
            .env("RUST_LOG", "info,rumqttc=warn,actix_server=warn")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {} ingestor", binary.display()))?;
        Ok(Self {
            child,
            client_id: spec.client_id.clone(),
            health,
            log,
        })
    }

    /// Its MQTT client id (its persistent session).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Where its `/healthz`, `/readyz` and `/metrics` are served.
    pub fn health_addr(&self) -> SocketAddr {
        self.health
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200 (database reachable, subscribed).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.readyz_status().await == 200 {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("ingestor exited with {status}; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!("ingestor not ready after {timeout:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status of `/readyz`, or 0 when it does not answer.
    pub async fn readyz_status(&self) -> u16 {
        http_get(self.health, "/readyz")
            .await
            .map(|(status, _)| status)
            .unwrap_or(0)
    }

    /// `datastream_ingest_readings_total{outcome="…"}` from `/metrics`.
    pub async fn readings_total(&self, outcome: &str) -> u64 {
        let Ok((_, body)) = http_get(self.health, "/metrics").await else {
            return 0;
        };
        let key = format!("datastream_ingest_readings_total{{outcome=\"{outcome}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    }

    /// Peak resident memory (VmHWM) in bytes, on Linux.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.memory_status("VmHWM:")
    }

    /// Resident memory now (VmRSS) in bytes, on Linux.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.memory_status("VmRSS:")
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the clean exit.
    pub fn terminate(mut self) -> Result<ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("sending SIGTERM")?;
        Ok(self.child.wait()?)
    }
}

impl Drop for IngestorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET for the local health endpoints (no client
/// library needed for three fixed paths on loopback).
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    })
    .await
    .map_err(std::io::Error::other)?
}
