//! `MQTT_URL` parsing: where the services find the broker.

use std::fmt;

/// A bad `MQTT_URL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQTT_URL must look like mqtt://[user:password@]host[:port], got {0:?}")]
pub struct MqttUrlError(String);

/// A parsed `mqtt://[user:password@]host[:port]` (port defaults to 1883).
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl MqttUrl {
    /// Parses an MQTT URL. Only plain TCP (`mqtt://`, or `tcp://`) is supported.
    pub fn parse(url: &str) -> Result<Self, MqttUrlError> {
        let err = || MqttUrlError(crate::redact::redact_url(url));
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(err)?;
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
            _ => (hostport, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(err());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
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
        match &self.credentials {
            Some((user, _)) => write!(f, "mqtt://{user}:***@{}:{}", self.host, self.port),
            None => write!(f, "mqtt://{}:{}", self.host, self.port),
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
    fn rejects_other_schemes_and_bad_ports() {
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://host:notaport",
            "mqtts://x:8883",
            "x:1883",
        ] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
