//! `/api/v1/readings`: list (filters, cursor or page), one by id, and edit
//! or delete by filter.

use super::page_json::write_readings_page;
use crate::reading_conditions::{
    ConditionKind, ConditionsOf, ConditionsQuery, EndpointParams, NoParams,
};
pub use crate::reading_record::ReadingDto;
use crate::state::AppState;
use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use datastream_domain::{check_sensor_value, FilterParams, PageCursor, ReadingFilter};
use datastream_http::openapi::NotAnAdmin;
use datastream_http::ApiError;
use datastream_http::ErrorBody;
use datastream_http::JsonBody;
use datastream_http::{Admin, Authenticated};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The paging parameters of `/api/v1/readings`, beside its conditions
/// (`reading_conditions.rs`). Edits and deletes take none of them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// By time: `asc` or `desc` (default).
    #[param(value_type = Option<SortOrder>)]
    order: Option<String>,
    /// `next_cursor` of the previous page, unchanged; not with `page`.
    cursor: Option<String>,
    /// 1-based page number (offset paging; slower at depth).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 4294967295u32)]
    page: Option<String>,
}

impl EndpointParams for ListParams {
    const HONOURS: &'static [ConditionKind] = ConditionKind::ALL;
    const REFUSAL: &'static str = "does not apply to lists";
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

/// The filter a list request describes, with the cursor verified.
fn list_filter(
    query: &ConditionsQuery<ListParams>,
    state: &AppState,
) -> Result<ReadingFilter, ApiError> {
    let own = &query.own;
    let params = FilterParams {
        limit: own.limit.as_deref(),
        order: own.order.as_deref(),
        page: own.page.as_deref(),
        ..query.conditions.filter_params()
    };
    let filter = ReadingFilter::parse(params, Utc::now())?;
    match &own.cursor {
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

/// The filter for an edit or delete: conditions required.
fn write_filter(query: &ConditionsQuery<NoParams>) -> Result<ReadingFilter, ApiError> {
    let filter = ReadingFilter::parse(query.conditions.filter_params(), Utc::now())?;
    if !filter.has_conditions() {
        return Err(ApiError::bad_request(
            "filter",
            "refusing to change every reading: give at least one of id1, id2, sensor_type, from, to, duration",
        ));
    }
    Ok(filter)
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
    params(ConditionsOf<ListParams>, ListParams),
    responses(
        (status = 200, description = "One page of matching readings", body = ReadingsPage),
        (status = 400, description = "A bad parameter, named in `field`", body = ErrorBody),
    ))]
pub async fn list(
    _user: Authenticated,
    state: web::Data<AppState>,
    query: ConditionsQuery<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let filter = list_filter(&query, &state)?;
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
    params(ConditionsOf<NoParams>),
    request_body = ReadingPatch,
    responses(
        (status = 200, description = "`{\"updated\": n}`", body = Object, example = json!({"updated": 42})),
        (status = 400, description = "Empty filter or bad parameter, named", body = ErrorBody),
        NotAnAdmin,
    ))]
pub async fn update(
    user: Admin,
    state: web::Data<AppState>,
    query: ConditionsQuery<NoParams>,
    body: JsonBody<ReadingPatch>,
) -> Result<HttpResponse, ApiError> {
    let filter = write_filter(&query)?;
    check_sensor_value(body.sensor_value)
        .map_err(|e| ApiError::bad_request("sensor_value", e.to_string()))?;
    let updated = state.store.update_value(&filter, body.sensor_value).await?;
    tracing::info!(user = %user.username, updated, "readings edited");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "updated": updated })))
}

/// Deletes every reading matching the filters (admin). Refuses an empty
/// filter; works in chunks of 1000 rows.
#[utoipa::path(delete, path = "/api/v1/readings", operation_id = "delete_readings", tag = "readings",
    params(ConditionsOf<NoParams>),
    responses(
        (status = 200, description = "`{\"deleted\": n}`", body = Object, example = json!({"deleted": 42})),
        (status = 400, description = "Empty filter or bad parameter, named", body = ErrorBody),
        NotAnAdmin,
    ))]
pub async fn delete(
    user: Admin,
    state: web::Data<AppState>,
    query: ConditionsQuery<NoParams>,
) -> Result<HttpResponse, ApiError> {
    let filter = write_filter(&query)?;
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
        (status = 404, description = "No such reading", body = ErrorBody),
    ))]
pub async fn get_one(
    _user: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match state.reads.get(id).await? {
        Some(r) => Ok(HttpResponse::Ok().json(ReadingDto::from(&r))),
        None => Err(ApiError::NotFound(format!("no reading with id {id}"))),
    }
}
