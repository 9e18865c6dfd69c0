//! The gRPC gateway's place in the composition: `datastream grpc` (with
//! HTTP health and metrics on `GRPC_HEALTH_LISTEN` beside it) and what
//! `up` starts.

use crate::api_state::{app_state, start_live_feed};
use crate::connections::{decode_limits, mqtt_or_default, open_store, verify_broker};
use crate::server_tls::ServerTls;
use crate::settings::Settings;
use crate::ListenAddr;
use anyhow::{bail, Context, Result};
use datastream_api::{AppState, DatabaseReadiness, LiveReadings};
use datastream_domain::MqttUrl;
use datastream_grpc::GrpcGateway;
use datastream_http::HealthState;
use datastream_mqtt::ConfirmedPublisher;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running gateway.
pub struct GrpcTask {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<Result<(), datastream_grpc::GrpcError>>,
}

impl GrpcTask {
    /// Waits until it has stopped (after its shutdown token).
    pub async fn wait(self) -> Result<()> {
        self.task.await.context("gRPC gateway task")??;
        Ok(())
    }
}

/// Starts a gateway on `listener` that publishes through `mqtt` and
/// subscribes from `live`, until `shutdown`.
pub fn start_grpc(
    settings: &Settings,
    listener: std::net::TcpListener,
    tls: Option<&ServerTls>,
    mqtt: &MqttUrl,
    live: LiveReadings,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<GrpcTask> {
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let client_id = format!("datastream-grpc-{}-{}", addr.port(), std::process::id());
    let gateway = GrpcGateway {
        publisher: Arc::new(ConfirmedPublisher::open(mqtt, &client_id)),
        live,
        state,
        limits: decode_limits(settings),
        tls: tls.map(|t| (t.cert_pem.clone(), t.key_pem.clone())),
    };
    tracing::info!(listen = %addr, "gRPC gateway (datastream.v1.Ingest, datastream.v1.Live, health, reflection)");
    Ok(GrpcTask {
        addr,
        task: tokio::spawn(gateway.serve(listener, shutdown)),
    })
}

/// Runs a standalone gateway until `shutdown`: it publishes with
/// `MQTT_GRPC_URL` (else the generators' login), subscribes with `MQTT_URL`,
/// and checks tokens against the database's accounts (`JWT_SECRET`,
/// `DATABASE_URL`).
pub async fn run_standalone_grpc(settings: &Settings, shutdown: CancellationToken) -> Result<()> {
    let Some(secret) = &settings.jwt_secret else {
        bail!("JWT_SECRET is not set: the gRPC gateway needs the API's secret (at least 32 bytes) to check tokens");
    };
    let publish_mqtt = mqtt_or_default(settings, settings.grpc_mqtt_url())?;
    let watch_mqtt = mqtt_or_default(settings, settings.ingestor_mqtt_url())?;
    verify_broker(&publish_mqtt).await?;
    let store = open_store(settings).await?;
    let state = app_state(&store, secret, settings).await?;
    // A standalone service listens where it was told.
    let listener = ListenAddr::chosen(settings.grpc_listen.addr()).bind("GRPC_LISTEN")?;
    let health_listener = settings.grpc_health_listen.bind("GRPC_HEALTH_LISTEN")?;
    tracing::info!(listen = %health_listener.local_addr()?, "health and metrics (/healthz, /readyz, /metrics)");
    let live = start_live_feed(
        settings,
        watch_mqtt,
        listener.local_addr()?.port(),
        &shutdown,
    );
    let tls = ServerTls::from_settings(settings)?;
    let gateway = start_grpc(
        settings,
        listener,
        tls.as_ref(),
        &publish_mqtt,
        live,
        state,
        shutdown,
    )?;
    let health = HealthState {
        prometheus: datastream_http::telemetry::prometheus(),
        readiness: Arc::new(DatabaseReadiness(store)),
    };
    let health_stop = CancellationToken::new();
    let server = datastream_http::health::serve(health_listener, health, health_stop.clone())?;
    let outcome = gateway.wait().await;
    health_stop.cancel();
    server.wait().await?;
    outcome
}
