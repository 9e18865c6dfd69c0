//! JWT access tokens: HS256, with `sub`, `uid`, `created`, `role`, `iat`
//! and `exp`.
//!
//! A token names its user by name *and* by account: the user's id and the
//! account's creation time. A user deleted and created again under the same
//! name is another account, and the old account's tokens do not open it
//! (issue 14: a deleted viewer's token came back as an admin's).

use datastream_domain::User;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Shortest accepted secret, in bytes (HS256 wants at least its hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_BYTES`].
    #[error("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    TooShort(usize),
    /// A well-known placeholder.
    #[error(
        "JWT_SECRET is a well-known example value; generate one, e.g. `openssl rand -base64 48`"
    )]
    KnownDefault,
}

/// Placeholders people copy from examples; never accepted as a real secret.
const KNOWN_DEFAULTS: &[&str] = &[
    "changeme-changeme-changeme-changeme",
    "change-me-to-a-long-random-secret-string",
    "secret-secret-secret-secret-secret",
    "your-256-bit-secret-your-256-bit-secret",
];

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The account's database id.
    pub uid: i64,
    /// When the account was created, in microseconds since the epoch.
    pub created: i64,
    /// `admin` or `viewer`.
    pub role: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
}

/// Signs and checks tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Builds keys from a secret, refusing short or well-known ones.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(secret.len()));
        }
        if KNOWN_DEFAULTS.iter().any(|d| d.as_bytes() == secret) {
            return Err(SecretError::KnownDefault);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })
    }

    /// How long issued tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `user` with their role, valid for the TTL.
    pub fn issue(&self, user: &User) -> String {
        let iat = jsonwebtoken::get_current_timestamp();
        self.sign(&Claims {
            sub: user.username.as_str().to_owned(),
            uid: user.id,
            created: user.created_at.timestamp_micros(),
            role: user.role.as_str().to_owned(),
            iat,
            exp: iat + self.ttl.as_secs(),
        })
    }

    /// Signs arbitrary claims (tests use this for expired tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Verifies signature, algorithm and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_domain::Role;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], Duration::from_secs(3600)).unwrap()
    }

    fn user(name: &str, role: Role) -> User {
        User {
            id: 7,
            created_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            username: datastream_domain::Username::parse(name).unwrap(),
            password_hash: String::new(),
            role,
        }
    }

    fn claims(role: &str, iat: u64, exp: u64) -> Claims {
        Claims {
            sub: "a".into(),
            uid: 1,
            created: 0,
            role: role.into(),
            iat,
            exp,
        }
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let k = keys();
        let claims = k.verify(&k.issue(&user("alice", Role::Viewer))).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!((claims.uid, claims.created), (7, 1_700_000_000_123_456));
        assert_eq!(claims.role, "viewer");
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let k = keys();
        let now = jsonwebtoken::get_current_timestamp();
        let t = k.sign(&claims("admin", now - 7200, now - 60));
        assert!(k.verify(&t).is_none());
    }

    #[test]
    fn tokens_signed_with_another_secret_are_rejected() {
        let other = TokenKeys::new(&[8u8; 32], Duration::from_secs(60)).unwrap();
        assert!(keys()
            .verify(&other.issue(&user("a", Role::Admin)))
            .is_none());
    }

    #[test]
    fn alg_none_tokens_are_rejected() {
        // {"alg":"none","typ":"JWT"} . {"sub":"a","role":"admin","iat":1,"exp":99999999999} .
        let t = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwicm9sZSI6ImFkbWluIiwiaWF0IjoxLCJleHAiOjk5OTk5OTk5OTk5fQ.";
        assert!(keys().verify(t).is_none());
    }

    #[test]
    fn tokens_signed_with_another_algorithm_are_rejected() {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = claims("admin", now, now + 60);
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(keys().verify(&hs384).is_none());
    }

    #[test]
    fn short_and_known_secrets_are_refused() {
        assert_eq!(
            TokenKeys::new(b"short", Duration::from_secs(1)).unwrap_err(),
            SecretError::TooShort(5)
        );
        assert_eq!(
            TokenKeys::new(KNOWN_DEFAULTS[0].as_bytes(), Duration::from_secs(1)).unwrap_err(),
            SecretError::KnownDefault
        );
    }
}
