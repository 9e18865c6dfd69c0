//! `Settings`: the configuration of every part, from defaults < optional
//! TOML file < environment < command-line flags.

use crate::listen::ListenAddr;
use anyhow::{bail, Context, Result};
use datastream_domain::RetentionPolicy;
use datastream_store::{InsertMethod, StoreOptions};
use serde::Deserialize;
use sha2::Digest;
use std::net::SocketAddr;
use std::path::Path;

/// Everything configurable, named as in DESIGN.md's table (environment
/// variables are the upper-case field names).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `sqlite://PATH` or `mysql://user:pass@host:port/db`.
    pub database_url: String,
    /// A read replica for the API's reading queries; unset: `database_url`.
    pub database_read_url: Option<String>,
    /// Connections each database pool keeps open; unset: the backend's
    /// default (MySQL 8, SQLite 4).
    pub database_pool_size: Option<usize>,
    /// Keep hourly rollups and the device catalog as readings are written
    /// (analytics then read rollups instead of rows). Off is for measuring
    /// what they cost; turned on again, every hour is rebuilt.
    pub rollups: bool,
    /// Raw readings older than this (`30d`, `12h`) are removed in the
    /// background; unset keeps them forever. Needs `rollups`.
    pub retention: Option<String>,
    /// Hourly rollups older than this are removed; unset keeps them
    /// forever. At least `retention`.
    pub rollup_retention: Option<String>,
    /// External broker; unset means `up` starts the embedded one.
    /// `mqtts://` speaks TLS.
    pub mqtt_url: Option<String>,
    /// PEM CA certificates the broker's certificate must chain to, for
    /// `mqtts://` URLs; unset: the system's trusted CAs.
    pub mqtt_ca_file: Option<String>,
    /// A PEM client certificate (chain) for brokers that ask for one; with
    /// `MQTT_CLIENT_KEY_FILE`.
    pub mqtt_client_cert_file: Option<String>,
    /// The client certificate's PEM private key.
    pub mqtt_client_key_file: Option<String>,
    /// The ingestor's own login on the external broker
    /// (`mqtt://user:password@host:port`, the broker of `MQTT_URL`); unset:
    /// `MQTT_URL`. Its user must be allowed to read `sensors/#`.
    pub mqtt_ingestor_url: Option<String>,
    /// The generators' own login on the external broker; unset: `MQTT_URL`.
    /// Its user must be allowed to write `sensors/#` and read and write
    /// `datastream/generators/#` and `datastream/fleets/#`.
    pub mqtt_generator_url: Option<String>,
    /// Where the embedded broker listens (`up` moves off a taken default).
    pub mqtt_listen: ListenAddr,
    /// `name:password,…`: the embedded broker then accepts only these users,
    /// and `up` connects its ingestor as `ingestor`, its generators as
    /// `generator`.
    pub mqtt_users: Option<String>,
    /// Where the REST API listens (`up` moves off a taken default).
    pub api_listen: ListenAddr,
    /// Where the generator service's REST API listens (`up` moves off a
    /// taken default).
    pub generator_listen: ListenAddr,
    /// The generator service's REST API (`http://host:port`) that the API
    /// passes `/api/v1/generators` on to, for the dashboard; unset: those
    /// paths answer 404. `up` points its API at its own generator service.
    pub generators_url: Option<String>,
    /// The fleet a generator process (and `up`'s generator service) runs:
    /// the generators whose config names it.
    pub generator_fleet: String,
    /// How a standalone generator process publishes readings: `mqtt` (the
    /// default) or `grpc` (through the gRPC gateway; a fleet's control
    /// plane stays on the broker).
    pub generator_transport: String,
    /// The gRPC gateway a `grpc` generator publishes through.
    pub generator_grpc_url: String,
    /// The admin account a `grpc` generator signs in as (`Auth.Login`).
    pub generator_grpc_username: Option<String>,
    /// Its password.
    pub generator_grpc_password: Option<String>,
    /// PEM CA certificates the gateway's certificate must chain to, for an
    /// `https://` gateway; unset: the system's trusted CAs.
    pub generator_grpc_ca_file: Option<String>,
    /// Where `up` keeps its generator configs when it runs the embedded
    /// broker, which forgets retained messages when it stops; unset: beside
    /// the SQLite database (`datastream.generators.json` for
    /// `datastream.db`), or `datastream-generators.json` in the working
    /// directory with MySQL.
    pub generators_file: Option<String>,
    /// HS256 secret, at least 32 bytes. `up` generates one when unset.
    pub jwt_secret: Option<String>,
    /// Access-token lifetime in seconds.
    pub jwt_ttl_secs: u64,
    /// Admin created on first start when no user exists.
    pub admin_username: String,
    /// Its password; generated and printed once when unset.
    pub admin_password: Option<String>,
    /// Shared-subscription group of the ingestors.
    pub ingest_group: String,
    /// Subscribe through the shared group (true) or directly to `sensors/#`
    /// (false: one ingestor only; what `up` does on the embedded broker).
    pub ingest_shared: bool,
    /// MQTT client id of a standalone ingestor (stable per host by default).
    pub ingest_client_id: Option<String>,
    /// Where a standalone ingestor serves health and metrics (a taken
    /// default moves to the next free port, so replicas can share a host).
    pub ingest_listen: ListenAddr,
    /// Readings per batch.
    pub ingest_batch_max: usize,
    /// Largest batch while a backlog drains (batches grow from
    /// `ingest_batch_max` while the database is the limit).
    pub ingest_drain_batch_max: usize,
    /// Longest a reading waits in an open batch, in milliseconds.
    pub ingest_flush_ms: u64,
    /// Most messages an ingestor holds unacknowledged in memory.
    pub ingest_max_backlog: usize,
    /// How batches are written to MySQL/MariaDB: `auto` (LOAD DATA LOCAL
    /// INFILE streamed from memory where the server allows it, else
    /// multi-row INSERT) or `insert`.
    pub ingest_writer: String,
    /// Largest accepted MQTT payload, in bytes; larger ones are dead-lettered.
    pub ingest_max_payload_bytes: usize,
    /// On stop, leave the shared group, store what the session still
    /// holds and end the session, rather than keep it for a restart (for
    /// replicas an autoscaler removes; see docs/SCALING.md).
    pub ingest_leave_group_on_stop: bool,
    /// API worker threads.
    pub api_workers: usize,
    /// The alerter's own login on the external broker; unset:
    /// `MQTT_INGESTOR_URL`, else `MQTT_URL`.
    /// Its user must be allowed to read `sensors/#` and write
    /// `datastream/alerts/#`.
    pub mqtt_alerter_url: Option<String>,
    /// The alerters' MQTT client id: one per deployment (every alerter of a
    /// database resumes the same session); unset: made of a digest of the
    /// database.
    pub alert_client_id: Option<String>,
    /// How long the alerter lease lasts unrenewed, in seconds: a standby
    /// takes over at most this long after the active alerter dies.
    pub alert_lease_secs: u64,
    /// Where a standalone alerter serves health and metrics (a taken
    /// default moves to the next free port).
    pub alerter_listen: ListenAddr,
    /// PEM CA certificates the alerter trusts for `https://` webhooks
    /// besides the system's (receivers behind a private CA).
    pub alert_webhook_ca_file: Option<String>,
    /// Where the gRPC gateway listens (`up` and `datastream grpc`; a taken
    /// default moves to the next free port in `up`).
    pub grpc_listen: ListenAddr,
    /// Where a standalone gRPC gateway serves HTTP health and metrics
    /// (`/healthz`, `/readyz`, `/metrics`; its gRPC port also answers
    /// `grpc.health.v1`).
    pub grpc_health_listen: ListenAddr,
    /// A PEM certificate (chain) the REST API, the gRPC gateway, a
    /// generator fleet's API and the embedded broker's TLS listener present;
    /// with `TLS_KEY_FILE`, they serve TLS only.
    pub tls_cert_file: Option<String>,
    /// The certificate's PEM private key.
    pub tls_key_file: Option<String>,
    /// Where the embedded broker accepts MQTT over TLS when
    /// `TLS_CERT_FILE` is set (its plain listener stays on `MQTT_LISTEN`).
    pub mqtt_tls_listen: ListenAddr,
    /// The gRPC gateway's own login on the external broker; unset:
    /// `MQTT_GENERATOR_URL`, else `MQTT_URL`. Its user must be allowed to
    /// write `sensors/#`.
    pub mqtt_grpc_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://datastream.db".into(),
            database_read_url: None,
            database_pool_size: None,
            rollups: true,
            retention: None,
            rollup_retention: None,
            mqtt_url: None,
            mqtt_ca_file: None,
            mqtt_client_cert_file: None,
            mqtt_client_key_file: None,
            mqtt_ingestor_url: None,
            mqtt_generator_url: None,
            mqtt_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 1883))),
            mqtt_users: None,
            api_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 8080))),
            generator_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 8081))),
            generators_url: None,
            generator_fleet: "default".into(),
            generator_transport: "mqtt".into(),
            generator_grpc_url: "http://127.0.0.1:50051".into(),
            generator_grpc_username: None,
            generator_grpc_password: None,
            generator_grpc_ca_file: None,
            generators_file: None,
            jwt_secret: None,
            jwt_ttl_secs: 3600,
            admin_username: "admin".into(),
            admin_password: None,
            ingest_group: "ingestors".into(),
            ingest_shared: true,
            ingest_client_id: None,
            ingest_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 8082))),
            ingest_batch_max: 1000,
            ingest_drain_batch_max: datastream_ingestor::DEFAULT_DRAIN_BATCH_MAX,
            ingest_flush_ms: 100,
            ingest_max_backlog: 50_000,
            ingest_writer: "auto".into(),
            ingest_max_payload_bytes: 256 * 1024,
            ingest_leave_group_on_stop: false,
            api_workers: 2,
            mqtt_alerter_url: None,
            alert_client_id: None,
            alert_lease_secs: 5,
            alerter_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 8083))),
            alert_webhook_ca_file: None,
            grpc_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 50051))),
            mqtt_grpc_url: None,
            grpc_health_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 8084))),
            tls_cert_file: None,
            tls_key_file: None,
            mqtt_tls_listen: ListenAddr::default_for(SocketAddr::from(([127, 0, 0, 1], 8883))),
        }
    }
}

