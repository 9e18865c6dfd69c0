//! `/api/v1/readings/stream`: live readings as Server-Sent Events.
//!
//! Every stream reads the process's one live feed ([`LiveReadings`]) and
//! keeps the readings its filters match. An event's id is the reading's
//! timestamp in microseconds since the epoch; a client that reconnects
//! with `Last-Event-ID` first gets what the database stored after it (at
//! most [`RESUME_WINDOW`] back and [`RESUME_MOST`] readings), then the live
//! readings, without the ones it has just been sent. What a resume costs is
//! bounded: [`RESUME_MOST`] readings written straight into the first chunk,
//! an 8-byte digest of each kept to skip its live copy, and at most two
//! resumes reading the store at once per process (the others wait their
//! turn, up to [`RESUME_WAIT`], then get 503). A stream ends with a
//! final event when its client falls too far behind (`overflow`), its token
//! expires (`expired`) or its account is deleted (`revoked`), and when the
//! server stops.

use crate::live::{LiveReadings, LiveSubscription};
use crate::reading_conditions::{ConditionKind, ConditionsOf, ConditionsQuery, EndpointParams};
use crate::reading_record::{write_live_json, write_sent_json};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_domain::{FilterParams, Order, Reading, ReadingFilter, StoredReading};
use datastream_http::auth::TokenVerifier;
use datastream_http::{ApiError, Authenticated, ErrorBody};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Instant, Interval};
use utoipa::ToSchema;

/// How often a quiet stream sends a comment, so that proxies and browsers
/// keep it open, and how often it checks that its account still exists.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How far back `Last-Event-ID` may resume from.
pub const RESUME_WINDOW: ChronoDuration = ChronoDuration::minutes(5);
/// The most stored readings a resumed stream is sent before the live ones:
/// about 150 KB of events.
pub const RESUME_MOST: u32 = 1_000;
/// How long a resume waits for its turn to read the store.
pub const RESUME_WAIT: Duration = Duration::from_secs(5);
/// Matching readings written into one chunk of the body at most.
const EVENTS_PER_CHUNK: usize = 256;

/// A live stream's own parameters: none; it takes device conditions only
/// (`reading_conditions.rs`). A stream has no time window or paging.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {}

impl EndpointParams for StreamParams {
    const HONOURS: &'static [ConditionKind] = &[ConditionKind::Device];
    const REFUSAL: &'static str =
        "a live stream has no time window; to catch up after a gap, reconnect with Last-Event-ID";
}

/// The stream's device filter, from `from` on when given.
fn filter_from(
    query: &ConditionsQuery<StreamParams>,
    from: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReadingFilter, ApiError> {
    let params = FilterParams {
        from,
        ..query.conditions.filter_params()
    };
    Ok(ReadingFilter::parse(params, now)?)
}

/// One Server-Sent Event of a stream, field by field as the SSE format
/// names them: a reading (`event` absent, which SSE reads as `message`),
/// or the final event that ends the stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEvent {
    /// The reading's timestamp in microseconds since the epoch: send it
    /// back as `Last-Event-ID` to resume after it.
    #[schema(pattern = r"^[0-9]+$", example = "1764054000123456")]
    pub id: Option<String>,
    /// `message` for a reading; the final event's name says why the
    /// stream ended.
    pub event: Option<StreamEventName>,
    /// The JSON text of a `LiveReadingDto`, or on a final event
    /// `{"reason": "…"}`.
    #[schema(
        example = "{\"sensor_value\":21.5,\"sensor_type\":\"temperature\",\"id1\":\"ABC\",\"id2\":1,\"timestamp\":\"2026-11-25T07:00:00.123456Z\"}"
    )]
    pub data: String,
    /// Milliseconds a browser waits before it reconnects (sent first, with
    /// no data).
    #[schema(minimum = 0)]
    pub retry: Option<u64>,
}

/// What an event is: a reading, or why the stream ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamEventName {
    /// A reading.
    Message,
    /// The client fell too far behind; reconnect with `Last-Event-ID`.
    Overflow,
    /// The token expired; log in again.
    Expired,
    /// The token's account was deleted.
    Revoked,
    /// The server is stopping; reconnect.
    Closing,
}

