//! What a store operation can fail with, as every part sees it: the API
//! maps it to a status, the ingestor retries on it. The store crate turns
//! its database driver's errors into it; nothing of a driver is in it.

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not `sqlite://…` or `mysql://…`.
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://PATH or mysql://user:pass@host:port/db")]
    UnsupportedUrl(String),
    /// The database cannot be reached (connect failed, pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Running migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A unique key was violated (e.g. an existing username).
    #[error("already exists")]
    Conflict,
    /// The transaction lost a deadlock or waited too long for a lock, and
    /// retrying it did not help: trying again later will.
    #[error("database busy: {0}")]
    Contention(String),
    /// The alerter's lease has passed to another alerter: this one may
    /// not commit (nothing was written).
    #[error("the alerter lease was taken over by another alerter")]
    LeaseLost,
    /// Any other database error; its cause is the driver's error.
    #[error("database error: {0}")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
}
