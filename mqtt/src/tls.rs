//! TLS to the broker (`mqtts://`): the rustls client configuration built
//! from the files an [`MqttTls`] names, and [`check_broker_certificate`],
//! which tries one handshake so that a wrong CA or a name the certificate
//! does not cover fails at start, naming the setting, instead of as a
//! reconnect loop in the log.

use datastream_domain::{MqttTls, MqttUrl};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why TLS to the broker cannot work as configured. Each message names the
/// setting to change.
#[derive(Debug, thiserror::Error)]
pub enum MqttTlsError {
    /// `MQTT_CA_FILE` cannot be read or holds no certificate.
    #[error("MQTT_CA_FILE {path:?}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The client certificate or key cannot be used.
    #[error("{setting} {path:?}: {reason}")]
    ClientIdentity {
        /// `MQTT_CLIENT_CERT_FILE` or `MQTT_CLIENT_KEY_FILE`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The system has no trusted CAs to check the broker with.
    #[error("no system CA certificates were found to check the broker with; set MQTT_CA_FILE")]
    NoSystemRoots,
    /// The broker's certificate does not chain to a trusted CA.
    #[error("the broker at {addr} presented a certificate {trusted_by} does not trust ({detail}); set MQTT_CA_FILE to the CA that signed it")]
    Untrusted {
        /// Where the broker is.
        addr: String,
        /// `the CA in MQTT_CA_FILE "…"` or `the system`.
        trusted_by: String,
        /// rustls's reason.
        detail: String,
    },
    /// The broker's certificate is for other names.
    #[error("the broker's certificate is not valid for {host:?}, the host of the MQTT URL ({detail}); connect by a name the certificate lists")]
    NameMismatch {
        /// The host the client asked for.
        host: String,
        /// rustls's reason.
        detail: String,
    },
    /// The host is not a name TLS can check (e.g. empty).
    #[error("{host:?} cannot be checked against a certificate")]
    BadHost {
        /// The host.
        host: String,
    },
    /// The handshake failed for another reason.
    #[error("TLS handshake with the broker at {addr} failed: {detail}")]
    Handshake {
        /// Where the broker is.
        addr: String,
        /// What happened.
        detail: String,
    },
}

/// The rustls client configuration for `tls`: its CA file's certificates
/// (else the system's trusted CAs) and its client identity, if any. Uses
/// the ring provider explicitly: no process-wide default is needed.
pub fn client_config(tls: &MqttTls) -> Result<ClientConfig, MqttTlsError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let ca_error = |reason: String| MqttTlsError::CaFile {
                path: path.clone(),
                reason,
            };
            for cert in datastream_tls::read_certificates(path).map_err(ca_error)? {
                roots
                    .add(cert)
                    .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
            }
        }
        None => roots = datastream_tls::system_roots().ok_or(MqttTlsError::NoSystemRoots)?,
    }
    let builder = ClientConfig::builder_with_provider(datastream_tls::ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttTlsError::Handshake {
            addr: String::new(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots);
    match &tls.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_path, key_path)) => {
            let chain = datastream_tls::read_certificates(cert_path).map_err(|reason| {
                MqttTlsError::ClientIdentity {
                    setting: "MQTT_CLIENT_CERT_FILE",
                    path: cert_path.clone(),
                    reason,
                }
            })?;
            let key_error = |reason: String| MqttTlsError::ClientIdentity {
                setting: "MQTT_CLIENT_KEY_FILE",
                path: key_path.clone(),
                reason,
            };
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| key_error(format!("no PEM private key in it ({e})")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| key_error(format!("does not fit the client certificate: {e}")))
        }
    }
}

/// A configuration whose handshakes all fail: what a client gets when its
/// TLS files cannot be used, instead of plain text.
pub(crate) fn trusting_nothing() -> ClientConfig {
    ClientConfig::builder_with_provider(datastream_tls::ring_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// For a `mqtts://` URL: connects once and completes a TLS handshake, so a
/// certificate the client will never accept is an error now. A broker that
/// cannot be reached is not an error here (the services wait for it and
/// retry); for a plain URL this does nothing.
pub async fn check_broker_certificate(mqtt: &MqttUrl) -> Result<(), MqttTlsError> {
    let Some(tls) = mqtt.tls() else {
        return Ok(());
    };
    let config = client_config(tls)?;
    let addr = format!("{}:{}", mqtt.host(), mqtt.port());
    let name = ServerName::try_from(mqtt.host().to_owned()).map_err(|_| MqttTlsError::BadHost {
        host: mqtt.host().to_owned(),
    })?;
    let tcp = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        // Not there (yet): the services will keep trying.
        _ => return Ok(()),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake =
        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await;
    let error = match handshake {
        Ok(Ok(_stream)) => return Ok(()),
        Ok(Err(error)) => error,
        Err(_) => {
            return Err(MqttTlsError::Handshake {
                addr,
                detail: "no answer within 10 s (is this port TLS?)".into(),
            })
        }
    };
    let detail = error.to_string();
    let certificate_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(c) => Some(c.clone()),
            _ => None,
        });
    Err(match certificate_error {
        Some(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => MqttTlsError::NameMismatch {
            host: mqtt.host().to_owned(),
            detail,
        },
        Some(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            MqttTlsError::Untrusted {
                addr,
                trusted_by: match &tls.ca_file {
                    Some(path) => format!("the CA in MQTT_CA_FILE {path:?}"),
                    None => "the system".into(),
                },
                detail,
            }
        }
        _ => MqttTlsError::Handshake { addr, detail },
    })
}
