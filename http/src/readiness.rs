//! Readiness: what `/readyz` checks. Each service brings its own checks
//! (the API's database, `datastream_api::DatabaseReadiness`; a process that
//! also ingests adds the ingestor's state, see the binary's composition).

use async_trait::async_trait;
use std::sync::Arc;

/// One component's state, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentState {
    /// Component name, e.g. `database`.
    pub name: &'static str,
    /// `None` when ready, else why not.
    pub problem: Option<String>,
}

/// Something `/readyz` asks.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// The state of each component this check covers.
    async fn check(&self) -> Vec<ComponentState>;
}

/// Shared readiness check.
pub type SharedReadiness = Arc<dyn ReadinessCheck>;
