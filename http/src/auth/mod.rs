//! Bearer tokens: HS256 JWTs ([`TokenKeys`]) and the extractor that turns
//! a request's token into an [`Authenticated`] user, asking an
//! [`AccountDirectory`] (when the service has one) whether the token's
//! account still exists and with which role.

mod token;

pub use token::{Claims, SecretError, TokenKeys, MIN_SECRET_BYTES};

use crate::error::ApiError;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use async_trait::async_trait;
use datastream_domain::{Role, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The account a user name belongs to now, as tokens identify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// Its database id.
    pub id: i64,
    /// Its creation time, in microseconds since the epoch.
    pub created: i64,
    /// Its current role.
    pub role: Role,
}

/// Where a service looks up the account behind a token's user name.
#[async_trait]
pub trait AccountDirectory: Send + Sync {
    /// The account named `username` now, or `None` if there is none.
    async fn account(&self, username: &str) -> Result<Option<Account>, StoreError>;
}

/// What the [`Authenticated`] extractor checks tokens with; every server
/// that accepts bearer tokens registers one as app data.
#[derive(Clone)]
pub struct TokenVerifier {
    tokens: TokenKeys,
    users: Option<Arc<dyn AccountDirectory>>,
}

impl TokenVerifier {
    /// Verifies signatures and expiry with `tokens` and, when given,
    /// confirms with `users` that the token's user still exists (and takes
    /// their current role from there). Without a directory the role comes
    /// from the token and holds until it expires.
    pub fn new(tokens: TokenKeys, users: Option<Arc<dyn AccountDirectory>>) -> Self {
        Self { tokens, users }
    }

    /// The role now of the account a token names (`username`, its id and
    /// creation time), or `None` when that account no longer exists. The
    /// token proves who signed in; the directory says whether that account
    /// (not merely its name) still exists, and with which role now. Without
    /// a directory, `token_role` holds until the token expires.
    async fn current_role(
        &self,
        username: &str,
        account_id: i64,
        account_created: i64,
        token_role: Role,
    ) -> Result<Option<Role>, StoreError> {
        let Some(users) = &self.users else {
            return Ok(Some(token_role));
        };
        Ok(users
            .account(username)
            .await?
            .filter(|a| a.id == account_id && a.created == account_created)
            .map(|a| a.role))
    }
}

/// The caller, proven by a valid bearer token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Username (`sub`).
    pub username: String,
    /// Role from the token.
    pub role: Role,
    /// When the token expires, in seconds since the epoch (`exp`): a
    /// long-lived response such as a stream ends then.
    pub expires_at: u64,
    /// The account the token names, to check later that it still exists.
    pub account_id: i64,
    /// That account's creation time (microseconds), part of its identity.
    pub account_created: i64,
}

impl Authenticated {
    /// Whether the account this token was issued to still exists, asking
    /// the verifier's directory (always true for a service without one).
    pub async fn still_valid(&self, verifier: &TokenVerifier) -> Result<bool, StoreError> {
        let role = verifier
            .current_role(
                &self.username,
                self.account_id,
                self.account_created,
                self.role,
            )
            .await?;
        Ok(role.is_some())
    }
}

/// The caller, proven by a valid bearer token to be an admin: handlers that
/// write take this instead of [`Authenticated`], so a viewer is refused
/// with 403 before anything else of the request is looked at. Document the
/// refusal with [`crate::openapi::NotAnAdmin`].
#[derive(Debug, Clone)]
pub struct Admin(pub Authenticated);

impl std::ops::Deref for Admin {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            match user.role {
                Role::Admin => Ok(Admin(user)),
                Role::Viewer => Err(ApiError::Forbidden("admin")),
            }
        })
    }
}

/// Why a bearer token was refused. The `Display` text is what the caller
/// is told (a 401 over HTTP, `UNAUTHENTICATED` over gRPC).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No `Authorization` header (or `authorization` metadata).
    #[error("missing bearer token")]
    Missing,
    /// Something other than `Bearer <token>`.
    #[error("Authorization header must be `Bearer <token>`")]
    NotBearer,
    /// A bad signature, an expired token, or claims that do not parse.
    #[error("invalid or expired token")]
    Invalid,
    /// The account the token names is gone.
    #[error("the token's user no longer exists")]
    UserGone,
}

/// A refused token, or a directory that could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    /// The token is not good.
    #[error(transparent)]
    Refused(#[from] TokenRefusal),
    /// The account directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenVerifier {
    /// The caller an `Authorization` value (`Bearer <token>`) proves, for
    /// every transport that carries one: the signature and expiry checked,
    /// the account confirmed and its role now taken from the directory.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Authenticated, AuthenticationError> {
        let header = authorization.ok_or(TokenRefusal::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(TokenRefusal::NotBearer)?;
        let claims = self.tokens.verify(token).ok_or(TokenRefusal::Invalid)?;
        let token_role = Role::parse(&claims.role).map_err(|_| TokenRefusal::Invalid)?;
        let role = self
            .current_role(&claims.sub, claims.uid, claims.created, token_role)
            .await?
            .ok_or(TokenRefusal::UserGone)?;
        Ok(Authenticated {
            username: claims.sub,
            role,
            expires_at: claims.exp,
            account_id: claims.uid,
            account_created: claims.created,
        })
    }
}

impl From<AuthenticationError> for ApiError {
    fn from(e: AuthenticationError) -> Self {
        match e {
            AuthenticationError::Refused(refusal) => ApiError::Unauthorized(match refusal {
                TokenRefusal::Missing => "missing bearer token",
                TokenRefusal::NotBearer => "Authorization header must be `Bearer <token>`",
                TokenRefusal::Invalid => "invalid or expired token",
                TokenRefusal::UserGone => "the token's user no longer exists",
            }),
            AuthenticationError::Store(e) => e.into(),
        }
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        // A header that is not text is as good as none.
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|h| h.to_str().map(str::to_owned).unwrap_or_default());
        Box::pin(async move {
            let verifier =
                verifier.ok_or_else(|| ApiError::Internal("TokenVerifier missing".into()))?;
            Ok(verifier.authenticate(header.as_deref()).await?)
        })
    }
}
