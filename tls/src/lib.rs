//! The rustls setup every TLS part of datastream shares: [`ring_provider`]
//! (one crypto provider, chosen explicitly, so no process-wide default is
//! needed), and the roots a client trusts: [`system_roots`], or the
//! certificates of a PEM file ([`read_certificates`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// rustls's *ring* provider. rustls 0.23.48 deprecated it for lacking
/// post-quantum key exchange; the alternative, aws-lc-rs, adds minutes of C
/// build (cmake, aws-lc-sys) to every clean build (docs/DECISIONS.md).
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted CAs (those rustls can use), or `None` when it has
/// none.
pub fn system_roots() -> Option<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system store may hold certificates rustls cannot use; the rest
        // still count.
        let _ = roots.add(cert);
    }
    (!roots.is_empty()).then_some(roots)
}

/// The certificates of a PEM file, or why there are none (for a message
/// that names the setting).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot be read ({e})"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not PEM ({e})"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// A client configuration without a client certificate, trusting the
/// system's CAs and those in `extra_ca_file`: for HTTPS to receivers on the
/// internet or behind a private CA (alert webhooks). An error says what is
/// wrong with the file, or that there is nothing to trust at all.
pub fn web_client_config(extra_ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = system_roots().unwrap_or_else(RootCertStore::empty);
    if let Some(path) = extra_ca_file {
        for cert in read_certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("holds a certificate that is not a usable CA ({e})"))?;
        }
    }
    if roots.is_empty() {
        return Err("no system CA certificates, and no CA file".into());
    }
    Ok(ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
