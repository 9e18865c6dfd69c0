//! Authentication: argon2 passwords, JWT access tokens, and the extractor
//! that turns a request's bearer token into an [`Authenticated`] user.

mod password;
mod token;

pub use password::{hash_password, verify_password};
pub use token::{Claims, SecretError, TokenKeys, MIN_SECRET_BYTES};

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use datastream_schema::Role;
use std::future::{ready, Ready};

/// The caller, proven by a valid bearer token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Username (`sub`).
    pub username: String,
    /// Role from the token.
    pub role: Role,
}

impl Authenticated {
    /// Succeeds for admins only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(ApiError::Forbidden("admin")),
        }
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("AppState missing".into()))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthorized(
            "Authorization header must be `Bearer <token>`",
        ))?;
    let claims = state
        .tokens
        .verify(token)
        .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
    let role = Role::parse(&claims.role).map_err(|_| ApiError::Unauthorized("invalid token"))?;
    Ok(Authenticated {
        username: claims.sub,
        role,
    })
}
