//! The benchmarks shipped with the product, behind `datastream bench …`.
//! Each measures its own baselines in the same run and reports ratios
//! against them, because absolute figures on shared machines move with
//! the machine.
//!
//! * [`alerts`]: the alerter beside an ingestor under a steady stream,
//!   against the same ingest alone;
//! * [`ingest`]: MQTT → database throughput, latency, loss and memory,
//!   against direct inserts and a one-reading-per-transaction pipeline;
//! * [`query`]: read latency and requests/s through the API, against the
//!   same queries straight on the store;
//! * [`generate`]: readings one generator process makes, against a bare
//!   publish loop;
//! * [`retention`]: removing a day from a large table, against ingest
//!   alone and against dropping a partition;
//! * [`stream`]: live-stream latency, delivery and the API's memory with
//!   many Server-Sent-Event clients, against `mosquitto_sub`.
//!
//! Architecture invariant: benchmarks drive the product from outside (its
//! processes, its HTTP API, its store trait); the product knows nothing of
//! them.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alerts;
mod broker_drops;
mod figures;
pub mod generate;
pub mod grpc;
pub mod ingest;
mod mariadb_cli;
mod publish;
pub mod query;
pub mod retention;
pub mod service_process;
pub mod stream;
mod thread_cpu;
