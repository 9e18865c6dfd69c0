//! `datastream`: command-line entry point. Parses flags, loads settings,
//! sets up logging, and hands over to the parts.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use datastream::system::{self, System};
use datastream::{ListenAddr, Settings};
use datastream_generator::{default_fleet, run_fleet, GeneratorSpec};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Sensor data pipeline: simulated sensors → MQTT → batched ingest → SQL → JWT REST API.
#[derive(Parser)]
#[command(name = "datastream", version, about)]
struct Cli {
    /// TOML file with settings (keys as the lower-case environment names).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags that override the file and the environment.
#[derive(Args)]
struct Overrides {
    /// Database: sqlite://PATH or mysql://user:pass@host:port/db [env: DATABASE_URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// External MQTT broker, e.g. mqtt://127.0.0.1:1883 [env: MQTT_URL]
    #[arg(long, global = true)]
    mqtt_url: Option<String>,
    /// Embedded broker address [env: MQTT_LISTEN]
    #[arg(long, global = true)]
    mqtt_listen: Option<SocketAddr>,
    /// REST API address [env: API_LISTEN]
    #[arg(long, global = true)]
    api_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: broker, ingestor, API, generators (the default).
    Up,
    /// Run the embedded MQTT broker alone.
    Broker,
    /// Run a generator fleet (REST + MQTT control), or one fixed simulated sensor.
    Generator(GeneratorArgs),
    /// Run an ingestor: MQTT shared subscription → database.
    Ingestor(IngestorArgs),
    /// Run the REST API.
    Api,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API users.
    #[command(subcommand)]
    User(UserCommand),
    /// Benchmarks that measure their own baselines and print ratios.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login name ([A-Za-z0-9_.-]{1,64}).
        username: String,
        /// admin or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// List users and their roles.
    List,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// MQTT → database throughput, latency, loss and memory, against direct
    /// inserts and a one-reading-per-transaction pipeline. Needs MQTT_URL.
    Ingest(IngestBenchArgs),
    /// Read latency and requests/s over HTTP through the API, against the
    /// same queries straight on the database. Loads --rows readings first
    /// (reused by later runs).
    Query(QueryBenchArgs),
    /// Readings one generator process makes on one core, and CPU per
    /// reading, against a bare publish loop. Uses MQTT_URL, else starts the
    /// embedded broker.
    Generate(GenerateBenchArgs),
}

#[derive(Args)]
struct GenerateBenchArgs {
    /// Devices at 1 Hz in the many-devices scenario.
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// Readings/s of the single fast generator.
    #[arg(long, default_value_t = 20_000.0)]
    fast_rate: f64,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Args)]
struct QueryBenchArgs {
    /// Readings in the benchmark's device family (loaded if missing).
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests per query shape. 20,000 take ~6 s at 3,000/s: over fewer
    /// (4,000 is ~1.3 s) a single stall of a shared machine makes the p99.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// The deep page compared with page 1 (needs 100 × this many rows).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..))]
    deep_page: u32,
}

#[derive(Args)]
struct IngestBenchArgs {
    /// Readings per pipeline run.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Total publish rate in readings/s; omitted: full speed, then half the
    /// landed rate for the latency figures.
    #[arg(long)]
    rate: Option<f64>,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Ingestor processes sharing the group.
    #[arg(long, default_value_t = 1)]
    ingestors: usize,
    /// Readings for the one-per-transaction baseline.
    #[arg(long, default_value_t = 5_000)]
    naive_count: usize,
    /// Readings per MQTT message: 1 sends one JSON object each; more sends
    /// JSON arrays, as gateways that batch do.
    #[arg(long, default_value_t = 1)]
    per_message: usize,
}

#[derive(Args)]
struct IngestorArgs {
    /// End this ingestor's persistent session on the broker (INGEST_CLIENT_ID)
    /// and exit: for removing a replica for good, so the broker stops
    /// queueing messages for it.
    #[arg(long)]
    end_session: bool,
}

