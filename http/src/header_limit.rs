//! Requests whose headers are larger than [`MAX_HEADER_BYTES`] in all get
//! 431 Request Header Fields Too Large, before any handler runs.
//!
//! actix-web accepts up to 128 KiB of headers; nothing this API reads needs
//! more than a bearer token (~400 bytes), and large headers cost memory on
//! every worker they reach.

use crate::error::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

/// Largest total size of a request's header names and values.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Middleware (`middleware::from_fn`) answering 431 to oversized headers.
pub async fn reject_large_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        let response = ApiError::HeadersTooLarge(MAX_HEADER_BYTES).error_response();
        return Ok(req.into_response(response));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
