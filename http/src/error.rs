//! `ApiError`: every failure the API can report, and its one mapping to an
//! HTTP status and the JSON body `{"error": {"code", "message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use datastream_domain::{FilterError, StoreError};
use serde::Serialize;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Bad input; names the field.
    #[error("{field}: {message}")]
    BadRequest {
        /// The offending field or parameter.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Missing, malformed, expired or wrongly signed token; bad credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated but not allowed.
    #[error("this operation needs the {0} role")]
    Forbidden(&'static str),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but does not take this method; lists the methods it
    /// takes (the `Allow` header).
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The methods the path takes, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// The resource exists already, or the change would break an invariant.
    #[error("{0}")]
    Conflict(String),
    /// Too many failed logins from this client; retry after the seconds given.
    #[error("too many failed logins; retry in {0} s")]
    TooManyRequests(u64),
    /// The server is too busy for this request now (every password worker
    /// is taken); retry after the seconds given.
    #[error("the server is busy; retry in {0} s")]
    Busy(u64),
    /// The request's headers are larger than accepted, in bytes.
    #[error("request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The request body is larger than accepted.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A service the request needs (the database, the MQTT broker) is
    /// unreachable or did not answer in time; names it.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// Anything else; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Busy(_) => "busy",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Every error response: `{"error": {"code", "message", "field"?}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The details of an error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Machine-readable: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`,
    /// `headers_too_large`, `too_many_requests`, `busy`, `unavailable`,
    /// `internal`.
    pub code: &'a str,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field or parameter, for `bad_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error answering a request");
        }
        let field = match self {
            ApiError::BadRequest { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::TooManyRequests(secs) | ApiError::Busy(secs) => {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header(("Allow", *allow));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        })
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::bad_request(e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ApiError::Unavailable("database")
            }
            StoreError::Contention(detail) => {
                tracing::warn!(error = %detail, "database busy");
                ApiError::Unavailable("database")
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}
