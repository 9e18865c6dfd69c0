//! The embedded MQTT broker: rumqttd, configured for datastream.
//!
//! `datastream up` and `datastream broker` start it so the whole system runs
//! with nothing installed. It speaks MQTT 3.1.1 on one TCP listener, supports
//! QoS 1, persistent sessions (in memory only: a broker restart forgets them)
//! and shared subscriptions (`$share/{group}/…`). Production deployments
//! point `MQTT_URL` at Mosquitto, EMQX or another broker instead.
//! [`TlsFront`] adds MQTT over TLS in front of its plain listener.
//!
//! Architecture invariant: this crate knows nothing about readings; it only
//! moves bytes between MQTT clients.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod tls_front;

pub use tls_front::TlsFront;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Errors starting the embedded broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// Something already listens on the address.
    #[error(
        "cannot start the embedded MQTT broker: {addr} is already in use. \
         If a broker already runs there, use it with MQTT_URL=mqtt://{addr}; \
         otherwise choose another address with MQTT_LISTEN"
    )]
    AddressInUse {
        /// The address that was taken.
        addr: SocketAddr,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// rumqttd refused the configuration or did not come up.
    #[error("embedded MQTT broker failed to start: {0}")]
    Start(String),
}

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted publish payload, in bytes.
    pub max_payload_bytes: usize,
    /// QoS 1 messages in flight per client before the broker waits for acks.
    pub max_inflight: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Username → password; empty means anonymous clients are accepted.
    pub users: HashMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_payload_bytes: 1024 * 1024,
            max_inflight: 1000,
            max_connections: 10_000,
            users: HashMap::new(),
        }
    }
}

/// Bytes of one segment of the broker's in-memory log of the stream.
pub const SEGMENT_BYTES: usize = 4 * 1024 * 1024;
/// Segments kept: the log holds at most `SEGMENTS × SEGMENT_BYTES`.
pub const SEGMENTS: usize = 8;

/// How many other ports a broker asked to pick its own port tries when the
/// one it picked was taken before rumqttd could bind it.
const PORT_RETRIES: usize = 3;

/// A running embedded broker. It runs on its own threads until the process
/// exits: rumqttd 0.20 has no shutdown call, so there is no stop handle.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts the broker and returns once it accepts connections.
    ///
    /// rumqttd binds its listener itself, from an address (it takes no
    /// bound socket), so the address is checked free first and rumqttd binds
    /// it a moment later. Whatever takes the port in that moment makes
    /// rumqttd's server thread end; that is noticed, and for a port the
    /// broker chose itself (port 0) it tries another, up to three times.
    pub fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        let mut tries = 0;
        loop {
            match Self::start_once(&config) {
                Err(BrokerError::AddressInUse { .. })
                    if config.listen.port() == 0 && tries < PORT_RETRIES =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(config: &BrokerConfig) -> Result<Self, BrokerError> {
        let addr = reserve_address(config.listen)?;
        let rumqttd_config = rumqttd_config(config, addr);
        let mut broker = rumqttd::Broker::new(rumqttd_config);
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                // Returns only when its servers have ended: at once when the
                // address could not be bound.
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "embedded MQTT broker stopped");
                }
                let _ = ended_tx.send(());
            })
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let probe_user = config.users.iter().next();
        let stopped = || ended.try_recv().is_ok();
        wait_until_listening(
            addr,
            probe_user.map(|(u, p)| (u.as_str(), p.as_str())),
            Duration::from_secs(10),
            &stopped,
        )?;
        tracing::info!(%addr, "embedded MQTT broker listening");
        Ok(Self { addr })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `mqtt://host:port` for this broker.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

/// Checks that `listen` is free (resolving port 0 to a free port) and gives
/// a clear error otherwise. rumqttd only logs bind failures from its own
/// thread, so this is where a taken port becomes an error the user sees.
fn reserve_address(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    match TcpListener::bind(listen) {
        Ok(l) => l.local_addr().map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            Err(BrokerError::AddressInUse { addr: listen })
        }
        Err(source) => Err(BrokerError::Bind {
            addr: listen,
            source,
        }),
    }
}

