//! `Server`: a running actix-web server, stopped gracefully by a
//! cancellation token.

use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// A running HTTP server.
pub struct Server {
    addr: SocketAddr,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Runs `server` (bound to `addr`) until `shutdown`, then stops it
    /// gracefully; `what` names it in the log.
    pub fn supervise(
        server: actix_web::dev::Server,
        addr: SocketAddr,
        shutdown: CancellationToken,
        what: &'static str,
    ) -> Self {
        let handle = server.handle();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.stop(true).await;
        });
        // The server only accepts connections while its future is polled.
        let running = tokio::spawn(server);
        tracing::info!(%addr, "{what} listening");
        Self { addr, running }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        self.running.await.map_err(std::io::Error::other)?
    }
}
