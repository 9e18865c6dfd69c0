//! What each subcommand does, in terms of the parts: `main.rs` parses the
//! command line and calls one of these.

use crate::cli::{
    AlertsBenchArgs, GenerateBenchArgs, GeneratorArgs, GrpcBenchArgs, IngestBenchArgs,
    QueryBenchArgs, RetentionBenchArgs, StreamBenchArgs,
};
use anyhow::{bail, Context, Result};
use datastream::system::{self, System};
use datastream::{ListenAddr, Settings};
use datastream_bench::{alerts, generate, grpc, ingest, query, retention, stream};
use datastream_generator::{
    default_fleet, run_fleet, GeneratorSpec, ModelKind, ModelSettings, SpecError,
};
use tokio_util::sync::CancellationToken;

/// `datastream up`: everything in one process until `shutdown`.
pub async fn up(settings: Settings, shutdown: CancellationToken) -> Result<()> {
    let system = System::start(&settings, default_fleet()).await?;
    let e = system.endpoints();
    system::report_admin(&e.admin);
    print_banner(e, &settings);
    shutdown.cancelled().await;
    eprintln!("stopping: committing what is in flight…");
    system.stop().await
}

/// Where everything listens and how to log in, on standard error.
fn print_banner(e: &system::Endpoints, settings: &Settings) {
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
        "  ingestor      MQTT client id {}{}",
        e.ingest_client_id,
        if e.embedded_broker {
            ""
        } else {
            "  (its persistent session on the broker)"
        }
    );
    if let Some(tls) = e.mqtt_tls {
        eprintln!("  MQTT over TLS mqtts://{tls}  (TLS_CERT_FILE)");
    }
    let http = if e.tls { "https" } else { "http" };
    eprintln!("  dashboard     {http}://{}/  (log in as the admin)", e.api);
    eprintln!(
        "  REST API      {http}://{}/api/v1  (health /healthz, /readyz; metrics /metrics)",
        e.api
    );
    eprintln!(
        "  gRPC          {}{}  (datastream.v1.Ingest, datastream.v1.Live; proto/datastream/v1/datastream.proto)",
        e.grpc,
        if e.tls { " (TLS)" } else { "" }
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
        "  log in        curl -s -X POST {http}://{}/api/v1/auth/login -H 'content-type: application/json' \\\n                  -d '{{\"username\":\"{}\",\"password\":\"…\"}}'",
        e.api, settings.admin_username
    );
    if e.generated_jwt_secret {
        eprintln!("  JWT secret    generated for this run (tokens end with it); set JWT_SECRET to keep tokens across restarts");
    }
    eprintln!("Ctrl-C stops cleanly.");
}

/// `datastream broker`: the embedded broker alone, until `shutdown`.
pub async fn broker(settings: &Settings, shutdown: CancellationToken) -> Result<()> {
    // A standalone broker listens where it was told.
    let listen = ListenAddr::chosen(settings.mqtt_listen.addr());
    let broker = system::start_embedded_broker(listen, settings.mqtt_users()?).await?;
    eprintln!("MQTT broker listening on {}", broker.url());
    shutdown.cancelled().await;
    Ok(())
}

/// The one generator `datastream generator --sensor-type …` runs.
fn fixed_generator(
    args: &GeneratorArgs,
    sensor_type: &str,
    id1: &str,
    id2: i64,
) -> Result<GeneratorSpec, SpecError> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{sensor_type}-{id1}-{id2}"));
    let mut spec = GeneratorSpec::parse(&name, sensor_type, id1, id2, args.frequency_hz)?;
    if let Some(last) = args.id2_end {
        spec = spec.with_last_id2(last)?;
    }
    let kind = match args.model.as_deref() {
        None => None,
        Some(text) => Some(ModelKind::parse(text).ok_or_else(|| SpecError::Field {
            field: "model".into(),
            message: format!("must be sine or random_walk, got {text:?}"),
        })?),
    };
    let model = ModelSettings::for_sensor_type(sensor_type)
        .changed(kind, args.min, args.max, args.noise)?;
    Ok(spec.with_model(model))
}

