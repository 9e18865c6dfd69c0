//! HTTP routes, one module per resource.

pub mod auth;
pub mod health;
pub mod readings;

use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _req| ApiError::bad_request("body", err.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|err, _req| query_error(&err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::bad_request("path", err.to_string()).into()),
    )
    .service(
        web::scope("/api/v1")
            .route("/auth/login", web::post().to(auth::login))
            .route("/readings", web::get().to(readings::list))
            .route("/readings/{id}", web::get().to(readings::get_one)),
    )
    .configure(health::configure)
    .default_service(web::to(not_found));
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
