//! `datastream.v1.Live`: live readings out, from the same in-memory fan-out
//! as the REST API's Server-Sent Events stream ([`LiveReadings`]).

use crate::caller;
use crate::proto;
use datastream_api::LiveReadings;
use datastream_domain::{FilterParams, ReadingFilter};
use datastream_http::TokenVerifier;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Readings a subscription holds for a client that reads them slowly; when
/// the fan-out's ring passes it, the subscription ends.
const READING_BUFFER: usize = 256;

/// The Live service.
#[derive(Clone)]
pub struct LiveService {
    pub(crate) live: LiveReadings,
    pub(crate) verifier: TokenVerifier,
}

/// The filter's fields checked as the REST API checks them, with its
/// messages (which name the field).
fn reading_filter(filter: &proto::Filter) -> Result<ReadingFilter, Status> {
    let id2 = filter.id2.map(|id2| id2.to_string());
    let text = |s: &str| (!s.is_empty()).then_some(s.to_owned());
    let (sensor_type, id1) = (text(&filter.sensor_type), text(&filter.id1));
    ReadingFilter::parse(
        FilterParams {
            sensor_type: sensor_type.as_deref(),
            id1: id1.as_deref(),
            id2: id2.as_deref(),
            ..FilterParams::default()
        },
        chrono::Utc::now(),
    )
    .map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl proto::live_server::Live for LiveService {
    type SubscribeStream = ReceiverStream<Result<proto::Reading, Status>>;

    async fn subscribe(
        &self,
        request: Request<proto::Filter>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = caller::any_user(&self.verifier, request.metadata()).await?;
        let filter = reading_filter(request.get_ref())?;
        let mut subscription = self.live.subscribe(&filter);
        let closing = self.live.closing();
        let (tx, rx) = mpsc::channel(READING_BUFFER);
        let expiry = caller::time_left(&caller);
        tokio::spawn(async move {
            let expiry = tokio::time::sleep(expiry);
            tokio::pin!(expiry);
            let end = loop {
                tokio::select! {
                    received = subscription.receiver.recv() => match received {
                        Ok(reading) if filter.matches(&reading) => {
                            if tx.send(Ok(proto::Reading::from(&*reading))).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            break Status::resource_exhausted(format!(
                                "the subscription fell behind by {missed} readings; subscribe again"
                            ));
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            break Status::unavailable("the live feed stopped");
                        }
                    },
                    () = tx.closed() => return,
                    () = closing.cancelled() => break Status::unavailable("the server is stopping"),
                    () = &mut expiry => break Status::unauthenticated("the token expired"),
                }
            };
            let _ = tx.send(Err(end)).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
