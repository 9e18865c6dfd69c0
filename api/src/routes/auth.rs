//! `POST /api/v1/auth/login`: username and password for an access token.

use crate::auth::{hash_password, verify_password};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use datastream_domain::Username;
use datastream_http::ApiError;
use datastream_http::JsonBody;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

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

/// A real argon2id hash of a random password, verified against when the
/// user does not exist so that unknown and known usernames take as long.
fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            hash_password(&Alphanumeric.sample_string(&mut rand::rng(), 24)).unwrap_or_default()
        })
        .clone()
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
    if username.is_empty() {
        return Err(ApiError::bad_request("username", "must not be empty"));
    }
    if password.is_empty() {
        return Err(ApiError::bad_request("password", "must not be empty"));
    }
    // Counted as a failure from here until the password proves right.
    let attempt = state
        .logins
        .begin(client, &username)
        .map_err(ApiError::TooManyRequests)?;
    let user = match Username::parse(&username) {
        Ok(name) => state.store.find_user(&name).await?,
        Err(_) => None,
    };
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let checked = state
        .passwords
        .run(move || {
            let hash = stored_hash.unwrap_or_else(dummy_hash);
            verify_password(&password, &hash)
        })
        .await;
    let Ok(matches) = checked else {
        attempt.abandoned();
        return Err(ApiError::Busy(1));
    };
    let user = match user {
        Some(u) if matches => u,
        _ => {
            drop(attempt);
            tracing::info!(username = %username.chars().take(64).collect::<String>(), %client, "login failed");
            return Err(ApiError::Unauthorized("invalid username or password"));
        }
    };
    attempt.succeeded();
    let token = state.tokens.issue(&user);
    Ok(HttpResponse::Ok().json(LoginResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: state.tokens.ttl().as_secs(),
    }))
}
