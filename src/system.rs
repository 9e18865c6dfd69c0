//! Composition: starts the parts of datastream from [`Settings`] and wires
//! them together. `datastream up` runs [`System::start`]; the standalone
//! subcommands use the `run_*` functions.

pub use crate::api_state::{app_state, start_live_feed};
pub use crate::connections::{
    broker_url, decode_limits, external_mqtt, generator_mqtt, ingestor_mqtt, mqtt_or_default,
    open_store, verify_broker,
};
use crate::grpc_gateway::{start_grpc, GrpcTask};
use crate::listen::ListenAddr;
use crate::pipeline_check::PipelineCheck;
use crate::server_tls::ServerTls;
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use datastream_alerter::Alerter;
use datastream_api::generator_link::GeneratorLink;
use datastream_api::{ensure_admin, AdminBootstrap, AppState, DatabaseReadiness};
use datastream_broker::TlsFront;
use datastream_broker::{BrokerConfig, BrokerError, EmbeddedBroker};
use datastream_domain::MqttUrl;
use datastream_generator::{ConfigFile, GeneratorService, GeneratorSpec, RunningService};
use datastream_http::HttpListener;
use datastream_http::{
    ComponentState, HealthState, ReadinessCheck, Server, SharedReadiness, TokenVerifier,
};
use datastream_ingestor::{IngestConfig, IngestProbe, Ingestor};
use datastream_store as store;
use datastream_store::SharedStore;
use rand::distr::{Alphanumeric, SampleString};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where a running system can be reached, and how to log in.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The broker everything talks to.
    pub mqtt: MqttUrl,
    /// True when `up` started the embedded broker.
    pub embedded_broker: bool,
    /// The REST API.
    pub api: SocketAddr,
    /// The generator service's REST API.
    pub generators: SocketAddr,
    /// The gRPC gateway.
    pub grpc: SocketAddr,
    /// Whether the API and the gRPC gateway speak TLS (`TLS_CERT_FILE`).
    pub tls: bool,
    /// The embedded broker's TLS listener, if it has one.
    pub mqtt_tls: Option<SocketAddr>,
    /// The database, password hidden.
    pub database: String,
    /// The admin created on this start, if any.
    pub admin: AdminBootstrap,
    /// True when the JWT secret was generated for this run.
    pub generated_jwt_secret: bool,
    /// The MQTT client id of `up`'s ingestor (its persistent session on an
    /// external broker).
    pub ingest_client_id: String,
}

/// The generator service's task.
type GeneratorTask = JoinHandle<Result<(), datastream_generator::ServiceError>>;

/// Everything `datastream up` runs, in one process.
pub struct System {
    endpoints: Endpoints,
    generators: CancellationToken,
    grpc_stop: CancellationToken,
    grpc: GrpcTask,
    /// The embedded broker's TLS listener (stops when dropped).
    _mqtt_tls: Option<TlsFront>,
    ingest: CancellationToken,
    api: CancellationToken,
    generator_task: GeneratorTask,
    generator_server: Server,
    ingestor: Ingestor,
    alerting: CancellationToken,
    alerter: Alerter,
    api_server: Server,
}

