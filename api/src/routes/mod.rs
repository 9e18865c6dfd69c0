//! HTTP routes, one module per resource.

pub mod auth;
pub mod health;
mod page_json;
pub mod readings;
pub mod users;

use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(input_errors)
        .service(
            web::scope("/api/v1")
                .route("/auth/login", web::post().to(auth::login))
                .route("/readings", web::get().to(readings::list))
                .route("/readings", web::patch().to(readings::update))
                .route("/readings", web::delete().to(readings::delete))
                .route("/readings/{id}", web::get().to(readings::get_one))
                .route("/users", web::get().to(users::list))
                .route("/users", web::post().to(users::create))
                .route("/users/{username}", web::delete().to(users::delete)),
        )
        .configure(health::configure)
        .service(utoipa_swagger_ui::SwaggerUi::new("/swagger-ui/{_:.*}").url(
            "/api-docs/openapi.json",
            <crate::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .default_service(web::to(not_found));
}

/// Makes JSON body, query string and path errors API errors: 413 for an
/// oversized body, else 400 naming the field. Every server of the project
/// registers this so bad input is answered the same way everywhere.
pub fn input_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_JSON_BODY)
            .error_handler(|err, _req| json_error(err).into()),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|err, _req| query_error(&err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::bad_request("path", err.to_string()).into()),
    );
}

/// Largest JSON request body accepted.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// A JSON body error as the API reports it: 413 when too large, else 400
/// naming the field serde complained about when it can tell.
fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError;
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge(MAX_JSON_BODY)
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request("body", "Content-Type must be application/json")
        }
        other => {
            let message = other.to_string();
            let field = message
                .split('`')
                .nth(1)
                .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or("body")
                .to_owned();
            ApiError::bad_request(field, message)
        }
    }
}

/// Names the parameter serde complained about when it can tell.
fn query_error(message: &str) -> ApiError {
    let field = message
        .split('`')
        .nth(1)
        .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or("query");
    ApiError::bad_request(field, message)
}

/// Every unknown path: a JSON 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
