//! deploy/k8s holds what the binary needs: every setting it reads has a
//! place in the ConfigMap or the Secret (and each key there is a setting it
//! reads), secrets are only in the Secret and empty, and each role's probes
//! point at the port the ConfigMap makes it listen on and at paths that
//! answer on a running process of that role. `scripts/k8s-validate.py`
//! checks the manifests against the Kubernetes and KEDA schemas.

use crate::support::{start_api, start_generator_fleet, start_ingestor, TEST_JWT_SECRET};
use datastream::settings::ENV_VARS;
use datastream_bench::service_process::{ServiceCommand, ServiceProcess};
use datastream_test_support::{free_addr, unique_name, OwnMosquitto, TestDb};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

const READY: Duration = Duration::from_secs(30);

/// The settings that carry a password or a key.
const SECRET_SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "JWT_SECRET",
    "ADMIN_PASSWORD",
    "MQTT_INGESTOR_URL",
    "MQTT_GENERATOR_URL",
    "MQTT_ALERTER_URL",
    "MQTT_GRPC_URL",
    "GENERATOR_GRPC_PASSWORD",
    "MQTT_USERS",
];

/// The documents of `deploy/k8s/base/{file}`.
fn base(file: &str) -> Vec<Yaml> {
    let path = format!("{}/deploy/k8s/base/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// The string entries under `field` of the one document in `file`.
fn entries(file: &str, field: &str) -> BTreeMap<String, String> {
    let docs = base(file);
    let hash = docs[0][field]
        .as_hash()
        .unwrap_or_else(|| panic!("{file} has no {field}"));
    hash.iter()
        .map(|(k, v)| {
            let key = k.as_str().expect("string keys").to_owned();
            let value = v
                .as_str()
                .unwrap_or_else(|| panic!("{file}: {key} is not a string (quote it)"));
            (key, value.to_owned())
        })
        .collect()
}

fn config_map() -> BTreeMap<String, String> {
    entries("settings.yaml", "data")
}

fn secret() -> BTreeMap<String, String> {
    entries("secrets.yaml", "stringData")
}

#[test]
fn every_setting_the_binary_reads_has_a_place_in_the_config_map_or_the_secret() {
    let (config, secret) = (config_map(), secret());
    let placed: BTreeSet<&str> = config
        .keys()
        .chain(secret.keys())
        .map(String::as_str)
        .collect();
    let read: BTreeSet<&str> = ENV_VARS.iter().copied().collect();
    let missing: Vec<_> = read.difference(&placed).collect();
    let unknown: Vec<_> = placed.difference(&read).collect();
    let both: Vec<_> = config.keys().filter(|k| secret.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "settings with no place in deploy/k8s: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "keys the binary does not read: {unknown:?}"
    );
    assert!(
        both.is_empty(),
        "in both the ConfigMap and the Secret: {both:?}"
    );
}

#[test]
fn settings_that_carry_a_secret_are_only_in_the_secret_and_empty_there() {
    let (config, secret) = (config_map(), secret());
    for name in SECRET_SETTINGS {
        assert!(!config.contains_key(*name), "{name} is in the ConfigMap");
        assert_eq!(
            secret.get(*name).map(String::as_str),
            Some(""),
            "{name} is in the Secret, with no default value"
        );
    }
}

/// One role's workload as the manifests describe it.
struct RoleManifest {
    role: String,
    /// The container port its probes use.
    probe_port: u16,
    probe_paths: BTreeSet<String>,
}

/// The role's workload in `file`: its `datastream` subcommand, and where
/// its probes point.
fn role_manifest(file: &str) -> RoleManifest {
    let docs = base(file);
    let workload = docs
        .iter()
        .find(|d| matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .unwrap_or_else(|| panic!("{file} holds no Deployment or StatefulSet"));
    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    let role = container["args"][0]
        .as_str()
        .expect("a subcommand")
        .to_owned();
    let ports: BTreeMap<String, u16> = container["ports"]
        .as_vec()
        .expect("container ports")
        .iter()
        .map(|p| {
            let port = p["containerPort"].as_i64().expect("a port number");
            let name = p["name"].as_str().expect("named ports").to_owned();
            (name, u16::try_from(port).expect("a port"))
        })
        .collect();
    let mut probe_ports = BTreeSet::new();
    let mut probe_paths = BTreeSet::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        if get.is_badvalue() {
            continue;
        }
        let port = match &get["port"] {
            Yaml::String(name) => ports[name],
            Yaml::Integer(n) => u16::try_from(*n).expect("a port"),
            other => panic!("{file}: {probe} port {other:?}"),
        };
        probe_ports.insert(port);
        probe_paths.insert(get["path"].as_str().expect("a path").to_owned());
    }
    assert_eq!(probe_ports.len(), 1, "{file}: the probes use one port");
    assert!(
        probe_paths.contains("/healthz") && probe_paths.contains("/readyz"),
        "{file}: liveness on /healthz and readiness on /readyz: {probe_paths:?}"
    );
    RoleManifest {
        role,
        probe_port: probe_ports.into_iter().next().expect("a port"),
        probe_paths,
    }
}

/// The setting that says where `role` serves its health.
fn health_setting(role: &str) -> &'static str {
    match role {
        "ingestor" => "INGEST_LISTEN",
        "api" => "API_LISTEN",
        "generator" => "GENERATOR_LISTEN",
        "alerter" => "ALERTER_LISTEN",
        "grpc" => "GRPC_HEALTH_LISTEN",
        other => panic!("no health setting known for {other}"),
    }
}

const ROLE_FILES: &[&str] = &[
    "ingestor.yaml",
    "api.yaml",
    "generators.yaml",
    "alerter.yaml",
    "grpc.yaml",
];

#[test]
fn each_roles_probes_use_the_port_the_config_map_makes_it_listen_on() {
    let config = config_map();
    for file in ROLE_FILES {
        let manifest = role_manifest(file);
        let setting = health_setting(&manifest.role);
        assert_eq!(
            config.get(setting).map(String::as_str),
            Some(format!("0.0.0.0:{}", manifest.probe_port).as_str()),
            "{file}: {setting} listens where the probes look"
        );
    }
}

/// Starts `role` against `db` and `mosquitto`, ready.
async fn start_role(role: &str, db: &TestDb, mosquitto: &OwnMosquitto) -> ServiceProcess {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_datastream"));
    match role {
        "ingestor" => start_ingestor(db.url(), &mosquitto.ingestor_url()).await,
        "api" => start_api(db.url()).await,
        "generator" => {
            start_generator_fleet(&mosquitto.publisher_url(), &unique_name("fleet")).await
        }
        "alerter" => {
            let command = ServiceCommand::alerter(
                db.url(),
                &mosquitto.alerter_url(),
                &unique_name("alerter"),
                &[("ALERT_CLIENT_ID", unique_name("alr").as_str())],
            );
            ServiceProcess::start(binary, command, READY).await.unwrap()
        }
        "grpc" => {
            let grpc_listen = free_addr().to_string();
            let command = ServiceCommand::grpc(
                db.url(),
                &mosquitto.publisher_url(),
                &[
                    ("JWT_SECRET", TEST_JWT_SECRET),
                    ("GRPC_LISTEN", &grpc_listen),
                ],
            );
            ServiceProcess::start(binary, command, READY).await.unwrap()
        }
        other => panic!("no way to start {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_roles_probe_paths_answer_on_a_running_process_of_that_role() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    let db = TestDb::sqlite();
    let client = reqwest::Client::new();
    for file in ROLE_FILES {
        let manifest = role_manifest(file);
        let process = start_role(&manifest.role, &db, &mosquitto).await;
        for path in &manifest.probe_paths {
            let url = format!("{}{path}", process.base_url());
            let status = client.get(&url).send().await.map(|r| r.status().as_u16());
            assert_eq!(
                status.ok(),
                Some(200),
                "{file}: {} answers {path}",
                manifest.role
            );
        }
        process.terminate().unwrap();
    }
}