impl System {
    /// Starts broker (unless `mqtt_url` is set), store, ingestor, API and
    /// the generator service, which is given `generators` if its fleet has
    /// none yet.
    pub async fn start(settings: &Settings, generators: Vec<GeneratorSpec>) -> Result<Self> {
        // The database first: a wrong DATABASE_URL should fail before any
        // port is taken.
        let store = open_store(settings).await?;
        // The ingestor gets a pool of its own: however many readers the API
        // has (a burst of stream resumes, a slow export), commits never wait
        // for a connection behind them.
        let ingest_store = open_store(settings).await?;
        let server_tls = ServerTls::from_settings(settings)?;
        let brokers = UpBroker::start(settings, server_tls.as_ref()).await?;
        let (state, generated_jwt_secret) = match &settings.jwt_secret {
            Some(secret) => (app_state(&store, secret, settings).await?, false),
            None => {
                let secret = Alphanumeric.sample_string(&mut rand::rng(), 64);
                (app_state(&store, &secret, settings).await?, true)
            }
        };
        let admin = bootstrap_admin(&store, settings).await?;
        let listener = settings.api_listen.bind("API_LISTEN")?;
        let generator_listener = settings.generator_listen.bind("GENERATOR_LISTEN")?;
        let grpc_listener = settings.grpc_listen.bind("GRPC_LISTEN")?;
        // The dashboard manages generators through the API, which passes
        // those requests on to this process's own generator service.
        let state = state.with_generator_service(GeneratorLink::new(&local_url(
            generator_listener.local_addr()?,
        ))?);

        let ingest = CancellationToken::new();
        let api_port = listener.local_addr()?.port();
        let ingest_client_id = settings.up_ingest_client_id();
        let mut ingestor = start_up_ingestor(
            settings,
            &brokers,
            &ingest_store,
            ingest_client_id.clone(),
            &ingest,
        );
        // The alerter gets a pool of its own too: its commits gate its acks.
        let alerting = CancellationToken::new();
        let alerter = Alerter::start(
            crate::alerting::alerter_config(settings, brokers.alerter.clone()),
            open_store(settings).await?,
            alerting.clone(),
        );
        let api = CancellationToken::new();
        let pipeline = PipelineCheck::new(ingestor.probe(), &brokers.ingestor);
        let readiness = IngestReadiness {
            store: ingest_store.clone(),
            ingestor: ingestor.probe(),
            pipeline: Some(pipeline.clone()),
        };
        let live = start_live_feed(settings, brokers.ingestor.clone(), api_port, &api);
        let state = state.with_live_readings(live.clone());
        let verifier = state.token_verifier();
        let grpc_stop = CancellationToken::new();
        let grpc = start_grpc(
            settings,
            grpc_listener,
            server_tls.as_ref(),
            &brokers.generator,
            live,
            state.clone(),
            grpc_stop.clone(),
        )?;
        let listener = HttpListener::new(listener, server_tls.as_ref().map(|t| t.config.clone()));
        let api_tls = listener.is_tls();
        let api_server = start_up_api(settings, listener, state, readiness, &api)?;
        // Generators start only once readings have somewhere to go: a shared
        // group with no member drops what is published to it.
        if !ingestor.wait_subscribed(Duration::from_secs(10)).await {
            tracing::warn!("ingestor not subscribed after 10 s; starting generators anyway");
        }

        let generators_token = CancellationToken::new();
        let (generator_task, generator_server, generator_service) = start_up_generators(
            settings,
            &brokers.generator,
            UpGenerators::new(settings, brokers.embedded, generators),
            generator_listener,
            verifier,
            &generators_token,
        )
        .await?;
        pipeline.watch(generator_service, api.clone());
        Ok(Self {
            endpoints: Endpoints {
                mqtt: brokers.url,
                embedded_broker: brokers.embedded,
                api: api_server.addr(),
                generators: generator_server.addr(),
                grpc: grpc.addr,
                tls: api_tls,
                mqtt_tls: brokers.tls_front.as_ref().map(TlsFront::addr),
                database: store::redact_url(&settings.database_url),
                admin,
                generated_jwt_secret,
                ingest_client_id,
            },
            generators: generators_token,
            grpc_stop,
            grpc,
            _mqtt_tls: brokers.tls_front,
            ingest,
            api,
            generator_task,
            generator_server,
            ingestor,
            alerting,
            alerter,
            api_server,
        })
    }

    /// Where the parts listen.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Stops cleanly: the gRPC gateway and the generators first, then the ingestor (which commits
    /// and acks what it holds), the alerter (which gives up its lease),
    /// then the API.
    pub async fn stop(self) -> Result<()> {
        self.grpc_stop.cancel();
        self.grpc.wait().await?;
        self.generators.cancel();
        if let Ok(Err(error)) = self.generator_task.await {
            tracing::warn!(%error, "the generator service had stopped");
        }
        self.generator_server.wait().await?;
        self.ingest.cancel();
        self.ingestor.join().await;
        self.alerting.cancel();
        self.alerter.join().await;
        self.api.cancel();
        self.api_server.wait().await?;
        Ok(())
    }
}

