//! `AppState`: what every handler shares.

use crate::auth::TokenKeys;
use crate::readiness::SharedReadiness;
use datastream_schema::SharedStore;
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared, read-only state of the API.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: SharedStore,
    /// Token signing and verification.
    pub tokens: TokenKeys,
}

/// What `/readyz` and `/metrics` serve, on the API or on a standalone
/// ingestor's `INGEST_LISTEN`.
#[derive(Clone)]
pub struct HealthState {
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// What `/readyz` checks.
    pub readiness: SharedReadiness,
}