/// Waits until the broker answers an MQTT CONNECT with a CONNACK (as one
/// of the configured users, if any: rumqttd closes anonymous connections
/// then). A bare TCP probe would do, but rumqttd logs every connection that
/// closes before CONNECT as an error.
/// `stopped` says whether the broker's thread has ended (it could not bind):
/// then whatever answers on `addr` is not this broker.
fn wait_until_listening(
    addr: SocketAddr,
    credentials: Option<(&str, &str)>,
    timeout: Duration,
    stopped: &dyn Fn() -> bool,
) -> Result<(), BrokerError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if stopped() {
            return Err(BrokerError::AddressInUse { addr });
        }
        if mqtt_connect(addr, "datastream-probe", credentials).is_ok() {
            // Answered: by this broker, unless its thread ended meanwhile.
            std::thread::sleep(Duration::from_millis(20));
            if stopped() {
                return Err(BrokerError::AddressInUse { addr });
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::Start(format!(
        "not accepting connections on {addr} after {timeout:?}"
    )))
}

/// Sends CONNECT (MQTT 3.1.1, clean session) with optional credentials and
/// returns the CONNACK return code (0 = accepted), then DISCONNECTs.
fn mqtt_connect(
    addr: SocketAddr,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> io::Result<u8> {
    use std::io::{Read, Write};
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
    body.push(0x02 | if credentials.is_some() { 0xC0 } else { 0 });
    body.extend_from_slice(&[0, 10]);
    let mut field = |s: &[u8]| {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s);
    };
    field(client_id.as_bytes());
    if let Some((user, pass)) = credentials {
        field(user.as_bytes());
        field(pass.as_bytes());
    }
    if body.len() > 127 {
        return Err(io::Error::other("credentials too long for the probe"));
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(&packet)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    let _ = stream.write_all(&[0xE0, 0]);
    if connack[0] != 0x20 {
        return Err(io::Error::other("no CONNACK from the broker"));
    }
    Ok(connack[3])
}

fn rumqttd_config(config: &BrokerConfig, addr: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: config.max_payload_bytes,
        max_inflight_count: config.max_inflight,
        auth: (!config.users.is_empty()).then(|| config.users.clone()),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "datastream-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: 200,
            // What the broker keeps of the stream in memory: 8 segments of
            // 4 MiB of payload, about 250,000 readings (two minutes at
            // 2,000/s; the process then holds ~100 MiB more and no more).
            // A subscriber further behind than that loses the oldest
            // (rumqttd drops whole segments); at 100 MiB × 10 its memory
            // grew for as long as it ran.
            max_segment_size: SEGMENT_BYTES,
            max_segment_count: SEGMENTS,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_reported_with_the_mqtt_url_hint() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = EmbeddedBroker::start(BrokerConfig {
            listen: addr,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, BrokerError::AddressInUse { .. }));
        let msg = err.to_string();
        assert!(msg.contains("MQTT_URL"), "{msg}");
        assert!(msg.contains(&addr.to_string()), "{msg}");
    }

    /// The CONNACK code for these credentials; refusing by closing counts
    /// as refused.
    fn connect_code(addr: SocketAddr, credentials: Option<(&str, &str)>) -> u8 {
        mqtt_connect(addr, "auth-test", credentials).unwrap_or(255)
    }

    #[test]
    fn with_users_configured_only_their_credentials_get_in() {
        let broker = EmbeddedBroker::start(BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            users: HashMap::from([("ingestor".to_owned(), "s3cret-pw".to_owned())]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            connect_code(broker.addr(), Some(("ingestor", "s3cret-pw"))),
            0
        );
        assert_ne!(connect_code(broker.addr(), Some(("ingestor", "wrong"))), 0);
        assert_ne!(connect_code(broker.addr(), None), 0);
    }

    #[test]
    fn a_broker_whose_thread_ended_is_not_mistaken_for_whatever_answers() {
        // Another broker answers on the address, but ours could not bind it.
        let other = EmbeddedBroker::start(BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        })
        .unwrap();
        let err =
            wait_until_listening(other.addr(), None, Duration::from_secs(1), &|| true).unwrap_err();
        assert!(matches!(err, BrokerError::AddressInUse { .. }));
    }

    #[test]
    fn port_zero_starts_on_a_free_port() {
        let broker = EmbeddedBroker::start(BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        })
        .unwrap();
        assert_ne!(broker.addr().port(), 0);
        assert!(TcpStream::connect(broker.addr()).is_ok());
    }
}