/// The broker `up` uses, and how its ingestor and its generators log in.
struct UpBroker {
    /// Where everything connects (without credentials).
    url: MqttUrl,
    /// The ingestor's URL, with its credentials.
    ingestor: MqttUrl,
    /// The alerter's URL, with its credentials.
    alerter: MqttUrl,
    /// The generators' URL, with theirs.
    generator: MqttUrl,
    /// Whether `up` started it.
    embedded: bool,
    /// The embedded broker's TLS listener (`TLS_CERT_FILE` set).
    tls_front: Option<TlsFront>,
}

impl UpBroker {
    /// `MQTT_URL`, or the embedded broker started on `MQTT_LISTEN` with
    /// `MQTT_USERS` (whose `ingestor` and `generator` users `up` logs in as).
    async fn start(settings: &Settings, tls: Option<&ServerTls>) -> Result<Self> {
        if let Some(url) = &settings.mqtt_url {
            let url = broker_url(settings, "MQTT_URL", url)?;
            verify_broker(&url).await?;
            let role = |name: &str, role_url: Option<&str>| -> Result<MqttUrl> {
                let role_url = role_url.context("MQTT_URL is set")?;
                let parsed = broker_url(settings, name, role_url)?;
                if (parsed.host(), parsed.port()) != (url.host(), url.port()) {
                    bail!("{name} ({parsed}) must name the broker of MQTT_URL ({url}), with the role's own credentials");
                }
                Ok(parsed)
            };
            return Ok(Self {
                ingestor: role("MQTT_INGESTOR_URL", settings.ingestor_mqtt_url())?,
                alerter: role("MQTT_ALERTER_URL", settings.alerter_mqtt_url())?,
                generator: role("MQTT_GENERATOR_URL", settings.generator_mqtt_url())?,
                url,
                embedded: false,
                tls_front: None,
            });
        }
        for (name, set) in [
            ("MQTT_INGESTOR_URL", &settings.mqtt_ingestor_url),
            ("MQTT_GENERATOR_URL", &settings.mqtt_generator_url),
            ("MQTT_ALERTER_URL", &settings.mqtt_alerter_url),
        ] {
            if set.is_some() {
                bail!("{name} is set but MQTT_URL is not: without MQTT_URL, up starts its embedded broker (whose users come from MQTT_USERS); set MQTT_URL to the broker {name} names");
            }
        }
        let users = settings.mqtt_users()?;
        let broker = start_embedded_broker(settings.mqtt_listen, users.clone()).await?;
        let tls_front = match tls {
            Some(tls) => Some(TlsFront::start(
                settings.mqtt_tls_listen.bind("MQTT_TLS_LISTEN")?,
                broker.addr(),
                tls.config.clone(),
            )?),
            None => None,
        };
        let as_user = |name: &str| -> Result<MqttUrl> {
            if users.is_empty() {
                return Ok(MqttUrl::parse(&broker.url())?);
            }
            let password = users
                .get(name)
                .with_context(|| format!("MQTT_USERS must include a {name:?} user for `up`"))?;
            Ok(MqttUrl::parse(&format!(
                "mqtt://{name}:{password}@{}",
                broker.addr()
            ))?)
        };
        Ok(Self {
            url: MqttUrl::parse(&broker.url())?,
            ingestor: as_user("ingestor")?,
            // The embedded broker has no ACLs: the alerter reads and
            // publishes as the ingestor.
            alerter: as_user("ingestor")?,
            generator: as_user("generator")?,
            embedded: true,
            tls_front,
        })
    }
}

/// `up`'s one ingestor, its session named `client_id`
/// ([`Settings::up_ingest_client_id`]).
/// `up`'s API on `listener`, ready when the ingestor is (`readiness`).
fn start_up_api(
    settings: &Settings,
    listener: HttpListener,
    state: AppState,
    readiness: IngestReadiness,
    stop: &CancellationToken,
) -> Result<Server> {
    let health = HealthState {
        prometheus: datastream_http::telemetry::prometheus(),
        readiness: Arc::new(readiness),
    };
    let workers = settings.api_workers;
    Ok(datastream_api::start(
        listener,
        state,
        health,
        workers,
        stop.clone(),
    )?)
}

