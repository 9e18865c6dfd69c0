//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! request/response types, and the Swagger UI that serves it (all assets
//! compiled into the binary: no network at build time or in the browser).

use crate::reading_record;
use crate::routes::{
    alert_stream, alerts, analytics, auth, export, readings, sensor_types, stream, users,
};
use datastream_http::error::{ErrorBody, ErrorDetail};
use datastream_http::health;
use datastream_http::openapi::BearerAuth;
use utoipa::OpenApi;

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "datastream", description = "Sensor readings: query, aggregate, export, watch live, edit and delete them; the device catalog and the sensor-type catalog; alert rules and alerts; manage users."),
    paths(
        auth::login,
        readings::list, readings::get_one, readings::update, readings::delete,
        analytics::aggregate, analytics::devices, export::export, stream::stream,
        users::list, users::create, users::update, users::delete,
        sensor_types::list, sensor_types::put, sensor_types::delete,
        alerts::list_rules, alerts::create_rule, alerts::get_rule, alerts::update_rule, alerts::delete_rule,
        alerts::list_alerts, alerts::get_alert, alerts::deliveries, alert_stream::stream,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(
        reading_record::ReadingDto, readings::ReadingsPage, readings::PageInfo, readings::ReadingPatch,
        auth::LoginRequest, auth::LoginResponse,
        users::UserDto, users::NewUser, users::UserPatch, users::RoleDto, readings::SortOrder,
        analytics::AggregateResponse, analytics::BucketDto, analytics::GroupByDto,
        analytics::DevicesResponse, analytics::DeviceDto, analytics::GroupPageDto, export::ExportFormat, reading_record::LiveReadingDto, stream::StreamEvent, stream::StreamEventName,
        sensor_types::SensorTypeDto, sensor_types::SensorTypeBody,
        alerts::AlertRuleBody, alerts::AlertRuleDto, alerts::AlertDto, alerts::AlertsPage, alerts::DeliveryDto, alert_stream::AlertStreamEvent,
        ErrorBody, ErrorDetail,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in for a bearer token"),
        (name = "readings", description = "Sensor readings"),
        (name = "analytics", description = "Time-bucket aggregates, the device catalog, streamed export"),
        (name = "users", description = "Users and roles (admin)"),
        (name = "sensor-types", description = "Units, display names and expected ranges of sensor types"),
        (name = "alerts", description = "Alert rules (admins write), the alert history and delivery attempts"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;
