//! Starting the whole system for a test and talking to it.

use datastream::{ListenAddr, Settings, System};
use datastream_bench::service_process::{IngestorSpec, ServiceCommand, ServiceProcess};
use datastream_generator::GeneratorSpec;
use datastream_test_support::{
    clear_mqtt_session, mqtt_client, mysql_host_port, unique_name, TcpProxy, TestDb,
};
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
        Self::try_start_with(db, mqtt_url, generators, adjust)
            .await
            .expect("starting the system")
    }

    /// Like [`TestSystem::start_with`], handing back why it did not start.
    pub async fn try_start_with(
        db: TestDb,
        mqtt_url: Option<String>,
        generators: Vec<GeneratorSpec>,
        adjust: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
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
            grpc_listen: any_port(),
            // Its own fleet, so systems sharing a broker never run each
            // other's generators.
            generator_fleet: unique_name("fleet"),
            jwt_secret: Some(TEST_JWT_SECRET.into()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            ingest_group: unique_name("grp"),
            ingest_client_id: Some(unique_name("ing")),
            alert_client_id: Some(unique_name("alr")),
            ingest_flush_ms: 50,
            ..Settings::default()
        };
        if !db.url().starts_with("sqlite://") {
            // Beside the SQLite file by default; for MySQL, not in the
            // working directory.
            let file = std::env::temp_dir().join(format!("{}.json", unique_name("generators")));
            settings.generators_file = Some(file.to_string_lossy().into_owned());
        }
        adjust(&mut settings);
        let system = System::start(&settings, generators).await?;
        let base = format!("http://{}", system.endpoints().api);
        let generators_base = format!("http://{}", system.endpoints().generators);
        let mqtt_url = system.endpoints().mqtt.to_string();
        Ok(Self {
            system,
            base,
            generators_base,
            mqtt_url,
            settings,
            http: reqwest::Client::new(),
            db,
        })
    }

    /// Stops the system cleanly, forgets its ingestor's broker session, and
    /// hands back the database for inspection.
    pub async fn stop(self) -> TestDb {
        let (client_id, mqtt_url) = (self.ingest_client_id(), self.mqtt_url.clone());
        let alerter_id = self.settings.alert_client_id();
        let db = self.stop_keeping_session().await;
        clear_mqtt_session(&mqtt_url, &client_id).await;
        clear_mqtt_session(&mqtt_url, &alerter_id).await;
        db
    }

    /// Stops the system cleanly and leaves its ingestor's and alerter's
    /// sessions on the broker (to be resumed, or ended by the test).
    pub async fn stop_keeping_session(self) -> TestDb {
        self.system.stop().await.expect("stopping the system");
        self.db
    }

    /// Where its parts listen.
    pub fn endpoints(&self) -> &datastream::system::Endpoints {
        self.system.endpoints()
    }

    /// `http://host:port` of its gRPC gateway.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.system.endpoints().grpc)
    }

    /// The MQTT client id of its ingestor.
    pub fn ingest_client_id(&self) -> String {
        self.system.endpoints().ingest_client_id.clone()
    }

    /// `GET /readyz`: its status and body.
    pub async fn readyz(&self) -> (u16, String) {
        let answer = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("GET /readyz");
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap_or_default())
    }

    /// A client publishing to the system's broker.
    pub async fn publisher(&self) -> AsyncClient {
        mqtt_client(&self.mqtt_url, &unique_name("pub")).await
    }

    /// Publishes one reading of `sensor_type` from `id1`/`id2` with
    /// `value`, taken now, on its topic.
    pub async fn publish_now(&self, sensor_type: &str, id1: &str, id2: i32, value: f64) {
        let client = self.publisher().await;
        let body = serde_json::json!({"sensor_value": value, "sensor_type": sensor_type,
            "id1": id1, "id2": id2,
            "timestamp": datastream_domain::timestamp::format_timestamp(chrono::Utc::now())});
        publish(
            &client,
            &format!("sensors/{sensor_type}/{id1}/{id2}"),
            body.to_string(),
        )
        .await;
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

/// The admin's access token from the API at `base` (a standalone process
/// started with [`start_api`]).
pub async fn admin_token_at(base: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login request")
        .json()
        .await
        .expect("login body");
    body["access_token"].as_str().expect("a token").to_owned()
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
) -> ServiceProcess {
    spawn_ingestor_with(database_url, mqtt_url, group, client_id, &[])
}

/// [`spawn_ingestor`] with extra settings, e.g. `INGEST_MAX_BACKLOG`.
pub fn spawn_ingestor_with(
    database_url: &str,
    mqtt_url: &str,
    group: Option<&str>,
    client_id: &str,
    env: &[(&str, &str)],
) -> ServiceProcess {
    let mut settings = vec![("INGEST_FLUSH_MS".to_owned(), "50".to_owned())];
    settings.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let spec = IngestorSpec {
        database_url: database_url.to_owned(),
        mqtt_url: mqtt_url.to_owned(),
        group: group.map(str::to_owned),
        client_id: client_id.to_owned(),
        env: settings,
    };
    ServiceProcess::spawn(binary(), ServiceCommand::ingestor(&spec))
        .expect("starting datastream ingestor")
}

/// A `datastream ingestor` in a group of its own on `mqtt_url`, ready.
pub async fn start_ingestor(database_url: &str, mqtt_url: &str) -> ServiceProcess {
    let mut ingestor = spawn_ingestor(
        database_url,
        mqtt_url,
        Some(&unique_name("grp")),
        &unique_name("ing"),
    );
    ingestor
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("the ingestor became ready");
    ingestor
}

/// A proxy the test can cut between a service and the MySQL database at
/// `database_url`, and the URL that reaches the database through it.
pub async fn proxied_mysql(database_url: &str) -> (TcpProxy, String) {
    let target = mysql_host_port(database_url);
    let proxy = TcpProxy::start(target).await;
    // mysql_async switches a loopback TCP connection to the unix socket
    // unless told not to, which would bypass the proxy.
    let url = format!(
        "{}?prefer_socket=false",
        database_url.replacen(&target.to_string(), &proxy.addr().to_string(), 1)
    );
    (proxy, url)
}

/// A `datastream generator --fleet FLEET` process on the broker at
/// `mqtt_url`, ready.
pub async fn start_generator_fleet(mqtt_url: &str, fleet: &str) -> ServiceProcess {
    let command =
        ServiceCommand::generator_fleet(mqtt_url, fleet, &[("JWT_SECRET", TEST_JWT_SECRET)]);
    ServiceProcess::start(binary(), command, Duration::from_secs(15))
        .await
        .expect("starting a generator fleet")
}

/// A `datastream api` process on `database_url` with the test secret and
/// admin password, ready.
pub async fn start_api(database_url: &str) -> ServiceProcess {
    start_api_with(database_url, &[]).await
}

/// [`start_api`] with more settings, e.g. `MQTT_URL` for live streams.
pub async fn start_api_with(database_url: &str, env: &[(&str, &str)]) -> ServiceProcess {
    let mut all = vec![
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
    ];
    all.extend_from_slice(env);
    let command = ServiceCommand::api(database_url, &all);
    ServiceProcess::start(binary(), command, Duration::from_secs(30))
        .await
        .expect("starting datastream api")
}

/// The `datastream` binary under test.
fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_datastream"))
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
                "timestamp": datastream_domain::timestamp::format_timestamp(ts),
            });
            (
                format!("sensors/temperature/{id1}/{id2}"),
                payload.to_string().into_bytes(),
            )
        })
        .collect()
}

/// Rows stored for `id1`.
pub async fn count_rows(store: &datastream_store::SharedStore, id1: &str) -> u64 {
    let filter = datastream_domain::ReadingFilter::default()
        .with_id1(datastream_domain::Id1::parse(id1).expect("valid id1"));
    store.count(&filter).await.unwrap_or(0)
}

/// Waits until `id1` has `n` rows or `timeout` passes; returns the count.
pub async fn wait_for_rows(
    store: &datastream_store::SharedStore,
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
