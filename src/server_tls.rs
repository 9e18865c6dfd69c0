//! TLS for what datastream serves — the REST API, a standalone generator
//! fleet's API, the gRPC gateway and the embedded broker's TLS listener —
//! from one certificate and key: `TLS_CERT_FILE`, `TLS_KEY_FILE`.

use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// A server certificate and key, checked, in the forms the servers take.
#[derive(Clone)]
pub struct ServerTls {
    /// For the HTTP servers and the broker's TLS listener.
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate chain as PEM (tonic builds its own configuration).
    pub cert_pem: Vec<u8>,
    /// The private key as PEM.
    pub key_pem: Vec<u8>,
}

impl ServerTls {
    /// `None` when neither file is set; an error naming the setting when
    /// only one is, or when they cannot be read or do not fit together.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>> {
        let (cert_file, key_file) = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => return Ok(None),
            _ => bail!("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither"),
        };
        let cert_pem = std::fs::read(cert_file)
            .with_context(|| format!("TLS_CERT_FILE {cert_file:?} cannot be read"))?;
        let key_pem = std::fs::read(key_file)
            .with_context(|| format!("TLS_KEY_FILE {key_file:?} cannot be read"))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("TLS_CERT_FILE {cert_file:?} is not PEM"))?;
        if chain.is_empty() {
            bail!("TLS_CERT_FILE {cert_file:?} holds no PEM certificate");
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .with_context(|| format!("TLS_KEY_FILE {key_file:?} holds no PEM private key"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(datastream_tls::ring_provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .with_context(|| {
                format!("TLS_KEY_FILE {key_file:?} does not fit the certificate in TLS_CERT_FILE {cert_file:?}")
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Self {
            config: Arc::new(config),
            cert_pem,
            key_pem,
        }))
    }
}
