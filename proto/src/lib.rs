//! The code generated from `proto/datastream/v1/datastream.proto`
//! (package `datastream.v1`): messages, the tonic clients and servers, and
//! [`FILE_DESCRIPTOR_SET`] for reflection, and the message of a domain
//! reading. A crate of its own so that clients (generators, benchmarks,
//! tests) need nothing of the gateway.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("datastream.v1");

impl From<&datastream_domain::Reading> for Reading {
    /// The reading's fields as the MQTT payload has them (`seq` 0: the
    /// sender numbers what it sends).
    fn from(reading: &datastream_domain::Reading) -> Self {
        Reading {
            seq: 0,
            sensor_value: reading.sensor_value(),
            sensor_type: reading.sensor_type().as_str().to_owned(),
            id1: reading.id1().as_str().to_owned(),
            id2: i64::from(reading.id2().get()),
            timestamp: datastream_domain::timestamp::format_timestamp(reading.timestamp()),
        }
    }
}

/// The compiled descriptors of the `.proto`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/datastream_descriptor.bin"));
