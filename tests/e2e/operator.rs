//! The operator's path outside Docker: `scripts/mosquitto-host.sh` runs the
//! project's Mosquitto on this host with its ACL and a password file from
//! the environment.

use datastream_test_support::{free_addr, unique_name, MessageTap};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_script_runs_mosquitto_with_the_projects_acl_and_passwords() {
    if Command::new("mosquitto_passwd").arg("-h").output().is_err() {
        assert!(
            std::env::var("DATASTREAM_TEST_MQTT").is_err(),
            "mosquitto_passwd is not installed but DATASTREAM_TEST_MQTT is set"
        );
        return;
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
    .spawn()
    .expect("running scripts/mosquitto-host.sh");
    let _broker = HostMosquitto {
        child,
        dir: dir.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Anonymous clients may watch; only the generator user's readings arrive.
    let anonymous = format!("mqtt://127.0.0.1:{port}");
    let tap = MessageTap::start(&anonymous, "sensors/#").await;
    // With mosquitto_pub, as the README tells users to publish.
    for credentials in [&[][..], &["-u", "generator", "-P", "generator-secret"][..]] {
        let payload = if credentials.is_empty() {
            "anonymous"
        } else {
            "generator"
        };
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(credentials)
            .args(["-t", "sensors/temperature/HOST/1", "-m", payload])
            .status()
            .expect("running mosquitto_pub");
        assert!(status.success(), "mosquitto_pub as {payload}");
    }
    let mut received = tap.wait_until_count(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    received.extend(tap.take());
    let payloads: Vec<Vec<u8>> = received.into_iter().map(|p| p.payload.to_vec()).collect();
    assert_eq!(
        payloads,
        vec![b"generator".to_vec()],
        "anonymous publishes are dropped"
    );

    let mode = std::fs::metadata(dir.join("passwd"))
        .expect("the password file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "the password file is private"
    );
}
