//! The gRPC gateway: readings in over `datastream.v1.Ingest` (acked after
//! the broker's PUBACK, stored by the ingestors like any other), live
//! readings out over `datastream.v1.Live`, bearer tokens checked.

use crate::support::{count_rows, TestSystem};
use datastream_domain::timestamp::format_timestamp;
use datastream_grpc::proto::ack::Status as AckStatus;
use datastream_grpc::proto::{ingest_client::IngestClient, live_client::LiveClient};
use datastream_grpc::proto::{Ack, Batch, Filter, Reading};
use datastream_test_support::{unique_id1, TestDb};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII metadata"),
    );
    request
}

async fn channel(sys: &TestSystem) -> Channel {
    Channel::from_shared(sys.grpc_url())
        .expect("a valid URI")
        .connect()
        .await
        .expect("connecting to the gRPC gateway")
}

/// Reading `seq` of device `id1`/`seq % 10`, a millisecond apart.
fn reading(id1: &str, seq: u64) -> Reading {
    let at = chrono::Utc::now() - chrono::Duration::seconds(60)
        + chrono::Duration::milliseconds(seq as i64);
    Reading {
        seq,
        sensor_value: seq as f64 / 10.0,
        sensor_type: "grpc-test".into(),
        id1: id1.into(),
        id2: (seq % 10) as i64,
        timestamp: format_timestamp(at),
    }
}

async fn start() -> (TestSystem, String) {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    (sys, token)
}

#[tokio::test]
async fn a_publish_stream_acks_every_reading_once_published_and_names_the_field_of_each_bad_one() {
    let (sys, token) = start().await;
    let id1 = unique_id1();
    // Every 25th reading has a lower-case id1; the stream goes on past it.
    let readings: Vec<Reading> = (1..=1_000u64)
        .map(|seq| {
            let mut r = reading(&id1, seq);
            if seq % 25 == 0 {
                r.id1 = id1.to_lowercase();
            }
            r
        })
        .collect();
    let mut client = IngestClient::new(channel(&sys).await);
    let acks: Vec<Ack> = {
        let outbound = tokio_stream::iter(readings);
        let mut inbound = client
            .publish(with_token(outbound, &token))
            .await
            .expect("the stream opens")
            .into_inner();
        let mut acks = Vec::new();
        while let Some(ack) = inbound.message().await.expect("no stream error") {
            acks.push(ack);
        }
        acks
    };
    assert_eq!(acks.len(), 1_000, "one ack per reading");
    let mut seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=1_000).collect::<Vec<_>>(),
        "each reading answered once"
    );
    for ack in &acks {
        if ack.seq % 25 == 0 {
            assert_eq!(ack.status(), AckStatus::Rejected, "{ack:?}");
            assert_eq!(ack.field, "id1");
            assert!(ack.message.contains("id1 must match"), "{}", ack.message);
        } else {
            assert_eq!(ack.status(), AckStatus::Published, "{ack:?}");
        }
    }
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    let stored = crate::support::wait_for_rows(&store, &id1, 960, Duration::from_secs(20)).await;
    assert_eq!(
        stored, 960,
        "every published reading stored, no rejected one"
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_batch_is_answered_in_its_order_and_stored() {
    let (sys, token) = start().await;
    let id1 = unique_id1();
    let mut readings: Vec<Reading> = (1..=200u64).map(|seq| reading(&id1, seq)).collect();
    readings[10].timestamp = "2016-12-31T23:59:60Z".into();
    readings[20].sensor_value = f64::INFINITY;
    let mut client = IngestClient::new(channel(&sys).await);
    let answer = client
        .publish_batch(with_token(Batch { readings }, &token))
        .await
        .expect("the batch is answered")
        .into_inner();
    let seqs: Vec<u64> = answer.acks.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "in the batch's order");
    assert_eq!(answer.acks[10].field, "timestamp");
    assert!(answer.acks[10].message.contains("leap second"));
    assert_eq!(answer.acks[20].field, "sensor_value");
    let published = answer
        .acks
        .iter()
        .filter(|a| a.status() == AckStatus::Published)
        .count();
    assert_eq!(published, 198);
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    let stored = crate::support::wait_for_rows(&store, &id1, 198, Duration::from_secs(20)).await;
    assert_eq!(stored, 198);
    sys.stop().await;
}

