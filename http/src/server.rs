//! `Server`: a running actix-web server, stopped gracefully by a
//! cancellation token.

use actix_web::{middleware, web, App, HttpServer};
use std::net::{SocketAddr, TcpListener};
use tokio_util::sync::CancellationToken;

/// How long a connection may leave what it is sent unacknowledged (a
/// client that stopped reading: its window stays shut) before it is closed.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running HTTP server.
pub struct Server {
    addr: SocketAddr,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves an app of the project on `listener` with `workers` threads
    /// until `shutdown`: whatever `configure` registers (routes and app
    /// data), behind the header limit and per-route request metrics every
    /// service has. `what` names it in the log.
    pub fn serve<F>(
        listener: TcpListener,
        workers: usize,
        what: &'static str,
        shutdown: CancellationToken,
        configure: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(
                    crate::header_limit::reject_large_headers,
                ))
                .wrap(middleware::from_fn(crate::request_metrics::record))
                .wrap(middleware::from_fn(crate::security_headers::add))
                .configure(configure.clone())
        })
        .on_connect(|connection, _| {
            if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                // Small writes go out at once: with Nagle's algorithm a live
                // stream's next event waits for the client's delayed ACK (up
                // to 40 ms on Linux) whenever the previous one is
                // unacknowledged.
                let _ = tcp.set_nodelay(true);
                // A client that takes nothing for this long (its receive
                // window stays shut, or the network is gone) is dropped by
                // the kernel: a stream nobody reads holds its socket and
                // buffers for a bounded time, not forever.
                let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(SEND_TIMEOUT));
            }
        })
        .workers(workers.max(1))
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self::supervise(server, addr, shutdown, what))
    }

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
