//! `/api/v1/readings/export`: every matching reading as CSV or NDJSON,
//! oldest first, streamed.
//!
//! The body is produced one keyset page at a time (the `(timestamp, id)`
//! cursor of the readings list), and the next page is read only when the
//! client has taken the previous one: memory stays at one page however
//! many rows match, and a slow client slows the export, not the server.
//! A database failure half-way aborts the response (the client sees a
//! truncated transfer, never a short file that looks complete).

use crate::reading_conditions::{ConditionKind, ConditionsOf, ConditionsQuery, EndpointParams};
use crate::reading_record::{write_csv_field, write_csv_row, write_json, CSV_HEADER};
use crate::state::AppState;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use datastream_domain::{Order, PageCursor, ReadingFilter, StoredReading};
use datastream_http::{ApiError, Authenticated, ErrorBody};
use datastream_store::SharedStore;
use serde::Deserialize;
use std::collections::HashMap;
use std::io;
use utoipa::{IntoParams, ToSchema};

/// Rows read per query: the most a page may hold.
const ROWS_PER_PAGE: u32 = datastream_domain::filter::MAX_LIMIT;

/// The export's own parameter, beside its conditions
/// (`reading_conditions.rs`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default; with a header row) or `ndjson` (one reading as JSON
    /// per line).
    #[param(value_type = Option<ExportFormat>)]
    format: Option<String>,
    /// `true` adds a last column, `unit`, from the sensor-type catalog
    /// (empty for a type it does not list); CSV only.
    #[param(value_type = Option<bool>)]
    units: Option<String>,
}

impl EndpointParams for ExportParams {
    const HONOURS: &'static [ConditionKind] = ConditionKind::ALL;
    const REFUSAL: &'static str = "does not apply to exports";
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

    /// Appends one reading (a line) to `out`, with its type's unit from
    /// `units` when given (CSV).
    fn write(self, out: &mut Vec<u8>, r: &StoredReading, units: Option<&Units>) -> io::Result<()> {
        match self {
            Self::Csv => {
                write_csv_row(out, r)?;
                if let Some(units) = units {
                    out.pop(); // the line's end, written again after the unit
                    out.push(b',');
                    write_csv_field(out, units.get(&r.sensor_type).map_or("", String::as_str));
                    out.push(b'\n');
                }
                Ok(())
            }
            Self::Ndjson => {
                write_json(out, r)?;
                out.push(b'\n');
                Ok(())
            }
        }
    }
}

/// Each catalogued sensor type's unit.
type Units = HashMap<String, String>;

/// Whether `units` asks for the unit column: `true` or `false`, CSV only.
fn wants_units(units: Option<&str>, format: ExportFormat) -> Result<bool, ApiError> {
    let wanted = match units {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("units", "must be true or false")),
    };
    if wanted && format != ExportFormat::Csv {
        return Err(ApiError::bad_request(
            "units",
            "adds a CSV column: use it with format=csv",
        ));
    }
    Ok(wanted)
}

/// The filter of an export: its conditions, oldest first, a page of the
/// most rows at a time.
fn export_filter(query: &ConditionsQuery<ExportParams>) -> Result<ReadingFilter, ApiError> {
    let filter = ReadingFilter::parse(query.conditions.filter_params(), Utc::now())?;
    Ok(filter.with_order(Order::Asc).with_limit(ROWS_PER_PAGE))
}

/// Every reading matching the filters, oldest first, as one streamed CSV or
/// NDJSON file (no paging; memory stays flat however many rows match).
#[utoipa::path(get, path = "/api/v1/readings/export", operation_id = "export_readings", tag = "analytics",
    params(ConditionsOf<ExportParams>, ExportParams),
    responses(
        (status = 200, description = "The readings as CSV (header row first) or NDJSON", content(
            (String = "text/csv", example = "id,sensor_value,sensor_type,id1,id2,timestamp,created_at,updated_at\n1,21.5,temperature,ABC,1,2026-11-25T07:00:00.123456Z,2026-11-25T07:00:00.2Z,2026-11-25T07:00:00.2Z\n"),
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "A bad parameter, named in `field` (`format`, a filter)", body = ErrorBody),
    ))]
pub async fn export(
    _user: Authenticated,
    state: web::Data<AppState>,
    query: ConditionsQuery<ExportParams>,
) -> Result<HttpResponse, ApiError> {
    let format = ExportFormat::parse(query.own.format.as_deref())?;
    let filter = export_filter(&query)?;
    let units = if wants_units(query.own.units.as_deref(), format)? {
        let catalog = state.store.sensor_types().await?;
        Some(
            catalog
                .into_iter()
                .filter_map(|e| Some((e.name.as_str().to_owned(), e.unit?)))
                .collect(),
        )
    } else {
        None
    };
    let mut pages = Pages {
        store: state.reads.clone(),
        filter,
        format,
        units,
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
    /// The unit column's values, when asked for.
    units: Option<Units>,
    after: Option<PageCursor>,
    done: bool,
}

impl Pages {
    /// The header (CSV) and the first page.
    async fn first_chunk(&mut self) -> Result<Bytes, ApiError> {
        let mut out = Vec::new();
        if self.format == ExportFormat::Csv {
            out.extend_from_slice(CSV_HEADER.as_bytes());
            if self.units.is_some() {
                out.pop();
                out.extend_from_slice(b",unit\n");
            }
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
                .write(out, r, self.units.as_ref())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading_record::ReadingDto;

    #[test]
    fn an_ndjson_line_is_the_reading_as_the_api_returns_it() {
        let mut out = Vec::new();
        let r = datastream_test_support::reading().value(-0.25).stored();
        ExportFormat::Ndjson.write(&mut out, &r, None).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n'));
        let parsed: ReadingDto = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, ReadingDto::from(&r));
    }

    #[test]
    fn a_csv_row_with_units_ends_with_its_types_unit_quoted_when_needed() {
        let r = datastream_test_support::reading().stored();
        let units = Units::from([(r.sensor_type.clone(), "m,s".to_owned())]);
        let (mut plain, mut with_unit) = (Vec::new(), Vec::new());
        ExportFormat::Csv.write(&mut plain, &r, None).unwrap();
        ExportFormat::Csv
            .write(&mut with_unit, &r, Some(&units))
            .unwrap();
        let plain = String::from_utf8(plain).unwrap();
        let with_unit = String::from_utf8(with_unit).unwrap();
        assert_eq!(with_unit, format!("{},\"m,s\"\n", plain.trim_end()));
        let mut unknown = Vec::new();
        ExportFormat::Csv
            .write(&mut unknown, &r, Some(&Units::new()))
            .unwrap();
        assert_eq!(
            String::from_utf8(unknown).unwrap(),
            format!("{},\n", plain.trim_end())
        );
    }

    #[test]
    fn units_are_true_or_false_and_for_csv_only() {
        assert!(wants_units(Some("true"), ExportFormat::Csv).unwrap());
        assert!(!wants_units(None, ExportFormat::Ndjson).unwrap());
        for (text, format) in [
            (Some("yes"), ExportFormat::Csv),
            (Some("true"), ExportFormat::Ndjson),
        ] {
            let error = wants_units(text, format).unwrap_err();
            assert!(matches!(error, ApiError::BadRequest { ref field, .. } if field == "units"));
        }
    }

    #[test]
    fn unknown_formats_are_refused_naming_the_field() {
        let error = ExportFormat::parse(Some("xlsx")).unwrap_err();
        assert!(matches!(error, ApiError::BadRequest { ref field, .. } if field == "format"));
    }
}