/// Live readings matching the filters, as Server-Sent Events: one `data:`
/// line of JSON per reading, its `id` the reading's timestamp in
/// microseconds; a comment every 15 s. Reconnecting with `Last-Event-ID`
/// first sends what was stored since (up to 5 minutes back).
#[utoipa::path(get, path = "/api/v1/readings/stream", operation_id = "stream_readings", tag = "readings",
    params(
        ConditionsOf<StreamParams>,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = r"^[0-9]{0,18}$", description = "The id of the last event received: resume after it (empty: no resume)"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`; final events `overflow`, `expired` or `revoked` end it", content(
            (StreamEvent = "text/event-stream", example = "id: 1764054000123456\ndata: {\"sensor_value\":21.5,\"sensor_type\":\"temperature\",\"id1\":\"ABC\",\"id2\":1,\"timestamp\":\"2026-11-25T07:00:00.123456Z\"}\n\n"),
        )),
        (status = 400, description = "A bad filter or `Last-Event-ID`, named in `field`", body = ErrorBody),
        (status = 503, description = "This API process has no live feed (`MQTT_URL` is not set), or every turn to resume from the store stayed taken for 5 s (`Retry-After`)", body = ErrorBody),
    ))]
pub async fn stream(
    user: Authenticated,
    state: web::Data<AppState>,
    verifier: web::Data<TokenVerifier>,
    request: ConditionsQuery<StreamParams>,
    http: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let live = state
        .live
        .as_ref()
        .ok_or(ApiError::Unavailable("the live feed (set MQTT_URL)"))?;
    let filter = filter_from(&request, None, Utc::now())?;
    let resume_after = last_event_id(&http)?;
    // Subscribed before the gap is read: a reading arriving meanwhile is
    // in one or the other (or both, and then sent once).
    let subscription = live.subscribe(&filter);
    // Browsers reconnect after `retry` milliseconds; then what was stored
    // since the client's last event.
    let mut first = b"retry: 2000\n\n".to_vec();
    let mut resumed = HashSet::new();
    if let Some(after) = resume_after {
        let Some(_turn) = live.resume_turn(RESUME_WAIT).await else {
            return Err(ApiError::Busy(RESUME_WAIT.as_secs()));
        };
        for r in stored_since(&state, &request, after).await? {
            resumed.insert(digest(&r.id1, r.id2, &r.sensor_type, r.timestamp));
            write_event(&mut first, r.timestamp, |out| write_sent_json(out, &r));
        }
    }
    let events = Events::new(
        live,
        subscription,
        filter,
        resumed,
        user,
        verifier.get_ref().clone(),
    );
    let first = futures_util::stream::iter([Ok::<_, ApiError>(Bytes::from(first))]);
    let body = first.chain(futures_util::stream::unfold(events, Events::next));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // nginx buffers responses unless told not to.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The `Last-Event-ID` header as an instant, if sent. An empty one (what
/// a browser's EventSource sends before any event had an id) is none.
fn last_event_id(http: &HttpRequest) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = http.headers().get("Last-Event-ID") else {
        return Ok(None);
    };
    if value.as_bytes().iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad = || ApiError::bad_request("Last-Event-ID", "must be an event id this stream sent");
    let micros: i64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(bad)?;
    DateTime::from_timestamp_micros(micros)
        .map(Some)
        .ok_or_else(bad)
}

/// Stored readings matching `request` after `after` (no further back than
/// the resume window), oldest first.
async fn stored_since(
    state: &AppState,
    request: &ConditionsQuery<StreamParams>,
    after: DateTime<Utc>,
) -> Result<Vec<StoredReading>, ApiError> {
    let now = Utc::now();
    let from = format_timestamp(after.max(now - RESUME_WINDOW));
    let gap = filter_from(request, Some(&from), now)?
        .with_order(Order::Asc)
        .with_limit(RESUME_MOST);
    let rows = state.reads.query(&gap).await?;
    // `from` is inclusive; the event at `after` itself was delivered.
    Ok(rows.into_iter().filter(|r| r.timestamp > after).collect())
}

/// A digest of a reading's identity (the table's unique key: device, type,
/// timestamp), for not sending a resumed reading twice. Eight bytes
/// instead of the four strings; a collision would skip one live reading
/// that the client was already sent a stored reading for the same digest.
type ReadingDigest = u64;

/// Where a stream is.
struct Events {
    subscription: LiveSubscription,
    filter: ReadingFilter,
    /// Digests of the readings resumed from the store, skipped when they
    /// come live too.
    sent_from_backlog: HashSet<ReadingDigest>,
    user: Authenticated,
    verifier: TokenVerifier,
    expires: Instant,
    heartbeat: Interval,
    closing: tokio_util::sync::CancellationToken,
    done: bool,
}

/// What a stream does next.
enum Step {
    Chunk(Vec<u8>),
    End(Vec<u8>),
    Quiet,
}

impl Events {
    fn new(
        live: &LiveReadings,
        subscription: LiveSubscription,
        filter: ReadingFilter,
        sent_from_backlog: HashSet<ReadingDigest>,
        user: Authenticated,
        verifier: TokenVerifier,
    ) -> Self {
        let left = user
            .expires_at
            .saturating_sub(Utc::now().timestamp().max(0) as u64);
        Self {
            subscription,
            filter,
            sent_from_backlog,
            user,
            verifier,
            expires: Instant::now() + Duration::from_secs(left),
            heartbeat: tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT),
            closing: live.closing(),
            done: false,
        }
    }

    /// The next chunk of the body; `None` once the stream has ended.
    async fn next(mut self) -> Option<(Result<Bytes, ApiError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            match self.step().await {
                Step::Chunk(chunk) => return Some((Ok(Bytes::from(chunk)), self)),
                Step::End(chunk) => {
                    self.done = true;
                    return Some((Ok(Bytes::from(chunk)), self));
                }
                Step::Quiet => continue,
            }
        }
    }

    /// Waits for the next thing to send.
    async fn step(&mut self) -> Step {
        tokio::select! {
            biased;
            _ = self.closing.cancelled() => Step::End(final_event("closing", "the server is stopping; reconnect")),
            _ = tokio::time::sleep_until(self.expires) => {
                Step::End(final_event("expired", "the token has expired; log in again"))
            }
            received = self.subscription.receiver.recv() => match received {
                Ok(reading) => self.chunk_from(&reading),
                Err(RecvError::Lagged(missed)) => Step::End(overflow_event(missed)),
                Err(RecvError::Closed) => Step::End(final_event("closing", "the live feed has stopped")),
            },
            _ = self.heartbeat.tick() => match self.user.still_valid(&self.verifier).await {
                Ok(false) => Step::End(final_event("revoked", "the token's user no longer exists")),
                // A database hiccup does not end a stream; the next heartbeat asks again.
                Ok(true) | Err(_) => Step::Chunk(b": heartbeat\n\n".to_vec()),
            },
        }
    }

    /// Events for `first` and whatever else is already waiting (up to a
    /// chunk's worth), keeping the matching ones.
    fn chunk_from(&mut self, first: &Reading) -> Step {
        let mut out = Vec::new();
        self.write_if_wanted(&mut out, first);
        for _ in 1..EVENTS_PER_CHUNK {
            match self.subscription.receiver.try_recv() {
                Ok(reading) => self.write_if_wanted(&mut out, &reading),
                Err(TryRecvError::Lagged(missed)) => {
                    out.extend(overflow_event(missed));
                    return Step::End(out);
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if out.is_empty() {
            Step::Quiet
        } else {
            Step::Chunk(out)
        }
    }

    fn write_if_wanted(&mut self, out: &mut Vec<u8>, reading: &Reading) {
        if !self.filter.matches(reading) {
            return;
        }
        if !self.sent_from_backlog.is_empty() {
            let (id1, id2) = (reading.id1().as_str(), reading.id2().get());
            let key = digest(
                id1,
                id2,
                reading.sensor_type().as_str(),
                reading.timestamp(),
            );
            if self.sent_from_backlog.remove(&key) {
                return;
            }
        }
        write_event(out, reading.timestamp(), |out| {
            write_live_json(out, reading)
        });
    }
}

/// The digest of a reading's identity (the table's unique key).
fn digest(id1: &str, id2: i32, sensor_type: &str, at: DateTime<Utc>) -> ReadingDigest {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (id1, id2, sensor_type, at).hash(&mut hasher);
    hasher.finish()
}

/// `id: …` and `data: …` lines of one reading's event, taken `at`, its
/// data written by `data`; the id is `at` in microseconds since the epoch.
fn write_event(
    out: &mut Vec<u8>,
    at: DateTime<Utc>,
    data: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) {
    out.extend_from_slice(format!("id: {}\ndata: ", at.timestamp_micros()).as_bytes());
    // Writing into memory cannot fail.
    let _ = data(out);
    out.extend_from_slice(b"\n\n");
}

/// The event that ends the stream of a client `missed` readings behind.
fn overflow_event(missed: u64) -> Vec<u8> {
    final_event(
        "overflow",
        &format!("this client fell {missed} readings behind; reconnect with Last-Event-ID"),
    )
}

/// The event that ends a stream, with why (the alerts stream's too).
pub(super) fn final_event(name: &str, reason: &str) -> Vec<u8> {
    let data = serde_json::json!({ "reason": reason });
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_domain::Role;
    use datastream_http::auth::TokenKeys;

    /// A reading of device ABC/`id2`, taken now.
    fn reading(id2: i64) -> Reading {
        datastream_test_support::reading()
            .id2(id2)
            .at(Utc::now())
            .build()
    }

    /// The filter of one device, ABC/`id2`.
    fn device_filter(id2: &str) -> ReadingFilter {
        ReadingFilter::parse(
            FilterParams {
                id1: Some("ABC"),
                id2: Some(id2),
                ..FilterParams::default()
            },
            Utc::now(),
        )
        .unwrap()
    }

    fn events(live: &LiveReadings, filter: ReadingFilter) -> Events {
        let keys = TokenKeys::new(&[7u8; 48], Duration::from_secs(3600)).unwrap();
        let user = Authenticated {
            username: "viewer".into(),
            role: Role::Viewer,
            expires_at: Utc::now().timestamp() as u64 + 3600,
            account_id: 1,
            account_created: 0,
        };
        Events::new(
            live,
            live.subscribe(&filter),
            filter,
            HashSet::new(),
            user,
            TokenVerifier::new(keys, None),
        )
    }

    async fn body_of(events: Events) -> String {
        let mut state = Some(events);
        let mut body = String::new();
        while let Some(current) = state.take() {
            let Ok(Some((chunk, next))) =
                tokio::time::timeout(Duration::from_millis(200), current.next()).await
            else {
                break;
            };
            body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            state = Some(next);
        }
        body
    }

    #[tokio::test]
    async fn a_stream_that_falls_a_ring_behind_ends_with_overflow() {
        let live = LiveReadings::new(4);
        let stream = events(&live, ReadingFilter::default());
        for _ in 0..10 {
            live.publish(reading(1));
        }
        let body = body_of(stream).await;
        assert!(body.contains("event: overflow"), "{body}");
        assert!(body.ends_with("\n\n"));
        assert!(!body.contains("data: {\"sensor_value\""), "{body}");
    }

    #[tokio::test]
    async fn a_stream_sends_only_what_its_filter_matches() {
        let live = LiveReadings::new(16);
        let stream = events(&live, device_filter("2"));
        live.publish(reading(1));
        live.publish(reading(2));
        live.publish(reading(3));
        let body = body_of(stream).await;
        assert_eq!(body.matches("data: ").count(), 1, "{body}");
        assert!(body.contains("\"id2\":2"), "{body}");
    }

    #[tokio::test]
    async fn a_device_stream_is_not_pushed_behind_by_other_devices_readings() {
        let live = LiveReadings::new(4);
        let stream = events(&live, device_filter("1"));
        for _ in 0..100 {
            live.publish(reading(2));
        }
        live.publish(reading(1));
        let body = body_of(stream).await;
        assert!(!body.contains("overflow"), "{body}");
        assert_eq!(body.matches("data: ").count(), 1, "{body}");
    }

    #[tokio::test]
    async fn closing_the_feed_ends_every_stream_with_a_closing_event() {
        let live = LiveReadings::new(16);
        let stream = events(&live, ReadingFilter::default());
        live.close();
        let body = body_of(stream).await;
        assert!(body.contains("event: closing"), "{body}");
    }
}
