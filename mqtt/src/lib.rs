//! MQTT client parts every role shares: [`client_options`], how a role
//! connects to the broker an [`MqttUrl`] names, and [`ConfirmedPublisher`],
//! publishing at QoS 1 that returns when the broker has acknowledged.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod confirmed_publisher;

pub use confirmed_publisher::ConfirmedPublisher;

use datastream_domain::MqttUrl;
use rumqttc::MqttOptions;

/// Options for a client `client_id` of the broker `mqtt` names, with its
/// credentials when the URL carries them.
pub fn client_options(mqtt: &MqttUrl, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, mqtt.host(), mqtt.port());
    if let Some((user, pass)) = mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    options
}