#[tokio::test]
async fn calls_without_a_good_token_are_unauthenticated_and_viewers_may_not_publish() {
    let (sys, _admin) = start().await;
    let viewer = sys.user_token("grpcviewer", "viewer").await;
    let mut ingest = IngestClient::new(channel(&sys).await);
    let batch = || Batch {
        readings: vec![reading("GRPCAUTH", 1)],
    };

    let none = ingest
        .publish_batch(Request::new(batch()))
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    assert_eq!(none.message(), "missing bearer token");
    let forged = ingest
        .publish_batch(with_token(batch(), "not.a.token"))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    let viewer_publishes = ingest
        .publish_batch(with_token(batch(), &viewer))
        .await
        .unwrap_err();
    assert_eq!(viewer_publishes.code(), Code::PermissionDenied);

    // A viewer may watch.
    let mut live = LiveClient::new(channel(&sys).await);
    assert!(live
        .subscribe(with_token(Filter::default(), &viewer))
        .await
        .is_ok());
    let bad_filter = live
        .subscribe(with_token(
            Filter {
                id1: "lower".into(),
                ..Filter::default()
            },
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_filter.code(), Code::InvalidArgument);
    assert!(
        bad_filter.message().contains("id1"),
        "{}",
        bad_filter.message()
    );
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    assert_eq!(count_rows(&store, "GRPCAUTH").await, 0);
    sys.stop().await;
}

#[tokio::test]
async fn the_standard_health_service_says_both_services_are_serving() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let (sys, _token) = start().await;
    let mut health = HealthClient::new(channel(&sys).await);
    for service in ["datastream.v1.Ingest", "datastream.v1.Live"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("a health answer")
            .into_inner();
        assert_eq!(answer.status, 1, "{service} SERVING");
    }
    sys.stop().await;
}

#[tokio::test]
async fn a_subscription_receives_the_readings_published_over_mqtt_that_match_its_filter() {
    let (sys, token) = start().await;
    let id1 = unique_id1();
    let mut live = LiveClient::new(channel(&sys).await);
    let mut stream = live
        .subscribe(with_token(
            Filter {
                id1: id1.clone(),
                id2: Some(2),
                ..Filter::default()
            },
            &token,
        ))
        .await
        .expect("subscribed")
        .into_inner();
    // The subscription is in place once the call is answered; other
    // devices' readings are not delivered.
    sys.publish_now("temperature", &id1, 1, 1.0).await;
    sys.publish_now("temperature", &id1, 2, 2.5).await;
    let got = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a reading within 10 s")
        .expect("no stream error")
        .expect("the stream is open");
    assert_eq!(
        (got.id1.as_str(), got.id2, got.sensor_value),
        (id1.as_str(), 2, 2.5)
    );
    assert_eq!(got.sensor_type, "temperature");
    sys.stop().await;
}

#[tokio::test]
async fn auth_login_gives_a_token_for_the_right_password_and_unauthenticated_otherwise() {
    use datastream_grpc::proto::{auth_client::AuthClient, Credentials};
    let (sys, _token) = start().await;
    let mut auth = AuthClient::new(channel(&sys).await);
    let token = auth
        .login(Credentials {
            username: "admin".into(),
            password: crate::support::ADMIN_PASSWORD.into(),
        })
        .await
        .expect("signed in")
        .into_inner();
    assert!(token.expires_in > 0);
    let mut ingest = IngestClient::new(channel(&sys).await);
    let batch = Batch {
        readings: vec![reading(&unique_id1(), 1)],
    };
    assert!(ingest
        .publish_batch(with_token(batch, &token.access_token))
        .await
        .is_ok());
    let wrong = auth
        .login(Credentials {
            username: "admin".into(),
            password: "not-the-password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let empty = auth.login(Credentials::default()).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.message().contains("username"), "{}", empty.message());
    sys.stop().await;
}

#[tokio::test]
async fn a_generator_with_transport_grpc_signs_in_and_its_readings_are_stored() {
    use datastream_domain::{Id1, Id2, SensorType};
    use datastream_generator::{run_fleet, GeneratorSpec, GrpcTarget};
    let (sys, _token) = start().await;
    let id1 = unique_id1();
    let spec = GeneratorSpec::new(
        "over-grpc",
        SensorType::parse("grpc-generated").unwrap(),
        Id1::parse(&id1).unwrap(),
        Id2::new(1).unwrap(),
        50.0,
    )
    .unwrap();
    let target = GrpcTarget {
        url: sys.grpc_url(),
        username: "admin".into(),
        password: crate::support::ADMIN_PASSWORD.into(),
        ca_file: None,
    };
    // The MQTT URL is unused with a gRPC target: nothing connects to it.
    let mqtt = datastream_domain::MqttUrl::parse("mqtt://127.0.0.1:1").unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { run_fleet(&mqtt, "unused", vec![spec], Some(target), stop).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the generator stops, its readings answered")
        .unwrap();
    let store = datastream_store::connect(sys.db.url()).await.unwrap();
    let stored = crate::support::wait_for_rows(&store, &id1, 60, Duration::from_secs(10)).await;
    // 50 Hz for 2 s, less the time to sign in.
    assert!((60..=110).contains(&stored), "{stored} readings stored");
    sys.stop().await;
}
