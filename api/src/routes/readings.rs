//! `/api/v1/readings`: list (filters, cursor or page), one by id, and edit
//! or delete by filter.

use super::page_json::write_readings_page;
use crate::state::AppState;
use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use datastream_http::ApiError;
use datastream_http::Authenticated;
use datastream_http::ErrorBody;
use datastream_http::JsonBody;
use datastream_schema::timestamp::timestamp_text;
use datastream_schema::{
    check_sensor_value, FilterParams, PageCursor, ReadingFilter, StoredReading,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Filters and paging of `/api/v1/readings`, as received. Unknown
/// parameters are refused (a typo must not widen a delete).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
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
    /// A positive whole number of seconds, minutes, hours or days (`90s`,
    /// `15m`, `2h`, `7d`): with `from` it sets `to`, with `to` it sets
    /// `from`, alone it means the last span up to now; not with both.
    #[param(pattern = r"^[1-9][0-9]{0,5}[smhd]$", example = "15m")]
    duration: Option<String>,
    /// Page size (default 100). Lists only.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// By time: `asc` or `desc` (default). Lists only.
    #[param(value_type = Option<SortOrder>)]
    order: Option<String>,
    /// `next_cursor` of the previous page, unchanged. Lists only; not with
    /// `page`.
    cursor: Option<String>,
    /// 1-based page number (offset paging; slower at depth). Lists only.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 4294967295u32)]
    page: Option<String>,
}

/// Sort order of a readings list, by time.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documents the `order` parameter; requests read it as text
pub enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Parameters that page a list; edits and deletes refuse them.
const PAGING_PARAMS: [&str; 4] = ["limit", "order", "cursor", "page"];

/// The parameters edits and deletes take, for the OpenAPI document only:
/// [`ReadingsQuery`]'s without the paging ones (`limit`, `order`, `cursor`,
/// `page`). Requests are still read as `ReadingsQuery`, so a paging
/// parameter gets a 400 that names it instead of being silently ignored.
pub struct ReadingConditions;

impl IntoParams for ReadingConditions {
    fn into_params(
        parameter_in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        ReadingsQuery::into_params(parameter_in_provider)
            .into_iter()
            .filter(|p| !PAGING_PARAMS.contains(&p.name.as_str()))
            .collect()
    }
}

impl ReadingsQuery {
    fn params(&self) -> FilterParams<'_> {
        FilterParams {
            id1: self.id1.as_deref(),
            id2: self.id2.as_deref(),
            sensor_type: self.sensor_type.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            duration: self.duration.as_deref(),
            limit: self.limit.as_deref(),
            order: self.order.as_deref(),
            page: self.page.as_deref(),
        }
    }

    /// The filter these parameters describe, with the cursor verified.
    fn filter(&self, state: &AppState) -> Result<ReadingFilter, ApiError> {
        let filter = ReadingFilter::parse(self.params(), Utc::now())?;
        match &self.cursor {
            None => Ok(filter),
            Some(text) => {
                let cursor = state.cursors.decode(text, filter.order()).ok_or_else(|| {
                    ApiError::bad_request(
                        "cursor",
                        "is not a cursor this API issued for this order (pass next_cursor back unchanged)",
                    )
                })?;
                Ok(filter.with_cursor(cursor)?)
            }
        }
    }

    /// The filter for an edit or delete: conditions required, paging refused.
    fn write_filter(&self) -> Result<ReadingFilter, ApiError> {
        let paging = [&self.limit, &self.order, &self.cursor, &self.page];
        for (field, value) in PAGING_PARAMS.into_iter().zip(paging) {
            if value.is_some() {
                return Err(ApiError::bad_request(
                    field,
                    "does not apply to edits and deletes",
                ));
            }
        }
        let filter = ReadingFilter::parse(self.params(), Utc::now())?;
        if !filter.has_conditions() {
            return Err(ApiError::bad_request(
                "filter",
                "refusing to change every reading: give at least one of id1, id2, sensor_type, from, to, duration",
            ));
        }
        Ok(filter)
    }
}

/// A reading as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadingDto {
    /// Database id.
    pub id: i64,
    /// Measured value.
    pub sensor_value: f64,
    /// Sensor type.
    pub sensor_type: String,
    /// First device id part.
    pub id1: String,
    /// Second device id part.
    pub id2: i32,
    /// When it was measured (RFC 3339, UTC, microseconds).
    #[serde(with = "timestamp_text")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.123456Z")]
    pub timestamp: DateTime<Utc>,
    /// When it was stored.
    #[serde(with = "timestamp_text")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.201337Z")]
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    #[serde(with = "timestamp_text")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.201337Z")]
    pub updated_at: DateTime<Utc>,
}

