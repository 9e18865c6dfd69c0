//! The simulated sensor fleet.
//!
//! A [`GeneratorSpec`] is one generator: a sensor type, an `id1`, one or a
//! range of `id2` devices, a per-device rate and a [`ModelSettings`] value
//! model. Generators publish readings at QoS 1 to
//! `sensors/{sensor_type}/{id1}/{id2}` in the wire format of
//! `datastream_domain::wire`.
//!
//! Map:
//! - [`spec`], [`model`], [`config`]: the domain (what a generator is, its
//!   values, its JSON form with field-named errors);
//! - [`schedule`] decides when readings are due; [`runner`] is one
//!   generator's task; [`fleet`] the generators of one process on one MQTT
//!   connection ([`run_fleet`] runs a fixed list, for the standalone CLI);
//!   [`reading_sink`] is where their readings go: that connection, or the
//!   gRPC gateway ([`grpc_readings`], `--transport grpc`);
//! - [`service`] is the control plane: retained config messages on
//!   `datastream/generators/{name}/config`, fleets, the catalog;
//!   [`status`] the retained status with a last will;
//! - [`http`] the REST API over the service.
//!
//! Architecture invariant: generators only publish (over MQTT or through
//! the gRPC gateway); they know nothing about ingestors or databases. The broker is the source of truth for which
//! generators exist.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod config_file;
pub mod fleet;
pub mod grpc_readings;
pub mod http;
pub mod model;
pub mod reading_sink;
pub mod runner;
pub mod schedule;
pub mod service;
pub mod spec;
pub mod status;

pub use config::{apply_patch, parse_config, GeneratorConfig};
pub use config_file::{ConfigFile, ConfigFileError};
pub use fleet::{run_fleet, Fleet, FleetConnection};
pub use grpc_readings::{GrpcReadings, GrpcTarget};
pub use model::{ModelKind, ModelSettings, ValueModel};
pub use reading_sink::ReadingSink;
pub use runner::CounterValues;
pub use service::{GeneratorService, GeneratorView, RunningService, ServiceError};
pub use spec::{
    default_fleet, GeneratorSpec, SpecError, DEFAULT_FLEET, MAX_FREQUENCY_HZ, MIN_FREQUENCY_HZ,
};
pub use status::{GeneratorState, GeneratorStatus};
