//! `/api/v1/alerts/stream`: alert notifications as Server-Sent Events, for
//! the dashboard's alert panel and anyone else who wants to be told.
//!
//! A stream first sends every alert firing now (`firing` events, one per
//! alert, from the store), then each notification as it arrives from the
//! broker (`alert` events, whose id is the notification's). It is
//! subscribed to the feed before the store is read, so an alert that
//! changes meanwhile is in one or the other. It ends like the readings
//! stream: `overflow` (the client fell a whole buffer behind), `expired`,
//! `revoked`, `closing`.

use crate::routes::alerts::{AlertDto, AlertListParams};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use datastream_domain::alert::AlertNotice;
use datastream_http::auth::TokenVerifier;
use datastream_http::{ApiError, Authenticated, ErrorBody};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval};
use utoipa::{IntoParams, ToSchema};

/// Firing alerts sent when a stream opens, at most.
const SNAPSHOT_MOST: u32 = 1_000;
/// How often a quiet stream sends a comment and checks its account.
const HEARTBEAT: Duration = crate::routes::stream::HEARTBEAT;

/// Which alerts a stream follows; all when none is given.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertStreamParams {
    /// Only this sensor type.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$")]
    sensor_type: Option<String>,
    /// Only this id1.
    #[param(pattern = r"^[A-Z]{1,32}$")]
    id1: Option<String>,
    /// Only this id2.
    #[param(value_type = Option<u32>, maximum = 2147483647)]
    id2: Option<String>,
    /// Only this rule's alerts.
    #[param(value_type = Option<u64>, minimum = 1)]
    rule_id: Option<String>,
}

/// One event of an alert stream, as the SSE format names its fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertStreamEvent {
    /// `firing` (an alert firing when the stream opened; data is an
    /// `AlertDto`), `alert` (a notification; data is the notification, the
    /// same as on MQTT and webhooks), or a final event: `overflow`,
    /// `expired`, `revoked`, `closing`.
    pub event: String,
    /// The notification's id (`alert` events).
    pub id: Option<String>,
    /// JSON.
    pub data: String,
}

/// Alert notifications as Server-Sent Events: first every firing alert
/// (`firing`), then each notification as it is sent (`alert`).
#[utoipa::path(get, path = "/api/v1/alerts/stream", operation_id = "stream_alerts", tag = "alerts",
    params(AlertStreamParams),
    responses(
        (status = 200, description = "An endless `text/event-stream`; final events `overflow`, `expired`, `revoked` or `closing` end it", content(
            (AlertStreamEvent = "text/event-stream", example = "event: alert\nid: 42\ndata: {\"id\":42,\"alert_id\":7,\"event\":\"firing\",\"state\":\"firing\",\"rule_id\":1,\"rule_name\":\"too hot\",\"kind\":\"threshold\",\"sensor_type\":\"temperature\",\"id1\":\"ROOM\",\"id2\":1,\"started_at\":\"2026-12-05T10:00:00Z\",\"value\":31.5,\"fired_at\":\"2026-12-05T10:00:00.01Z\",\"resolved_at\":null,\"resolved_value\":null,\"resolved_by\":null,\"sent_at\":\"2026-12-05T10:00:00.01Z\"}\n\n"),
        )),
        (status = 400, description = "A bad filter, named in `field`", body = ErrorBody),
        (status = 503, description = "This API process has no live feed (`MQTT_URL` is not set)", body = ErrorBody),
    ))]
pub async fn stream(
    user: Authenticated,
    state: web::Data<AppState>,
    verifier: web::Data<TokenVerifier>,
    params: web::Query<AlertStreamParams>,
) -> Result<HttpResponse, ApiError> {
    let live = state
        .live
        .as_ref()
        .ok_or(ApiError::Unavailable("the live feed (set MQTT_URL)"))?;
    let list = AlertListParams::for_stream(
        params.sensor_type.clone(),
        params.id1.clone(),
        params.id2.clone(),
        params.rule_id.clone(),
        SNAPSHOT_MOST,
    );
    let query = list.query()?;
    // Subscribed before the store is read: nothing falls between.
    let receiver = live.subscribe_alerts();
    let firing = state.store.alerts(&query).await?;
    let mut first = b"retry: 2000\n\n".to_vec();
    for alert in firing {
        let data = serde_json::to_string(&AlertDto::from(alert)).unwrap_or_default();
        first.extend_from_slice(format!("event: firing\ndata: {data}\n\n").as_bytes());
    }
    let left = user
        .expires_at
        .saturating_sub(Utc::now().timestamp().max(0) as u64);
    let events = Events {
        receiver,
        wanted: query,
        user,
        verifier: verifier.get_ref().clone(),
        expires: Instant::now() + Duration::from_secs(left),
        heartbeat: tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT),
        closing: live.closing(),
        done: false,
    };
    let first = futures_util::stream::iter([Ok::<_, ApiError>(Bytes::from(first))]);
    let body = first.chain(futures_util::stream::unfold(events, Events::next));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Where a stream is.
struct Events {
    receiver: broadcast::Receiver<Arc<AlertNotice>>,
    wanted: datastream_domain::alert::AlertQuery,
    user: Authenticated,
    verifier: TokenVerifier,
    expires: Instant,
    heartbeat: Interval,
    closing: tokio_util::sync::CancellationToken,
    done: bool,
}

impl Events {
    async fn next(mut self) -> Option<(Result<Bytes, ApiError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let chunk = tokio::select! {
                biased;
                _ = self.closing.cancelled() => self.end("closing", "the server is stopping; reconnect"),
                _ = tokio::time::sleep_until(self.expires) => self.end("expired", "the token has expired; log in again"),
                received = self.receiver.recv() => match received {
                    Ok(notice) if self.wants(&notice) => {
                        let data = serde_json::to_string(&*notice).unwrap_or_default();
                        format!("event: alert\nid: {}\ndata: {data}\n\n", notice.id).into_bytes()
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => self.end(
                        "overflow",
                        &format!("this client fell {missed} notifications behind; reconnect"),
                    ),
                    Err(RecvError::Closed) => self.end("closing", "the live feed has stopped"),
                },
                _ = self.heartbeat.tick() => match self.user.still_valid(&self.verifier).await {
                    Ok(false) => self.end("revoked", "the token's user no longer exists"),
                    Ok(true) | Err(_) => b": heartbeat\n\n".to_vec(),
                },
            };
            return Some((Ok(Bytes::from(chunk)), self));
        }
    }

    fn wants(&self, n: &AlertNotice) -> bool {
        let q = &self.wanted;
        q.sensor_type
            .as_ref()
            .is_none_or(|t| t.as_str() == n.sensor_type)
            && q.id1.as_ref().is_none_or(|i| i.as_str() == n.id1)
            && q.id2.is_none_or(|i| i.get() == n.id2)
            && q.rule_id.is_none_or(|r| r == n.rule_id)
    }

    /// The final event; the stream ends after it.
    fn end(&mut self, name: &str, reason: &str) -> Vec<u8> {
        self.done = true;
        crate::routes::stream::final_event(name, reason)
    }
}
