//! HTTP routes, one module per resource.

pub mod analytics;
pub mod auth;
pub mod dashboard;
pub mod export;
mod page_json;
pub mod readings;
pub mod stream;
pub mod users;

use actix_web::web;
use datastream_http::routing::{input_errors, method_not_allowed, not_found};

/// Registers every route of the API. Each path answers the methods it
/// documents, and any other method with 405 and an `Allow` header.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(input_errors)
        .service(
            web::scope("/api/v1")
                .service(
                    web::resource("/auth/login")
                        .route(web::post().to(auth::login))
                        .default_service(method_not_allowed("POST")),
                )
                .service(
                    web::resource("/readings")
                        .route(web::get().to(readings::list))
                        .route(web::patch().to(readings::update))
                        .route(web::delete().to(readings::delete))
                        .default_service(method_not_allowed("GET, PATCH, DELETE")),
                )
                // Before `/readings/{id}`, which would take these names as ids.
                .service(
                    web::resource("/readings/aggregate")
                        .route(web::get().to(analytics::aggregate))
                        .default_service(method_not_allowed("GET")),
                )
                .service(
                    web::resource("/readings/export")
                        .route(web::get().to(export::export))
                        .default_service(method_not_allowed("GET")),
                )
                .service(
                    web::resource("/readings/stream")
                        .route(web::get().to(stream::stream))
                        .default_service(method_not_allowed("GET")),
                )
                .service(
                    web::resource("/devices")
                        .route(web::get().to(analytics::devices))
                        .default_service(method_not_allowed("GET")),
                )
                .service(
                    web::resource("/readings/{id}")
                        .route(web::get().to(readings::get_one))
                        .default_service(method_not_allowed("GET")),
                )
                .service(
                    web::resource("/users")
                        .route(web::get().to(users::list))
                        .route(web::post().to(users::create))
                        .default_service(method_not_allowed("GET, POST")),
                )
                .service(
                    web::resource("/users/{username}")
                        .route(web::delete().to(users::delete))
                        .default_service(method_not_allowed("DELETE")),
                ),
        )
        .service(
            web::resource("/")
                .route(web::get().to(dashboard::index))
                .default_service(method_not_allowed("GET")),
        )
        .service(
            web::resource("/assets/{name}")
                .route(web::get().to(dashboard::asset))
                .default_service(method_not_allowed("GET")),
        )
        .configure(datastream_http::health::configure)
        .configure(datastream_http::routing::swagger_ui_redirect)
        .service(utoipa_swagger_ui::SwaggerUi::new("/swagger-ui/{_:.*}").url(
            "/api-docs/openapi.json",
            <crate::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .default_service(web::to(not_found));
}
