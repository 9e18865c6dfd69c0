//! [`GrpcReadings`]: a generator fleet's readings published through the
//! gRPC gateway instead of MQTT (`--transport grpc`). One Publish stream,
//! signed in with `Auth.Login`; every reading is kept until the gateway
//! answers it PUBLISHED, so a broker outage (NOT_PUBLISHED), a lost
//! connection or an expired token (the stream ends) costs a resend, not a
//! reading.

use datastream_domain::Reading;
use datastream_proto::ack::Status as AckStatus;
use datastream_proto::auth_client::AuthClient;
use datastream_proto::ingest_client::IngestClient;
use datastream_proto::Credentials;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Readings waiting for their answer at most; beyond, generators wait (and
/// their schedules skip, as when the MQTT client's queue is full).
const MAX_UNANSWERED: usize = 10_000;
/// Readings queued between the generators and the stream.
const QUEUE: usize = 1_024;
/// Wait before a NOT_PUBLISHED reading is sent again, and between attempts
/// to reach the gateway.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long stopping waits for readings still unanswered.
const DRAIN_ON_STOP: Duration = Duration::from_secs(5);

/// Where and as whom readings are published over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcTarget {
    /// The gateway: `http://host:port`, or `https://…` for TLS.
    pub url: String,
    /// An admin account's name (publishing needs the admin role).
    pub username: String,
    /// Its password.
    pub password: String,
    /// PEM CA certificates the gateway's certificate must chain to
    /// (`https://`); unset: the system's trusted CAs.
    pub ca_file: Option<PathBuf>,
}

/// The gRPC gateway is gone for good: the fleet is stopping.
#[derive(Debug)]
pub struct Closed;

/// Publishes readings through the gateway; cheap to clone.
#[derive(Clone)]
pub struct GrpcReadings {
    tx: mpsc::Sender<datastream_proto::Reading>,
}

impl GrpcReadings {
    /// Starts the connection's task, until `stop` (then it waits up to 5 s
    /// for readings still unanswered). The returned handle ends with it.
    pub fn start(target: GrpcTarget, stop: CancellationToken) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(drive(target, rx, stop));
        (Self { tx }, task)
    }

    /// Queues `reading`; waits while the queue is full.
    pub async fn send(&self, reading: &Reading) -> Result<(), Closed> {
        self.tx.send(reading.into()).await.map_err(|_| Closed)
    }
}

/// Readings sent and not yet answered PUBLISHED, by sequence number, and
/// those to send again.
#[derive(Default)]
struct Unanswered {
    next_seq: u64,
    waiting: BTreeMap<u64, datastream_proto::Reading>,
    resend: VecDeque<(tokio::time::Instant, u64)>,
}

