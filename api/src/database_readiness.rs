//! `/readyz`'s database check.

use async_trait::async_trait;
use datastream_http::{ComponentState, ReadinessCheck};
use datastream_store::SharedStore;

/// Ready when the database answers.
pub struct DatabaseReadiness(pub SharedStore);

#[async_trait]
impl ReadinessCheck for DatabaseReadiness {
    async fn check(&self) -> Vec<ComponentState> {
        vec![ComponentState {
            name: "database",
            problem: self.0.ping().await.err().map(|e| e.to_string()),
        }]
    }
}