/// `datastream generator`: a fleet process, or one fixed generator.
pub async fn generator(
    settings: Settings,
    args: GeneratorArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut settings = settings;
    if let Some(transport) = &args.transport {
        settings.generator_transport = transport.clone();
    }
    if let Some(url) = &args.grpc_url {
        settings.generator_grpc_url = url.clone();
    }
    let grpc = settings.generator_grpc_target()?;
    let (Some(sensor_type), Some(id1), Some(id2)) = (&args.sensor_type, &args.id1, args.id2) else {
        if let Some(fleet) = args.fleet {
            settings.generator_fleet = fleet;
        }
        return system::run_generator_fleet(&settings, shutdown).await;
    };
    let spec = fixed_generator(&args, sensor_type, id1, id2).context("invalid generator")?;
    let mqtt = system::generator_mqtt(&settings)?;
    if grpc.is_none() {
        system::verify_broker(&mqtt).await?;
    }
    let client_id = format!("datastream-generator-{}", spec.name());
    run_fleet(&mqtt, &client_id, vec![spec], grpc, shutdown).await;
    Ok(())
}

/// `datastream ingestor --end-session`: retire a replica's broker session.
pub async fn end_ingestor_session(settings: &Settings) -> Result<()> {
    let mqtt = system::ingestor_mqtt(settings)?;
    let client_id = settings.ingest_client_id();
    let outcome = datastream_ingestor::end_session(&mqtt, &client_id)
        .await
        .with_context(|| format!("ending the session of {client_id} on {mqtt}"))?;
    match outcome {
        datastream_ingestor::SessionEnd::Ended => {
            eprintln!("ended the broker session of {client_id} on {mqtt} (what it had queued is discarded)")
        }
        datastream_ingestor::SessionEnd::NoSession => eprintln!(
            "{mqtt} holds no session for {client_id}; nothing to end (INGEST_CLIENT_ID names the session; `datastream up` prints its own)"
        ),
    }
    Ok(())
}

/// `datastream migrate`.
pub async fn migrate(settings: &Settings) -> Result<()> {
    system::open_store(settings).await?;
    eprintln!(
        "migrations applied to {}",
        datastream_store::redact_url(&settings.database_url)
    );
    Ok(())
}

/// `datastream bench ingest`: needs an external broker.
pub async fn bench_ingest(settings: &Settings, args: IngestBenchArgs) -> Result<()> {
    let Some(mqtt_url) = settings.mqtt_url.clone() else {
        bail!("bench ingest needs an external broker: set MQTT_URL (e.g. a Mosquitto running the project's mosquitto.conf)");
    };
    // The benchmark's own store writes the storage-limit baseline: multi-row
    // INSERT IGNORE, whatever INGEST_WRITER says for the ingestors.
    let mut baseline = settings.clone();
    baseline.ingest_writer = "insert".into();
    let target = ingest::IngestTarget {
        store: system::open_store(&baseline).await?,
        database_url: settings.database_url.clone(),
        mqtt_url,
        binary: std::env::current_exe().context("locating the datastream binary")?,
    };
    let bench = ingest::IngestBench {
        count: args.count,
        rate: args.rate,
        publishers: args.publishers,
        ingestors: args.ingestors,
        naive_count: args.naive_count,
        per_message: args.per_message,
        drain_count: args.drain_count,
        drain_rounds: args.drain_rounds as usize,
        drain_only: args.drain_only,
    };
    let report = ingest::run(&target, &bench).await?;
    print!("{}", report.render());
    Ok(())
}

/// `datastream bench query`.
pub async fn bench_query(settings: &Settings, args: QueryBenchArgs) -> Result<()> {
    let bench = query::QueryBench {
        rows: args.rows,
        clients: args.clients.max(1),
        requests: args.requests.max(1),
        api_workers: settings.api_workers.max(1),
        pool_size: settings.database_pool_size,
        deep_page: args.deep_page,
        database_url: settings.database_url.clone(),
    };
    let report = query::run(system::open_store(settings).await?, &bench).await?;
    print!("{}", query::render(&report, &bench));
    Ok(())
}

