//! Opening a store: [`connect`] picks the backend from the URL.

use crate::operations::SharedStore;
use crate::options::{Migrations, StoreOptions};
use crate::sqlite::SQLITE_POOL_SIZE;
use crate::{mysql, sqlite};
use datastream_domain::{redact_url, StoreError};

/// Connects to `url` (`sqlite://PATH` or `mysql://…`), runs pending
/// migrations, and returns the store, each operation run as a task of its own so that
/// no caller can cancel a query half-way.
pub async fn connect(url: &str) -> Result<SharedStore, StoreError> {
    connect_with(url, StoreOptions::default()).await
}

/// Like [`connect`], with `options`.
pub async fn connect_with(url: &str, options: StoreOptions) -> Result<SharedStore, StoreError> {
    open(url, Migrations::Run, options).await
}

/// Connects to a read replica (`DATABASE_READ_URL`): like [`connect`], but
/// never migrates; the replica gets the schema from its primary.
pub async fn connect_replica(url: &str, options: StoreOptions) -> Result<SharedStore, StoreError> {
    open(url, Migrations::Skip, options).await
}

async fn open(
    url: &str,
    migrations: Migrations,
    options: StoreOptions,
) -> Result<SharedStore, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let pool_size = options.pool_size.unwrap_or(SQLITE_POOL_SIZE);
        Ok(sqlite::open(path, migrations, pool_size, options.rollups).await?)
    } else if url.starts_with("mysql://") {
        Ok(mysql::open(url, migrations, options).await?)
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}
