//! HTTP routes, one module per resource.

pub mod alert_stream;
pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod dashboard;
pub mod export;
pub mod generators;
mod page_json;
pub mod readings;
pub mod sensor_types;
pub mod stream;
pub mod users;

use actix_web::web;
use datastream_http::resource;
use datastream_http::routing::{input_errors, not_found};

/// Registers every route of the API. Each path answers the methods it
/// documents, and any other method with 405 and an `Allow` header.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let api = web::scope("/api/v1")
        .service(resource!("/auth/login", POST => auth::login))
        .service(resource!("/readings",
            GET => readings::list, PATCH => readings::update, DELETE => readings::delete))
        // Before `/readings/{id}`, which would take these names as ids.
        .service(resource!("/readings/aggregate", GET => analytics::aggregate))
        .service(resource!("/readings/export", GET => export::export))
        .service(resource!("/readings/stream", GET => stream::stream))
        .service(resource!("/devices", GET => analytics::devices))
        .service(resource!("/readings/{id}", GET => readings::get_one))
        .service(resource!("/users", GET => users::list, POST => users::create))
        .service(resource!("/users/{username}", PATCH => users::update, DELETE => users::delete))
        .service(resource!("/sensor-types", GET => sensor_types::list))
        .service(resource!("/generators", GET => generators::forward, POST => generators::forward))
        .service(resource!("/generators/{name}",
            GET => generators::forward, PATCH => generators::forward, DELETE => generators::forward))
        .service(resource!("/alert-rules", GET => alerts::list_rules, POST => alerts::create_rule))
        .service(resource!("/alert-rules/{id}",
            GET => alerts::get_rule, PATCH => alerts::update_rule, DELETE => alerts::delete_rule))
        .service(resource!("/alerts", GET => alerts::list_alerts))
        // Before `/alerts/{id}`, which would take `stream` as an id.
        .service(resource!("/alerts/stream", GET => alert_stream::stream))
        .service(resource!("/alerts/{id}", GET => alerts::get_alert))
        .service(resource!("/alerts/{id}/deliveries", GET => alerts::deliveries))
        .service(resource!("/sensor-types/{name}",
            PUT => sensor_types::put, DELETE => sensor_types::delete));
    cfg.configure(input_errors)
        .service(api)
        .service(resource!("/", GET => dashboard::index))
        .service(resource!("/assets/{name}", GET => dashboard::asset))
        .configure(datastream_http::health::configure)
        .configure(datastream_http::routing::swagger_ui_redirect)
        .service(utoipa_swagger_ui::SwaggerUi::new("/swagger-ui/{_:.*}").url(
            "/api-docs/openapi.json",
            <crate::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .default_service(web::to(not_found));
}
