//! The operator's path outside Docker: `scripts/mosquitto-host.sh` runs the
//! project's Mosquitto on this host with its ACL and a password file from
//! the environment.

use crate::support::TestSystem;
use datastream::Settings;
use datastream_generator::GeneratorSpec;
use datastream_test_support::{
    clear_mqtt_session, free_addr, publish_all_acked, unique_id1, unique_name, MessageTap,
    OwnMosquitto, TestDb,
};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The script's broker, stopped when dropped.
struct HostMosquitto {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for HostMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `scripts/mosquitto-host.sh` on a free port with `env` besides the
/// two passwords; `None` when Mosquitto is not installed (and CI does not
/// require it).
async fn host_mosquitto(env: &[(&str, &str)]) -> Option<(HostMosquitto, u16)> {
    if Command::new("mosquitto_passwd").arg("-h").output().is_err() {
        assert!(
            std::env::var("DATASTREAM_TEST_MQTT").is_err(),
            "mosquitto_passwd is not installed but DATASTREAM_TEST_MQTT is set"
        );
        return None;
    }
    let port = free_addr().port();
    // Under /tmp itself: the broker drops to the mosquitto user, which
    // must be able to reach the directory.
    let dir = std::path::Path::new("/tmp").join(unique_name("mosquitto-host"));
    let child = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/mosquitto-host.sh"
    ))
    .arg(&dir)
    .arg(port.to_string())
    .env("MQTT_INGESTOR_PASSWORD", "ingestor-secret")
    .env("MQTT_GENERATOR_PASSWORD", "generator-secret")
    .envs(env.iter().copied())
    .spawn()
    .expect("running scripts/mosquitto-host.sh");
    let broker = HostMosquitto { child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((broker, port))
}

/// Publishes one message with mosquitto_pub as `credentials` (none:
/// anonymous); whether the broker took it.
fn mosquitto_pub(port: u16, credentials: &[&str], payload: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(credentials)
        .args(["-t", "sensors/temperature/HOST/1", "-m", payload])
        .status()
        .expect("running mosquitto_pub")
        .success()
}

