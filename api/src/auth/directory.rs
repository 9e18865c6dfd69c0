//! `UserDirectory`: who may use a token right now. Tokens name an account;
//! the directory confirms that account still exists (the same id and
//! creation time under that name, not a later account of the same name)
//! and gives its current role, caching answers briefly so a request costs
//! no database round trip.

use async_trait::async_trait;
use datastream_domain::{StoreError, Username};
use datastream_http::auth::{Account, AccountDirectory};
use datastream_store::SharedStore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an answer is reused. A deleted user's tokens stop working on
/// this replica at once and on other replicas within this time.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(5);

/// Current accounts and roles, looked up in the store and cached.
pub struct UserDirectory {
    store: SharedStore,
    cache: Mutex<HashMap<String, (Option<Account>, Instant)>>,
}

impl UserDirectory {
    /// A directory over `store`.
    pub fn new(store: SharedStore) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets what is cached about `username` (after it was deleted or
    /// changed here).
    pub fn forget(&self, username: &str) {
        self.cache().remove(username);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<Account>, Instant)>> {
        // A poisoned cache is still a valid cache: a panic cannot leave a
        // half-written HashMap entry.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl AccountDirectory for UserDirectory {
    async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        if let Some((account, at)) = self.cache().get(username) {
            if at.elapsed() < USER_CACHE_TTL {
                return Ok(*account);
            }
        }
        let account = match Username::parse(username) {
            Ok(name) => self.store.find_user(&name).await?.map(|u| Account {
                id: u.id,
                created: u.created_at.timestamp_micros(),
                role: u.role,
            }),
            Err(_) => None,
        };
        let mut cache = self.cache();
        if cache.len() > 10_000 {
            cache.clear(); // bounded: tokens for many names cannot grow it forever
        }
        cache.insert(username.to_owned(), (account, Instant::now()));
        Ok(account)
    }
}
