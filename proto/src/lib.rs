//! The code generated from `proto/datastream/v1/datastream.proto`
//! (package `datastream.v1`): messages, the tonic clients and servers, and
//! [`FILE_DESCRIPTOR_SET`] for reflection. A crate of its own so that
//! clients (generators, benchmarks, tests) need nothing of the gateway.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("datastream.v1");

/// The compiled descriptors of the `.proto`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/datastream_descriptor.bin"));
