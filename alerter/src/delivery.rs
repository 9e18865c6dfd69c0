//! `deliver`: sends the outbox's notifications — to the broker (retained,
//! QoS 1) and to each rule's webhook — and records every attempt.
//!
//! Notifications come from the evaluator as soon as they are committed,
//! and from the outbox every second (what a failed attempt, a restart or a
//! previous lease holder left). Each channel of each notification is in
//! flight at most once in this process; every attempt runs as a task of
//! its own, webhooks at most [`WEBHOOK_CONCURRENCY`] at a time, so a slow
//! or dead receiver delays only its own notifications, never evaluation.

use crate::webhook;
use chrono::Utc;
use datastream_domain::alert::{DeliveryAttempt, Outgoing};
use datastream_domain::timestamp::parse_timestamp;
use datastream_mqtt::ConfirmedPublisher as Publisher;
use datastream_store::SharedStore;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// Webhook attempts in flight at most.
pub const WEBHOOK_CONCURRENCY: usize = 32;
/// How often the outbox is read for what is due.
const OUTBOX_POLL: Duration = Duration::from_secs(1);
/// Longest wait for the broker's PUBACK.
const PUBACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Channel {
    Mqtt,
    Webhook,
}

/// Delivers until `stop`; `fresh` brings notifications just committed.
pub async fn deliver(
    store: SharedStore,
    publisher: Arc<Publisher>,
    webhook_ca_file: Option<std::path::PathBuf>,
    mut fresh: mpsc::UnboundedReceiver<Vec<Outgoing>>,
    stop: CancellationToken,
) {
    let http = webhook_client(webhook_ca_file.as_deref());
    let webhooks = Arc::new(Semaphore::new(WEBHOOK_CONCURRENCY));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(i64, Channel)>();
    let mut in_flight: HashSet<(i64, Channel)> = HashSet::new();
    let mut mqtt_attempts: HashMap<i64, i32> = HashMap::new();
    let mut poll = tokio::time::interval(OUTBOX_POLL);
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            Some(batch) = fresh.recv() => batch,
            Some(done) = done_rx.recv() => {
                in_flight.remove(&done);
                continue;
            }
            _ = poll.tick() => match store.undelivered_notifications(Utc::now(), 1000).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "could not read the alert outbox");
                    continue;
                }
            },
        };
        for out in batch {
            let id = out.notice.id;
            let payload = match serde_json::to_vec(&out.notice) {
                Ok(payload) => payload,
                Err(_) => continue,
            };
            if !out.mqtt_done && in_flight.insert((id, Channel::Mqtt)) {
                let attempt = mqtt_attempts.entry(id).or_insert(0);
                *attempt += 1;
                tokio::spawn(send_mqtt(
                    store.clone(),
                    publisher.clone(),
                    out.clone(),
                    payload.clone(),
                    *attempt,
                    done_tx.clone(),
                ));
            }
            if !out.webhook_done
                && out.webhook.is_some()
                && in_flight.insert((id, Channel::Webhook))
            {
                tokio::spawn(send_webhook(
                    store.clone(),
                    http.clone(),
                    webhooks.clone(),
                    out,
                    payload,
                    done_tx.clone(),
                ));
            }
        }
        // Forget attempt counts of notifications no longer in flight.
        mqtt_attempts.retain(|id, _| in_flight.contains(&(*id, Channel::Mqtt)));
    }
}

async fn send_mqtt(
    store: SharedStore,
    publisher: Arc<Publisher>,
    out: Outgoing,
    payload: Vec<u8>,
    attempt: i32,
    done: mpsc::UnboundedSender<(i64, Channel)>,
) {
    let topic = out.notice.topic();
    // A rule deleted leaves no retained state behind: its last word goes
    // out unretained, then the topic is cleared (one connection, one QoS:
    // the broker keeps the order).
    let gone = out.notice.resolved_by.as_deref() == Some("rule_deleted");
    let publishing = async {
        publisher.publish(&topic, payload, !gone).await?;
        if gone {
            publisher.publish(&topic, Vec::new(), true).await?;
        }
        Ok(())
    };
    let result = match tokio::time::timeout(PUBACK_TIMEOUT, publishing).await {
        Ok(result) => result,
        Err(_) => Err(format!("no PUBACK within {} s", PUBACK_TIMEOUT.as_secs())),
    };
    let now = Utc::now();
    let (ok, outcome) = match result {
        Ok(()) => (true, "PUBACK".to_owned()),
        Err(reason) => (false, reason),
    };
    if !ok {
        tracing::warn!(notification = out.notice.id, %outcome, "alert not published; trying again");
    }
    let attempt = DeliveryAttempt {
        notification_id: out.notice.id,
        alert_id: out.notice.alert_id,
        channel: "mqtt",
        attempt,
        at: now,
        ok,
        outcome,
        done: ok,
        next_attempt_at: now,
    };
    record(&store, attempt).await;
    let _ = done.send((out.notice.id, Channel::Mqtt));
}

async fn send_webhook(
    store: SharedStore,
    http: reqwest::Client,
    slots: Arc<Semaphore>,
    out: Outgoing,
    payload: Vec<u8>,
    done: mpsc::UnboundedSender<(i64, Channel)>,
) {
    let Some(hook) = out.webhook.clone() else {
        return;
    };
    let attempt = out.webhook_attempts + 1;
    let result = {
        let _slot = slots.acquire().await;
        webhook::post(&http, &hook.url, &hook.secret, out.notice.id, payload).await
    };
    let now = Utc::now();
    let created = parse_timestamp(&out.notice.sent_at).unwrap_or(now);
    let (ok, mut outcome) = match result {
        Ok(line) => (true, line),
        Err(reason) => (false, reason),
    };
    let given_up = !ok && now - created >= webhook::RETRY_FOR;
    if given_up {
        outcome.push_str("; given up");
        tracing::error!(notification = out.notice.id, url = %hook.url, %outcome, "webhook given up after an hour of attempts");
    } else if !ok {
        tracing::warn!(notification = out.notice.id, url = %hook.url, attempt, %outcome, "webhook attempt failed; retrying");
    }
    let attempt = DeliveryAttempt {
        notification_id: out.notice.id,
        alert_id: out.notice.alert_id,
        channel: "webhook",
        attempt,
        at: now,
        ok,
        outcome,
        done: ok || given_up,
        next_attempt_at: now + webhook::backoff(attempt),
    };
    record(&store, attempt).await;
    let _ = done.send((out.notice.id, Channel::Webhook));
}

async fn record(store: &SharedStore, attempt: DeliveryAttempt) {
    let notification = attempt.notification_id;
    if let Err(error) = store.record_delivery(attempt).await {
        tracing::warn!(%error, notification, "could not record a delivery attempt");
    }
}

/// The HTTP client webhooks are POSTed with: `https://` receivers are
/// checked against the system's trusted CAs and `ca_file`'s. Without any
/// CA it still delivers to `http://` receivers; each `https://` attempt
/// then fails, recorded with the reason.
fn webhook_client(ca_file: Option<&std::path::Path>) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = match datastream_tls::web_client_config(ca_file) {
        Ok(config) => builder.use_preconfigured_tls(config),
        Err(reason) => {
            tracing::warn!(%reason, "https:// webhooks will fail (ALERT_WEBHOOK_CA_FILE)");
            builder
        }
    };
    builder.build().unwrap_or_else(|error| {
        tracing::warn!(%error, "building the webhook client; https:// webhooks will fail");
        reqwest::Client::new()
    })
}
