//! `/api/v1/readings/export`: every matching reading as CSV or NDJSON,
//! oldest first, streamed.
//!
//! The body is produced one keyset page at a time (the `(timestamp, id)`
//! cursor of the readings list), and the next page is read only when the
//! client has taken the previous one: memory stays at one page however
//! many rows match, and a slow client slows the export, not the server.
//! A database failure half-way aborts the response (the client sees a
//! truncated transfer, never a short file that looks complete).

use super::page_json::write_reading;
use crate::state::AppState;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use datastream_http::{ApiError, Authenticated, ErrorBody};
use datastream_schema::timestamp::TimestampText;
use datastream_schema::{
    FilterParams, Order, PageCursor, ReadingFilter, SharedStore, StoredReading,
};
use serde::Deserialize;
use serde_json::ser::{CompactFormatter, Formatter};
use std::io;
use utoipa::{IntoParams, ToSchema};

/// Rows read per query: the most a page may hold.
const ROWS_PER_PAGE: u32 = datastream_schema::filter::MAX_LIMIT;
/// The CSV header row: `ReadingDto`'s fields, in its order.
const CSV_HEADER: &[u8] = b"id,sensor_value,sensor_type,id1,id2,timestamp,created_at,updated_at\n";

/// Parameters of `/api/v1/readings/export`, as received.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportRequest {
    /// Device id part 1.
    #[param(pattern = r"^[A-Z]{1,32}$", example = "ABC")]
    id1: Option<String>,
    /// Device id part 2.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 2147483647, example = 1)]
    id2: Option<String>,
    /// Sensor type.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$", example = "temperature")]
    sensor_type: Option<String>,
    /// Inclusive start, RFC 3339 with any offset. Must not be after `to`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Exclusive end, RFC 3339 with any offset.
    #[param(format = DateTime)]
    to: Option<String>,
    /// The window as a span (`15m`, `30d`): with `from` it sets `to`, with
    /// `to` it sets `from`, alone it means the last span up to now.
    #[param(pattern = r"^[1-9][0-9]{0,5}[smhd]$", example = "30d")]
    duration: Option<String>,
    /// `csv` (default; with a header row) or `ndjson` (one reading as JSON
    /// per line).
    #[param(value_type = Option<ExportFormat>)]
    format: Option<String>,
}

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Comma-separated values with a header row (RFC 4180).
    Csv,
    /// Newline-delimited JSON: one reading per line.
    Ndjson,
}

impl ExportFormat {
    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text {
            None | Some("csv") => Ok(Self::Csv),
            Some("ndjson") => Ok(Self::Ndjson),
            Some(_) => Err(ApiError::bad_request("format", "must be csv or ndjson")),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Self::Csv => "readings.csv",
            Self::Ndjson => "readings.ndjson",
        }
    }

    /// Appends one reading (a line) to `out`.
    fn write(self, out: &mut Vec<u8>, r: &StoredReading) -> io::Result<()> {
        match self {
            Self::Csv => write_csv_row(out, r),
            Self::Ndjson => {
                write_reading(out, r)?;
                out.push(b'\n');
                Ok(())
            }
        }
    }
}

impl ExportRequest {
    fn filter(&self) -> Result<ReadingFilter, ApiError> {
        let filter = ReadingFilter::parse(
            FilterParams {
                id1: self.id1.as_deref(),
                id2: self.id2.as_deref(),
                sensor_type: self.sensor_type.as_deref(),
                from: self.from.as_deref(),
                to: self.to.as_deref(),
                duration: self.duration.as_deref(),
                ..FilterParams::default()
            },
            Utc::now(),
        )?;
        Ok(filter.with_order(Order::Asc).with_limit(ROWS_PER_PAGE))
    }
}

/// Every reading matching the filters, oldest first, as one streamed CSV or
/// NDJSON file (no paging; memory stays flat however many rows match).
#[utoipa::path(get, path = "/api/v1/readings/export", operation_id = "export_readings", tag = "analytics",
    params(ExportRequest),
    responses(
        (status = 200, description = "The readings as CSV (header row first) or NDJSON", content(
            (String = "text/csv", example = "id,sensor_value,sensor_type,id1,id2,timestamp,created_at,updated_at\n1,21.5,temperature,ABC,1,2026-11-25T07:00:00.123456Z,2026-11-25T07:00:00.2Z,2026-11-25T07:00:00.2Z\n"),
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "A bad parameter, named in `field` (`format`, a filter)", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    ),
    security(("bearer_auth" = [])))]
