//! TLS to the broker: `mqtts://` URLs with `MQTT_CA_FILE` (and a client
//! certificate where the broker asks for one), against a Mosquitto with a
//! TLS listener and certificates made in the test. A wrong CA or a host
//! the certificate does not name stops the start with an error naming the
//! setting; TLS files beside a plain URL are refused; nothing falls back
//! to plain text.

use crate::support::{reading_messages, wait_for_rows, TestSystem};
use datastream::Settings;
use datastream_domain::{MqttTls, MqttUrl};
use datastream_test_support::{
    publish_all_acked_to, unique_id1, OwnMosquitto, TestCertificates, TestDb,
};
use std::time::Duration;

/// `up` on the broker's TLS listener, each role with its login.
fn over_tls(mosquitto: &OwnMosquitto, ca_file: &std::path::Path) -> impl FnOnce(&mut Settings) {
    let (url, ingestor, generator) = (
        mosquitto.tls_url(None),
        mosquitto.tls_url(Some("ingestor")),
        mosquitto.tls_url(Some("generator")),
    );
    let ca_file = ca_file.display().to_string();
    move |s: &mut Settings| {
        s.mqtt_url = Some(url);
        s.mqtt_ingestor_url = Some(ingestor);
        s.mqtt_generator_url = Some(generator);
        s.mqtt_ca_file = Some(ca_file);
    }
}

fn publisher_url(mosquitto: &OwnMosquitto, certs: &TestCertificates, client: bool) -> MqttUrl {
    MqttUrl::parse(&mosquitto.tls_url(Some("generator")))
        .unwrap()
        .with_tls(MqttTls {
            ca_file: Some(certs.ca_file()),
            client_identity: client.then(|| certs.client_files()),
        })
        .unwrap()
}

/// Publishes `n` readings of a fresh device family to `url` and checks that
/// the system stores every one.
async fn readings_reach_the_store(sys: &TestSystem, url: &MqttUrl, n: usize) {
    let id1 = unique_id1();
    publish_all_acked_to(url, reading_messages(&id1, n)).await;
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    assert_eq!(
        wait_for_rows(&store, &id1, n as u64, Duration::from_secs(20)).await,
        n as u64
    );
}

/// Why a start that must fail failed, with every cause.
async fn start_failure(
    start: impl std::future::Future<Output = anyhow::Result<TestSystem>>,
) -> String {
    match start.await {
        Ok(_) => panic!("the start succeeded"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn readings_flow_over_mqtts_with_the_configured_ca() {
    let certs = TestCertificates::new();
    let Some(mosquitto) = OwnMosquitto::start_with_tls(&certs, false) else {
        return;
    };
    let sys = TestSystem::start_with(
        TestDb::sqlite(),
        None,
        vec![],
        over_tls(&mosquitto, &certs.ca_file()),
    )
    .await;
    readings_reach_the_store(&sys, &publisher_url(&mosquitto, &certs, false), 50).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_broker_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let certs = TestCertificates::new();
    let Some(mosquitto) = OwnMosquitto::start_with_tls(&certs, true) else {
        return;
    };
    let (cert, key) = certs.client_files();
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        over_tls(&mosquitto, &certs.ca_file())(s);
        s.mqtt_client_cert_file = Some(cert.display().to_string());
        s.mqtt_client_key_file = Some(key.display().to_string());
    })
    .await;
    readings_reach_the_store(&sys, &publisher_url(&mosquitto, &certs, true), 20).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_stops_the_start_naming_mqtt_ca_file() {
    let certs = TestCertificates::new();
    let Some(mosquitto) = OwnMosquitto::start_with_tls(&certs, false) else {
        return;
    };
    let message = start_failure(TestSystem::try_start_with(
        TestDb::sqlite(),
        None,
        vec![],
        over_tls(&mosquitto, &certs.other_ca_file()),
    ))
    .await;
    assert!(message.contains("MQTT_CA_FILE"), "{message}");
    assert!(message.contains("does not trust"), "{message}");
}

#[tokio::test]
async fn a_host_the_broker_certificate_does_not_name_stops_the_start() {
    let certs = TestCertificates::new();
    let Some(mosquitto) = OwnMosquitto::start_with_tls(&certs, false) else {
        return;
    };
    // The certificate names localhost; 127.0.0.1 is the same socket but
    // not a name it covers.
    let by_address = |url: String| url.replace("localhost", "127.0.0.1");
    let (url, ingestor, generator) = (
        by_address(mosquitto.tls_url(None)),
        by_address(mosquitto.tls_url(Some("ingestor"))),
        by_address(mosquitto.tls_url(Some("generator"))),
    );
    let message = start_failure(TestSystem::try_start_with(
        TestDb::sqlite(),
        None,
        vec![],
        |s| {
            s.mqtt_url = Some(url);
            s.mqtt_ingestor_url = Some(ingestor);
            s.mqtt_generator_url = Some(generator);
            s.mqtt_ca_file = Some(certs.ca_file().display().to_string());
        },
    ))
    .await;
    assert!(message.contains("not valid for \"127.0.0.1\""), "{message}");
}

#[tokio::test]
async fn tls_files_beside_a_plain_url_are_refused_rather_than_ignored() {
    let certs = TestCertificates::new();
    let Some(mosquitto) = OwnMosquitto::start_with_tls(&certs, false) else {
        return;
    };
    let message = start_failure(TestSystem::try_start_with(
        TestDb::sqlite(),
        Some(mosquitto.url()),
        vec![],
        |s| {
            s.mqtt_ingestor_url = Some(mosquitto.ingestor_url());
            s.mqtt_generator_url = Some(mosquitto.publisher_url());
            s.mqtt_ca_file = Some(certs.ca_file().display().to_string());
        },
    ))
    .await;
    assert!(message.contains("use mqtts://"), "{message}");
}

#[tokio::test]
async fn a_plain_client_gets_nothing_from_the_tls_listener() {
    // What "never falls back" means on the wire: the TLS port does not
    // speak MQTT in the clear, so a plain connection there gets no CONNACK.
    let certs = TestCertificates::new();
    let Some(mosquitto) = OwnMosquitto::start_with_tls(&certs, false) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.tls_port());
    let options = datastream_mqtt::client_options(&MqttUrl::parse(&url).unwrap(), "plain");
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let first = tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await;
    assert!(
        !matches!(
            first,
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))))
        ),
        "{first:?}"
    );
}

