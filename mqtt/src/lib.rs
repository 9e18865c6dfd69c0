//! MQTT client parts every role shares: [`client_options`], how a role
//! connects to the broker an [`MqttUrl`] names (TLS for `mqtts://`),
//! [`ConfirmedPublisher`], publishing at QoS 1 that returns when the broker
//! has acknowledged, and [`check_broker_certificate`], which a service runs
//! at start so that a TLS misconfiguration is an error naming the setting.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod confirmed_publisher;
mod tls;

pub use confirmed_publisher::ConfirmedPublisher;
pub use tls::{check_broker_certificate, client_config, MqttTlsError};

use datastream_domain::MqttUrl;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::sync::Arc;

/// Options for a client `client_id` of the broker `mqtt` names, with its
/// credentials when the URL carries them and, for `mqtts://`, TLS as its
/// [`MqttTls`](datastream_domain::MqttTls) says (the files are read now).
///
/// A TLS URL never yields plain TCP. Files that cannot be used (services
/// check them at start with [`check_broker_certificate`], so only files
/// changed since) are logged, and the client trusts nothing: every
/// handshake fails until the files are fixed and the service restarted.
pub fn client_options(mqtt: &MqttUrl, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, mqtt.host(), mqtt.port());
    if let Some((user, pass)) = mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    if let Some(tls) = mqtt.tls() {
        let config = client_config(tls).unwrap_or_else(|error| {
            tracing::error!(%error, client_id, "TLS to the broker cannot be set up; this client trusts no certificate");
            tls::trusting_nothing()
        });
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    options
}
