//! Running work in one transaction on any of the store's connections.

use crate::failure::Outcome;
use diesel_async::{AsyncConnection, TransactionManager};
use std::future::Future;
use std::pin::Pin;

/// Work on a connection, as a boxed future borrowing it.
pub(crate) type ConnWork<'c, T> = Pin<Box<dyn Future<Output = Outcome<T>> + Send + 'c>>;

/// Runs `work` in a transaction: committed when it succeeds, rolled back
/// when it fails (the work's error is returned, not the rollback's).
pub(crate) async fn in_transaction<C, T>(
    conn: &mut C,
    work: impl for<'c> FnOnce(&'c mut C) -> ConnWork<'c, T>,
) -> Outcome<T>
where
    C: AsyncConnection + Send,
{
    C::TransactionManager::begin_transaction(conn).await?;
    match work(conn).await {
        Ok(value) => {
            C::TransactionManager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(error) => {
            let _ = C::TransactionManager::rollback_transaction(conn).await;
            Err(error)
        }
    }
}

/// Attempts a write transaction gets when it loses a deadlock.
const ATTEMPTS: u32 = 5;

/// Runs `attempt` again when it fails with `StoreError::Contention` (a
/// deadlock InnoDB broke by rolling the transaction back), after a short
/// random pause, up to [`ATTEMPTS`] times. Concurrent writers can deadlock
/// on a dirty mark the refresher just deleted: both take a shared lock on
/// the deleted record, then both need it exclusively to insert it again.
pub(crate) async fn retrying_contention<T, F, Fut>(mut attempt: F) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<T>>,
{
    let mut tries = 1;
    loop {
        let result = attempt().await;
        if !worth_retrying(&result, tries).await {
            return result;
        }
        tries += 1;
    }
}

/// Like [`retrying_contention`], each attempt on `conn`.
pub(crate) async fn retrying_contention_on<C, T>(
    conn: &mut C,
    mut attempt: impl for<'c> FnMut(&'c mut C) -> ConnWork<'c, T>,
) -> Outcome<T> {
    let mut tries = 1;
    loop {
        let result = attempt(conn).await;
        if !worth_retrying(&result, tries).await {
            return result;
        }
        tries += 1;
    }
}

/// Whether attempt number `tries` lost a deadlock and may be retried; if
/// so, waits a moment first.
async fn worth_retrying<T>(result: &Outcome<T>, tries: u32) -> bool {
    match result {
        Err(failure) if failure.is_contention() && tries < ATTEMPTS => {
            tracing::debug!(detail = %failure.0, tries, "transaction lost a deadlock; retrying");
            tokio::time::sleep(rand_pause(tries)).await;
            true
        }
        _ => false,
    }
}

/// 1–10 ms times the attempt, spread so that two losers do not meet again.
fn rand_pause(tries: u32) -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::time::Duration::from_micros(u64::from(tries) * (1_000 + u64::from(nanos % 9_000)))
}