fn start_up_ingestor(
    settings: &Settings,
    broker: &UpBroker,
    store: &SharedStore,
    client_id: String,
    stop: &CancellationToken,
) -> Ingestor {
    let mut ingest_settings = settings.clone();
    if broker.embedded {
        // rumqttd 0.20's router panics when a shared group's last persistent
        // member leaves with messages in flight; `up` has one ingestor, so it
        // subscribes directly (docs/DECISIONS.md).
        ingest_settings.ingest_shared = false;
    }
    Ingestor::start(
        ingest_config(&ingest_settings, broker.ingestor.clone(), client_id),
        store.clone(),
        stop.clone(),
    )
}

/// The generators `up` starts with.
struct UpGenerators {
    /// Created when the fleet has none and no file says otherwise.
    defaults: Vec<GeneratorSpec>,
    /// Where the fleet's configs are kept when the broker cannot keep them.
    config_file: Option<ConfigFile>,
}

impl UpGenerators {
    /// `defaults`, kept in a file when the broker is the embedded one (it
    /// forgets retained configs when it stops).
    fn new(settings: &Settings, embedded_broker: bool, defaults: Vec<GeneratorSpec>) -> Self {
        Self {
            defaults,
            config_file: embedded_broker.then(|| ConfigFile::new(settings.generators_file())),
        }
    }
}

/// `up`'s generator service (restored from its config file, or seeded
/// with the defaults when its fleet has none) and its REST API.
async fn start_up_generators(
    settings: &Settings,
    mqtt: &MqttUrl,
    generators: UpGenerators,
    listener: std::net::TcpListener,
    verifier: TokenVerifier,
    stop: &CancellationToken,
) -> Result<(GeneratorTask, Server, GeneratorService)> {
    let RunningService { service, task } =
        GeneratorService::start(mqtt, &settings.generator_fleet, stop.clone())
            .await
            .context("starting the generator service")?;
    let saved = match &generators.config_file {
        Some(file) => file.load(&settings.generator_fleet)?,
        None => None,
    };
    if let (Some(saved), Some(file)) = (&saved, &generators.config_file) {
        tracing::info!(generators = saved.len(), file = %file.path().display(),
            "restoring the generators saved by the last run");
    }
    service
        .seed_if_empty(saved.unwrap_or(generators.defaults))
        .await
        .context("creating the generators")?;
    if let Some(file) = generators.config_file {
        // Ends with the service (its stop token); nothing waits for it.
        drop(file.keep(service.clone(), stop.clone()));
    }
    let server = datastream_generator::http::start_server(
        listener,
        service.clone(),
        verifier,
        datastream_http::telemetry::prometheus(),
        stop.clone(),
    )?;
    Ok((task, server, service))
}

/// Builds the ingestor's configuration from the settings.
pub fn ingest_config(settings: &Settings, mqtt: MqttUrl, client_id: String) -> IngestConfig {
    IngestConfig {
        group: settings
            .ingest_shared
            .then(|| settings.ingest_group.clone()),
        batch_max: settings.ingest_batch_max,
        drain_batch_max: settings.ingest_drain_batch_max,
        max_backlog: settings.ingest_max_backlog,
        leave_group_on_stop: settings.ingest_leave_group_on_stop,
        flush_interval: Duration::from_millis(settings.ingest_flush_ms),
        decode_limits: decode_limits(settings),
        // `Settings::load` refused a policy that does not parse.
        retention: settings.retention_policy().ok().flatten(),
        ..IngestConfig::new(mqtt, client_id)
    }
}

