//! A generator publishes valid readings at its rate, on the real broker.

use chrono::Utc;
use datastream_domain::{decode_message, DecodeLimits, MqttUrl};
use datastream_generator::{run_fleet, GeneratorSpec};
use datastream_test_support::{embedded_broker, mqtt_host_port, unique_id1, unique_name};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_publishes_valid_readings_at_its_frequency() {
    let broker = embedded_broker();
    let id1 = unique_id1();
    let (host, port) = mqtt_host_port(&broker.url());
    let mut options = MqttOptions::new(unique_name("watch"), host, port);
    options.set_keep_alive(Duration::from_secs(10));
    let (watcher, mut eventloop) = AsyncClient::new(options, 10);
    watcher
        .subscribe(format!("sensors/temperature/{id1}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }

    let spec = GeneratorSpec::parse("t", "temperature", &id1, 1, 20.0).unwrap();
    let stop = CancellationToken::new();
    let fleet = tokio::spawn({
        let url = MqttUrl::parse(&broker.url()).unwrap();
        let stop = stop.clone();
        async move { run_fleet(&url, &unique_name("gen"), vec![spec], None, stop).await }
    });

    let window = Duration::from_secs(2);
    let started = Instant::now();
    let mut received = Vec::new();
    while started.elapsed() < window {
        let remaining = window.saturating_sub(started.elapsed());
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(remaining, eventloop.poll()).await
        {
            received.push(p);
        }
    }
    stop.cancel();
    fleet.await.unwrap();

    // 20 Hz for 2 s is 40; allow for start-up and scheduling jitter.
    assert!(
        (30..=45).contains(&received.len()),
        "got {}",
        received.len()
    );
    for p in &received {
        assert_eq!(p.topic, format!("sensors/temperature/{id1}/1"));
        let readings = decode_message(&p.topic, &p.payload, &DecodeLimits::default(), Utc::now())
            .expect("generated readings are valid");
        assert!((-40.0..=85.0).contains(&readings[0].sensor_value()));
    }
}
