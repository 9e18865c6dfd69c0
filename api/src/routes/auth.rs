//! `POST /api/v1/auth/login`: username and password for an access token.

use crate::auth::SignInError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use datastream_http::ApiError;
use datastream_http::JsonBody;
use serde::{Deserialize, Serialize};

/// Login request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username (compared without case).
    #[schema(min_length = 1, example = "admin")]
    pub username: String,
    /// Password.
    #[schema(min_length = 1)]
    pub password: String,
}

/// Login response body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Checks the credentials and issues a token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "An access token", body = LoginResponse),
        (status = 400, description = "Missing field, named", body = datastream_http::ErrorBody),
        (status = 401, description = "Wrong username or password", body = datastream_http::ErrorBody),
        (status = 429, description = "Too many failed logins from this client or for this user name; `Retry-After` says when to try again", body = datastream_http::ErrorBody),
        (status = 503, description = "Too many logins at once; `Retry-After` says when to try again", body = datastream_http::ErrorBody),
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let LoginRequest { username, password } = body.into_inner();
    let token = state
        .sign_in(client, &username, password)
        .await
        .map_err(|e| match e {
            SignInError::Empty(field) => ApiError::bad_request(field, "must not be empty"),
            SignInError::Throttled(secs) => ApiError::TooManyRequests(secs),
            SignInError::Busy => ApiError::Busy(1),
            SignInError::Refused => ApiError::Unauthorized("invalid username or password"),
            SignInError::Store(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        access_token: token.access_token,
        token_type: "Bearer".into(),
        expires_in: token.expires_in,
    }))
}
