//! The alerter's place in the composition: its configuration from
//! [`Settings`], `datastream alerter` (with health and metrics), and what
//! `up` starts.

use crate::connections::{decode_limits, mqtt_or_default, open_store};
use crate::settings::Settings;
use anyhow::Result;
use datastream_alerter::{Alerter, AlerterConfig};
use datastream_api::DatabaseReadiness;
use datastream_domain::MqttUrl;
use datastream_http::HealthState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The alerter's configuration, logging in to `mqtt`.
pub fn alerter_config(settings: &Settings, mqtt: MqttUrl) -> AlerterConfig {
    AlerterConfig {
        mqtt,
        client_id: settings.alert_client_id(),
        holder: holder_name(),
        lease_ttl: Duration::from_secs(settings.alert_lease_secs),
        limits: decode_limits(settings),
        webhook_ca_file: settings.alert_webhook_ca_file.as_ref().map(Into::into),
    }
}

/// This process's name in the lease: host, process id and a random part
/// (a restarted process with a reused pid is still another holder).
fn holder_name() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "{}-{}-{}",
        host.trim(),
        std::process::id(),
        Alphanumeric.sample_string(&mut rand::rng(), 6)
    )
}

/// Where a standalone alerter logs in: `MQTT_ALERTER_URL`, else `MQTT_URL`.
pub fn alerter_mqtt(settings: &Settings) -> Result<MqttUrl> {
    mqtt_or_default(settings, settings.alerter_mqtt_url())
}

/// Runs a standalone alerter (active or standby) until `shutdown`, with
/// `/healthz`, `/readyz` and `/metrics` on `ALERTER_LISTEN`.
pub async fn run_standalone_alerter(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<()> {
    let mqtt = alerter_mqtt(settings)?;
    crate::connections::verify_broker(&mqtt).await?;
    let store = open_store(settings).await?;
    let listener = settings.alerter_listen.bind("ALERTER_LISTEN")?;
    tracing::info!(listen = %listener.local_addr()?, "health and metrics (/healthz, /readyz, /metrics)");
    let alerter = Alerter::start(
        alerter_config(settings, mqtt),
        store.clone(),
        shutdown.clone(),
    );
    let health = HealthState {
        prometheus: datastream_http::telemetry::prometheus(),
        // A standby is ready too: waiting is its job.
        readiness: Arc::new(DatabaseReadiness(store)),
    };
    let health_stop = CancellationToken::new();
    let server = datastream_http::health::serve(listener, health, health_stop.clone())?;
    alerter.join().await;
    health_stop.cancel();
    server.wait().await?;
    Ok(())
}