/// The environment variables `Settings` reads: its field names, upper-cased.
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "DATABASE_POOL_SIZE",
    "ROLLUPS",
    "RETENTION",
    "ROLLUP_RETENTION",
    "MQTT_URL",
    "MQTT_CA_FILE",
    "MQTT_CLIENT_CERT_FILE",
    "MQTT_CLIENT_KEY_FILE",
    "MQTT_INGESTOR_URL",
    "MQTT_GENERATOR_URL",
    "MQTT_LISTEN",
    "MQTT_USERS",
    "API_LISTEN",
    "GENERATOR_LISTEN",
    "GENERATORS_URL",
    "GENERATOR_FLEET",
    "GENERATOR_TRANSPORT",
    "GENERATOR_GRPC_URL",
    "GENERATOR_GRPC_USERNAME",
    "GENERATOR_GRPC_PASSWORD",
    "GENERATOR_GRPC_CA_FILE",
    "GENERATORS_FILE",
    "JWT_SECRET",
    "JWT_TTL_SECS",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD",
    "INGEST_GROUP",
    "INGEST_SHARED",
    "INGEST_CLIENT_ID",
    "INGEST_LISTEN",
    "INGEST_BATCH_MAX",
    "INGEST_DRAIN_BATCH_MAX",
    "INGEST_FLUSH_MS",
    "INGEST_MAX_BACKLOG",
    "INGEST_WRITER",
    "INGEST_MAX_PAYLOAD_BYTES",
    "INGEST_LEAVE_GROUP_ON_STOP",
    "API_WORKERS",
    "MQTT_ALERTER_URL",
    "ALERT_CLIENT_ID",
    "ALERT_LEASE_SECS",
    "ALERTER_LISTEN",
    "ALERT_WEBHOOK_CA_FILE",
    "GRPC_LISTEN",
    "MQTT_GRPC_URL",
    "GRPC_HEALTH_LISTEN",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "MQTT_TLS_LISTEN",
];

