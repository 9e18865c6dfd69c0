//! End-to-end tests: the whole system in-process, driven from outside
//! through MQTT and the REST API, as a user would.

mod alerts;
mod analytics;
mod api_writes;
mod auth;
mod cli;
mod dashboard;
mod docs;
mod front_door;
mod generators;
mod grpc;
mod hostile_messages;
mod ingest_batches;
mod ingest_faults;
mod ingest_lag;
mod kubernetes;
mod live_stream;
mod no_server_errors;
mod operator;
mod pipeline;
mod sensor_types;
mod stream_memory;
mod support;
mod tls;
