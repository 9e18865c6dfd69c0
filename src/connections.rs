//! What every part connects with, from the settings: the database (with
//! its migrations), the broker URL each role logs in with, and what a
//! message must be to count as readings. The composition (`system.rs`)
//! and the single-part commands (`alerting.rs`) both start from here.

use crate::settings::Settings;
use anyhow::{Context, Result};
use datastream_domain::{DecodeLimits, MqttUrl};
use datastream_store as store;
use datastream_store::SharedStore;

/// Connects to the configured database (running migrations) with the
/// configured pool size, with a message that says which database failed.
pub async fn open_store(settings: &Settings) -> Result<SharedStore> {
    let url = &settings.database_url;
    store::connect_with(url, settings.store_options())
        .await
        .with_context(|| format!("opening database {}", store::redact_url(url)))
}

/// What a message must satisfy to be taken as readings.
pub fn decode_limits(settings: &Settings) -> DecodeLimits {
    DecodeLimits {
        max_payload_bytes: settings.ingest_max_payload_bytes,
        ..DecodeLimits::default()
    }
}

/// The broker a standalone service connects to: `MQTT_URL`, or the default
/// local broker.
pub fn external_mqtt(settings: &Settings) -> Result<MqttUrl> {
    mqtt_or_default(settings, settings.mqtt_url.as_deref())
}

/// `url`, or the default local broker.
pub fn mqtt_or_default(settings: &Settings, url: Option<&str>) -> Result<MqttUrl> {
    let url = url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("mqtt://{}", settings.mqtt_listen.addr()));
    Ok(MqttUrl::parse(&url)?)
}

/// Where a standalone ingestor logs in: `MQTT_INGESTOR_URL`, else
/// [`external_mqtt`].
pub fn ingestor_mqtt(settings: &Settings) -> Result<MqttUrl> {
    mqtt_or_default(settings, settings.ingestor_mqtt_url())
}

/// Where a standalone generator process logs in: `MQTT_GENERATOR_URL`,
/// else [`external_mqtt`].
pub fn generator_mqtt(settings: &Settings) -> Result<MqttUrl> {
    mqtt_or_default(settings, settings.generator_mqtt_url())
}