/// `up` serving TLS with the test certificate for `localhost`.
async fn serving_tls(certs: &TestCertificates) -> TestSystem {
    let (cert, key) = certs.server_files();
    TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.tls_cert_file = Some(cert.display().to_string());
        s.tls_key_file = Some(key.display().to_string());
        s.mqtt_tls_listen = datastream::ListenAddr::chosen(([127, 0, 0, 1], 0).into());
    })
    .await
}

/// One HTTP/1.1 request over TLS to `localhost:port`, trusting `ca_file`;
/// the whole response as text.
async fn https(port: u16, ca_file: &std::path::Path, request: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = datastream_mqtt::client_config(&MqttTls {
        ca_file: Some(ca_file.to_owned()),
        client_identity: None,
    })
    .expect("a client configuration");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn with_a_certificate_the_api_serves_https_and_nothing_in_the_clear() {
    let certs = TestCertificates::new();
    let sys = serving_tls(&certs).await;
    let port = sys.endpoints().api.port();
    assert!(sys.endpoints().tls);
    let response = https(port, &certs.ca_file(), &get("/healthz"))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Plain HTTP on the same port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // A client that does not trust the CA is refused by its own check.
    assert!(https(port, &certs.other_ca_file(), &get("/healthz"))
        .await
        .is_err());
    sys.stop().await;
}

#[tokio::test]
async fn with_a_certificate_the_grpc_gateway_serves_tls() {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let certs = TestCertificates::new();
    let sys = serving_tls(&certs).await;
    let ca = std::fs::read(certs.ca_file()).unwrap();
    let channel =
        Channel::from_shared(format!("https://localhost:{}", sys.endpoints().grpc.port()))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .expect("a TLS connection to the gateway");
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "datastream.v1.Ingest".into(),
        })
        .await
        .expect("a health answer");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    // The plain scheme on the same port fails.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", sys.endpoints().grpc.port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let refused = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await;
        assert!(refused.is_err(), "{refused:?}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn with_a_certificate_the_embedded_broker_takes_readings_over_tls() {
    let certs = TestCertificates::new();
    let sys = serving_tls(&certs).await;
    let tls = sys.endpoints().mqtt_tls.expect("a TLS listener");
    let url = MqttUrl::parse(&format!("mqtts://localhost:{}", tls.port()))
        .unwrap()
        .with_tls(MqttTls {
            ca_file: Some(certs.ca_file()),
            client_identity: None,
        })
        .unwrap();
    readings_reach_the_store(&sys, &url, 30).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_certificate_stops_the_start_naming_both_files() {
    let certs = TestCertificates::new();
    let (cert, _) = certs.server_files();
    let (_, other_key) = certs.client_files();
    let message = start_failure(TestSystem::try_start_with(
        TestDb::sqlite(),
        None,
        vec![],
        |s| {
            s.tls_cert_file = Some(cert.display().to_string());
            s.tls_key_file = Some(other_key.display().to_string());
        },
    ))
    .await;
    assert!(message.contains("TLS_KEY_FILE"), "{message}");
    assert!(message.contains("does not fit"), "{message}");
}
