//! The README's first command, `datastream up` with nothing configured, on a
//! machine that already runs an MQTT broker and web servers on the default
//! ports: taken defaults move to free ports, the banner shows where
//! everything went, and readings flow. An address the user chose is never
//! moved.

use crate::support::ADMIN_PASSWORD;
use datastream_test_support::free_addr;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The defaults `up` prefers.
const DEFAULT_MQTT: &str = "127.0.0.1:1883";
const DEFAULT_API: &str = "127.0.0.1:8080";
const DEFAULT_GENERATORS: &str = "127.0.0.1:8081";

/// Makes sure `addr` is taken: binds it, or leaves it to whoever already
/// holds it (the machine's Mosquitto holds 1883).
fn hold(addr: &str) -> Option<TcpListener> {
    TcpListener::bind(addr).ok()
}

/// `datastream up` in a directory of its own (its SQLite file lands there),
/// with nothing configured but `env`; both output streams go to one channel
/// of lines.
fn up(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    datastream(dir, "up", env)
}

/// `datastream {subcommand}` as [`up`] runs `up`.
fn datastream(
    dir: &std::path::Path,
    subcommand: &str,
    env: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_datastream"));
    for (name, _) in std::env::vars() {
        if datastream::settings::ENV_VARS.contains(&name.as_str()) {
            command.env_remove(name);
        }
    }
    let mut child = command
        .arg(subcommand)
        .current_dir(dir)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "RUST_LOG",
            "info,rumqttd=off,rumqttc=warn,actix_server=warn",
        )
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running datastream up");
    let (lines, received) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
    }
    (child, received)
}

/// Collects output lines until one contains `marker` (returning them all),
/// or `timeout` passes (panicking with what was seen).
fn output_until(lines: &mpsc::Receiver<String>, marker: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {marker:?} within {timeout:?}; output:\n{seen}");
}

/// The address on the banner line that starts with `label`, after `scheme`.
fn banner_addr(banner: &str, label: &str, scheme: &str) -> SocketAddr {
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in the banner:\n{banner}"));
    let rest = &line[line.find(scheme).expect("scheme on the line") + scheme.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"))
}

fn sigterm(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_moves_off_taken_default_ports_says_where_and_readings_flow() {
    let _held: Vec<_> = [DEFAULT_MQTT, DEFAULT_API, DEFAULT_GENERATORS]
        .into_iter()
        .map(hold)
        .collect();
    let dir = tempfile::tempdir().expect("a directory for the database");
    let (mut child, lines) = up(dir.path(), &[]);
    let banner = output_until(&lines, "Ctrl-C stops cleanly", Duration::from_secs(60));

    let mqtt = banner_addr(&banner, "MQTT broker", "mqtt://");
    let api = banner_addr(&banner, "REST API", "http://");
    let generators = banner_addr(&banner, "generators", "http://");
    for (label, got, default) in [
        ("MQTT_LISTEN", mqtt, DEFAULT_MQTT),
        ("API_LISTEN", api, DEFAULT_API),
        ("GENERATOR_LISTEN", generators, DEFAULT_GENERATORS),
    ] {
        assert_ne!(got.to_string(), default, "{label} stayed on a taken port");
        assert!(
            banner.contains(&format!(
                "the default {default} is in use; listening on {got} instead"
            )),
            "no warning naming {default} and {got}:\n{banner}"
        );
    }
    assert!(
        banner.contains(&format!(
            "mosquitto_sub -h {} -p {}",
            mqtt.ip(),
            mqtt.port()
        )),
        "the watch line names the broker's real port:\n{banner}"
    );

    // Readings from the default generators reach the API on its new port.
    let http = reqwest::Client::new();
    let token = http
        .post(format!("http://{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("logging in")
        .json::<serde_json::Value>()
        .await
        .expect("a login answer")["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page: serde_json::Value = http
            .get(format!("http://{api}/api/v1/readings?limit=5"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("listing readings")
            .json()
            .await
            .expect("a readings page");
        if page["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no readings within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sigterm(&mut child);
}

#[test]
fn up_stops_when_an_address_the_user_chose_is_taken() {
    let held = TcpListener::bind(free_addr()).expect("holding a port");
    let busy = held.local_addr().expect("its address").to_string();
    for (setting, message) in [
        (
            "API_LISTEN",
            format!("{busy} is already in use; choose another address with API_LISTEN"),
        ),
        (
            "MQTT_LISTEN",
            format!("cannot start the embedded MQTT broker: {busy} is already in use"),
        ),
    ] {
        let dir = tempfile::tempdir().expect("a directory for the database");
        let free_mqtt = free_addr().to_string();
        let mut env = vec![(setting, busy.as_str())];
        if setting != "MQTT_LISTEN" {
            env.push(("MQTT_LISTEN", &free_mqtt));
        }
        let (mut child, lines) = up(dir.path(), &env);
        let status = child.wait().expect("waiting for datastream up");
        let output: String = lines.iter().map(|l| l + "\n").collect();
        assert!(!status.success(), "{setting}: up must fail:\n{output}");
        assert!(
            output
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(&message)),
            "{setting}: {output}"
        );
    }
}

/// The README: replicas on one host need only their own client ids; the
/// default `INGEST_LISTEN` moves to the next free port when taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ingestor_on_one_host_moves_its_health_port_and_says_where() {
    const DEFAULT_INGEST: &str = "127.0.0.1:8082";
    let _held = hold(DEFAULT_INGEST);
    let broker = datastream_test_support::embedded_broker();
    let dir = tempfile::tempdir().expect("a directory for the database");
    let database = format!("sqlite://{}", dir.path().join("ingest.db").display());
    let client_id = datastream_test_support::unique_name("ing");
    let (mut child, lines) = datastream(
        dir.path(),
        "ingestor",
        &[
            ("DATABASE_URL", &database),
            ("MQTT_URL", &broker.url()),
            ("INGEST_SHARED", "false"),
            ("INGEST_CLIENT_ID", &client_id),
        ],
    );
    let seen = output_until(&lines, "health and metrics", Duration::from_secs(30));
    assert!(
        seen.contains(&format!(
            "the default {DEFAULT_INGEST} is in use; listening on"
        )),
        "{seen}"
    );
    let line = seen
        .lines()
        .find(|l| l.contains("health and metrics"))
        .expect("the line naming where");
    let addr: String = line[line.find("listen=").expect("a listen field") + 7..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    assert_ne!(addr, DEFAULT_INGEST);
    let ready = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("its health endpoint answers where it said");
    assert_eq!(ready.status().as_u16(), 200);
    sigterm(&mut child);
}