pub async fn export(
    _user: Authenticated,
    state: web::Data<AppState>,
    request: web::Query<ExportRequest>,
) -> Result<HttpResponse, ApiError> {
    let format = ExportFormat::parse(request.format.as_deref())?;
    let filter = request.filter()?;
    let mut pages = Pages {
        store: state.reads.clone(),
        filter,
        format,
        after: None,
        done: false,
    };
    // The first page is read before the status is sent: a failure there is
    // an error response, not a 200 with a cut body. A failure on a later
    // page can only abort the transfer (no final chunk), which clients
    // report as an incomplete download.
    let first = pages.first_chunk().await?;
    let rest = futures_util::stream::unfold(pages, Pages::next);
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, ApiError>(first) }),
        rest,
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format.file_name().into())],
        })
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

/// Where an export is: the next page starts after `after`.
struct Pages {
    store: SharedStore,
    filter: ReadingFilter,
    format: ExportFormat,
    after: Option<PageCursor>,
    done: bool,
}

impl Pages {
    /// The header (CSV) and the first page.
    async fn first_chunk(&mut self) -> Result<Bytes, ApiError> {
        let mut out = Vec::new();
        if self.format == ExportFormat::Csv {
            out.extend_from_slice(CSV_HEADER);
        }
        self.read_page(&mut out).await.inspect_err(|error| {
            tracing::warn!(%error, "export refused: its first page failed");
        })?;
        Ok(Bytes::from(out))
    }

    /// The next page after the first; `None` after the last.
    async fn next(mut self) -> Option<(Result<Bytes, ApiError>, Self)> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        match self.read_page(&mut out).await {
            Ok(()) => Some((Ok(Bytes::from(out)), self)),
            Err(error) => {
                tracing::warn!(%error, "export aborted");
                self.done = true;
                Some((Err(error), self))
            }
        }
    }

    /// Reads the page after `after` and writes it into `out`.
    async fn read_page(&mut self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        let filter = match self.after {
            None => self.filter.clone(),
            Some(cursor) => self.filter.clone().with_cursor(cursor)?,
        };
        let rows = self.store.query(&filter).await?;
        self.done = rows.len() < ROWS_PER_PAGE as usize;
        out.reserve(rows.len() * BYTES_PER_ROW);
        for r in &rows {
            self.format
                .write(out, r)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        self.after = rows.last().map(|last| PageCursor {
            timestamp: last.timestamp,
            id: last.id,
        });
        Ok(())
    }
}

/// About what one reading takes in either format.
const BYTES_PER_ROW: usize = 200;

/// One CSV line. Ids and types admitted by the API and the ingestor need no
/// quoting, but a field with a comma, quote or line break is quoted.
fn write_csv_row(out: &mut Vec<u8>, r: &StoredReading) -> io::Result<()> {
    CompactFormatter.write_i64(out, r.id)?;
    out.push(b',');
    if r.sensor_value.is_finite() {
        CompactFormatter.write_f64(out, r.sensor_value)?;
    }
    out.push(b',');
    write_csv_field(out, &r.sensor_type);
    out.push(b',');
    write_csv_field(out, &r.id1);
    out.push(b',');
    CompactFormatter.write_i32(out, r.id2)?;
    for ts in [r.timestamp, r.created_at, r.updated_at] {
        out.push(b',');
        out.extend_from_slice(TimestampText::new(ts).as_bytes());
    }
    out.push(b'\n');
    Ok(())
}

/// A CSV field, quoted (with quotes doubled) only when it must be.
fn write_csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn reading(sensor_type: &str, value: f64) -> StoredReading {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 7, 0, 0).unwrap();
        StoredReading {
            id: 7,
            sensor_value: value,
            sensor_type: sensor_type.into(),
            id1: "ABC".into(),
            id2: 1,
            timestamp: at,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_csv_row_has_every_column_in_header_order() {
        let mut out = Vec::new();
        write_csv_row(&mut out, &reading("temperature", 21.5)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "7,21.5,temperature,ABC,1,2026-11-25T07:00:00.000000Z,2026-11-25T07:00:00.000000Z,2026-11-25T07:00:00.000000Z\n"
        );
        let columns = std::str::from_utf8(CSV_HEADER).unwrap().trim().split(',');
        assert_eq!(columns.count(), 8);
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        let mut out = Vec::new();
        write_csv_field(&mut out, "a,\"b\"");
        assert_eq!(out, b"\"a,\"\"b\"\"\"");
    }

    #[test]
    fn an_ndjson_line_is_the_reading_as_the_api_returns_it() {
        let mut out = Vec::new();
        let r = reading("temperature", -0.25);
        ExportFormat::Ndjson.write(&mut out, &r).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n'));
        let parsed: super::super::readings::ReadingDto = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, r.into());
    }

    #[test]
    fn unknown_formats_are_refused_naming_the_field() {
        let error = ExportFormat::parse(Some("xlsx")).unwrap_err();
        assert!(matches!(error, ApiError::BadRequest { ref field, .. } if field == "format"));
    }
}
