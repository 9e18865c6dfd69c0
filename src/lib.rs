//! The `datastream` binary's library half: settings and the composition of
//! the parts. `src/main.rs` parses the command line and calls into here;
//! integration tests start the whole system through [`system::System`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alerting;
pub mod api_state;
pub mod connections;
pub mod grpc_gateway;
pub mod listen;
pub mod log_format;
mod pipeline_check;
pub mod server_tls;
pub mod settings;
pub mod system;
pub mod user_admin;

pub use listen::ListenAddr;
pub use settings::Settings;
pub use system::System;
