//! [`TestCertificates`]: a throw-away certificate authority and the
//! certificates TLS tests need, made in the test (rcgen), as PEM files.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::PathBuf;

/// A CA, a server certificate it signed for `localhost` (only: connecting
/// to `127.0.0.1` is a name mismatch), a client certificate it signed, and
/// a second, unrelated CA. Files live until this value is dropped.
pub struct TestCertificates {
    dir: tempfile::TempDir,
}

impl TestCertificates {
    /// Makes every certificate and writes the files.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let (ca, ca_key) = authority("datastream test CA");
        let (other, _) = authority("some other CA");
        let leaf = |names: Vec<String>, name: &str| {
            let key = KeyPair::generate().expect("a key pair");
            let mut params = CertificateParams::new(names).expect("certificate parameters");
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params
                .signed_by(&key, &ca, &ca_key)
                .expect("signing a certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(vec!["localhost".into()], "localhost");
        let (client, client_key) = leaf(vec![], "datastream test client");
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("other-ca.pem", other.pem()),
            ("server.pem", server),
            ("server.key", server_key),
            ("client.pem", client),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("writing a PEM file");
        }
        Self { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA that signed the server and client certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.pem")
    }
    /// A CA that signed nothing here.
    pub fn other_ca_file(&self) -> PathBuf {
        self.file("other-ca.pem")
    }
    /// The server certificate (for `localhost`) and its key.
    pub fn server_files(&self) -> (PathBuf, PathBuf) {
        (self.file("server.pem"), self.file("server.key"))
    }
    /// The client certificate and its key.
    pub fn client_files(&self) -> (PathBuf, PathBuf) {
        (self.file("client.pem"), self.file("client.key"))
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}

fn authority(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("a key pair");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("a self-signed CA");
    (cert, key)
}
