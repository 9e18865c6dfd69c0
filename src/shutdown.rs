//! Stopping: Ctrl-C and SIGTERM cancel a token every service watches; a
//! one-shot command is abandoned instead and ends with status 130.

use anyhow::Result;
use tokio_util::sync::CancellationToken;

/// A one-shot command stopped by Ctrl-C or SIGTERM (exit status 130).
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Runs a one-shot command (`user`, `bench`, `migrate`) until it ends or a
/// signal arrives. They hold nothing that needs a graceful stop (benchmark
/// ingestor processes are killed on drop), and without this the signal
/// handler every command installs would swallow Ctrl-C.
pub async fn until_interrupted(
    shutdown: &CancellationToken,
    command: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    tokio::select! {
        result = command => result,
        _ = shutdown.cancelled() => Err(Interrupted.into()),
    }
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}