/// `datastream bench retention`.
pub async fn bench_retention(settings: &Settings, args: RetentionBenchArgs) -> Result<()> {
    let bench = retention::RetentionBench {
        rows: args.rows,
        seconds: args.seconds,
        database_url: settings.database_url.clone(),
    };
    let report = retention::run(system::open_store(settings).await?, &bench).await?;
    print!("{}", report.render());
    Ok(())
}

/// `datastream bench generate`: on `MQTT_URL`, else on an embedded broker
/// of its own.
pub async fn bench_generate(settings: &Settings, args: GenerateBenchArgs) -> Result<()> {
    let bench = generate::GenerateBench {
        devices: args.devices,
        fast_rate: args.fast_rate,
        seconds: args.seconds,
    };
    let (mqtt, _broker) = match &settings.mqtt_url {
        Some(url) => (datastream_domain::MqttUrl::parse(url)?, None),
        None => {
            let any_port = ListenAddr::chosen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            let broker = system::start_embedded_broker(any_port, Default::default()).await?;
            (
                datastream_domain::MqttUrl::parse(&broker.url())?,
                Some(broker),
            )
        }
    };
    let results = generate::run(&mqtt, &bench).await?;
    print!("{}", generate::render(&results, &bench));
    Ok(())
}

/// `datastream bench stream`: needs an external broker (the API under test
/// runs as its own process and subscribes to it).
pub async fn bench_stream(settings: &Settings, args: StreamBenchArgs) -> Result<()> {
    let Some(mqtt_url) = settings.mqtt_url.clone() else {
        bail!("bench stream needs an external broker: set MQTT_URL (e.g. a Mosquitto running the project's mosquitto.conf)");
    };
    let target = stream::StreamTarget {
        mqtt_url,
        binary: std::env::current_exe().context("locating the datastream binary")?,
    };
    let bench = stream::StreamBench {
        clients: args.clients.max(1),
        type_watchers: args.type_watchers.min(args.clients),
        rate: args.rate.max(1.0),
        devices: args.devices.max(1),
        seconds: args.seconds.max(1),
    };
    let report = stream::run(&target, &bench).await?;
    print!("{}", report.render(&bench));
    Ok(())
}

/// `datastream bench grpc`: needs an external broker (the ingestor and the
/// gateway run as processes of their own).
pub async fn bench_grpc(settings: &Settings, args: GrpcBenchArgs) -> Result<()> {
    let target = grpc::GrpcTarget {
        database_url: settings.database_url.clone(),
        mqtt: system::external_mqtt(settings)?,
        binary: std::env::current_exe().context("locating the datastream binary")?,
        store: system::open_store(settings).await?,
    };
    let bench = grpc::GrpcBench {
        readings: args.readings.max(1),
        streams: args.streams.max(1),
        rounds: args.rounds.max(1),
    };
    let report = grpc::run(&target, &bench).await?;
    print!("{}", report.render(&bench));
    Ok(())
}

/// `datastream bench alerts`: needs an external broker (the ingestor and
/// the alerter run as processes of their own).
pub async fn bench_alerts(settings: &Settings, args: AlertsBenchArgs) -> Result<()> {
    let mqtt = system::external_mqtt(settings)?;
    let target = alerts::AlertsTarget {
        database_url: settings.database_url.clone(),
        mqtt,
        binary: std::env::current_exe().context("locating the datastream binary")?,
        store: system::open_store(settings).await?,
    };
    let bench = alerts::AlertsBench {
        devices: args.devices.max(1),
        rate: args.rate.max(1.0),
        crossings: args.crossings.max(0.1),
        seconds: args.seconds.max(1),
        rounds: args.rounds.max(1),
    };
    let report = alerts::run(&target, &bench).await?;
    print!("{}", report.render(&bench));
    Ok(())
}