impl Settings {
    /// How the store is opened.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.database_pool_size,
            rollups: self.rollups,
            // `load` refused a writer that does not parse.
            insert_method: self.insert_method().unwrap_or_default(),
        }
    }

    /// Loads defaults, then `file` (TOML, keys as the field names), then the
    /// environment. Flags are applied by the caller afterwards.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        for name in ENV_VARS {
            if let Ok(value) = std::env::var(name) {
                if !value.is_empty() {
                    builder = builder
                        .set_override(name.to_ascii_lowercase(), value)
                        .context("setting from environment")?;
                }
            }
        }
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<()> {
        if self.database_pool_size == Some(0) {
            bail!("DATABASE_POOL_SIZE must be at least 1");
        }
        if self.ingest_batch_max == 0 {
            bail!("INGEST_BATCH_MAX must be at least 1");
        }
        if self.ingest_drain_batch_max == 0 {
            bail!("INGEST_DRAIN_BATCH_MAX must be at least 1 (at most INGEST_BATCH_MAX keeps every batch at that size)");
        }
        if self.ingest_flush_ms == 0 {
            bail!("INGEST_FLUSH_MS must be at least 1");
        }
        if !(2..=300).contains(&self.alert_lease_secs) {
            bail!("ALERT_LEASE_SECS must be from 2 to 300 (seconds)");
        }
        self.insert_method()?;
        self.retention_policy()?;
        if let Some(url) = &self.generators_url {
            datastream_api::generator_link::GeneratorLink::new(url)?;
        }
        Ok(())
    }

    /// Where `up` keeps its generator configs on the embedded broker.
    pub fn generators_file(&self) -> std::path::PathBuf {
        if let Some(path) = &self.generators_file {
            return path.into();
        }
        match self.database_url.strip_prefix("sqlite://") {
            Some(db) => Path::new(db).with_extension("generators.json"),
            None => "datastream-generators.json".into(),
        }
    }

    /// How batches are written (`INGEST_WRITER`).
    pub fn insert_method(&self) -> Result<InsertMethod> {
        match self.ingest_writer.as_str() {
            "auto" => Ok(InsertMethod::Auto),
            "insert" => Ok(InsertMethod::Insert),
            other => bail!("INGEST_WRITER must be auto or insert, got {other:?}"),
        }
    }

    /// How long readings and rollups are kept; `None`: forever.
    pub fn retention_policy(&self) -> Result<Option<RetentionPolicy>> {
        match (&self.retention, &self.rollup_retention) {
            (None, None) => Ok(None),
            (None, Some(_)) => bail!(
                "ROLLUP_RETENTION needs RETENTION: rollups of hours whose readings are kept cannot be removed"
            ),
            (Some(_), _) if !self.rollups => bail!(
                "RETENTION needs ROLLUPS on: retired hours are answered from their rollups"
            ),
            (Some(raw), rollups) => Ok(Some(RetentionPolicy::parse(raw, rollups.as_deref())?)),
        }
    }

    /// The embedded broker's users from `MQTT_USERS` (`name:password,…`).
    pub fn mqtt_users(&self) -> Result<std::collections::HashMap<String, String>> {
        let mut users = std::collections::HashMap::new();
        for entry in self.mqtt_users.iter().flat_map(|s| s.split(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((name, password)) = entry.split_once(':') else {
                bail!("MQTT_USERS entries must be name:password");
            };
            if name.is_empty() || password.len() < 8 {
                bail!("MQTT_USERS: user names must not be empty and passwords need 8 characters or more");
            }
            users.insert(name.to_owned(), password.to_owned());
        }
        Ok(users)
    }

    /// The ingestor's MQTT client id: configured, or stable per host.
    pub fn ingest_client_id(&self) -> String {
        self.ingest_client_id
            .clone()
            .unwrap_or_else(|| format!("datastream-ingestor-{}", host_name()))
    }

    /// The client id of `up`'s ingestor: `INGEST_CLIENT_ID`, or one made of
    /// the host and a digest of the database. It survives a restart on
    /// other ports (the persistent session resumes instead of a second one
    /// taking a share of the stream), and `up`s on other databases never
    /// share one.
    pub fn up_ingest_client_id(&self) -> String {
        if let Some(id) = &self.ingest_client_id {
            return id.clone();
        }
        let digest = sha2::Sha256::digest(database_identity(&self.database_url).as_bytes());
        let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("datastream-up-{}-{short}", host_name())
    }

    /// The alerters' MQTT client id: `ALERT_CLIENT_ID`, or one made of a
    /// digest of the database, so every alerter of one deployment (on any
    /// host) resumes the one session, and deployments on other databases
    /// never share it.
    pub fn alert_client_id(&self) -> String {
        if let Some(id) = &self.alert_client_id {
            return id.clone();
        }
        let digest = sha2::Sha256::digest(database_identity(&self.database_url).as_bytes());
        let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("datastream-alerter-{short}")
    }

    /// The URL `up`'s and a standalone alerter connect with: its own, else
    /// the ingestor's (both read every reading), else `MQTT_URL`.
    pub fn alerter_mqtt_url(&self) -> Option<&str> {
        self.mqtt_alerter_url
            .as_deref()
            .or(self.mqtt_ingestor_url.as_deref())
            .or(self.mqtt_url.as_deref())
    }

    /// The URL `up`'s and a standalone ingestor connect with.
    pub fn ingestor_mqtt_url(&self) -> Option<&str> {
        self.mqtt_ingestor_url
            .as_deref()
            .or(self.mqtt_url.as_deref())
    }

    /// The URL `up`'s generators and a standalone generator process
    /// connect with.
    pub fn generator_mqtt_url(&self) -> Option<&str> {
        self.mqtt_generator_url
            .as_deref()
            .or(self.mqtt_url.as_deref())
    }

    /// Where a standalone generator process publishes through the gRPC
    /// gateway, or `None` to publish over MQTT (`GENERATOR_TRANSPORT`).
    pub fn generator_grpc_target(
        &self,
    ) -> anyhow::Result<Option<datastream_generator::GrpcTarget>> {
        match self.generator_transport.as_str() {
            "mqtt" => Ok(None),
            "grpc" => {
                let (Some(username), Some(password)) =
                    (&self.generator_grpc_username, &self.generator_grpc_password)
                else {
                    anyhow::bail!("GENERATOR_TRANSPORT=grpc needs GENERATOR_GRPC_USERNAME and GENERATOR_GRPC_PASSWORD: an admin account the generators sign in as");
                };
                Ok(Some(datastream_generator::GrpcTarget {
                    url: self.generator_grpc_url.clone(),
                    username: username.clone(),
                    password: password.clone(),
                    ca_file: self.generator_grpc_ca_file.as_ref().map(Into::into),
                }))
            }
            other => anyhow::bail!("GENERATOR_TRANSPORT must be mqtt or grpc, got {other:?}"),
        }
    }

    /// The URL a standalone gRPC gateway publishes with: its own, else the
    /// generators' (both publish readings), else `MQTT_URL`.
    pub fn grpc_mqtt_url(&self) -> Option<&str> {
        self.mqtt_grpc_url.as_deref().or(self.generator_mqtt_url())
    }
}

