//! `MQTT_URL` parsing: where the services find the broker, and whether
//! they speak TLS to it.

use std::fmt;
use std::path::PathBuf;

/// A bad `MQTT_URL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQTT_URL must look like mqtt://[user:password@]host[:port] or mqtts://…, got {0:?}")]
pub struct MqttUrlError(String);

/// A parsed `mqtt://[user:password@]host[:port]` (port 1883 by default) or
/// `mqtts://…` (TLS, port 8883 by default).
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    tls: Option<MqttTls>,
}

/// What a TLS connection to the broker trusts and presents: files named by
/// the settings, read when a connection is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttTls {
    /// PEM certificates of the CAs the broker's certificate must chain to
    /// (`MQTT_CA_FILE`); `None`: the system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain and its private key, for brokers that
    /// ask for one (`MQTT_CLIENT_CERT_FILE`, `MQTT_CLIENT_KEY_FILE`).
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

impl MqttUrl {
    /// Parses an MQTT URL: `mqtt://` (or `tcp://`) for plain TCP, `mqtts://`
    /// (or `ssl://`) for TLS with the system's trusted CAs until
    /// [`MqttUrl::with_tls`] says otherwise.
    pub fn parse(url: &str) -> Result<Self, MqttUrlError> {
        let err = || MqttUrlError(crate::redact::redact_url(url));
        let (rest, tls) = if let Some(rest) = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))
        {
            (rest, Some(MqttTls::default()))
        } else {
            let rest = url
                .strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .ok_or_else(err)?;
            (rest, None)
        };
        let default_port = if tls.is_some() { 8883 } else { 1883 };
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), pass.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| err())?)
            }
            _ => (hostport, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(err());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
            tls,
        })
    }

    /// The same broker with `tls` as what the connection trusts and
    /// presents; `None` when the URL is plain `mqtt://` (TLS files never
    /// make a plain URL speak TLS, and a plain connection is never what
    /// a TLS URL falls back to).
    pub fn with_tls(mut self, tls: MqttTls) -> Option<Self> {
        self.tls.as_mut().map(|current| *current = tls)?;
        Some(self)
    }

    /// The URL with its password, to hand to another process (a
    /// benchmark's services); `Display` hides the password, so use this
    /// only where the URL is not shown. TLS files are not part of it.
    pub fn to_url_with_password(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        match &self.credentials {
            Some((user, password)) => {
                format!("{scheme}://{user}:{password}@{}:{}", self.host, self.port)
            }
            None => format!("{scheme}://{}:{}", self.host, self.port),
        }
    }

    /// What TLS to the broker trusts and presents, or `None` for plain TCP.
    pub fn tls(&self) -> Option<&MqttTls> {
        self.tls.as_ref()
    }

    /// Host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Username and password, if the URL carries them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

impl fmt::Debug for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for MqttUrl {
    /// Shows the URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        match &self.credentials {
            Some((user, _)) => write!(f, "{scheme}://{user}:***@{}:{}", self.host, self.port),
            None => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let u = MqttUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((u.host(), u.port()), ("127.0.0.1", 1884));
        assert_eq!(u.credentials(), None);
    }

    #[test]
    fn port_defaults_to_1883() {
        assert_eq!(MqttUrl::parse("mqtt://broker").unwrap().port(), 1883);
    }

    #[test]
    fn parses_credentials_and_hides_the_password() {
        let u = MqttUrl::parse("mqtt://ing:s3cret@broker:1883").unwrap();
        assert_eq!(u.credentials(), Some(("ing", "s3cret")));
        assert_eq!(u.to_string(), "mqtt://ing:***@broker:1883");
    }

    #[test]
    fn the_url_with_its_password_parses_back_to_the_same_broker() {
        for url in [
            "mqtt://ing:s3cret@broker:1884",
            "mqtts://b:8884",
            "mqtt://b",
        ] {
            let parsed = MqttUrl::parse(url).unwrap();
            assert_eq!(
                MqttUrl::parse(&parsed.to_url_with_password()).unwrap(),
                parsed
            );
        }
    }

    #[test]
    fn mqtts_means_tls_on_port_8883_by_default() {
        let u = MqttUrl::parse("mqtts://broker.example").unwrap();
        assert_eq!((u.host(), u.port()), ("broker.example", 8883));
        assert_eq!(u.tls(), Some(&MqttTls::default()));
        assert_eq!(u.to_string(), "mqtts://broker.example:8883");
        assert_eq!(MqttUrl::parse("mqtt://broker").unwrap().tls(), None);
    }

    #[test]
    fn tls_files_apply_only_to_a_tls_url() {
        let files = MqttTls {
            ca_file: Some("/etc/ca.pem".into()),
            client_identity: None,
        };
        let tls = MqttUrl::parse("mqtts://b:8884")
            .unwrap()
            .with_tls(files.clone());
        assert_eq!(tls.unwrap().tls(), Some(&files));
        assert!(MqttUrl::parse("mqtt://b")
            .unwrap()
            .with_tls(files)
            .is_none());
    }

    #[test]
    fn rejects_other_schemes_and_bad_ports() {
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://host:notaport",
            "mqtts://x:notaport",
            "x:1883",
        ] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
