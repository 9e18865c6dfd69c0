//! `AppState`: what every handler shares.

use crate::auth::TokenKeys;
use datastream_schema::SharedStore;
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared, read-only state of the API.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: SharedStore,
    /// Token signing and verification.
    pub tokens: TokenKeys,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
}
