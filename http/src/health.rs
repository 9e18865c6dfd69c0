//! Liveness, readiness and metrics: unauthenticated, for orchestrators.

use crate::readiness::SharedReadiness;
use crate::Server;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Map, Value};
use std::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/readyz` and `/metrics` serve, on the API or on a standalone
/// ingestor's `INGEST_LISTEN`.
#[derive(Clone)]
pub struct HealthState {
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// What `/readyz` checks.
    pub readiness: SharedReadiness,
}

/// Serves only `/healthz`, `/readyz` and `/metrics` on `listener` (a
/// standalone ingestor's `INGEST_LISTEN`) until `shutdown`.
pub fn serve(
    listener: TcpListener,
    state: HealthState,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    let readiness = web::Data::new(state.readiness);
    let prometheus = web::Data::new(state.prometheus);
    Server::serve(listener, 1, "health endpoint", shutdown, move |cfg| {
        cfg.app_data(readiness.clone())
            .app_data(prometheus.clone())
            .configure(configure)
            .default_service(web::to(crate::routing::not_found));
    })
}

/// Registers `/healthz`, `/readyz` and `/metrics`; expects a
/// [`SharedReadiness`] and a [`PrometheusHandle`] in the app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        ("/healthz", web::get().to(healthz)),
        ("/readyz", web::get().to(readyz)),
        ("/metrics", web::get().to(metrics)),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(crate::routing::method_not_allowed("GET")),
        );
    }
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: every component is ready (200) or not (503, with why).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready; `checks` says why")))]
pub async fn readyz(readiness: web::Data<SharedReadiness>) -> HttpResponse {
    let states = readiness.check().await;
    let ready = states.iter().all(|s| s.problem.is_none());
    let checks: Map<String, Value> = states
        .into_iter()
        .map(|s| {
            let value = match s.problem {
                None => json!("ok"),
                Some(problem) => {
                    tracing::warn!(component = s.name, %problem, "not ready");
                    json!(problem)
                }
            };
            (s.name.to_owned(), value)
        })
        .collect();
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(prometheus: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(prometheus.render())
}
