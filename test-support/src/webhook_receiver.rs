//! `WebhookReceiver`: an HTTP (or HTTPS) endpoint that records every POST
//! it is sent (headers and body) and answers with the status the test
//! sets, e.g. to play a receiver that is down (503) and then comes back
//! (200).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request received.
#[derive(Debug, Clone)]
pub struct ReceivedHook {
    /// Header names in lower case, with their values.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// A webhook receiver on a free loopback port.
pub struct WebhookReceiver {
    addr: SocketAddr,
    scheme: &'static str,
    received: Arc<Mutex<Vec<ReceivedHook>>>,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts answering 200.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts answering 200 over HTTPS at `https://localhost:PORT/hook`,
    /// presenting `certs`' server certificate.
    pub async fn start_tls(certs: &crate::TestCertificates) -> Self {
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = certs.server_files();
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .expect("the server certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("the server key");
        let config = rustls::ServerConfig::builder_with_provider(datastream_tls::ring_provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server configuration");
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let addr = listener.local_addr().expect("its address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let task = tokio::spawn({
            let (received, status) = (received.clone(), status.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (received, status) = (received.clone(), status.clone());
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let _ = match tls {
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => serve(stream, received, status).await,
                                Err(_) => Ok(()),
                            },
                            None => serve(stream, received, status).await,
                        };
                    });
                }
            }
        });
        Self {
            addr,
            scheme,
            received,
            status,
            task,
        }
    }

    /// The URL to give a rule (`https://localhost:…` for a TLS receiver:
    /// its certificate names `localhost`).
    pub fn url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}/hook", self.addr.port()),
            _ => format!("http://{}/hook", self.addr),
        }
    }

    /// Answer every later request with `status`.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<ReceivedHook> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `n` requests have arrived, at most `timeout`; returns
    /// them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedHook> {
        let deadline = Instant::now() + timeout;
        while self.received().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads requests off one connection (keep-alive) and answers each.
async fn serve(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    received: Arc<Mutex<Vec<ReceivedHook>>>,
    status: Arc<AtomicU16>,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ReceivedHook {
                headers,
                body,
                at: Instant::now(),
            });
        let code = status.load(Ordering::Relaxed);
        let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
        write.write_all(answer.as_bytes()).await?;
        write.flush().await?;
    }
}
