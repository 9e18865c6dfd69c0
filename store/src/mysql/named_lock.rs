//! MySQL's named locks (`GET_LOCK`), scoped to the connection's database.
//!
//! The server keeps one namespace of lock names for all its databases, so a
//! plain `GET_LOCK('datastream_rollup_refresh')` would make every datastream
//! database on a server (staging beside production, a test suite beside a
//! running `up`) take turns with every other. Each name is therefore the
//! purpose followed by a digest of `DATABASE()`: a lock name may be at most
//! 64 characters and a database name may be 64 itself, so the name is not
//! spelled out. The statements are built from constants only; the database
//! name never leaves the server.

/// One named lock of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NamedLock {
    purpose: &'static str,
}

/// Taken while migrations run: replicas that start together apply each
/// migration once.
pub(super) const MIGRATIONS: NamedLock = NamedLock {
    purpose: "datastream_migrations",
};

/// Taken by the rollup refresher and the retention sweeper: one of them at
/// work per database.
pub(super) const ROLLUP_REFRESH: NamedLock = NamedLock {
    purpose: "datastream_rollup_refresh",
};

impl NamedLock {
    /// The SQL expression of the lock's name on the connection's database:
    /// `purpose.` and the 32 hex digits of `MD5(DATABASE())`.
    fn name(self) -> String {
        debug_assert!(
            self.purpose.len() + 1 + 32 <= 64,
            "lock names are at most 64 characters"
        );
        format!("CONCAT('{}.', MD5(DATABASE()))", self.purpose)
    }

    /// `GET_LOCK(name, timeout_secs)`: 1 when taken, 0 when another session
    /// held it for the whole timeout.
    pub(super) fn get(self, timeout_secs: u32) -> String {
        format!("GET_LOCK({}, {timeout_secs})", self.name())
    }

    /// A statement that releases the lock.
    pub(super) fn release(self) -> String {
        format!("DO RELEASE_LOCK({})", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_scoped_to_the_database() {
        assert_eq!(
            ROLLUP_REFRESH.get(0),
            "GET_LOCK(CONCAT('datastream_rollup_refresh.', MD5(DATABASE())), 0)"
        );
        assert_eq!(
            MIGRATIONS.release(),
            "DO RELEASE_LOCK(CONCAT('datastream_migrations.', MD5(DATABASE())))"
        );
    }
}
