//! Connection pools and migrations, the same for both backends.

use crate::failure::{Failure, Outcome};
use crate::options::Migrations;

/// How long a request waits for a pooled connection, or for a new one.
const CHECKOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A pool of `size` connections from `manager`.
pub(crate) fn build_pool<M: deadpool::managed::Manager>(
    manager: M,
    size: usize,
) -> Outcome<deadpool::managed::Pool<M>> {
    deadpool::managed::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(CHECKOUT_TIMEOUT))
        .create_timeout(Some(CHECKOUT_TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(Failure::unavailable)
}

/// A connection from `pool`; a pool that cannot give one in time (the
/// database is down or every connection busy) makes the store unavailable.
pub(crate) async fn checkout<M>(
    pool: &deadpool::managed::Pool<M>,
) -> Outcome<deadpool::managed::Object<M>>
where
    M: deadpool::managed::Manager,
    M::Error: std::fmt::Display,
{
    pool.get().await.map_err(Failure::unavailable)
}

/// Runs a backend's blocking `migrate` step against `target` (its URL or
/// path) on a blocking thread, unless told not to (a read replica).
pub(crate) async fn run_migrations(
    migrations: Migrations,
    target: &str,
    migrate: fn(&str) -> Outcome<()>,
) -> Outcome<()> {
    if migrations == Migrations::Skip {
        return Ok(());
    }
    let target = target.to_owned();
    tokio::task::spawn_blocking(move || migrate(&target))
        .await
        .map_err(|e| Failure(datastream_domain::StoreError::Migration(e.to_string())))?
}
