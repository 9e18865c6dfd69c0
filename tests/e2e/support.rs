//! Starting the whole system for a test and talking to it.

use datastream::ingestor_process::{IngestorProcess, IngestorSpec};
use datastream::{ListenAddr, Settings, System};
use datastream_generator::GeneratorSpec;
use datastream_test_support::{clear_mqtt_session, mqtt_client, unique_name, TestDb};
use rumqttc::{AsyncClient, QoS};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Every query parameter `/api/v1/readings` takes.
pub const READING_PARAMS: &[&str] = &[
    "id1",
    "id2",
    "sensor_type",
    "from",
    "to",
    "duration",
    "limit",
    "order",
    "cursor",
    "page",
];

/// The secret every test system signs tokens with.
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-0123456789";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A free port on loopback, chosen by the OS when the service binds.
fn any_port() -> ListenAddr {
    ListenAddr::chosen(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A running system plus what a test needs to drive it.
pub struct TestSystem {
    system: System,
    pub base: String,
    /// The generator service's REST API.
    pub generators_base: String,
    pub mqtt_url: String,
    pub settings: Settings,
    pub http: reqwest::Client,
    pub db: TestDb,
}

impl TestSystem {
    /// Starts everything on `db`; on `mqtt_url` or, if `None`, an embedded
    /// broker on a free port.
    pub async fn start(
        db: TestDb,
        mqtt_url: Option<String>,
        generators: Vec<GeneratorSpec>,
    ) -> Self {
        Self::start_with(db, mqtt_url, generators, |_| {}).await
    }

    /// Like [`TestSystem::start`], with a chance to adjust the settings.
    pub async fn start_with(
        db: TestDb,
        mqtt_url: Option<String>,
        generators: Vec<GeneratorSpec>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        // Logs show up only for failing tests (the test writer is captured).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,rumqttd=off,rumqttc=warn,actix_server=warn")
            .with_test_writer()
            .try_init();
        let mut settings = Settings {
            database_url: db.url().to_owned(),
            mqtt_url,
            mqtt_listen: any_port(),
            api_listen: any_port(),
            generator_listen: any_port(),
            // Its own fleet, so systems sharing a broker never run each
            // other's generators.
            generator_fleet: unique_name("fleet"),
            jwt_secret: Some(TEST_JWT_SECRET.into()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            ingest_group: unique_name("grp"),
            ingest_client_id: Some(unique_name("ing")),
            ingest_flush_ms: 50,
            ..Settings::default()
        };
        adjust(&mut settings);
        let system = System::start(&settings, generators)
            .await
            .expect("starting the system");
        let base = format!("http://{}", system.endpoints().api);
        let generators_base = format!("http://{}", system.endpoints().generators);
        let mqtt_url = system.endpoints().mqtt.to_string();
        Self {
            system,
            base,
            generators_base,
            mqtt_url,
            settings,
            http: reqwest::Client::new(),
            db,
        }
    }

    /// Stops the system cleanly, forgets its ingestor's broker session, and
    /// hands back the database for inspection.
    pub async fn stop(self) -> TestDb {
        let client_id = format!(
            "{}-{}",
            self.settings.ingest_client_id(),
            self.system.endpoints().api.port()
        );
        self.system.stop().await.expect("stopping the system");
        clear_mqtt_session(&self.mqtt_url, &client_id).await;
        self.db
    }

    /// A client publishing to the system's broker.
    pub async fn publisher(&self) -> AsyncClient {
        mqtt_client(&self.mqtt_url, &unique_name("pub")).await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// The admin's access token.
    pub async fn admin_token(&self) -> String {
        let body: Value = self
            .login("admin", ADMIN_PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().expect("a token").to_owned()
    }

    /// `GET {path}` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET request")
    }

    /// Any request to the API with a bearer token and an optional JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        self.send_to(&self.base, method, path, token, body).await
    }

    /// Any request to the generator service.
    pub async fn send_generators(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        self.send_to(&self.generators_base, method, path, token, body)
            .await
    }

    async fn send_to(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }

    /// Creates a user as the admin and returns a token for them.
    pub async fn user_token(&self, username: &str, role: &str) -> String {
        let admin = self.admin_token().await;
        let password = format!("{username}-password");
        let resp = self
            .send(
                reqwest::Method::POST,
                "/api/v1/users",
                &admin,
                Some(serde_json::json!({"username": username, "password": password, "role": role})),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 201, "creating {username}");
        let body: Value = self.login(username, &password).await.json().await.unwrap();
        body["access_token"].as_str().expect("a token").to_owned()
    }

    /// Polls `GET /api/v1/readings?{query}` until it returns `n` readings
    /// or `timeout` passes; returns the last answer's readings.
    pub async fn wait_for_readings(&self, query: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let token = self.admin_token().await;
        let deadline = Instant::now() + timeout;
        loop {
            let body: Value = self
                .get(&format!("/api/v1/readings?{query}"), &token)
                .await
                .json()
                .await
                .unwrap();
            let data = body["data"].as_array().cloned().unwrap_or_default();
            if data.len() >= n || Instant::now() > deadline {
                return data;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Publishes `payload` at QoS 1.
pub async fn publish(client: &AsyncClient, topic: &str, payload: impl Into<Vec<u8>>) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.into())
        .await
        .expect("queueing a publish");
}

/// Starts a real `datastream ingestor` process (flushing every 50 ms).
/// `group` `None` subscribes directly to `sensors/#`.
pub fn spawn_ingestor(
    database_url: &str,
    mqtt_url: &str,
    group: Option<&str>,
    client_id: &str,
) -> IngestorProcess {
    spawn_ingestor_with(database_url, mqtt_url, group, client_id, &[])
}

/// [`spawn_ingestor`] with extra settings, e.g. `INGEST_MAX_BACKLOG`.
pub fn spawn_ingestor_with(
    database_url: &str,
    mqtt_url: &str,
    group: Option<&str>,
    client_id: &str,
    env: &[(&str, &str)],
) -> IngestorProcess {
    let mut settings = vec![("INGEST_FLUSH_MS".to_owned(), "50".to_owned())];
    settings.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let spec = IngestorSpec {
        database_url: database_url.to_owned(),
        mqtt_url: mqtt_url.to_owned(),
        group: group.map(str::to_owned),
        client_id: client_id.to_owned(),
        env: settings,
    };
    IngestorProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_datastream")),
        &spec,
    )
    .expect("starting datastream ingestor")
}

/// `n` valid readings for device family `id1`, spread over ten `id2`s, as
/// `(topic, payload)` pairs with distinct timestamps.
pub fn reading_messages(id1: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    (0..n)
        .map(|i| {
            let id2 = i % 10;
            let ts = base + chrono::Duration::microseconds(i as i64 * 37);
            let payload = serde_json::json!({
                "sensor_value": i as f64 / 10.0,
                "sensor_type": "temperature",
                "id1": id1,
                "id2": id2,
                "timestamp": datastream_schema::timestamp::format_timestamp(ts),
            });
            (
                format!("sensors/temperature/{id1}/{id2}"),
                payload.to_string().into_bytes(),
            )
        })
        .collect()
}

/// Rows stored for `id1`.
pub async fn count_rows(store: &datastream_schema::SharedStore, id1: &str) -> u64 {
    let filter = datastream_schema::ReadingFilter::default()
        .with_id1(datastream_schema::Id1::parse(id1).expect("valid id1"));
    store.count(&filter).await.unwrap_or(0)
}

/// Waits until `id1` has `n` rows or `timeout` passes; returns the count.
pub async fn wait_for_rows(
    store: &datastream_schema::SharedStore,
    id1: &str,
    n: u64,
    timeout: Duration,
) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let count = count_rows(store, id1).await;
        if count >= n || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real `datastream generator --fleet …` process. Killed (SIGKILL) when
/// dropped.
pub struct GeneratorProcess {
    child: std::process::Child,
    listen: std::net::SocketAddr,
}

impl GeneratorProcess {
    /// Starts a fleet process on the broker at `mqtt_url`, its REST API on
    /// a free port, its output in a log file in the temporary directory.
    pub fn spawn(mqtt_url: &str, fleet: &str) -> Self {
        let listen = datastream_test_support::free_addr();
        let log = std::env::temp_dir().join(format!("generator-{fleet}-{}.log", listen.port()));
        let out = std::fs::File::create(&log).expect("creating the generator log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_datastream"))
            .args(["generator", "--fleet", fleet])
            .env("MQTT_URL", mqtt_url)
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env("GENERATOR_LISTEN", listen.to_string())
            .env("RUST_LOG", "info,rumqttc=warn,actix_server=warn")
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting datastream generator");
        Self { child, listen }
    }

    /// Waits until `/readyz` answers 200 (connected, catalog loaded).
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("http://{}/readyz", self.listen);
        loop {
            if let Ok(resp) = reqwest::get(&url).await {
                if resp.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the generator process exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "generator process not ready in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no clean disconnect, so the broker sends the last wills.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GeneratorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real `datastream api` process on a free port, with the test secret and
/// admin password. Killed (SIGKILL) when dropped.
pub struct ApiProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ApiProcess {
    /// Starts it on `database_url` and waits until `/readyz` answers.
    pub async fn start(database_url: &str) -> Self {
        let listen = datastream_test_support::free_addr();
        let log = std::env::temp_dir().join(format!("api-{}.log", listen.port()));
        let out = std::fs::File::create(&log).expect("creating the API log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_datastream"))
            .arg("api")
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("API_LISTEN", listen.to_string())
            .env("RUST_LOG", "warn")
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting datastream api");
        let base = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = reqwest::get(format!("{base}/readyz")).await {
                if resp.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "datastream api exited early ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "datastream api not ready in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, base }
    }

    /// Resident memory now (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the API's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("a VmRSS line")
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
