//! `GET /api/v1/readings` and `GET /api/v1/readings/{id}`.

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use datastream_schema::wire::format_timestamp;
use datastream_schema::{FilterParams, ReadingFilter, StoredReading};
use serde::{Deserialize, Serialize};

/// Query parameters of `GET /api/v1/readings`, as received.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingsQuery {
    id1: Option<String>,
    id2: Option<String>,
    sensor_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    duration: Option<String>,
    limit: Option<String>,
    order: Option<String>,
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
        }
    }
}

/// A reading as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub timestamp: String,
    /// When it was stored.
    pub created_at: String,
    /// When it was last changed.
    pub updated_at: String,
}

impl From<StoredReading> for ReadingDto {
    fn from(r: StoredReading) -> Self {
        Self {
            id: r.id,
            sensor_value: r.sensor_value,
            sensor_type: r.sensor_type,
            id1: r.id1,
            id2: r.id2,
            timestamp: format_timestamp(r.timestamp),
            created_at: format_timestamp(r.created_at),
            updated_at: format_timestamp(r.updated_at),
        }
    }
}

/// Paging information of a list response.
#[derive(Debug, Serialize, Deserialize)]
pub struct PageInfo {
    /// The page size used.
    pub limit: u32,
    /// Cursor for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `GET /api/v1/readings`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadingsPage {
    /// The readings.
    pub data: Vec<ReadingDto>,
    /// Paging.
    pub page: PageInfo,
}

/// Lists readings matching the filters.
pub async fn list(
    _user: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ReadingsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = ReadingFilter::parse(query.params(), Utc::now())?;
    let rows = state.store.query(&filter).await?;
    Ok(HttpResponse::Ok().json(ReadingsPage {
        data: rows.into_iter().map(ReadingDto::from).collect(),
        page: PageInfo {
            limit: filter.limit(),
            next_cursor: None,
        },
    }))
}

/// One reading by id, or 404.
pub async fn get_one(
    _user: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match state.store.get(id).await? {
        Some(r) => Ok(HttpResponse::Ok().json(ReadingDto::from(r))),
        None => Err(ApiError::NotFound(format!("no reading with id {id}"))),
    }
}
