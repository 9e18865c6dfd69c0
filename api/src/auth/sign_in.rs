//! Signing in: a user name and password for an access token, with the
//! throttle and the password workers — one procedure for every door (REST
//! `POST /auth/login`, gRPC `Auth.Login`).

use super::{hash_password, verify_password};
use crate::state::AppState;
use datastream_domain::{StoreError, Username};
use rand::distr::{Alphanumeric, SampleString};
use std::net::IpAddr;
use std::sync::OnceLock;

/// A token issued to a user who signed in.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Why signing in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// `username` or `password` was empty.
    #[error("{0}: must not be empty")]
    Empty(&'static str),
    /// Too many failures from this client or for this name: retry after
    /// this many seconds.
    #[error("too many failed sign-ins; try again in {0} s")]
    Throttled(u64),
    /// Too many password checks at once: retry after a second.
    #[error("too many sign-ins at once; try again in a second")]
    Busy,
    /// Wrong name or password (which, is not said).
    #[error("invalid username or password")]
    Refused,
    /// The user store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

impl AppState {
    /// Checks `username` and `password` from `client` and issues a token.
    /// An attempt counts as a failure against the throttle until the
    /// password proves right.
    pub async fn sign_in(
        &self,
        client: IpAddr,
        username: &str,
        password: String,
    ) -> Result<IssuedToken, SignInError> {
        if username.is_empty() {
            return Err(SignInError::Empty("username"));
        }
        if password.is_empty() {
            return Err(SignInError::Empty("password"));
        }
        let attempt = self
            .logins
            .begin(client, username)
            .map_err(SignInError::Throttled)?;
        let user = match Username::parse(username) {
            Ok(name) => self.store.find_user(&name).await?,
            Err(_) => None,
        };
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let checked = self
            .passwords
            .run(move || {
                let hash = stored_hash.unwrap_or_else(dummy_hash);
                verify_password(&password, &hash)
            })
            .await;
        let Ok(matches) = checked else {
            attempt.abandoned();
            return Err(SignInError::Busy);
        };
        let user = match user {
            Some(u) if matches => u,
            _ => {
                drop(attempt);
                tracing::info!(username = %username.chars().take(64).collect::<String>(), %client, "login failed");
                return Err(SignInError::Refused);
            }
        };
        attempt.succeeded();
        Ok(IssuedToken {
            access_token: self.tokens.issue(&user),
            expires_in: self.tokens.ttl().as_secs(),
        })
    }
}
