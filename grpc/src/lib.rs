//! The gRPC gateway (`datastream grpc`, and inside `up`): a second door
//! into the same broker as MQTT, for gateways and services that speak gRPC.
//!
//! - [`ingest`]: `Ingest.Publish` and `Ingest.PublishBatch` check each
//!   reading by the domain's rules and publish it to its topic at QoS 1,
//!   answering only after the broker's PUBACK; the ingestors store it like
//!   any other reading and need no change.
//! - [`live`]: `Live.Subscribe`, the readings arriving at the broker, from
//!   the same fan-out as the REST API's live stream.
//! - `grpc.health.v1` and reflection (`grpc.reflection.v1`), so stock tools
//!   (`grpcurl`, `grpc_health_probe`) work without the `.proto`.
//!
//! - [`auth`]: `Auth.Login`, signing in for clients that speak only gRPC.
//!
//! Every other call carries a bearer token in the `authorization` metadata
//! ([`caller`]): publishing needs an admin, subscribing any user.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
mod caller;
pub mod ingest;
pub mod live;
mod reading_message;

/// The code generated from `proto/datastream/v1/datastream.proto`.
pub use datastream_proto as proto;

pub use auth::AuthService;
pub use ingest::IngestService;
pub use live::LiveService;

use datastream_api::{AppState, LiveReadings};
use datastream_domain::DecodeLimits;
use datastream_mqtt::ConfirmedPublisher;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The default address (the seed's `GRPC_PORT`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// HTTP/2 flow-control window of one call (see [`GrpcGateway::serve`]).
const STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2 flow-control window of one connection.
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Why the gateway could not serve.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The reflection service could not read the descriptors.
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What the gateway serves with.
pub struct GrpcGateway {
    /// Where readings are published (the gateway's own broker login,
    /// allowed to publish `sensors/#`).
    pub publisher: Arc<ConfirmedPublisher>,
    /// The fan-out subscriptions read from.
    pub live: LiveReadings,
    /// The API's state: bearer tokens are checked, and `Auth.Login` signs
    /// in, with it.
    pub state: AppState,
    /// What a reading must satisfy (the ingestor's rules).
    pub limits: DecodeLimits,
    /// A PEM certificate chain and key: serve TLS only. `None`: plain.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

impl GrpcGateway {
    /// Serves on `listener` until `shutdown`, then lets open calls end.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), GrpcError> {
        let verifier = self.state.token_verifier();
        let ingest = proto::ingest_server::IngestServer::new(IngestService {
            publisher: self.publisher,
            verifier: verifier.clone(),
            limits: self.limits,
        });
        let live = proto::live_server::LiveServer::new(LiveService {
            live: self.live.clone(),
            verifier,
        });
        let auth = proto::auth_server::AuthServer::new(AuthService { state: self.state });
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<proto::ingest_server::IngestServer<IngestService>>()
            .await;
        health
            .set_serving::<proto::live_server::LiveServer<LiveService>>()
            .await;
        health
            .set_serving::<proto::auth_server::AuthServer<AuthService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let live_readings = self.live;
        let mut server = tonic::transport::Server::builder();
        if let Some((cert, key)) = self.tls {
            server = server.tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert, key)),
            )?;
        }
        server
            // A stream's readings arrive as small DATA frames (~80 bytes
            // each); h2 (0.4.16 on) ends a connection with GOAWAY
            // `too_many_data_frames` once the small frames buffered unread
            // cost more than half the connection window (256 - size each).
            // A stream that waits for PUBACKs stops reading, so its window
            // must hold far fewer frames than that budget: 64 KiB per
            // stream (~800 readings), 8 MiB per connection (a budget of
            // ~22,000 frames, over 25 stalled streams).
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(auth)
            .add_service(ingest)
            .add_service(live)
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.cancelled().await;
                // Subscriptions end with UNAVAILABLE rather than holding
                // the shutdown up.
                live_readings.close();
            })
            .await?;
        Ok(())
    }
}
