//! Test harness shared by every integration test: free ports, throw-away
//! databases (SQLite files and MariaDB databases), brokers.
//!
//! External services follow one rule: when `DATASTREAM_TEST_MYSQL` /
//! `DATASTREAM_TEST_MQTT` is set (CI sets both), the service must work or
//! the test fails; when unset, the default local address is tried and the
//! test is skipped with a message if nothing answers there.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod exact_sum;
mod own_mariadb;
mod reading_fixture;
mod tls_certificates;
mod webhook_receiver;

pub use own_mariadb::OwnMariadb;
pub use reading_fixture::{reading, ReadingFixture};
pub use tls_certificates::TestCertificates;
pub use webhook_receiver::{ReceivedHook, WebhookReceiver};

use datastream_broker::{BrokerConfig, EmbeddedBroker};
use rand::distr::{Alphabetic, SampleString};
use rand::Rng;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Default MariaDB of the development machines.
pub const DEFAULT_MYSQL: &str = "mysql://root@127.0.0.1:3306/test";
/// Default Mosquitto of the development machines.
pub const DEFAULT_MQTT: &str = "mqtt://127.0.0.1:1883";

/// A free loopback address (bind port 0, read it back, release it).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("reading the bound port")
}

/// An `id1` no other test uses: 12 random upper-case letters.
pub fn unique_id1() -> String {
    Alphabetic
        .sample_string(&mut rand::rng(), 12)
        .to_ascii_uppercase()
}

/// A name no other test uses, for groups, client ids and databases.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{:08x}",
        std::process::id(),
        rand::rng().random::<u32>()
    )
}

fn reachable(host_port: &str) -> bool {
    host_port
        .parse::<SocketAddr>()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok())
        .is_some()
}

/// Where the service named by `env` lives, or `None` (skip) when the
/// variable is unset and the default address does not answer.
fn external_service(
    env: &str,
    default: &str,
    host_port: impl Fn(&str) -> String,
) -> Option<String> {
    match std::env::var(env) {
        Ok(url) if !url.is_empty() => {
            assert!(
                reachable(&host_port(&url)),
                "{env}={url} is set but nothing answers there"
            );
            Some(url)
        }
        _ if reachable(&host_port(default)) => Some(default.to_owned()),
        _ => {
            eprintln!("skipping: {env} is unset and {default} does not answer");
            None
        }
    }
}

fn host_port_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The MariaDB/MySQL server URL for tests, or `None` to skip.
pub fn mysql_server() -> Option<String> {
    external_service("DATASTREAM_TEST_MYSQL", DEFAULT_MYSQL, host_port_of)
}

/// The external MQTT broker (Mosquitto) for tests, or `None` to skip.
pub fn external_mqtt() -> Option<String> {
    external_service("DATASTREAM_TEST_MQTT", DEFAULT_MQTT, host_port_of)
}

#[cfg(feature = "databases")]
/// A throw-away database: an SQLite file in a temporary directory, or a
/// fresh MariaDB database dropped when this value is dropped.
pub struct TestDb {
    url: String,
    mysql: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

#[cfg(feature = "databases")]
impl TestDb {
    /// A new SQLite database file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self {
            url,
            mysql: None,
            _dir: Some(dir),
        }
    }

    /// A new, empty MariaDB database, or `None` when MariaDB is not
    /// available (see the crate docs).
    pub async fn mysql() -> Option<Self> {
        use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
        let server = mysql_server()?;
        let name = unique_name("dstest");
        let mut conn = AsyncMysqlConnection::establish(&server)
            .await
            .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .expect("creating a test database");
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
        Some(Self {
            url: format!("{base}/{name}"),
            mysql: Some((server.clone(), name)),
            _dir: None,
        })
    }

    /// `sqlite://…` or `mysql://…` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(feature = "databases")]
impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.mysql.take() else {
            return;
        };
        // Drop runs inside the test's runtime, so use a thread of its own.
        let _ = std::thread::spawn(move || {
            use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a runtime");
            rt.block_on(async {
                if let Ok(mut conn) = AsyncMysqlConnection::establish(&server).await {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Starts an embedded broker on a free port.
pub fn embedded_broker() -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        ..BrokerConfig::default()
    })
    .expect("starting the embedded broker")
}

/// Host and port of an `mqtt://` URL, for rumqttc options.
pub fn mqtt_host_port(url: &str) -> (String, u16) {
    let hp = host_port_of(url);
    let (h, p) = hp.rsplit_once(':').unwrap_or((&hp, "1883"));
    (h.to_owned(), p.parse().expect("numeric port"))
}

/// A plain QoS 1 MQTT client for tests, with its event loop driven in the
/// background.
pub async fn mqtt_client(url: &str, client_id: &str) -> rumqttc::AsyncClient {
    let (host, port) = mqtt_host_port(url);
    let mut options = rumqttc::MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(10));
    if let Some((user, password)) = datastream_domain::MqttUrl::parse(url)
        .ok()
        .and_then(|u| u.credentials().map(|(u, p)| (u.to_owned(), p.to_owned())))
    {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
}

#[cfg(feature = "databases")]
/// Ends the persistent session of `client_id` on the broker at `url`, so
/// tests leave no queues behind on a shared broker.
pub async fn clear_mqtt_session(url: &str, client_id: &str) {
    let Ok(mqtt) = datastream_domain::MqttUrl::parse(url) else {
        return;
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        datastream_ingestor::end_session(&mqtt, client_id),
    )
    .await;
}

/// The users a test Mosquitto knows, as the project's ACL names them.
const MQTT_TEST_USERS: [(&str, &str); 3] = [
    ("ingestor", "ingestor-test-password"),
    ("generator", "generator-test-password"),
    ("alerter", "alerter-test-password"),
];

/// A Mosquitto of the test's own, started from the project's
/// `mosquitto.conf` on a free port with a temporary persistence directory;
/// killed when dropped.
pub struct OwnMosquitto {
    child: std::process::Child,
    port: u16,
    /// A second listener speaking TLS ([`OwnMosquitto::start_with_tls`]).
    tls_port: Option<u16>,
    binary: &'static str,
    dir: tempfile::TempDir,
}

impl OwnMosquitto {
    /// Starts it, or returns `None` (skip) when `mosquitto` is not installed
    /// and `DATASTREAM_TEST_MQTT` is unset. In CI the binary must exist.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// As [`OwnMosquitto::start`], with some of `mosquitto.conf`'s settings
    /// replaced or added: `("max_queued_messages", "5")`.
    pub fn start_with(settings: &[(&str, &str)]) -> Option<Self> {
        Self::start_configured(settings, None)
    }

    /// As [`OwnMosquitto::start`], plus a TLS listener on another free
    /// port presenting `certs`' server certificate (for `localhost`); with
    /// `client_certificates`, it accepts only clients presenting a
    /// certificate signed by `certs`' CA.
    pub fn start_with_tls(certs: &TestCertificates, client_certificates: bool) -> Option<Self> {
        Self::start_configured(&[], Some((certs, client_certificates)))
    }

    fn start_configured(
        settings: &[(&str, &str)],
        tls: Option<(&TestCertificates, bool)>,
    ) -> Option<Self> {
        let binary = [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            assert!(
                std::env::var("DATASTREAM_TEST_MQTT").is_err(),
                "mosquitto is not installed but DATASTREAM_TEST_MQTT is set"
            );
            eprintln!("skipping: mosquitto is not installed");
            return None;
        };
        let tls_port = tls.map(|_| free_addr().port());
        let tls_listener: Vec<String> = match (tls, tls_port) {
            (Some((certs, client_certificates)), Some(tls_port)) => {
                let (cert, key) = certs.server_files();
                vec![
                    format!("listener {tls_port} 127.0.0.1"),
                    format!("cafile {}", certs.ca_file().display()),
                    format!("certfile {}", cert.display()),
                    format!("keyfile {}", key.display()),
                    format!("require_certificate {client_certificates}"),
                ]
            }
            _ => Vec::new(),
        };
        let project_conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../mosquitto.conf");
        let conf = std::fs::read_to_string(project_conf).expect("reading mosquitto.conf");
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let port = free_addr().port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("creating the persistence directory");
        // The project's ACL as it is; a password file for its users.
        let acl = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/mosquitto/acl");
        let passwd = dir.path().join("passwd");
        for (i, (user, password)) in MQTT_TEST_USERS.iter().enumerate() {
            let mut cmd = std::process::Command::new("mosquitto_passwd");
            if i == 0 {
                cmd.arg("-c");
            }
            let status = cmd
                .arg("-b")
                .arg(&passwd)
                .arg(user)
                .arg(password)
                .status()
                .expect("running mosquitto_passwd");
            assert!(status.success(), "mosquitto_passwd failed");
        }
        let conf: String = conf
            .lines()
            .map(|line| {
                if line.starts_with("listener ") {
                    format!("listener {port} 127.0.0.1")
                } else if line.starts_with("persistence_location ") {
                    format!("persistence_location {}/", data.display())
                } else if line.starts_with("password_file ") {
                    format!("password_file {}", passwd.display())
                } else if line.starts_with("acl_file ") {
                    format!("acl_file {acl}")
                } else if settings
                    .iter()
                    .any(|(key, _)| line.split_whitespace().next() == Some(key))
                {
                    // Replaced below.
                    String::new()
                } else {
                    line.to_owned()
                }
            })
            .chain(settings.iter().map(|(key, value)| format!("{key} {value}")))
            .chain([
                // Started as root, Mosquitto drops to the `mosquitto` user,
                // which cannot write into the test's private directory.
                "user root".to_owned(),
            ])
            .chain(tls_listener.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("mosquitto.conf"), conf)
            .expect("writing the test mosquitto.conf");
        let child = Self::spawn(binary, dir.path(), port);
        Some(Self {
            child,
            port,
            tls_port,
            binary,
            dir,
        })
    }

    fn spawn(binary: &str, dir: &std::path::Path, port: u16) -> std::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("mosquitto.log"))
            .expect("log file");
        let child = std::process::Command::new(binary)
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting mosquitto");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid address");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Stops the broker (SIGTERM, so it saves its persistent state), keeps
    /// it down for `down`, then starts it again on the same port and data.
    pub async fn restart(&mut self, down: Duration) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        self.child = Self::spawn(self.binary, self.dir.path(), self.port);
    }

    /// `mqtt://127.0.0.1:PORT`, anonymous: may watch `sensors/#`, never publish.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The URL with the `ingestor` user's credentials.
    pub fn ingestor_url(&self) -> String {
        self.url_as(0)
    }

    /// The URL with the `generator` user's credentials (may publish readings).
    pub fn publisher_url(&self) -> String {
        self.url_as(1)
    }

    /// The URL with the `alerter` user's credentials (reads readings,
    /// publishes alerts).
    pub fn alerter_url(&self) -> String {
        self.url_as(2)
    }

    /// `mqtts://USER:PASSWORD@localhost:TLS_PORT` for `user` (`ingestor`,
    /// `generator`, `alerter`) on the TLS listener, or `mqtts://localhost:…`
    /// for `None` (anonymous).
    pub fn tls_url(&self, user: Option<&str>) -> String {
        let port = self.tls_port.expect("started with start_with_tls");
        match user.and_then(|u| MQTT_TEST_USERS.iter().find(|(name, _)| *name == u)) {
            Some((name, password)) => format!("mqtts://{name}:{password}@localhost:{port}"),
            None => format!("mqtts://localhost:{port}"),
        }
    }

    /// The TLS listener's port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with start_with_tls")
    }

    fn url_as(&self, user: usize) -> String {
        let (name, password) = MQTT_TEST_USERS[user];
        format!("mqtt://{name}:{password}@127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `payloads` at QoS 1 and returns once the broker has acked
/// every one (so they are the broker's responsibility from then on).
pub async fn publish_all_acked(url: String, payloads: Vec<(String, Vec<u8>)>) {
    let mqtt = datastream_domain::MqttUrl::parse(&url).expect("an mqtt:// URL");
    publish_all_acked_to(&mqtt, payloads).await
}

/// [`publish_all_acked`] to a parsed URL (TLS and its files included).
pub async fn publish_all_acked_to(
    mqtt: &datastream_domain::MqttUrl,
    payloads: Vec<(String, Vec<u8>)>,
) {
    let mut options = datastream_mqtt::client_options(mqtt, &unique_name("pub"));
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        // Room for payloads up to the brokers' 1 MiB packet limit.
        .set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
    let total = payloads.len();
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    let sender = tokio::spawn(async move {
        for (topic, payload) in payloads {
            client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .expect("queueing a publish");
        }
        client
    });
    let mut acked = 0;
    while acked < total {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("publisher lost the broker after {acked}/{total} acks: {e}"),
        }
    }
    let client = sender.await.expect("publisher task");
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
}

/// A TCP proxy of the test's own, to cut a service off and bring it back.
pub struct TcpProxy {
    addr: SocketAddr,
    state: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl TcpProxy {
    /// Forwards a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (state, _) = tokio::sync::watch::channel(true);
        let state = std::sync::Arc::new(state);
        let accept_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*accept_state.borrow() {
                    drop(inbound); // cut: refuse by closing at once
                    continue;
                }
                let mut up = accept_state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Self { addr, state }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.state.send_replace(false);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state.send_replace(true);
    }
}

/// The `host:port` of a `mysql://` URL, as a socket address.
pub fn mysql_host_port(url: &str) -> SocketAddr {
    host_port_of(url)
        .parse()
        .expect("MySQL URL with a numeric host:port")
}

/// Subscribes to a topic filter and keeps every message that arrives: for
/// counting what generators publish, on the broker itself.
pub struct MessageTap {
    received: std::sync::Arc<std::sync::Mutex<Vec<rumqttc::Publish>>>,
    client: rumqttc::AsyncClient,
}

impl MessageTap {
    /// Subscribes to `filter` on the broker at `url` (QoS 1) and returns
    /// once the subscription is acknowledged, so nothing published after
    /// that is missed.
    pub async fn start(url: &str, filter: &str) -> Self {
        let (host, port) = mqtt_host_port(url);
        let mut options = rumqttc::MqttOptions::new(unique_name("tap"), host, port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(2 * 1024 * 1024, 64 * 1024);
        if let Some((user, password)) = datastream_domain::MqttUrl::parse(url)
            .ok()
            .and_then(|u| u.credentials().map(|(u, p)| (u.to_owned(), p.to_owned())))
        {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .expect("queueing the subscription");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn({
            let received = received.clone();
            async move {
                let mut subscribed = Some(subscribed_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            received.lock().unwrap().push(p);
                        }
                        Ok(_) => {}
                        Err(rumqttc::ConnectionError::RequestsDone) => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        });
        // A broker busy with a whole test suite has been seen to sit on a
        // subscription: ask again rather than fail the test on it.
        let mut subscribed_rx = subscribed_rx;
        let mut tries = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), &mut subscribed_rx).await {
                Ok(acked) => {
                    acked.expect("the tap's event loop is running");
                    break;
                }
                Err(_) if tries < 2 => {
                    tries += 1;
                    client
                        .subscribe(filter, rumqttc::QoS::AtLeastOnce)
                        .await
                        .expect("queueing the subscription again");
                }
                Err(_) => panic!("the broker did not acknowledge the subscription in 30 s"),
            }
        }
        Self { received, client }
    }

    /// How many messages arrived so far.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Every message so far, leaving them in the tap.
    pub fn snapshot(&self) -> Vec<rumqttc::Publish> {
        self.received.lock().unwrap().clone()
    }

    /// Every message so far, emptying the tap.
    pub fn take(&self) -> Vec<rumqttc::Publish> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }

    /// Waits until `n` messages have arrived, at most `timeout`; returns
    /// every message so far (fewer than `n` on timeout), emptying the tap.
    pub async fn wait_until_count(&self, n: usize, timeout: Duration) -> Vec<rumqttc::Publish> {
        let deadline = std::time::Instant::now() + timeout;
        while self.count() < n && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.take()
    }

    /// Waits until a message satisfies `found` (checking what arrived
    /// before too), at most `timeout`; returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        found: impl Fn(&rumqttc::Publish) -> bool,
    ) -> Option<rumqttc::Publish> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(p) = self.received.lock().unwrap().iter().find(|p| found(p)) {
                return Some(p.clone());
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MessageTap {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

/// An MQTT 3.1.1 peer that accepts every connection and refuses every
/// subscription (SUBACK return code 0x80), as EMQX, HiveMQ or VerneMQ answer
/// a subscription their ACL denies. Neither Mosquitto nor rumqttd ever
/// refuses one (Mosquitto grants it and withholds the messages), so the
/// tests of that answer need this stand-in. Stops when dropped.
pub struct RefusingBroker {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RefusingBroker {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the refusing broker");
        let addr = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(Self::serve(stream));
            }
        });
        Self { addr, task }
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Answers CONNECT, SUBSCRIBE and PINGREQ until the client goes.
    async fn serve(mut stream: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let mut first = [0u8; 1];
            if stream.read_exact(&mut first).await.is_err() {
                return;
            }
            // The remaining length: up to four 7-bit groups.
            let mut length = 0usize;
            for shift in [0, 7, 14, 21] {
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_err() {
                    return;
                }
                length |= usize::from(byte[0] & 0x7f) << shift;
                if byte[0] & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            let reply: Vec<u8> = match first[0] >> 4 {
                1 => vec![0x20, 0x02, 0x00, 0x00], // CONNACK, accepted
                8 if body.len() >= 2 => {
                    // One refusal per topic filter: 2-byte length, filter, QoS.
                    let mut refusals = Vec::new();
                    let mut at = 2;
                    while at + 2 <= body.len() {
                        let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
                        at += 2 + len + 1;
                        refusals.push(0x80);
                    }
                    let mut suback = vec![0x90, (2 + refusals.len()) as u8, body[0], body[1]];
                    suback.extend(refusals);
                    suback
                }
                12 => vec![0xd0, 0x00], // PINGRESP
                14 => return,           // DISCONNECT
                _ => Vec::new(),
            };
            if !reply.is_empty() && stream.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

impl Drop for RefusingBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