/// `http://` and `addr`, reached from this host (a wildcard address is
/// reached on loopback).
fn local_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Creates the first admin if there is no user yet. `ADMIN_PASSWORD` does
/// nothing once users exist; a warning says so, and how to change one.
pub async fn bootstrap_admin(store: &SharedStore, settings: &Settings) -> Result<AdminBootstrap> {
    let outcome = ensure_admin(
        store,
        &settings.admin_username,
        settings.admin_password.as_deref(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the admin user: {e}"))?;
    if outcome == AdminBootstrap::Existing && settings.admin_password.is_some() {
        tracing::warn!(
            "ADMIN_PASSWORD is set but this database already has users: it only creates the first admin and was not applied; to change a password run `datastream user set-password {}`",
            settings.admin_username
        );
    }
    Ok(outcome)
}

/// Starts the embedded broker for `up` on `listen`, moving off a taken
/// default port (see [`ListenAddr`]). A taken address the user chose keeps
/// the broker's own message, which also suggests `MQTT_URL`.
pub async fn start_embedded_broker(
    listen: ListenAddr,
    users: HashMap<String, String>,
) -> Result<EmbeddedBroker> {
    let broker = tokio::task::spawn_blocking(move || {
        listen.first_free("MQTT_LISTEN", |addr| {
            let config = BrokerConfig {
                listen: addr,
                users: users.clone(),
                ..BrokerConfig::default()
            };
            match EmbeddedBroker::start(config) {
                Ok(broker) => Ok(Some(broker)),
                Err(BrokerError::AddressInUse { .. }) if !listen.is_chosen() => Ok(None),
                Err(error) => Err(error.into()),
            }
        })
    })
    .await??;
    if broker.addr() != listen.addr() {
        tracing::info!(
            "the embedded broker does not use the one on {0}; to use that one instead, set MQTT_URL=mqtt://{0}",
            listen.addr()
        );
    }
    Ok(broker)
}

/// Runs a standalone ingestor until `shutdown`, with `/healthz`, `/readyz`
/// and `/metrics` on `INGEST_LISTEN`.
pub async fn run_standalone_ingestor(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<()> {
    let mqtt = ingestor_mqtt(settings)?;
    verify_broker(&mqtt).await?;
    let store = open_store(settings).await?;
    // Replicas on one host: a taken default moves to the next free port.
    let listener = settings.ingest_listen.bind("INGEST_LISTEN")?;
    tracing::info!(listen = %listener.local_addr()?, "health and metrics (/healthz, /readyz, /metrics)");
    let ingestor = Ingestor::start(
        ingest_config(settings, mqtt, settings.ingest_client_id()),
        store.clone(),
        shutdown.clone(),
    );
    let health = HealthState {
        prometheus: datastream_http::telemetry::prometheus(),
        readiness: Arc::new(IngestReadiness {
            store,
            ingestor: ingestor.probe(),
            pipeline: None,
        }),
    };
    // The health endpoint outlives the ingestor's last commit, then stops.
    let health_stop = CancellationToken::new();
    let server = datastream_http::health::serve(listener, health, health_stop.clone())?;
    ingestor.join().await;
    health_stop.cancel();
    server.wait().await?;
    Ok(())
}

/// Ready when the database answers, the broker granted the ingestor's
/// subscription and (in `up`) what the generators publish reaches it.
struct IngestReadiness {
    store: SharedStore,
    ingestor: IngestProbe,
    pipeline: Option<PipelineCheck>,
}

#[async_trait]
impl ReadinessCheck for IngestReadiness {
    async fn check(&self) -> Vec<ComponentState> {
        let mut states = DatabaseReadiness(self.store.clone()).check().await;
        let status = self.ingestor.status();
        let problem = match (status.refused, status.subscribed) {
            (Some(refused), _) => Some(refused),
            (None, false) => Some("ingestor not subscribed to the broker".to_owned()),
            (None, true) => self.pipeline.as_ref().and_then(PipelineCheck::problem),
        };
        states.push(ComponentState {
            name: "mqtt",
            problem,
        });
        states
    }
}

/// Runs a standalone API until `shutdown`. Requires `JWT_SECRET`.
pub async fn run_standalone_api(settings: &Settings, shutdown: CancellationToken) -> Result<()> {
    let Some(secret) = &settings.jwt_secret else {
        bail!("JWT_SECRET is not set: the API needs a secret of at least 32 bytes (e.g. `openssl rand -base64 48`)");
    };
    let store = open_store(settings).await?;
    let state = app_state(&store, secret, settings).await?;
    report_admin(&bootstrap_admin(&store, settings).await?);
    // A standalone service must listen where it was told: a load balancer
    // or another service expects it there.
    let tcp = ListenAddr::chosen(settings.api_listen.addr()).bind("API_LISTEN")?;
    let tls = ServerTls::from_settings(settings)?;
    let listener = HttpListener::new(tcp.try_clone()?, tls.map(|t| t.config));
    // Live streams need a broker to listen to; without MQTT_URL they
    // answer 503 naming it.
    let state = match &settings.mqtt_url {
        Some(url) => {
            let port = tcp.local_addr()?.port();
            let mqtt = broker_url(settings, "MQTT_URL", url)?;
            verify_broker(&mqtt).await?;
            state.with_live_readings(start_live_feed(settings, mqtt, port, &shutdown))
        }
        None => state,
    };
    let health = HealthState {
        prometheus: datastream_http::telemetry::prometheus(),
        readiness: Arc::new(DatabaseReadiness(store)) as SharedReadiness,
    };
    let server = datastream_api::start(listener, state, health, settings.api_workers, shutdown)?;
    server.wait().await?;
    Ok(())
}

/// Runs a generator fleet process until `shutdown`: the control plane on
/// the broker and the REST API on `GENERATOR_LISTEN`. Requires
/// `JWT_SECRET`; tokens are checked by signature, expiry and role (this
/// process has no database to look users up in).
pub async fn run_generator_fleet(settings: &Settings, shutdown: CancellationToken) -> Result<()> {
    let Some(secret) = &settings.jwt_secret else {
        bail!(
            "JWT_SECRET is not set: the generator API needs the API's secret (at least 32 bytes)"
        );
    };
    let tokens = datastream_http::TokenKeys::new(
        secret.as_bytes(),
        Duration::from_secs(settings.jwt_ttl_secs),
    )
    .context("JWT_SECRET refused")?;
    let mqtt = generator_mqtt(settings)?;
    verify_broker(&mqtt).await?;
    let tcp = ListenAddr::chosen(settings.generator_listen.addr()).bind("GENERATOR_LISTEN")?;
    let listener = HttpListener::new(tcp, ServerTls::from_settings(settings)?.map(|t| t.config));
    let grpc = settings
        .generator_grpc_target()?
        .map(|target| datastream_generator::GrpcReadings::start(target, shutdown.clone()));
    let (grpc, grpc_task) = match grpc {
        Some((readings, task)) => (Some(readings), Some(task)),
        None => (None, None),
    };
    let running = GeneratorService::start_publishing(
        &mqtt,
        &settings.generator_fleet,
        grpc,
        shutdown.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "starting generator fleet {:?} on {mqtt}",
            settings.generator_fleet
        )
    })?;
    let server_stop = CancellationToken::new();
    let server = datastream_generator::http::start_server(
        listener,
        running.service,
        TokenVerifier::new(tokens, None),
        datastream_http::telemetry::prometheus(),
        server_stop.clone(),
    )?;
    let outcome = running.task.await;
    server_stop.cancel();
    server.wait().await?;
    if let Some(task) = grpc_task {
        let _ = task.await;
    }
    outcome
        .context("generator service task")?
        .context("generator fleet stopped")
}

/// Prints how to log in when an admin was just created.
pub fn report_admin(admin: &AdminBootstrap) {
    match admin {
        AdminBootstrap::Existing => {}
        AdminBootstrap::Created { username } => {
            tracing::info!(%username, "created admin user with ADMIN_PASSWORD");
        }
        AdminBootstrap::CreatedWithGeneratedPassword { username, password } => {
            // Printed once, to the terminal, on purpose: it is the only way in.
            eprintln!(
                "\n  Created admin user {username:?} with generated password: {password}\n  \
                 (shown only now; set ADMIN_PASSWORD to choose it, or add users later)\n"
            );
        }
    }
}
