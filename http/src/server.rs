//! `Server`: a running actix-web server, stopped gracefully by a
//! cancellation token, on an [`HttpListener`]: plain HTTP or HTTPS.

use actix_web::{middleware, web, App, HttpServer};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A bound socket and whether it speaks TLS (HTTPS) or plain HTTP.
pub struct HttpListener {
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl HttpListener {
    /// `Some(config)`: HTTPS; `None`: plain HTTP.
    pub fn new(tcp: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self { tcp, tls }
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

impl From<TcpListener> for HttpListener {
    /// Plain HTTP.
    fn from(tcp: TcpListener) -> Self {
        Self { tcp, tls: None }
    }
}

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
        listener: impl Into<HttpListener>,
        workers: usize,
        what: &'static str,
        shutdown: CancellationToken,
        configure: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let HttpListener { tcp: listener, tls } = listener.into();
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
            type TlsStream =
                actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
            let tcp = connection
                .downcast_ref::<actix_web::rt::net::TcpStream>()
                .or_else(|| {
                    connection
                        .downcast_ref::<TlsStream>()
                        .map(|tls| tls.get_ref().0)
                });
            if let Some(tcp) = tcp {
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
        .shutdown_timeout(10);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, (*config).clone())?,
            None => server.listen(listener)?,
        }
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