async fn drive(
    target: GrpcTarget,
    mut readings: mpsc::Receiver<datastream_proto::Reading>,
    stop: CancellationToken,
) {
    let mut unanswered = Unanswered::default();
    let mut stopping_since: Option<tokio::time::Instant> = None;
    loop {
        let all_answered = unanswered.waiting.is_empty() && readings.is_empty();
        if stopping_since.is_some_and(|t| t.elapsed() >= DRAIN_ON_STOP)
            || (all_answered && (stop.is_cancelled() || readings.is_closed()))
        {
            if !unanswered.waiting.is_empty() {
                tracing::warn!(
                    unanswered = unanswered.waiting.len(),
                    "stopping with readings the gateway did not answer"
                );
            }
            return;
        }
        match connect(&target).await {
            Ok((ingest, token)) => {
                if let Err(reason) = stream(
                    ingest,
                    &token,
                    &mut readings,
                    &mut unanswered,
                    &stop,
                    &mut stopping_since,
                )
                .await
                {
                    tracing::warn!(%reason, url = %target.url, "gRPC stream ended; reconnecting");
                }
            }
            Err(reason) => {
                tracing::warn!(%reason, url = %target.url, "cannot publish over gRPC yet");
            }
        }
        if stop.is_cancelled() && stopping_since.is_none() {
            stopping_since = Some(tokio::time::Instant::now());
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// A channel to the gateway, signed in.
async fn connect(target: &GrpcTarget) -> Result<(IngestClient<Channel>, String), String> {
    let mut endpoint = Endpoint::from_shared(target.url.clone())
        .map_err(|e| format!("GENERATOR_GRPC_URL {:?}: {e}", target.url))?
        .connect_timeout(Duration::from_secs(5));
    if target.url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = &target.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("GENERATOR_GRPC_CA_FILE {path:?}: {e}"))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let token = AuthClient::new(channel.clone())
        .login(Credentials {
            username: target.username.clone(),
            password: target.password.clone(),
        })
        .await
        .map_err(|status| format!("signing in as {:?}: {}", target.username, status.message()))?
        .into_inner();
    Ok((IngestClient::new(channel), token.access_token))
}

/// One Publish stream: everything unanswered first, then new readings;
/// returns when the stream ends (why) or, stopping, when all is answered.
async fn stream(
    mut ingest: IngestClient<Channel>,
    token: &str,
    readings: &mut mpsc::Receiver<datastream_proto::Reading>,
    unanswered: &mut Unanswered,
    stop: &CancellationToken,
    stopping_since: &mut Option<tokio::time::Instant>,
) -> Result<(), String> {
    let (out, out_rx) = mpsc::channel::<datastream_proto::Reading>(QUEUE);
    let mut request = tonic::Request::new(ReceiverStream::new(out_rx));
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not valid metadata".to_owned())?;
    request.metadata_mut().insert("authorization", bearer);
    // Sent from a task of its own: the call returns its response only once
    // the server has answered the headers, and the outbound stream must be
    // fed while waiting for acks.
    let mut pending: VecDeque<datastream_proto::Reading> =
        unanswered.waiting.values().cloned().collect();
    unanswered.resend.clear();
    let mut acks = ingest
        .publish(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let mut retry = tokio::time::interval(RETRY_AFTER);
    loop {
        if stop.is_cancelled() {
            stopping_since.get_or_insert_with(tokio::time::Instant::now);
            if unanswered.waiting.is_empty() && readings.is_empty() {
                return Ok(());
            }
            if stopping_since.is_some_and(|t| t.elapsed() >= DRAIN_ON_STOP) {
                return Ok(());
            }
        }
        let room = unanswered.waiting.len() < MAX_UNANSWERED;
        tokio::select! {
            // Send what is pending first, one at a time (the outbound
            // channel applies HTTP/2's flow control).
            permit = out.reserve(), if !pending.is_empty() => {
                let permit = permit.map_err(|_| "the request stream closed".to_owned())?;
                if let Some(reading) = pending.pop_front() {
                    permit.send(reading);
                }
            }
            next = readings.recv(), if pending.is_empty() && room => {
                // Every generator is gone: finish what is unanswered.
                let Some(mut reading) = next else {
                    stopping_since.get_or_insert_with(tokio::time::Instant::now);
                    continue;
                };
                unanswered.next_seq += 1;
                reading.seq = unanswered.next_seq;
                unanswered.waiting.insert(reading.seq, reading.clone());
                pending.push_back(reading);
            }
            ack = acks.message() => {
                let ack = match ack {
                    Ok(Some(ack)) => ack,
                    Ok(None) => return Err("the gateway ended the stream".into()),
                    Err(status) => return Err(format!("{:?}: {}", status.code(), status.message())),
                };
                match ack.status() {
                    AckStatus::Published => {
                        unanswered.waiting.remove(&ack.seq);
                    }
                    AckStatus::Rejected => {
                        // Generators make only valid readings; one refused
                        // is a bug to see, not to resend.
                        tracing::error!(field = %ack.field, message = %ack.message, "the gateway refused a generated reading");
                        unanswered.waiting.remove(&ack.seq);
                    }
                    AckStatus::NotPublished | AckStatus::Unspecified => {
                        unanswered.resend.push_back((tokio::time::Instant::now() + RETRY_AFTER, ack.seq));
                    }
                }
            }
            _ = retry.tick() => {
                let now = tokio::time::Instant::now();
                while unanswered.resend.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, seq)) = unanswered.resend.pop_front() {
                        if let Some(reading) = unanswered.waiting.get(&seq) {
                            pending.push_back(reading.clone());
                        }
                    }
                }
            }
            () = stop.cancelled(), if stopping_since.is_none() => {}
        }
    }
}
