//! The REST API: readings, users and logins, on actix-web with JWT bearer
//! auth.
//!
//! Routes live in [`routes`], one module per resource; users' credentials
//! (argon2 passwords, the login throttle, the account directory) in
//! [`auth`]; paging cursors in [`cursor`]; the generator service the
//! dashboard manages generators through in [`generator_link`]. What every
//! service shares — the error mapping, bearer tokens, health, metrics — is
//! `datastream_http`'s.
//! [`start`] serves from an already-bound listener, so tests bind port 0 and
//! read the real port back.
//!
//! Architecture invariant: handlers parse input into `datastream_domain`
//! types and talk to the store only through `datastream_store`'s traits; no
//! SQL and no MQTT here.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod bootstrap;
pub mod cursor;
mod database_readiness;
pub mod generator_link;
pub mod live;
pub mod openapi;
pub mod reading_conditions;
pub mod reading_record;
pub mod routes;
pub mod state;

pub use bootstrap::{ensure_admin, AdminBootstrap};
pub use database_readiness::DatabaseReadiness;
pub use live::LiveReadings;
pub use state::AppState;

use actix_web::web;
use datastream_http::{HealthState, HttpListener, Server};
use tokio_util::sync::CancellationToken;

/// Shortest password accepted for a user.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Starts serving the API and its health endpoints on `listener` with
/// `workers` threads; stops gracefully when `shutdown` is cancelled.
pub fn start(
    listener: impl Into<HttpListener>,
    state: AppState,
    health: HealthState,
    workers: usize,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    if let Some(live) = state.live.clone() {
        // Open streams would hold the graceful stop until its timeout.
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            live.close();
        });
    }
    let readiness = web::Data::new(health.readiness);
    let prometheus = web::Data::new(health.prometheus);
    let verifier = web::Data::new(state.token_verifier());
    let data = web::Data::new(state);
    Server::serve(listener, workers, "API", shutdown, move |cfg| {
        cfg.app_data(data.clone())
            .app_data(verifier.clone())
            .app_data(readiness.clone())
            .app_data(prometheus.clone())
            .configure(routes::configure);
    })
}
