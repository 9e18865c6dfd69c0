//! The HTTP plumbing every datastream service shares — the API and the
//! generator service alike: the one mapping from errors to HTTP
//! ([`error`]), JSON bodies that name the bad field ([`json_body`]),
//! bearer tokens and the [`auth::Authenticated`] extractor ([`auth`]),
//! health and readiness ([`health`], [`readiness`]), Prometheus metrics
//! ([`telemetry`], [`request_metrics`]), limits and routing defaults
//! ([`header_limit`], [`routing`]), and a server's lifecycle ([`Server`]).
//!
//! Architecture invariant: this crate knows no resource (readings, users,
//! generators); services build their routes on it and never on each other.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
pub mod header_limit;
pub mod health;
pub mod json_body;
pub mod openapi;
pub mod readiness;
pub mod request_metrics;
pub mod routing;
pub mod security_headers;
mod server;
pub mod telemetry;

pub use auth::{Admin, Authenticated, AuthenticationError, TokenKeys, TokenRefusal, TokenVerifier};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use health::HealthState;
pub use json_body::JsonBody;
pub use readiness::{ComponentState, ReadinessCheck, SharedReadiness};
pub use server::{HttpListener, Server, SEND_TIMEOUT};
