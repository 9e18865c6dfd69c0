//! Alerts end to end: rules through the REST API, readings through the
//! broker, notifications on MQTT (retained), webhooks (signed) and in the
//! history; silence deadlines on time; a standby taking over from a killed
//! alerter without losing or inventing a notification.

use crate::support::{publish, TestSystem};
use datastream_alerter::webhook::signature;
use datastream_bench::service_process::{ServiceCommand, ServiceProcess};
use datastream_domain::alert::{AlertEvent, AlertNotice, RuleDraft};
use datastream_domain::timestamp::{format_timestamp, parse_timestamp};
use datastream_test_support::{
    clear_mqtt_session, mqtt_client, unique_id1, unique_name, MessageTap, OwnMosquitto, TestDb,
    WebhookReceiver,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const SECRET: &str = "a-webhook-secret-of-some-length";

/// One reading's payload.
fn reading(
    sensor_type: &str,
    id1: &str,
    id2: i32,
    value: f64,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({"sensor_value": value, "sensor_type": sensor_type, "id1": id1, "id2": id2,
        "timestamp": format_timestamp(at)})
}

async fn create_rule(sys: &TestSystem, token: &str, body: Value) -> Value {
    let resp = sys
        .send(Method::POST, "/api/v1/alert-rules", token, Some(body))
        .await;
    assert_eq!(resp.status().as_u16(), 201, "creating a rule");
    resp.json().await.unwrap()
}

/// The notices a tap has seen (retained clears, which are empty, left out).
fn notices(messages: &[rumqttc::Publish]) -> Vec<AlertNotice> {
    messages
        .iter()
        .filter(|p| !p.payload.is_empty())
        .map(|p| serde_json::from_slice(&p.payload).expect("a notice"))
        .collect()
}

/// Publishes `value` for the device every 200 ms until `tap` has seen a
/// notice `wanted` accepts (the alerter reads the rules table every
/// second: the first readings may come before it knows a new rule).
async fn publish_until(
    sys: &TestSystem,
    tap: &MessageTap,
    (sensor_type, id1, id2): (&str, &str, i32),
    value: f64,
    wanted: impl Fn(&AlertNotice) -> bool,
) -> AlertNotice {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        sys.publish_now(sensor_type, id1, id2, value).await;
        let seen = tap
            .wait_for(Duration::from_millis(200), |p| {
                serde_json::from_slice::<AlertNotice>(&p.payload).is_ok_and(|n| wanted(&n))
            })
            .await;
        if let Some(p) = seen {
            return serde_json::from_slice(&p.payload).unwrap();
        }
        assert!(Instant::now() < deadline, "no such notice within 30 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_alert_fires_and_resolves_on_mqtt_a_signed_webhook_and_the_history() {
    threshold_round_trip(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_alert_fires_and_resolves_on_mariadb() {
    if let Some(db) = TestDb::mysql().await {
        threshold_round_trip(db).await;
    }
}

async fn threshold_round_trip(db: TestDb) {
    let sys = TestSystem::start(db, None, vec![]).await;
    let admin = sys.admin_token().await;
    let hooks = WebhookReceiver::start().await;
    let id1 = unique_id1();
    let rule = create_rule(
        &sys,
        &admin,
        json!({
            "name": "too hot", "kind": "threshold", "sensor_type": "temperature", "id1": id1,
            "above": 30.0, "clear_at": 25.0, "for": "0s",
            "webhook_url": hooks.url(), "webhook_secret": SECRET,
        }),
    )
    .await;
    assert!(
        rule.get("webhook_secret").is_none(),
        "the secret is write-only: {rule}"
    );
    let rule_id = rule["id"].as_i64().unwrap();
    let topic = format!("datastream/alerts/{rule_id}/temperature/{id1}/3");
    let tap = MessageTap::start(&sys.mqtt_url, &format!("datastream/alerts/{rule_id}/#")).await;

    let stream_path = format!("/api/v1/alerts/stream?id1={id1}");
    let mut live = sys.get(&stream_path, &admin).await;
    assert_eq!(live.status().as_u16(), 200);
    let device = ("temperature", id1.as_str(), 3);
    let fired = publish_until(&sys, &tap, device, 35.0, |n| n.event == AlertEvent::Firing).await;
    assert_eq!(
        (fired.state.as_str(), fired.value, fired.rule_name.as_str()),
        ("firing", Some(35.0), "too hot")
    );
    assert_eq!(fired.topic(), topic);
    let firing: Value = sys
        .get(&format!("/api/v1/alerts?state=firing&id1={id1}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(firing["data"].as_array().unwrap().len(), 1, "{firing}");
    assert_eq!(firing["data"][0]["id"], fired.alert_id);
    // The stream open before told it; one opened now starts with it.
    let told = read_events_until(&mut live, &format!("\"id\":{}", fired.id)).await;
    assert!(
        told.contains(&format!("event: alert\nid: {}\n", fired.id)),
        "{told}"
    );
    let mut late = sys.get(&stream_path, &admin).await;
    let snapshot = read_events_until(&mut late, "event: firing").await;
    assert!(
        snapshot.contains(&format!("\"id\":{}", fired.alert_id)),
        "{snapshot}"
    );

    // Between clear_at and the limit it keeps firing; at clear_at it resolves.
    sys.publish_now("temperature", &id1, 3, 28.0).await;
    let resolved = publish_until(&sys, &tap, device, 25.0, |n| {
        n.event == AlertEvent::Resolved
    })
    .await;
    assert_eq!(
        (resolved.alert_id, resolved.resolved_value),
        (fired.alert_id, Some(25.0))
    );
    assert_eq!(resolved.resolved_by.as_deref(), Some("reading"));

    // Each notification reached the webhook, signed, with its id.
    let hooks_seen = hooks.wait_for(2, Duration::from_secs(10)).await;
    let mut ids = BTreeSet::new();
    for hook in &hooks_seen {
        assert_eq!(
            hook.headers["x-datastream-signature"],
            signature(SECRET, &hook.body)
        );
        let notice: AlertNotice = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(
            hook.headers["x-datastream-notification"],
            notice.id.to_string()
        );
        ids.insert(notice.id);
    }
    assert_eq!(ids, BTreeSet::from([fired.id, resolved.id]));

    // Every attempt is recorded.
    let deliveries_path = format!("/api/v1/alerts/{}/deliveries", fired.alert_id);
    let deadline = Instant::now() + Duration::from_secs(10);
    let attempts = loop {
        let attempts: Vec<Value> = sys
            .get(&deliveries_path, &admin)
            .await
            .json()
            .await
            .unwrap();
        if attempts.iter().filter(|a| a["ok"] == true).count() >= 4 || Instant::now() > deadline {
            break attempts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ok: BTreeSet<(String, String)> = attempts
        .iter()
        .filter(|a| a["ok"] == true)
        .map(|a| {
            (
                a["channel"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ok,
        BTreeSet::from([
            ("mqtt".into(), "PUBACK".into()),
            ("webhook".into(), "HTTP 200".into())
        ]),
        "{attempts:?}"
    );

    // Deleting the rule clears its retained state.
    let resp = sys
        .send(
            Method::DELETE,
            &format!("/api/v1/alert-rules/{rule_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let late = MessageTap::start(&sys.mqtt_url, &topic).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if late.count() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retained state outlived its rule"
        );
    }
    sys.stop().await;
}

/// A receiver answering 503: the MQTT notification is not held back, the
/// webhook is tried again after 1 s, then 2 s…, every attempt recorded
/// with its outcome, until the receiver takes it.
/// Creates a threshold rule named `name` (humidity above 90, at once) for a
/// fresh device family, with `webhook_url` signed with [`SECRET`], and
/// publishes 95 until its firing notification is on MQTT; returns it.
async fn fire_rule_with_webhook(
    sys: &TestSystem,
    admin: &str,
    name: &str,
    webhook_url: &str,
) -> AlertNotice {
    let id1 = unique_id1();
    let rule = create_rule(
        sys,
        admin,
        json!({
            "name": name, "kind": "threshold", "sensor_type": "humidity", "id1": id1,
            "above": 90.0, "for": "0s", "webhook_url": webhook_url, "webhook_secret": SECRET,
        }),
    )
    .await;
    let tap = MessageTap::start(
        &sys.mqtt_url,
        &format!("datastream/alerts/{}/#", rule["id"]),
    )
    .await;
    publish_until(sys, &tap, ("humidity", id1.as_str(), 1), 95.0, |n| {
        n.event == AlertEvent::Firing
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_with_backoff_and_never_holds_back_mqtt() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let hooks = WebhookReceiver::start().await;
    hooks.answer(503);
    let fired = fire_rule_with_webhook(&sys, &admin, "flaky receiver", &hooks.url()).await;
    let refused = hooks.wait_for(2, Duration::from_secs(15)).await;
    assert!(refused.len() >= 2, "retried: {} attempts", refused.len());
    assert!(refused
        .iter()
        .all(|h| h.headers["x-datastream-notification"] == fired.id.to_string()));
    assert!(
        refused[1].at.duration_since(refused[0].at) >= Duration::from_millis(900),
        "a pause before trying again"
    );
    hooks.answer(200);

    let path = format!("/api/v1/alerts/{}/deliveries", fired.alert_id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let webhook_attempts = loop {
        let attempts: Vec<Value> = sys.get(&path, &admin).await.json().await.unwrap();
        let webhook: Vec<Value> = attempts
            .into_iter()
            .filter(|a| a["channel"] == "webhook")
            .collect();
        if webhook.iter().any(|a| a["ok"] == true) || Instant::now() > deadline {
            break webhook;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let outcomes: Vec<(i64, String)> = webhook_attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let last = outcomes.len();
    assert!(last >= 3, "{outcomes:?}");
    for (i, (attempt, outcome)) in outcomes.iter().enumerate() {
        assert_eq!(*attempt, i as i64 + 1, "{outcomes:?}");
        let expected = if i + 1 == last {
            "HTTP 200"
        } else {
            "HTTP 503"
        };
        assert_eq!(outcome, expected, "{outcomes:?}");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_name_each_bad_field_and_viewers_cannot_write_them() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let viewer = sys.user_token("vera", "viewer").await;
    let good = json!({"name": "cold", "kind": "threshold", "sensor_type": "temperature", "below": 5.0, "for": "10m"});
    for (change, field) in [
        (json!({"kind": "rate"}), "kind"),
        (json!({"sensor_type": "Temp"}), "sensor_type"),
        (json!({"for": "ten minutes"}), "for"),
        (json!({"id1": "lower"}), "id1"),
        (json!({"id2": -4}), "id2"),
        (json!({"above": 40.0}), "below"),
        (json!({"clear_at": 1.0}), "clear_at"),
        (json!({"repeat_every": "1ms"}), "repeat_every"),
        (
            json!({"webhook_url": "http://x.test/hook"}),
            "webhook_secret",
        ),
        (json!({"colour": "red"}), "colour"),
    ] {
        let mut body = good.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let resp = sys
            .send(
                Method::POST,
                "/api/v1/alert-rules",
                &admin,
                Some(body.clone()),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let resp = sys
        .send(
            Method::POST,
            "/api/v1/alert-rules",
            &viewer,
            Some(good.clone()),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    let rule = create_rule(&sys, &admin, good).await;
    let path = format!("/api/v1/alert-rules/{}", rule["id"]);
    let resp = sys
        .send(Method::PATCH, &path, &viewer, Some(json!({"below": 2.0})))
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    // A merge patch: what is given changes, null clears, the rest stays.
    let resp = sys
        .send(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"below": 2.0, "repeat_every": "1h"})),
        )
        .await;
    let changed: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            changed["below"].as_f64(),
            changed["name"].as_str(),
            changed["revision"].as_i64()
        ),
        (Some(2.0), Some("cold"), Some(2))
    );
    let listed: Vec<Value> = sys
        .get("/api/v1/alert-rules", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["repeat_every"], "1h");
    let resp = sys.get("/api/v1/alerts?state=burning", &viewer).await;
    assert_eq!(resp.status().as_u16(), 400);
    sys.stop().await;
}

/// 1,000 devices report once each, staggered over about three seconds; a
/// silence rule of 2 s must fire for each between 2 s and 3 s after its
/// reading was published (measured on the alerter's `fired_at`), and
/// never for a device that kept reporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_alerts_fire_between_for_and_one_second_later_for_a_thousand_devices() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let id1 = unique_id1();
    let rule = create_rule(
        &sys,
        &admin,
        json!({
            "name": "quiet", "kind": "silence", "sensor_type": "vibration", "id1": id1, "for": "2s",
        }),
    )
    .await;
    let rule_id = rule["id"].as_i64().unwrap();
    // A canary, created after the rule: once it fires, the alerter has
    // read a rules table holding both.
    let canary = unique_id1();
    create_rule(
        &sys,
        &admin,
        json!({
            "name": "canary", "kind": "threshold", "sensor_type": "vibration", "id1": canary,
            "above": 1.0, "for": "0s",
        }),
    )
    .await;
    let tap = MessageTap::start(&sys.mqtt_url, "datastream/alerts/#").await;
    publish_until(&sys, &tap, ("vibration", canary.as_str(), 0), 2.0, |n| {
        n.id1 == canary
    })
    .await;

    let client = mqtt_client(&sys.mqtt_url, &unique_name("silence")).await;
    let mut published = BTreeMap::new();
    let keeper = 5000;
    let started = Instant::now();
    for id2 in 0..1000 {
        let at = chrono::Utc::now();
        let body = reading("vibration", &id1, id2, 1.0, at);
        publish(
            &client,
            &format!("sensors/vibration/{id1}/{id2}"),
            body.to_string(),
        )
        .await;
        published.insert(id2, at);
        if id2 % 50 == 49 {
            // The device that keeps reporting, every 150 ms or so.
            let body = reading("vibration", &id1, keeper, 1.0, chrono::Utc::now());
            publish(
                &client,
                &format!("sensors/vibration/{id1}/{keeper}"),
                body.to_string(),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let spread = started.elapsed();
    // Keep the keeper reporting until every other device has fired.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fired = Vec::new();
    while fired.len() < 1000 && Instant::now() < deadline {
        let body = reading("vibration", &id1, keeper, 1.0, chrono::Utc::now());
        publish(
            &client,
            &format!("sensors/vibration/{id1}/{keeper}"),
            body.to_string(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        fired = notices(&tap.snapshot())
            .into_iter()
            .filter(|n| n.rule_id == rule_id && n.event == AlertEvent::Firing)
            .collect();
    }
    assert!(
        fired.iter().all(|n| n.id2 != keeper),
        "the device that kept reporting fired"
    );
    let mut lateness: Vec<i64> = fired
        .iter()
        .map(|n| {
            let at = parse_timestamp(&n.fired_at).unwrap();
            (at - published[&n.id2]).num_milliseconds() - 2000
        })
        .collect();
    lateness.sort_unstable();
    let devices: BTreeSet<i32> = fired.iter().map(|n| n.id2).collect();
    assert_eq!(devices.len(), 1000, "each device fired once");
    eprintln!(
        "silence lateness over 1,000 devices (published over {:.1} s): min {} ms, median {} ms, max {} ms",
        spread.as_secs_f64(),
        lateness[0],
        lateness[500],
        lateness[999]
    );
    assert!(lateness[0] >= 0, "an alert fired early: {} ms", lateness[0]);
    assert!(
        lateness[999] <= 1000,
        "an alert fired {} ms late",
        lateness[999]
    );
    let resp = sys
        .send(
            Method::DELETE,
            &format!("/api/v1/alert-rules/{rule_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    sys.stop().await;
}

/// Two alerter processes on one database; the active one is killed
/// (SIGKILL) half-way through 1,000 devices crossing a threshold. The
/// standby takes over, and the receivers, de-duplicating on notification
/// ids, hold exactly one firing per device, on MQTT and on the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_alerter_and_every_alert_is_notified() {
    let Some(mosquitto) = OwnMosquitto::start() else {
        return;
    };
    let db = match TestDb::mysql().await {
        Some(db) => db,
        None => TestDb::sqlite(),
    };
    let store = datastream_store::connect(db.url()).await.unwrap();
    let hooks = WebhookReceiver::start().await;
    let id1 = unique_id1();
    let rule = RuleDraft {
        name: Some("over".into()),
        kind: Some("threshold".into()),
        sensor_type: Some("pressure".into()),
        id1: Some(id1.clone()),
        above: Some(30.0),
        span: Some("0s".into()),
        webhook_url: Some(hooks.url()),
        webhook_secret: Some(SECRET.into()),
        ..RuleDraft::default()
    };
    let rule = store
        .create_alert_rule(&rule.check().unwrap())
        .await
        .unwrap();
    let tap = MessageTap::start(
        &mosquitto.url(),
        &format!("datastream/alerts/{}/#", rule.id),
    )
    .await;

    let client_id = unique_name("alr");
    let env = [
        ("ALERT_CLIENT_ID", client_id.as_str()),
        ("ALERT_LEASE_SECS", "3"),
    ];
    let alerter = |name: &str| {
        ServiceCommand::alerter(db.url(), &mosquitto.alerter_url(), &unique_name(name), &env)
    };
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_datastream"));
    let first = ServiceProcess::start(binary, alerter("alerter-a"), Duration::from_secs(30))
        .await
        .unwrap();
    wait_for_log(&first, "took the lease", Duration::from_secs(20)).await;
    let second = ServiceProcess::start(binary, alerter("alerter-b"), Duration::from_secs(30))
        .await
        .unwrap();
    wait_for_log(&second, "standing by", Duration::from_secs(20)).await;

    let client = mqtt_client(&mosquitto.publisher_url(), &unique_name("cross")).await;
    let mut killed_at = None;
    let mut first = Some(first);
    for id2 in 0..1000 {
        let body = reading("pressure", &id1, id2, 50.0, chrono::Utc::now());
        publish(
            &client,
            &format!("sensors/pressure/{id1}/{id2}"),
            body.to_string(),
        )
        .await;
        if id2 == 500 {
            if let Some(active) = first.take() {
                active.kill();
                killed_at = Some(Instant::now());
            }
        }
        if id2 % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let killed_at = killed_at.unwrap();
    let takeover = wait_for_log(&second, "took the lease", Duration::from_secs(20)).await;
    let takeover = takeover.duration_since(killed_at);

    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut over_mqtt, mut over_webhook) = (BTreeMap::new(), BTreeMap::new());
    while (over_mqtt.len() < 1000 || over_webhook.len() < 1000) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for n in notices(&tap.snapshot())
            .into_iter()
            .filter(|n| n.event == AlertEvent::Firing)
        {
            over_mqtt.insert(n.id, n.id2);
        }
        for hook in hooks.received() {
            let n: AlertNotice = serde_json::from_slice(&hook.body).unwrap();
            over_webhook.insert(n.id, n.id2);
        }
    }
    let expected: BTreeSet<i32> = (0..1000).collect();
    for (channel, seen) in [("MQTT", &over_mqtt), ("webhook", &over_webhook)] {
        let devices: Vec<i32> = seen.values().copied().collect();
        let distinct: BTreeSet<i32> = devices.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            expected.len(),
            "{channel}: every device notified (tap {}, hooks {}); the standby logged:\n{}",
            tap.count(),
            hooks.received().len(),
            second.log()
        );
        assert_eq!(
            devices.len(),
            1000,
            "{channel}: one firing per device, whatever was sent twice"
        );
    }
    let raw_hooks = hooks.received().len();
    eprintln!(
        "failover: standby took over {:.2} s after the kill; {} webhook posts for 1,000 notifications",
        takeover.as_secs_f64(),
        raw_hooks
    );
    assert!(
        takeover < Duration::from_secs(6),
        "takeover took {takeover:?}"
    );
    drop(second);
    clear_mqtt_session(&mosquitto.alerter_url(), &client_id).await;
}

/// Reads a Server-Sent-Events body until it holds `needle` (at most 15 s);
/// returns what was read.
async fn read_events_until(response: &mut reqwest::Response, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut text = String::new();
    while !text.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => panic!("no {needle:?} in the stream: {text}"),
        }
    }
    text
}

/// Waits until the process has logged `text`; returns when it was seen.
async fn wait_for_log(process: &ServiceProcess, text: &str, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if process.log().contains(text) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{} never logged {text:?}:\n{}",
            process.name(),
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_delivered_to_a_receiver_the_alerter_trusts_and_refused_by_one_it_does_not(
) {
    let certs = datastream_test_support::TestCertificates::new();
    let ca_file = certs.ca_file().display().to_string();
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.alert_webhook_ca_file = Some(ca_file);
    })
    .await;
    let admin = sys.admin_token().await;
    let hooks = WebhookReceiver::start_tls(&certs).await;
    assert!(hooks.url().starts_with("https://localhost:"));
    let fired = fire_rule_with_webhook(&sys, &admin, "https receiver", &hooks.url()).await;
    let received = hooks.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(received.len(), 1, "delivered over HTTPS once");
    let hook = &received[0];
    assert_eq!(
        hook.headers["x-datastream-notification"],
        fired.id.to_string()
    );
    assert_eq!(
        hook.headers["x-datastream-signature"],
        signature(SECRET, &hook.body)
    );

    // A receiver whose certificate the alerter cannot check gets nothing,
    // and the attempt says why.
    let other_certs = datastream_test_support::TestCertificates::new();
    let untrusted = WebhookReceiver::start_tls(&other_certs).await;
    let fired = fire_rule_with_webhook(&sys, &admin, "untrusted receiver", &untrusted.url()).await;
    let path = format!("/api/v1/alerts/{}/deliveries", fired.alert_id);
    let deadline = Instant::now() + Duration::from_secs(15);
    let failed = loop {
        let attempts: Vec<Value> = sys.get(&path, &admin).await.json().await.unwrap();
        if let Some(a) = attempts.into_iter().find(|a| a["channel"] == "webhook") {
            break a;
        }
        assert!(Instant::now() < deadline, "no webhook attempt recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(untrusted.received().is_empty());
    sys.stop().await;
}
