//! `datastream.v1.Ingest`: readings in. Each valid reading is published to
//! its topic at QoS 1 and answered PUBLISHED only after the broker's PUBACK;
//! an invalid one is answered REJECTED with the field, and the stream goes
//! on; one the broker did not take is answered NOT_PUBLISHED, for the
//! client to resend (a resent reading that did reach the broker is stored
//! once: the store ignores a reading it already has).

use crate::proto::{self, ack::Status as AckStatus, Ack};
use crate::{caller, reading_message};
use chrono::Utc;
use datastream_domain::{encode_reading, DecodeLimits, ReadingTopic};
use datastream_http::TokenVerifier;
use datastream_mqtt::ConfirmedPublisher;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Readings of one Publish stream waiting for their PUBACK at most: the
/// stream stops reading its client until one is answered.
const IN_FLIGHT_PER_STREAM: usize = 1_000;
/// Acks a stream holds for a client that reads them slowly.
const ACK_BUFFER: usize = 1_000;
/// The most readings one PublishBatch may carry.
pub const MAX_BATCH: usize = 10_000;

/// The Ingest service.
#[derive(Clone)]
pub struct IngestService {
    pub(crate) publisher: Arc<ConfirmedPublisher>,
    pub(crate) verifier: TokenVerifier,
    pub(crate) limits: DecodeLimits,
}

/// A reading checked and ready to publish, or its answer already.
enum Checked {
    Publish {
        seq: u64,
        topic: String,
        payload: Vec<u8>,
    },
    Answered(Ack),
}

impl IngestService {
    fn check(&self, message: &proto::Reading) -> Checked {
        match reading_message::to_domain(message, &self.limits, Utc::now()) {
            Ok(reading) => Checked::Publish {
                seq: message.seq,
                topic: ReadingTopic::new(
                    reading.sensor_type().clone(),
                    reading.id1().clone(),
                    reading.id2(),
                )
                .to_string(),
                payload: encode_reading(&reading),
            },
            Err(error) => {
                metrics::counter!("datastream_grpc_readings_total", "outcome" => "rejected")
                    .increment(1);
                Checked::Answered(Ack {
                    seq: message.seq,
                    status: AckStatus::Rejected.into(),
                    field: error.field().to_owned(),
                    message: error.to_string(),
                })
            }
        }
    }

    /// Answers a checked reading: at once if rejected, else once the broker
    /// has (or has not) acknowledged it.
    async fn answer(publisher: Arc<ConfirmedPublisher>, checked: Checked) -> Ack {
        let (seq, topic, payload) = match checked {
            Checked::Answered(ack) => return ack,
            Checked::Publish {
                seq,
                topic,
                payload,
            } => (seq, topic, payload),
        };
        match publisher.publish(&topic, payload, false).await {
            Ok(()) => {
                metrics::counter!("datastream_grpc_readings_total", "outcome" => "published")
                    .increment(1);
                Ack {
                    seq,
                    status: AckStatus::Published.into(),
                    ..Ack::default()
                }
            }
            Err(why) => {
                metrics::counter!("datastream_grpc_readings_total", "outcome" => "not_published")
                    .increment(1);
                Ack {
                    seq,
                    status: AckStatus::NotPublished.into(),
                    field: String::new(),
                    message: format!("the broker did not acknowledge it ({why}); resend it"),
                }
            }
        }
    }

    /// One Publish stream: reads readings while fewer than
    /// [`IN_FLIGHT_PER_STREAM`] wait, sends each answer as it comes; ends
    /// when the client has sent everything and every answer is sent, when
    /// the client goes, or when its token expires.
    async fn serve_stream(
        self,
        mut inbound: Streaming<proto::Reading>,
        acks: mpsc::Sender<Result<Ack, Status>>,
        token_expires: std::time::Duration,
    ) {
        let mut in_flight = FuturesUnordered::new();
        let expiry = tokio::time::sleep(token_expires);
        tokio::pin!(expiry);
        let mut client_done = false;
        loop {
            if client_done && in_flight.is_empty() {
                return;
            }
            tokio::select! {
                Some(ack) = in_flight.next(), if !in_flight.is_empty() => {
                    if acks.send(Ok(ack)).await.is_err() {
                        return;
                    }
                }
                next = inbound.message(), if !client_done && in_flight.len() < IN_FLIGHT_PER_STREAM => {
                    match next {
                        Ok(Some(message)) => {
                            in_flight.push(Self::answer(self.publisher.clone(), self.check(&message)));
                        }
                        Ok(None) => client_done = true,
                        // The client went away or broke the stream: what is
                        // in flight still reaches the broker; nobody is
                        // left to tell.
                        Err(_) => return,
                    }
                }
                () = &mut expiry => {
                    while let Some(ack) = in_flight.next().await {
                        if acks.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                    let _ = acks.send(Err(Status::unauthenticated("the token expired; sign in again and resend what was not acked"))).await;
                    return;
                }
            }
        }
    }
}

#[tonic::async_trait]
impl proto::ingest_server::Ingest for IngestService {
    type PublishStream = ReceiverStream<Result<Ack, Status>>;

    async fn publish(
        &self,
        request: Request<Streaming<proto::Reading>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let caller = caller::publisher(&self.verifier, request.metadata()).await?;
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        tokio::spawn(self.clone().serve_stream(
            request.into_inner(),
            tx,
            caller::time_left(&caller),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_batch(
        &self,
        request: Request<proto::Batch>,
    ) -> Result<Response<proto::BatchAck>, Status> {
        caller::publisher(&self.verifier, request.metadata()).await?;
        let batch = request.into_inner();
        if batch.readings.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "readings: a batch holds at most {MAX_BATCH} readings, got {}",
                batch.readings.len()
            )));
        }
        let checked: Vec<Checked> = batch.readings.iter().map(|m| self.check(m)).collect();
        let acks = futures_util::stream::iter(checked)
            .map(|c| Self::answer(self.publisher.clone(), c))
            .buffered(IN_FLIGHT_PER_STREAM)
            .collect()
            .await;
        Ok(Response::new(proto::BatchAck { acks }))
    }
}
