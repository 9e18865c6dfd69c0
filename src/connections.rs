//! What every part connects with, from the settings: the database (with
//! its migrations), the broker URL each role logs in with, and what a
//! message must be to count as readings. The composition (`system.rs`)
//! and the single-part commands (`alerting.rs`) both start from here.

use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use datastream_domain::{DecodeLimits, MqttTls, MqttUrl};
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
    broker_url(settings, "the MQTT URL", &url)
}

/// The broker `url` (the value of `setting`) names, with the TLS files of
/// the settings for `mqtts://`. TLS files beside a plain `mqtt://` URL are
/// an error: nothing falls back to plain text when TLS was asked for.
pub fn broker_url(settings: &Settings, setting: &str, url: &str) -> Result<MqttUrl> {
    let parsed = MqttUrl::parse(url).with_context(|| format!("{setting} refused"))?;
    let identity = match (
        &settings.mqtt_client_cert_file,
        &settings.mqtt_client_key_file,
    ) {
        (Some(cert), Some(key)) => Some((cert.into(), key.into())),
        (None, None) => None,
        _ => {
            bail!("MQTT_CLIENT_CERT_FILE and MQTT_CLIENT_KEY_FILE go together: set both or neither")
        }
    };
    let tls = MqttTls {
        ca_file: settings.mqtt_ca_file.as_ref().map(Into::into),
        client_identity: identity,
    };
    if parsed.tls().is_none() {
        if tls != MqttTls::default() {
            bail!("MQTT_CA_FILE or MQTT_CLIENT_CERT_FILE is set, but {setting} ({parsed}) is plain mqtt://: use mqtts:// (datastream never falls back to plain text)");
        }
        return Ok(parsed);
    }
    Ok(parsed
        .with_tls(tls)
        .expect("a mqtts:// URL takes TLS settings"))
}

/// For a `mqtts://` broker, one TLS handshake now: a certificate the
/// services would never accept (a wrong `MQTT_CA_FILE`, a host the
/// certificate does not name) stops the start with the reason. An
/// unreachable broker is not an error (the services wait for it).
pub async fn verify_broker(mqtt: &MqttUrl) -> Result<()> {
    datastream_mqtt::check_broker_certificate(mqtt)
        .await
        .with_context(|| format!("TLS to the broker {mqtt}"))
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
