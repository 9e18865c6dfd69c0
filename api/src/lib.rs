//! The REST API: actix-web, JSON, JWT bearer auth.
//!
//! Routes live in [`routes`], one module per resource; authentication
//! (argon2 passwords, HS256 tokens, the [`auth::Authenticated`] extractor)
//! in [`auth`]; the single mapping from errors to HTTP in [`error`].
//! [`ApiServer::start`] serves from an already-bound listener, so tests bind
//! port 0 and read the real port back.
//!
//! Architecture invariant: handlers parse input into domain types from
//! `datastream_schema` and talk to the store only through its trait; no SQL
//! and no MQTT here.
#![deny(missing_docs)]

pub mod auth;
pub mod bootstrap;
pub mod cursor;
pub mod error;
pub mod header_limit;
pub mod json_body;
pub mod openapi;
pub mod readiness;
pub mod request_metrics;
pub mod routes;
pub mod state;
pub mod telemetry;

pub use auth::{SecretError, TokenKeys, TokenVerifier};
pub use bootstrap::{ensure_admin, AdminBootstrap};
pub use error::ApiError;
pub use json_body::JsonBody;
pub use readiness::{ComponentState, DatabaseReadiness, ReadinessCheck, SharedReadiness};
pub use state::{AppState, HealthState};

use actix_web::{web, App, HttpServer};
use std::net::{SocketAddr, TcpListener};
use tokio_util::sync::CancellationToken;

/// Shortest password accepted for a user.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiServer {
    /// Starts serving the API and its health endpoints on `listener` with
    /// `workers` threads; stops gracefully when `shutdown` is cancelled.
    pub fn start(
        listener: TcpListener,
        state: AppState,
        health: HealthState,
        workers: usize,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let readiness = web::Data::new(health.readiness);
        let prometheus = web::Data::new(health.prometheus);
        let verifier = web::Data::new(state.token_verifier());
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    header_limit::reject_large_headers,
                ))
                .wrap(actix_web::middleware::from_fn(request_metrics::record))
                .app_data(data.clone())
                .app_data(verifier.clone())
                .app_data(readiness.clone())
                .app_data(prometheus.clone())
                .configure(routes::configure)
        })
        .workers(workers.max(1))
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self::supervise(server, addr, shutdown, "API"))
    }

    /// Serves only `/healthz`, `/readyz` and `/metrics` (a standalone
    /// ingestor's `INGEST_LISTEN`).
    pub fn start_health(
        listener: TcpListener,
        state: HealthState,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let readiness = web::Data::new(state.readiness);
        let prometheus = web::Data::new(state.prometheus);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    header_limit::reject_large_headers,
                ))
                .app_data(readiness.clone())
                .app_data(prometheus.clone())
                .configure(routes::health::configure)
                .default_service(web::to(routes::not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self::supervise(server, addr, shutdown, "health endpoint"))
    }

    /// Runs `server` (bound to `addr`) until `shutdown`, then stops it
    /// gracefully; `what` names it in the log. For servers built elsewhere
    /// (the generator service) that want the same lifecycle.
    pub fn supervise(
        server: actix_web::dev::Server,
        addr: SocketAddr,
        shutdown: CancellationToken,
        what: &'static str,
    ) -> Self {
        let handle = server.handle();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.stop(true).await;
        });
        // The server only accepts connections while its future is polled.
        let running = tokio::spawn(server);
        tracing::info!(%addr, "{what} listening");
        Self { addr, running }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        self.running.await.map_err(std::io::Error::other)?
    }
}
