//! `PasswordWorkers`: argon2 runs here, on a few threads of its own.
//!
//! An argon2id check holds ~19 MiB while it runs (the crate's default
//! m = 19,456 KiB). Run on the async runtime's blocking pool, a burst of
//! logins ran as many checks at once as it sent, and the allocator kept the
//! memory of every thread that had run one: 80 concurrent logins left the
//! process at 1.5 GB (issue 14). Here at most one check per worker runs at
//! a time, always on the same threads, so the memory argon2 can hold is
//! bounded by the number of workers; a request that waits longer than the
//! configured time for a turn is refused as [`Busy`] (503 with
//! `Retry-After`).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// Workers: one per core, at most three, so that the memory argon2 holds
/// (19 MiB each) stays within a 64 MiB budget on any machine.
const MAX_WORKERS: usize = 3;
/// How long a request waits for a turn before it is refused.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

/// Every worker was busy for longer than a request may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every password worker is busy")]
pub struct Busy;

/// A fixed set of threads for password hashing and verification.
pub struct PasswordWorkers {
    jobs: SyncSender<Job>,
    turns: Arc<Semaphore>,
    max_wait: Duration,
}

impl PasswordWorkers {
    /// `workers` threads; a request waits at most `max_wait` for one.
    pub fn new(workers: usize, max_wait: Duration) -> Self {
        let workers = workers.max(1);
        // Never full: a job is sent only with one of `workers` turns held.
        let (jobs, queue) = sync_channel::<Job>(workers);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    let Ok(job) = job else {
                        return; // the workers were dropped
                    };
                    // argon2 does not panic on any input; if it ever did, the
                    // worker lives on and the request sees `Busy`.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password worker");
            }
        }
        Self {
            jobs,
            turns: Arc::new(Semaphore::new(workers)),
            max_wait,
        }
    }

    /// One worker per core, at most [`MAX_WORKERS`].
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores.min(MAX_WORKERS), DEFAULT_MAX_WAIT)
    }

    /// Runs `work` on a worker when one is free within the wait. A request
    /// that goes away meanwhile does not free the worker early: the turn is
    /// held until `work` has finished, so the bound holds.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let turn = tokio::time::timeout(self.max_wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
            drop(turn);
        });
        self.jobs.try_send(job).map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn runs_work_and_returns_its_result() {
        let workers = PasswordWorkers::new(2, Duration::from_secs(1));
        assert_eq!(workers.run(|| 6 * 7).await, Ok(42));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_runs_more_at_once_than_it_has_workers() {
        let workers = Arc::new(PasswordWorkers::new(2, Duration::from_secs(30)));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (workers, running, peak) = (workers.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    workers
                        .run(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(()));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_cannot_get_a_turn_in_time_is_busy() {
        let workers = Arc::new(PasswordWorkers::new(1, Duration::from_millis(50)));
        let slow = tokio::spawn({
            let workers = workers.clone();
            async move {
                workers
                    .run(|| std::thread::sleep(Duration::from_millis(500)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(workers.run(|| ()).await, Err(Busy));
        assert_eq!(slow.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_worker_alive() {
        let workers = PasswordWorkers::new(1, Duration::from_secs(1));
        assert_eq!(workers.run(|| panic!("boom")).await, Err::<(), _>(Busy));
        assert_eq!(workers.run(|| 1).await, Ok(1));
    }
}
