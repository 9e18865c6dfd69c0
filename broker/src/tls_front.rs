//! [`TlsFront`]: MQTT over TLS for the embedded broker. It terminates TLS
//! (rustls) on its own listener and hands each connection, decrypted, to
//! the broker's plain listener on loopback, so the broker itself needs no
//! TLS of its own and every TLS part of datastream shares one rustls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running TLS listener in front of the broker; stops when dropped.
pub struct TlsFront {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Accepts TLS on `listener` with `config` and relays each connection
    /// to `broker`, the broker's plain listener. Needs a tokio runtime.
    pub fn start(
        listener: std::net::TcpListener,
        broker: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        // MQTT clients offer no ALPN, or `mqtt`: a list made for HTTP would
        // refuse the latter.
        let mut config = (*config).clone();
        config.alpn_protocols.clear();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let task = tokio::spawn(async move {
            loop {
                let (client, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "MQTT TLS listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                tokio::spawn(relay(acceptor.clone(), client, peer, broker));
            }
        });
        tracing::info!(%addr, "embedded broker accepting MQTT over TLS");
        Ok(Self { addr, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(acceptor: TlsAcceptor, client: TcpStream, peer: SocketAddr, broker: SocketAddr) {
    let _ = client.set_nodelay(true);
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "MQTT TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let Ok(mut inner) = TcpStream::connect(broker).await else {
        tracing::warn!(%broker, "MQTT TLS listener: the broker's plain listener is gone");
        return;
    };
    let _ = inner.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut inner).await;
}
