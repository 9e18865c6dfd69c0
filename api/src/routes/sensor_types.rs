//! `/api/v1/sensor-types`: the sensor-type catalog — units, display names
//! and expected ranges. Everyone reads it; admins change it.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use datastream_domain::sensor_catalog::{catalog_with_seen, ExpectedRange, SensorTypeInfo};
use datastream_domain::SensorType;
use datastream_http::error::{ApiError, ErrorBody};
use datastream_http::openapi::NotAnAdmin;
use datastream_http::{Admin, Authenticated, JsonBody};
use serde::{Deserialize, Serialize};

/// One sensor type as the catalog describes it.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SensorTypeDto {
    /// The type, as in readings and topics.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$", example = "temperature")]
    pub name: String,
    /// Its unit, or null when not catalogued.
    #[schema(example = "°C")]
    pub unit: Option<String>,
    /// A name for people, or null.
    #[schema(example = "Temperature")]
    pub display_name: Option<String>,
    /// The lowest value to expect, or null.
    pub expected_min: Option<f64>,
    /// The highest value to expect, or null.
    pub expected_max: Option<f64>,
    /// Whether the catalog has an entry for it (false: seen in readings
    /// only).
    pub catalogued: bool,
    /// Whether any reading of it is stored.
    pub has_readings: bool,
}

impl SensorTypeDto {
    fn new(info: &SensorTypeInfo, catalogued: bool, has_readings: bool) -> Self {
        Self {
            name: info.name.as_str().to_owned(),
            unit: info.unit.clone(),
            display_name: info.display_name.clone(),
            expected_min: info.expected.map(|r| r.min()),
            expected_max: info.expected.map(|r| r.max()),
            catalogued,
            has_readings,
        }
    }
}

/// Body of `PUT /api/v1/sensor-types/{name}`: the whole entry; a field
/// left out is cleared.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SensorTypeBody {
    /// 1 to 16 printable characters.
    #[schema(min_length = 1, max_length = 16, example = "°C")]
    pub unit: Option<String>,
    /// 1 to 64 printable characters.
    #[schema(min_length = 1, max_length = 64, example = "Temperature")]
    pub display_name: Option<String>,
    /// The lowest value to expect; goes with `expected_max`.
    #[schema(minimum = -1e15, maximum = 1e15, example = -40.0)]
    pub expected_min: Option<f64>,
    /// The highest value to expect, above `expected_min`.
    #[schema(minimum = -1e15, maximum = 1e15, example = 85.0)]
    pub expected_max: Option<f64>,
}

/// The catalog: every catalogued type, and every type seen in stored
/// readings but not catalogued (with no unit), by name.
#[utoipa::path(get, path = "/api/v1/sensor-types", operation_id = "list_sensor_types", tag = "sensor-types",
    responses(
        (status = 200, description = "Every known sensor type", body = Vec<SensorTypeDto>),
    ))]
pub async fn list(
    _user: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let catalogued = state.store.sensor_types().await?;
    let seen = state.store.seen_sensor_types().await?;
    let names: Vec<SensorType> = catalogued.iter().map(|e| e.name.clone()).collect();
    let all: Vec<SensorTypeDto> = catalog_with_seen(catalogued, seen.iter().cloned())
        .iter()
        .map(|e| SensorTypeDto::new(e, names.contains(&e.name), seen.contains(&e.name)))
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

/// Creates or replaces a type's entry (admin). Readings are not touched.
#[utoipa::path(put, path = "/api/v1/sensor-types/{name}", operation_id = "put_sensor_type", tag = "sensor-types",
    params(("name" = String, Path, description = "The sensor type", pattern = r"^[a-z0-9_-]{1,64}$")),
    request_body = SensorTypeBody,
    responses(
        (status = 200, description = "The entry as stored", body = SensorTypeDto),
        (status = 400, description = "Bad field, named", body = ErrorBody),
        NotAnAdmin,
    ))]
pub async fn put(
    user: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: JsonBody<SensorTypeBody>,
) -> Result<HttpResponse, ApiError> {
    let name = parse_name(&name)?;
    let body = body.into_inner();
    let bad = |e: datastream_domain::CatalogError| ApiError::bad_request(e.field(), e.to_string());
    let expected = ExpectedRange::from_bounds(body.expected_min, body.expected_max).map_err(bad)?;
    let info = SensorTypeInfo::new(
        name,
        body.unit.as_deref(),
        body.display_name.as_deref(),
        expected,
    )
    .map_err(bad)?;
    state.store.put_sensor_type(&info).await?;
    tracing::info!(by = %user.username, sensor_type = info.name.as_str(), "sensor type catalogued");
    let has_readings = state.store.seen_sensor_types().await?.contains(&info.name);
    Ok(HttpResponse::Ok().json(SensorTypeDto::new(&info, true, has_readings)))
}

/// Deletes a type's entry (admin); its readings stay, listed with no unit.
#[utoipa::path(delete, path = "/api/v1/sensor-types/{name}", operation_id = "delete_sensor_type", tag = "sensor-types",
    params(("name" = String, Path, description = "The sensor type", pattern = r"^[a-z0-9_-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a sensor type", body = ErrorBody),
        NotAnAdmin,
        (status = 404, description = "Not in the catalog", body = ErrorBody),
    ))]
pub async fn delete(
    user: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = parse_name(&name)?;
    if !state.store.delete_sensor_type(&name).await? {
        return Err(ApiError::NotFound(format!(
            "sensor type {} is not in the catalog",
            name.as_str()
        )));
    }
    tracing::info!(by = %user.username, sensor_type = name.as_str(), "sensor type removed from the catalog");
    Ok(HttpResponse::NoContent().finish())
}

fn parse_name(name: &str) -> Result<SensorType, ApiError> {
    SensorType::parse(name).map_err(|e| ApiError::bad_request("name", e.to_string()))
}
