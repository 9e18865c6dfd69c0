//! `AppState`: what every handler shares.

use crate::auth::{LoginThrottle, PasswordWorkers, UserDirectory};
use crate::cursor::CursorCodec;
use crate::generator_link::GeneratorLink;
use crate::live::LiveReadings;
use datastream_http::auth::{SecretError, TokenKeys, TokenVerifier};
use datastream_store::SharedStore;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    /// The database (primary): writes, users, logins.
    pub store: SharedStore,
    /// Where reading lists and lookups go: a read replica, or the primary.
    pub reads: SharedStore,
    /// Token signing and verification.
    pub tokens: TokenKeys,
    /// Page cursors, signed with the same secret.
    pub cursors: CursorCodec,
    /// Current users and roles.
    pub users: Arc<UserDirectory>,
    /// Failed-login budgets per client and per user name.
    pub logins: Arc<LoginThrottle>,
    /// Where passwords are hashed and checked, a few at a time.
    pub passwords: Arc<PasswordWorkers>,
    /// Readings as they arrive from the broker, for live streams; `None`
    /// when this process has no broker to listen to.
    pub live: Option<LiveReadings>,
    /// The generator service `/api/v1/generators` is passed on to; `None`:
    /// those paths answer 404.
    pub generators: Option<GeneratorLink>,
}

impl AppState {
    /// State for `store`, signing tokens (valid for `token_ttl`) and cursors
    /// with `secret`; refuses a weak secret.
    pub fn new(
        store: SharedStore,
        secret: &[u8],
        token_ttl: Duration,
    ) -> Result<Self, SecretError> {
        Ok(Self {
            tokens: TokenKeys::new(secret, token_ttl)?,
            cursors: CursorCodec::new(secret),
            users: Arc::new(UserDirectory::new(store.clone())),
            logins: Arc::new(LoginThrottle::default()),
            passwords: Arc::new(PasswordWorkers::for_this_machine()),
            reads: store.clone(),
            live: None,
            generators: None,
            store,
        })
    }

    /// How bearer tokens are checked: signature, expiry, and the user
    /// still existing.
    pub fn token_verifier(&self) -> TokenVerifier {
        TokenVerifier::new(self.tokens.clone(), Some(self.users.clone()))
    }

    /// Sends reading lists and lookups to `replica` (`DATABASE_READ_URL`).
    /// A replica lags its primary: a reading edited a moment ago may show
    /// its old value there for that long.
    pub fn with_read_replica(mut self, replica: SharedStore) -> Self {
        self.reads = replica;
        self
    }

    /// Passes `/api/v1/generators` on to the generator service at `link`.
    pub fn with_generator_service(mut self, link: GeneratorLink) -> Self {
        self.generators = Some(link);
        self
    }

    /// Serves live streams from `live`, which the caller feeds from the
    /// broker.
    pub fn with_live_readings(mut self, live: LiveReadings) -> Self {
        self.live = Some(live);
        self
    }
}