impl From<StoredReading> for ReadingDto {
    fn from(r: StoredReading) -> Self {
        Self {
            id: r.id,
            sensor_value: r.sensor_value,
            sensor_type: r.sensor_type,
            id1: r.id1,
            id2: r.id2,
            timestamp: r.timestamp,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Paging information of a list response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PageInfo {
    /// The page size used.
    pub limit: u32,
    /// Cursor for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `GET /api/v1/readings`, as documented. The handler writes it
/// with `page_json::write_readings_page`, which a property test holds to
/// exactly this type's serde output: a field added here must be added there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadingsPage {
    /// The readings.
    pub data: Vec<ReadingDto>,
    /// Paging.
    pub page: PageInfo,
}

/// Lists readings matching the filters, newest first unless `order=asc`.
#[utoipa::path(get, path = "/api/v1/readings", operation_id = "list_readings", tag = "readings",
    params(ReadingsQuery),
    responses(
        (status = 200, description = "One page of matching readings", body = ReadingsPage),
        (status = 400, description = "A bad parameter, named in `field`", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    ),
    security(("bearer_auth" = [])))]
pub async fn list(
    _user: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ReadingsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter(&state)?;
    let limit = filter.limit();
    // One row more than asked tells whether another page exists.
    let mut rows = state.reads.query(&filter.clone().with_lookahead()).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(state.cursors.encode(
            PageCursor {
                timestamp: last.timestamp,
                id: last.id,
            },
            filter.order(),
        )),
        _ => None,
    };
    // Sized once: a growing buffer would copy a 100-reading page (~22 KB)
    // eight times over on its way up from 128 bytes.
    let mut body = Vec::with_capacity(JSON_BYTES_PER_READING * (rows.len() + 1));
    // The body `ReadingsPage` documents, written without serde's general
    // path (see `page_json`).
    write_readings_page(&mut body, &rows, limit, next_cursor.as_deref())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// About what one reading takes in a page's JSON (ids, value, type and
/// three timestamps with their keys).
const JSON_BYTES_PER_READING: usize = 224;

/// Body of `PATCH /api/v1/readings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingPatch {
    /// The new value for every matching reading (from -1e15 to 1e15, as a
    /// reading may carry).
    #[schema(minimum = -1e15, maximum = 1e15)]
    pub sensor_value: f64,
}

/// Sets `sensor_value` on every reading matching the filters (admin).
/// Refuses an empty filter; works in chunks of 1000 rows.
#[utoipa::path(patch, path = "/api/v1/readings", operation_id = "update_readings", tag = "readings",
    params(ReadingConditions),
    request_body = ReadingPatch,
    responses(
        (status = 200, description = "`{\"updated\": n}`", body = Object, example = json!({"updated": 42})),
        (status = 400, description = "Empty filter or bad parameter, named", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer_auth" = [])))]
pub async fn update(
    user: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ReadingsQuery>,
    body: JsonBody<ReadingPatch>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let filter = query.write_filter()?;
    check_sensor_value(body.sensor_value)
        .map_err(|e| ApiError::bad_request("sensor_value", e.to_string()))?;
    let updated = state.store.update_value(&filter, body.sensor_value).await?;
    tracing::info!(user = %user.username, updated, "readings edited");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "updated": updated })))
}

/// Deletes every reading matching the filters (admin). Refuses an empty
/// filter; works in chunks of 1000 rows.
#[utoipa::path(delete, path = "/api/v1/readings", operation_id = "delete_readings", tag = "readings",
    params(ReadingConditions),
    responses(
        (status = 200, description = "`{\"deleted\": n}`", body = Object, example = json!({"deleted": 42})),
        (status = 400, description = "Empty filter or bad parameter, named", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer_auth" = [])))]
pub async fn delete(
    user: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ReadingsQuery>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let filter = query.write_filter()?;
    let deleted = state.store.delete(&filter).await?;
    tracing::info!(user = %user.username, deleted, "readings deleted");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": deleted })))
}

/// One reading by id, or 404.
#[utoipa::path(get, path = "/api/v1/readings/{id}", operation_id = "get_reading", tag = "readings",
    params(("id" = i64, Path, description = "Reading id")),
    responses(
        (status = 200, description = "The reading", body = ReadingDto),
        (status = 400, description = "Not a 64-bit integer id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such reading", body = ErrorBody),
    ),
    security(("bearer_auth" = [])))]
pub async fn get_one(
    _user: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match state.reads.get(id).await? {
        Some(r) => Ok(HttpResponse::Ok().json(ReadingDto::from(r))),
        None => Err(ApiError::NotFound(format!("no reading with id {id}"))),
    }
}