/// Without `--sensor-type`: a fleet process, controlled over REST
/// (GENERATOR_LISTEN) and retained MQTT config messages. With it: one
/// fixed generator and no control plane.
#[derive(Args)]
struct GeneratorArgs {
    /// Run the generators configured for this fleet [env: GENERATOR_FLEET, default: default]
    #[arg(long, conflicts_with = "sensor_type")]
    fleet: Option<String>,
    /// One fixed generator: its sensor type, e.g. temperature ([a-z0-9_-]{1,64}).
    #[arg(long, requires_all = ["id1", "id2"])]
    sensor_type: Option<String>,
    /// Readings per second (0.001 to 10000).
    #[arg(long, default_value_t = 1.0, requires = "sensor_type")]
    frequency_hz: f64,
    /// Device id part 1 ([A-Z]{1,32}).
    #[arg(long, requires = "sensor_type")]
    id1: Option<String>,
    /// Device id part 2 (0 to 2147483647).
    #[arg(long, requires = "sensor_type")]
    id2: Option<i64>,
    /// Generator name (default: {sensor_type}-{id1}-{id2}).
    #[arg(long, requires = "sensor_type")]
    name: Option<String>,
}

fn main() -> ExitCode {
    match run_cli() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<Interrupted>() => {
            eprintln!("interrupted");
            ExitCode::from(130)
        }
        Err(error) => {
            // The message and its causes, without a backtrace: these are
            // user-facing (a taken port, an unreachable database).
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let mut settings = Settings::load(cli.config.as_deref())?;
    apply(&cli.overrides, &mut settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Up), settings));
    if result.as_ref().is_err_and(|e| e.is::<Interrupted>()) {
        // A password prompt may still hold a blocking thread; dropping the
        // runtime would wait for it.
        runtime.shutdown_background();
    }
    result
}

/// A one-shot command stopped by Ctrl-C or SIGTERM (exit status 130).
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Runs a one-shot command (`user`, `bench`, `migrate`) until it ends or a
/// signal arrives. They hold nothing that needs a graceful stop (benchmark
/// ingestor processes are killed on drop), and without this the signal
/// handler every command installs would swallow Ctrl-C.
async fn until_interrupted(
    shutdown: &CancellationToken,
    command: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    tokio::select! {
        result = command => result,
        _ = shutdown.cancelled() => Err(Interrupted.into()),
    }
}

fn apply(o: &Overrides, s: &mut Settings) {
    if let Some(v) = &o.database_url {
        s.database_url = v.clone();
    }
    if let Some(v) = &o.mqtt_url {
        s.mqtt_url = Some(v.clone());
    }
    if let Some(v) = o.mqtt_listen {
        s.mqtt_listen = ListenAddr::chosen(v);
    }
    if let Some(v) = o.api_listen {
        s.api_listen = ListenAddr::chosen(v);
    }
}

async fn run(command: Command, settings: Settings) -> Result<()> {
    let shutdown = shutdown_on_signal();
    match command {
        Command::Up => up(settings, shutdown).await,
        Command::Broker => {
            let config = datastream_broker::BrokerConfig {
                listen: settings.mqtt_listen.addr(),
                users: settings.mqtt_users()?,
                ..Default::default()
            };
            let broker = tokio::task::spawn_blocking(move || {
                datastream_broker::EmbeddedBroker::start(config)
            })
            .await??;
            eprintln!("MQTT broker listening on {}", broker.url());
            shutdown.cancelled().await;
            Ok(())
        }
        Command::Generator(GeneratorArgs {
            sensor_type: None,
            fleet,
            ..
        }) => {
            let mut settings = settings;
            if let Some(fleet) = fleet {
                settings.generator_fleet = fleet;
            }
            system::run_generator_fleet(&settings, shutdown).await
        }
        Command::Generator(GeneratorArgs {
            sensor_type: Some(sensor_type),
            frequency_hz,
            id1: Some(id1),
            id2: Some(id2),
            name,
            ..
        }) => {
            let name = name.unwrap_or_else(|| format!("{sensor_type}-{id1}-{id2}"));
            let spec = GeneratorSpec::parse(&name, &sensor_type, &id1, id2, frequency_hz)
                .context("invalid generator")?;
            let mqtt = system::external_mqtt(&settings)?;
            let client_id = format!("datastream-generator-{}", spec.name());
            run_fleet(&mqtt, &client_id, vec![spec], shutdown).await;
            Ok(())
        }
        Command::Generator(_) => unreachable!("clap requires --id1 and --id2 with --sensor-type"),
        Command::Ingestor(args) if args.end_session => {
            let mqtt = system::external_mqtt(&settings)?;
            let client_id = settings.ingest_client_id();
            datastream_ingestor::end_session(&mqtt, &client_id)
                .await
                .with_context(|| format!("ending the session of {client_id} on {mqtt}"))?;
            eprintln!("ended the broker session of {client_id}");
            Ok(())
        }
        Command::Ingestor(_) => system::run_standalone_ingestor(&settings, shutdown).await,
        Command::Api => system::run_standalone_api(&settings, shutdown).await,
        command @ (Command::User(_) | Command::Bench(_) | Command::Migrate) => {
            until_interrupted(&shutdown, one_shot(command, settings)).await
        }
    }
}

