//! `UserDirectory`: who may use a token right now. Tokens name a user; the
//! directory confirms the user still exists and gives their current role,
//! caching answers briefly so a request costs no database round trip.

use datastream_schema::{Role, SharedStore, StoreError, Username};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an answer is reused. A deleted user's tokens stop working on
/// this replica at once and on other replicas within this time.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(5);

/// Current users and roles, looked up in the store and cached.
pub struct UserDirectory {
    store: SharedStore,
    cache: Mutex<HashMap<String, (Option<Role>, Instant)>>,
}

impl UserDirectory {
    /// A directory over `store`.
    pub fn new(store: SharedStore) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user's current role, or `None` if there is no such user.
    pub async fn role_of(&self, username: &str) -> Result<Option<Role>, StoreError> {
        if let Some((role, at)) = self.cache().get(username) {
            if at.elapsed() < USER_CACHE_TTL {
                return Ok(*role);
            }
        }
        let role = match Username::parse(username) {
            Ok(name) => self.store.find_user(&name).await?.map(|u| u.role),
            Err(_) => None,
        };
        let mut cache = self.cache();
        if cache.len() > 10_000 {
            cache.clear(); // bounded: tokens for many names cannot grow it forever
        }
        cache.insert(username.to_owned(), (role, Instant::now()));
        Ok(role)
    }

    /// Forgets what is cached about `username` (after it was deleted or
    /// changed here).
    pub fn forget(&self, username: &str) {
        self.cache().remove(username);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<Role>, Instant)>> {
        // A poisoned cache is still a valid cache: a panic cannot leave a
        // half-written HashMap entry.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
