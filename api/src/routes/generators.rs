//! `/api/v1/generators`: the generator service's REST API, passed on
//! ([`crate::generator_link`]) so the dashboard manages generators from the
//! API's origin. Documented in the generator service's own OpenAPI
//! document, not this one: the service decides what each request means.

use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use datastream_http::{ApiError, Authenticated};

/// Bodies passed on are generator configs: small.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Passes the request on to the generator service and its answer back.
pub async fn forward(
    _user: Authenticated,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let link = state.generators.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "this API has no generator service to pass requests to (GENERATORS_URL is not set)"
                .into(),
        )
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "body",
            format!("a generator body is at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
        .map_err(|_| ApiError::bad_request("method", "not an HTTP method".to_owned()))?;
    let authorization = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = request
        .uri()
        .path_and_query()
        .map_or(request.path(), |p| p.as_str());
    let answer = link
        .forward(method, path, authorization, body.to_vec())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "generator service request failed");
            ApiError::Unavailable("the generator service did not answer; try again")
        })?;
    let mut response = HttpResponse::build(answer.status);
    if let Some(content_type) = answer.content_type {
        response.content_type(content_type);
    }
    Ok(response.body(answer.body))
}