/// The commands that do one job and end.
async fn one_shot(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::User(UserCommand::Add { username, role }) => {
            datastream::user_admin::add(&settings, &username, &role).await
        }
        Command::User(UserCommand::List) => datastream::user_admin::list(&settings).await,
        Command::Bench(BenchCommand::Ingest(args)) => {
            let bench = datastream::bench::ingest::IngestBench {
                count: args.count,
                rate: args.rate,
                publishers: args.publishers,
                ingestors: args.ingestors,
                naive_count: args.naive_count,
                per_message: args.per_message,
            };
            let report = datastream::bench::ingest::run(&settings, &bench).await?;
            print!("{}", report.render());
            Ok(())
        }
        Command::Bench(BenchCommand::Query(args)) => {
            let bench = datastream::bench::query::QueryBench {
                rows: args.rows,
                clients: args.clients.max(1),
                requests: args.requests.max(1),
                api_workers: settings.api_workers.max(1),
                pool_size: settings.database_pool_size,
                deep_page: args.deep_page,
            };
            let report = datastream::bench::query::run(&settings, &bench).await?;
            print!("{}", datastream::bench::query::render(&report, &bench));
            Ok(())
        }
        Command::Bench(BenchCommand::Generate(args)) => {
            let bench = datastream::bench::generate::GenerateBench {
                devices: args.devices,
                fast_rate: args.fast_rate,
                seconds: args.seconds,
            };
            let (mqtt, _broker) = match &settings.mqtt_url {
                Some(url) => (datastream_schema::MqttUrl::parse(url)?, None),
                None => {
                    let config = datastream_broker::BrokerConfig {
                        listen: "127.0.0.1:0".parse()?,
                        ..Default::default()
                    };
                    let broker = tokio::task::spawn_blocking(move || {
                        datastream_broker::EmbeddedBroker::start(config)
                    })
                    .await??;
                    (
                        datastream_schema::MqttUrl::parse(&broker.url())?,
                        Some(broker),
                    )
                }
            };
            let results = datastream::bench::generate::run(&mqtt, &bench).await?;
            print!("{}", datastream::bench::generate::render(&results, &bench));
            Ok(())
        }
        Command::Migrate => {
            system::open_store(&settings).await?;
            eprintln!(
                "migrations applied to {}",
                datastream_schema::store::redact_url(&settings.database_url)
            );
            Ok(())
        }
        Command::Up
        | Command::Broker
        | Command::Generator(_)
        | Command::Ingestor(_)
        | Command::Api => {
            unreachable!("run() starts the services itself")
        }
    }
}

async fn up(settings: Settings, shutdown: CancellationToken) -> Result<()> {
    let system = System::start(&settings, default_fleet()).await?;
    let e = system.endpoints();
    system::report_admin(&e.admin);
    eprintln!("datastream is up");
    eprintln!(
        "  MQTT broker   {} ({})",
        e.mqtt,
        if e.embedded_broker {
            "embedded"
        } else {
            "external"
        }
    );
    eprintln!("  database      {}", e.database);
    eprintln!(
        "  REST API      http://{}/api/v1  (health /healthz, /readyz; metrics /metrics)",
        e.api
    );
    eprintln!(
        "  generators    http://{}/api/v1/generators  (fleet {:?}; config topics datastream/generators/+/config)",
        e.generators, settings.generator_fleet
    );
    eprintln!(
        "  watch live    mosquitto_sub -h {} -p {} -t 'sensors/#' -v",
        e.mqtt.host(),
        e.mqtt.port()
    );
    eprintln!(
        "  log in        curl -s -X POST http://{}/api/v1/auth/login -H 'content-type: application/json' \\\n                  -d '{{\"username\":\"{}\",\"password\":\"…\"}}'",
        e.api, settings.admin_username
    );
    if e.generated_jwt_secret {
        eprintln!("  JWT secret    generated for this run (tokens end with it); set JWT_SECRET to keep tokens across restarts");
    }
    eprintln!("Ctrl-C stops cleanly.");
    shutdown.cancelled().await;
    eprintln!("stopping: committing what is in flight…");
    system.stop().await
}

fn init_tracing() {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,rumqttd=off,rumqttc=warn,actix_server=warn,actix_web=warn")
    });
    // Colours only for a terminal: logs piped to a file or a collector
    // stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}
