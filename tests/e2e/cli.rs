//! The `datastream` command line, run as a real process.

use crate::support::TestSystem;
use datastream_test_support::TestDb;
use std::io::Write;
use std::process::{Command, Stdio};

fn datastream(db: &TestDb, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datastream"))
        .arg("--database-url")
        .arg(db.url())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running datastream");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("waiting for datastream")
}

/// The standard output of a run that must have succeeded (both streams are
/// shown if it did not).
fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `datastream bench query ARGS` on `db`.
fn bench_query(db: &TestDb, args: &[&str]) -> std::process::Output {
    datastream(db, &[&["bench", "query"], args].concat(), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_creates_a_user_who_can_log_in_and_user_list_shows_it() {
    let db = TestDb::sqlite();
    let added = datastream(
        &db,
        &["user", "add", "bob", "--role", "viewer"],
        "bobs-password\n",
    );
    stdout_of_success(&added);
    let listed = datastream(&db, &["user", "list"], "");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("bob\tviewer"));

    let sys = TestSystem::start(db, None, vec![]).await;
    assert_eq!(
        sys.login("bob", "bobs-password").await.status().as_u16(),
        200
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_admin_password_is_reset_from_the_command_line() {
    let db = TestDb::sqlite();
    stdout_of_success(&datastream(
        &db,
        &["user", "add", "root", "--role", "admin"],
        "first-password\n",
    ));
    stdout_of_success(&datastream(
        &db,
        &["user", "set-password", "root"],
        "second-password\n",
    ));
    let sys = TestSystem::start(db, None, vec![]).await;
    assert_eq!(
        sys.login("root", "first-password").await.status().as_u16(),
        401
    );
    assert_eq!(
        sys.login("root", "second-password").await.status().as_u16(),
        200
    );
    sys.stop().await;
}

#[test]
fn the_last_admin_can_be_neither_demoted_nor_deleted_from_the_command_line() {
    let db = TestDb::sqlite();
    stdout_of_success(&datastream(
        &db,
        &["user", "add", "root", "--role", "admin"],
        "root-password\n",
    ));
    stdout_of_success(&datastream(&db, &["user", "add", "eve"], "eves-password\n"));
    for args in [
        &["user", "set-role", "root", "viewer"][..],
        &["user", "delete", "root"][..],
    ] {
        let refused = datastream(&db, args, "");
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("last admin"),
            "{args:?}"
        );
    }
    stdout_of_success(&datastream(&db, &["user", "set-role", "eve", "admin"], ""));
    stdout_of_success(&datastream(
        &db,
        &["user", "set-role", "root", "viewer"],
        "",
    ));
    stdout_of_success(&datastream(&db, &["user", "delete", "root"], ""));
    let listed = stdout_of_success(&datastream(&db, &["user", "list"], ""));
    assert_eq!(listed, "eve\tadmin\n");
    let missing = datastream(
        &db,
        &["user", "set-password", "root"],
        "whatever-password\n",
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user root"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_set_on_a_database_with_users_is_reported_as_not_applied() {
    let db = TestDb::sqlite();
    stdout_of_success(&datastream(
        &db,
        &["user", "add", "admin", "--role", "admin"],
        "the-real-password\n",
    ));
    let api = datastream_bench::service_process::ServiceProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_datastream")),
        datastream_bench::service_process::ServiceCommand::api(
            db.url(),
            &[
                ("JWT_SECRET", crate::support::TEST_JWT_SECRET),
                ("ADMIN_PASSWORD", "a-forgotten-guess"),
            ],
        ),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("starting the API");
    let log = api.log();
    assert!(
        log.contains("ADMIN_PASSWORD is set but this database already has users"),
        "{log}"
    );
    assert!(log.contains("datastream user set-password admin"), "{log}");
}

#[tokio::test]
async fn user_add_refuses_a_short_password_and_a_bad_role() {
    let db = TestDb::sqlite();
    let short = datastream(&db, &["user", "add", "eve"], "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));
    let role = datastream(
        &db,
        &["user", "add", "eve", "--role", "root"],
        "long-enough-password\n",
    );
    assert!(!role.status.success());
    assert!(String::from_utf8_lossy(&role.stderr).contains("role"));
}

#[tokio::test]
async fn sigterm_ends_a_one_shot_command_waiting_for_input_with_status_130() {
    let db = TestDb::sqlite();
    let mut child = Command::new(env!("CARGO_BIN_EXE_datastream"))
        .arg("--database-url")
        .arg(db.url())
        .args(["user", "add", "carol"])
        .stdin(Stdio::piped()) // kept open: the password never comes
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running datastream");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(130));
}

/// The shipped query benchmark runs end to end (a small table, a shallow
/// "deep" page) and reports every shape beside its SQL baseline.
#[tokio::test]
async fn bench_query_reports_every_shape_beside_its_sql_baseline() {
    let db = TestDb::sqlite();
    let stdout = stdout_of_success(&bench_query(
        &db,
        &[
            "--rows",
            "3000",
            "--deep-page",
            "20",
            "--requests",
            "64",
            "--clients",
            "4",
        ],
    ));
    for shape in [
        "latest 100 of one device",
        "one-hour window of one sensor type",
        "page 1 (newest 100)",
        "page 20 by cursor",
        "page 20 by offset",
        "cursor page 20 ÷ page 1 (p50, interleaved):",
        "one sensor type, 30 days, hourly, by type",
        "one device, 30 days, automatic interval",
        "/devices, every device",
        "rows as CSV",
    ] {
        assert!(stdout.contains(shape), "{shape} missing from:\n{stdout}");
    }
}

#[tokio::test]
async fn bench_query_refuses_a_deep_page_the_table_does_not_have() {
    let db = TestDb::sqlite();
    let out = bench_query(
        &db,
        &["--rows", "1000", "--deep-page", "20", "--requests", "16"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("page 20 does not exist"), "{stderr}");
}

/// The shipped generator benchmark runs end to end on the embedded broker:
/// each scenario's readings arrive at about the rate asked, and each is
/// compared with the bare-publish baseline.
#[tokio::test]
async fn bench_generate_delivers_each_scenario_at_its_rate_beside_the_baseline() {
    let db = TestDb::sqlite();
    let stdout = stdout_of_success(&datastream(
        &db,
        &[
            "bench",
            "generate",
            "--devices",
            "200",
            "--fast-rate",
            "2000",
            "--seconds",
            "2",
        ],
        "",
    ));
    assert!(stdout.contains("baseline: pre-encoded publish"), "{stdout}");
    for (scenario, target) in [
        ("200 devices × 1 Hz", 200.0),
        ("one generator at 2000 readings/s", 2000.0),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("{scenario} missing from:\n{stdout}"));
        // Columns from the right: load, ms CPU/1k, core used, achieved,
        // received/s.
        let received: f64 = line
            .split_whitespace()
            .rev()
            .nth(4)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no received/s in {line:?}"));
        assert!(
            (0.5 * target..=1.5 * target).contains(&received),
            "{scenario}: {received}/s received for {target}/s asked\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("  {scenario}")),
            "{scenario} has no ratio to the baseline:\n{stdout}"
        );
    }
}

/// The shipped ingest benchmark runs end to end against the test broker
/// (few enough readings that a stock Mosquitto's 1,000-message queue cannot
/// drop any) and finds every reading stored in each of its pipelines and
/// each drained backlog, two drain rounds of figures with their load.
#[tokio::test]
async fn bench_ingest_lands_every_reading_and_reports_its_ratios() {
    let Some(mqtt) = datastream_test_support::external_mqtt() else {
        return;
    };
    // MariaDB when there is one: its run has the LOAD DATA writer and the
    // LOAD DATA baseline.
    let db = match TestDb::mysql().await {
        Some(db) => db,
        None => TestDb::sqlite(),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_datastream"))
        .args(["--database-url", db.url(), "--mqtt-url", &mqtt])
        .args(["bench", "ingest", "--count", "400", "--naive-count", "100"])
        .args([
            "--publishers",
            "2",
            "--drain-count",
            "300",
            "--drain-rounds",
            "2",
        ])
        .output()
        .expect("running datastream bench ingest");
    let stdout = stdout_of_success(&out);
    let pipelines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("/s published"))
        .collect();
    assert_eq!(
        pipelines.len(),
        3,
        "naive, full speed, half rate:\n{stdout}"
    );
    for line in pipelines {
        assert!(line.contains("lost 0 "), "{line}");
    }
    for ratio in [
        "landed ÷ storage limit",
        "landed ÷ naive pipeline",
        "p99 at half rate",
        "ingestor peak RSS",
        "broker alone (bare subscriber)",
        "drain ÷ INSERT IGNORE ×1000",
        "drain, rollups on ÷ off",
        "largest batch",
    ] {
        assert!(stdout.contains(ratio), "{ratio} missing from:\n{stdout}");
    }
    // Every figure of the drain rounds carries the machine's load.
    assert!(
        stdout
            .lines()
            .filter(|l| l.contains("drain, ") && l.contains("/s"))
            .all(|l| l.contains("load ")),
        "{stdout}"
    );
    if db.url().starts_with("mysql://") {
        for ratio in [
            "drain ÷ LOAD DATA from a file",
            "drain, LOAD DATA ÷ INSERT writer",
        ] {
            assert!(stdout.contains(ratio), "{ratio} missing from:\n{stdout}");
        }
    }
}

/// The shipped retention benchmark removes the table's oldest day and
/// reports ingest beside it against ingest alone (and, on MariaDB, against
/// dropping a partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_retention_removes_the_oldest_day_beside_ingest_alone() {
    let db = match TestDb::mysql().await {
        Some(db) => db,
        None => TestDb::sqlite(),
    };
    let out = datastream(
        &db,
        &["bench", "retention", "--rows", "30000", "--seconds", "1"],
        "",
    );
    let stdout = stdout_of_success(&out);
    for line in [
        "ingest alone",
        "ingest while retention runs",
        "retention: one day, 1000 rows",
        "ingest during retention ÷ alone",
    ] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }
    if db.url().starts_with("mysql://") {
        assert!(stdout.contains("DROP PARTITION"), "{stdout}");
    }
    // Run again: the next day goes.
    let again = datastream(
        &db,
        &["bench", "retention", "--rows", "29000", "--seconds", "1"],
        "",
    );
    assert!(stdout_of_success(&again).contains("retention: one day, 1000 rows"));
}

/// The shipped stream benchmark runs end to end against the test broker:
/// every client gets every reading of its device (or type) that the broker
/// delivered to `mosquitto_sub`, and the report names its targets.
#[tokio::test]
async fn bench_stream_delivers_every_reading_to_every_client_beside_mosquitto_sub() {
    let Some(mqtt) = datastream_test_support::external_mqtt() else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_datastream"))
        .args(["--mqtt-url", &mqtt])
        .args(["bench", "stream", "--clients", "20", "--type-watchers", "2"])
        .args(["--rate", "200", "--devices", "10", "--seconds", "2"])
        .output()
        .expect("running datastream bench stream");
    let stdout = stdout_of_success(&out);
    let delivery = stdout
        .lines()
        .find(|l| l.contains("events expected / delivered"))
        .unwrap_or_else(|| panic!("no delivery line in:\n{stdout}"));
    assert!(delivery.contains("(0 short"), "{delivery}");
    assert!(!delivery.contains("/ 0 "), "nothing delivered: {delivery}");
    for figure in [
        "stream, publish → client",
        "mosquitto_sub, same readings",
        "API resident memory",
    ] {
        assert!(stdout.contains(figure), "{figure} missing from:\n{stdout}");
    }
}

/// `datastream generator --sensor-type …` with `ARGS`, on the broker at
/// `mqtt_url`; killed when dropped.
fn fixed_generator(mqtt_url: &str, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_datastream"))
        .env("MQTT_URL", mqtt_url)
        .args([
            "generator",
            "--sensor-type",
            "temperature",
            "--id1",
            "FIXED",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running datastream generator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_generator_takes_a_device_range_a_model_and_a_value_range() {
    let broker = datastream_test_support::embedded_broker();
    let tap = datastream_test_support::MessageTap::start(&broker.url(), "sensors/#").await;
    let mut child = fixed_generator(
        &broker.url(),
        &[
            "--id2",
            "5",
            "--id2-end",
            "7",
            "--frequency-hz",
            "20",
            "--model",
            "random_walk",
            "--min",
            "-40",
            "--max",
            "-30",
        ],
    );
    let readings = tap
        .wait_until_count(30, std::time::Duration::from_secs(15))
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(readings.len() >= 30, "only {} readings", readings.len());
    let mut devices = std::collections::BTreeSet::new();
    for p in &readings {
        devices.insert(p.topic.clone());
        let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        let value = body["sensor_value"].as_f64().unwrap();
        assert!((-40.0..=-30.0).contains(&value), "{value} outside -40..-30");
    }
    let expected: std::collections::BTreeSet<String> = (5..=7)
        .map(|id2| format!("sensors/temperature/FIXED/{id2}"))
        .collect();
    assert_eq!(devices, expected);
}

#[test]
fn a_fixed_generator_refuses_a_bad_range_or_model_naming_the_field() {
    for (args, field) in [
        (&["--id2", "5", "--id2-end", "4"][..], "id2_end"),
        (&["--id2", "5", "--model", "square"][..], "model"),
        (
            &["--id2", "5", "--min", "10", "--max", "5"][..],
            "min and max",
        ),
    ] {
        let out = fixed_generator("mqtt://127.0.0.1:9", args)
            .wait_with_output()
            .expect("waiting for datastream");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
}

#[test]
fn migrate_on_a_database_that_does_not_exist_says_to_create_it() {
    let Some(server) = datastream_test_support::mysql_server() else {
        return;
    };
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let missing = datastream_test_support::unique_name("missing");
    let out = Command::new(env!("CARGO_BIN_EXE_datastream"))
        .args(["--database-url", &format!("{base}/{missing}"), "migrate"])
        .output()
        .expect("running datastream migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("CREATE DATABASE {missing}")),
        "{stderr}"
    );
}

/// `datastream ingestor --end-session` for `client_id` on `mqtt_url`; its
/// standard error.
fn end_session(mqtt_url: &str, client_id: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_datastream"))
        .args(["ingestor", "--end-session"])
        .env("MQTT_URL", mqtt_url)
        .env("INGEST_CLIENT_ID", client_id)
        .output()
        .expect("running datastream ingestor --end-session");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_session_says_whether_there_was_a_session_to_end() {
    let Some(mosquitto) = datastream_test_support::OwnMosquitto::start() else {
        return;
    };
    let client_id = datastream_test_support::unique_name("ing");
    assert!(end_session(&mosquitto.ingestor_url(), &client_id).contains("holds no session"));

    // A persistent session with a subscription, as an ingestor leaves one.
    let mut options = rumqttc::MqttOptions::new(&client_id, "127.0.0.1", {
        datastream_test_support::mqtt_host_port(&mosquitto.url()).1
    });
    options
        .set_clean_session(false)
        .set_credentials("ingestor", "ingestor-test-password");
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    client
        .subscribe("sensors/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) =
            eventloop.poll().await.unwrap()
        {
            break;
        }
    }
    client.disconnect().await.unwrap();
    while eventloop.poll().await.is_ok() {}

    assert!(end_session(&mosquitto.ingestor_url(), &client_id).contains("ended the broker session"));
    assert!(end_session(&mosquitto.ingestor_url(), &client_id).contains("holds no session"));
}