/// This host's name, as far as it can go into an MQTT client id.
fn host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    host.trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// What names a database whatever URL spelling reaches it: an SQLite
/// file's absolute path, a MySQL URL without its password.
fn database_identity(url: &str) -> String {
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let path = Path::new(path);
            // The file exists once the store is open; its directory at least
            // exists before.
            let absolute = path.canonicalize().ok().or_else(|| {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new(".")).canonicalize().ok()?;
                Some(dir.join(path.file_name()?))
            });
            format!(
                "sqlite://{}",
                absolute.unwrap_or(path.to_path_buf()).display()
            )
        }
        None => datastream_store::redact_url(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let s = Settings::default();
        assert_eq!(s.database_url, "sqlite://datastream.db");
        assert_eq!(s.api_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.mqtt_listen.to_string(), "127.0.0.1:1883");
        assert_eq!(s.ingest_group, "ingestors");
        assert!(s.jwt_secret.is_none());
    }

    #[test]
    fn a_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datastream.toml");
        std::fs::write(
            &path,
            "api_listen = \"127.0.0.1:9999\"\ningest_batch_max = 7\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.api_listen.addr().port(), 9999);
        assert!(s.api_listen.is_chosen());
        assert!(!s.mqtt_listen.is_chosen());
        assert_eq!(s.ingest_batch_max, 7);
    }

    #[test]
    fn a_pool_of_no_connections_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datastream.toml");
        std::fs::write(&path, "database_pool_size = 0\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err();
        assert!(format!("{err:#}").contains("DATABASE_POOL_SIZE"), "{err:#}");
    }

    #[test]
    fn an_unknown_ingest_writer_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datastream.toml");
        std::fs::write(&path, "ingest_writer = \"copy\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err();
        assert!(format!("{err:#}").contains("INGEST_WRITER"), "{err:#}");
        std::fs::write(&path, "ingest_writer = \"insert\"\n").unwrap();
        let settings = Settings::load(Some(&path)).unwrap();
        assert_eq!(settings.store_options().insert_method, InsertMethod::Insert);
    }

    #[test]
    fn ups_ingestor_keeps_its_client_id_across_ports_and_differs_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let settings = |db: &str, api: u16| Settings {
            database_url: format!("sqlite://{}", dir.path().join(db).display()),
            api_listen: ListenAddr::chosen(SocketAddr::from(([127, 0, 0, 1], api))),
            ..Settings::default()
        };
        let first = settings("a.db", 8080).up_ingest_client_id();
        assert_eq!(first, settings("a.db", 8081).up_ingest_client_id());
        assert_ne!(first, settings("b.db", 8080).up_ingest_client_id());
        assert!(first.starts_with("datastream-up-"), "{first}");
        let chosen = Settings {
            ingest_client_id: Some("mine".into()),
            ..settings("a.db", 8080)
        };
        assert_eq!(chosen.up_ingest_client_id(), "mine");
    }

    #[test]
    fn a_mysql_database_is_named_without_its_password() {
        assert_eq!(
            database_identity("mysql://u:secret@db:3306/x"),
            database_identity("mysql://u:other@db:3306/x")
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(Settings::load(Some(Path::new("/nonexistent/datastream.toml"))).is_err());
    }
}