/// Every payload `tap` received within a moment.
async fn payloads(tap: &MessageTap) -> Vec<Vec<u8>> {
    let mut received = tap.wait_until_count(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    received.extend(tap.take());
    received.into_iter().map(|p| p.payload.to_vec()).collect()
}

const GENERATOR_LOGIN: [&str; 4] = ["-u", "generator", "-P", "generator-secret"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_script_listens_on_loopback_refuses_anonymous_clients_and_keeps_the_passwords_private(
) {
    let Some((broker, port)) = host_mosquitto(&[]).await else {
        return;
    };
    let conf = std::fs::read_to_string(broker.dir.join("mosquitto.conf")).unwrap();
    assert!(
        conf.contains(&format!("listener {port} 127.0.0.1\n")),
        "{conf}"
    );
    assert!(conf.contains("allow_anonymous false"), "{conf}");
    assert!(
        !mosquitto_pub(port, &[], "anonymous"),
        "anonymous clients are refused"
    );
    // The ingestor user reads what the generator user publishes.
    let tap = MessageTap::start(
        &format!("mqtt://ingestor:ingestor-secret@127.0.0.1:{port}"),
        "sensors/#",
    )
    .await;
    assert!(mosquitto_pub(port, &GENERATOR_LOGIN, "generator"));
    assert_eq!(payloads(&tap).await, vec![b"generator".to_vec()]);
    let mode = std::fs::metadata(broker.dir.join("passwd"))
        .expect("the password file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "the password file is private"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_script_lets_anonymous_clients_watch_when_asked_but_never_publish() {
    let Some((_broker, port)) = host_mosquitto(&[("MOSQUITTO_ANONYMOUS_READ", "1")]).await else {
        return;
    };
    let tap = MessageTap::start(&format!("mqtt://127.0.0.1:{port}"), "sensors/#").await;
    // mosquitto_pub succeeds either way: the broker drops what the ACL denies.
    for (credentials, payload) in [(&[][..], "anonymous"), (&GENERATOR_LOGIN[..], "generator")] {
        assert!(mosquitto_pub(port, credentials, payload), "{payload}");
    }
    assert_eq!(
        payloads(&tap).await,
        vec![b"generator".to_vec()],
        "anonymous publishes are dropped"
    );
}

/// `up` on the project's Mosquitto with one login per role: the ingestor
/// as `ingestor`, the generators as `generator`, `MQTT_URL` anonymous.
fn a_login_per_role(mosquitto: &OwnMosquitto) -> impl FnOnce(&mut Settings) + '_ {
    move |settings| {
        settings.mqtt_ingestor_url = Some(mosquitto.ingestor_url());
        settings.mqtt_generator_url = Some(mosquitto.publisher_url());
    }
}

/// One generator of `id1` at 20 readings/s.
fn generator(id1: &str) -> Vec<GeneratorSpec> {
    vec![GeneratorSpec::parse("per-role", "temperature", id1, 1, 20.0).unwrap()]
}

/// Polls `/readyz` until `done` holds for its status and body, or 40 s.
async fn readyz_until(sys: &TestSystem, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body) = sys.readyz().await;
        if done(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_the_projects_mosquitto_with_a_login_per_role_stores_readings_and_stays_ready() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    let id1 = unique_id1();
    let sys = TestSystem::start_with(
        TestDb::sqlite(),
        Some(mosquitto.url()),
        generator(&id1),
        a_login_per_role(&mosquitto),
    )
    .await;
    let stored = sys
        .wait_for_readings(&format!("id1={id1}&limit=20"), 20, Duration::from_secs(30))
        .await;
    assert_eq!(stored.len(), 20);
    // Past the pipeline check's whole window: still ready.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (status, body) = sys.readyz().await;
    assert_eq!(status, 200, "{body}");
    let fleet = sys.settings.generator_fleet.clone();
    sys.stop().await;
    // A clean stop leaves no retained fleet status on the broker.
    let tap = MessageTap::start(&mosquitto.publisher_url(), "datastream/fleets/#").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left: Vec<String> = tap
        .take()
        .into_iter()
        .filter(|p| p.retain && p.topic.contains(&fleet) && !p.payload.is_empty())
        .map(|p| format!("{}: {}", p.topic, String::from_utf8_lossy(&p.payload)))
        .collect();
    assert!(left.is_empty(), "retained after a clean stop: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_whose_ingestor_may_not_read_the_readings_is_not_ready_and_says_why() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    // Every role as the generator user, who may publish readings but not
    // read them: Mosquitto grants the subscription and delivers nothing.
    let sys = TestSystem::start(
        TestDb::sqlite(),
        Some(mosquitto.publisher_url()),
        generator(&unique_id1()),
    )
    .await;
    let (status, body) = readyz_until(&sys, |status, _| status == 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("received none"), "{body}");
    assert!(
        body.contains("MQTT_INGESTOR_URL"),
        "says what to set: {body}"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restarted_on_other_ports_resumes_its_session_and_stores_what_was_queued() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    let derived_client_id = |settings: &mut Settings| settings.ingest_client_id = None;
    let first = TestSystem::start_with(TestDb::sqlite(), Some(mosquitto.url()), vec![], |s| {
        a_login_per_role(&mosquitto)(s);
        derived_client_id(s);
    })
    .await;
    let (client_id, first_api) = (first.ingest_client_id(), first.base.clone());
    let db = first.stop_keeping_session().await;

    // Published while it is down: queued in its session.
    let id1 = unique_id1();
    publish_all_acked(
        mosquitto.publisher_url(),
        crate::support::reading_messages(&id1, 120),
    )
    .await;

    let second = TestSystem::start_with(db, Some(mosquitto.url()), vec![], |s| {
        a_login_per_role(&mosquitto)(s);
        derived_client_id(s);
    })
    .await;
    assert_ne!(second.base, first_api, "another API port");
    assert_eq!(second.ingest_client_id(), client_id, "the same session");
    let stored = second
        .wait_for_readings(
            &format!("id1={id1}&limit=200"),
            120,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(stored.len(), 120, "everything queued while it was down");
    second.stop_keeping_session().await;
    clear_mqtt_session(&mosquitto.ingestor_url(), &client_id).await;
}
