//! `run_in_rounds`: the loop the rollup refresher and the retention
//! sweeper share — do a round, rest as long as the round says, retry a
//! failed round after a while, warn about failures at most once a minute,
//! and stop when told.

use crate::log_limit::LogLimiter;
use datastream_store::StoreError;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a failed round waits before the next (the database is away).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Runs `round` until `stop` is cancelled. A round answers how long to
/// rest before the next; a failed one is logged as `what` failing (at most
/// once a minute) and retried after [`RETRY_AFTER`]. A round in progress
/// finishes before the loop stops.
pub(crate) async fn run_in_rounds<F, Fut>(what: &str, stop: CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Duration, StoreError>>,
{
    let mut failures = LogLimiter::new(Duration::from_secs(60));
    loop {
        let pause = match round().await {
            Ok(pause) => pause,
            Err(error) => {
                if let Some(suppressed) = failures.allow() {
                    tracing::warn!(%error, suppressed, "{what} failed; retrying");
                }
                RETRY_AFTER
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
