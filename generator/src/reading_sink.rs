//! [`ReadingSink`]: where a fleet's generators hand their readings — the
//! fleet's MQTT connection (QoS 1 to `sensors/{type}/{id1}/{id2}`), or the
//! gRPC gateway ([`GrpcReadings`]).

use crate::grpc_readings::GrpcReadings;
use datastream_domain::{encode_reading, Reading};
use rumqttc::{AsyncClient, QoS};

/// Where readings go.
#[derive(Clone)]
pub enum ReadingSink {
    /// Published on the fleet's MQTT connection.
    Mqtt(AsyncClient),
    /// Published through the gRPC gateway.
    Grpc(GrpcReadings),
}

/// The sink is gone: its connection's task has ended (the fleet is
/// stopping).
#[derive(Debug)]
pub struct SinkClosed;

impl ReadingSink {
    /// Hands `reading` on (its topic is `topic`), waiting while the sink's
    /// queue is full.
    pub(crate) async fn send(&self, topic: &str, reading: &Reading) -> Result<(), SinkClosed> {
        match self {
            ReadingSink::Mqtt(client) => client
                .publish(topic, QoS::AtLeastOnce, false, encode_reading(reading))
                .await
                .map_err(|_| SinkClosed),
            ReadingSink::Grpc(grpc) => grpc.send(reading).await.map_err(|_| SinkClosed),
        }
    }
}
