//! Publishing generated readings at a given rate, as the benchmarks need.

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_domain::MqttUrl;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

/// One publisher's share of a run.
pub struct PublishPlan {
    /// Broker.
    pub mqtt: MqttUrl,
    /// Client id.
    pub client_id: String,
    /// Device family of every reading.
    pub id1: String,
    /// This publisher's device (distinct per publisher).
    pub id2: u32,
    /// How many readings.
    pub count: usize,
    /// Readings per second, or `None` for as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Readings per MQTT message (1: one JSON object; more: a JSON array).
    pub per_message: usize,
    /// How far in the past the readings are stamped (zero: now), as a
    /// gateway catching up after an outage sends them.
    pub backdate: ChronoDuration,
}

/// Publishes the plan's readings at QoS 1, each stamped with the time it is
/// published (strictly increasing, so every reading is distinct), and
/// returns once the broker has acked all of them.
pub async fn publish(plan: PublishPlan) -> anyhow::Result<Duration> {
    let mut options = MqttOptions::new(&plan.client_id, plan.mqtt.host(), plan.mqtt.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    if let Some((user, pass)) = plan.mqtt.credentials() {
        options.set_credentials(user, pass);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let topic = format!("sensors/bench/{}/{}", plan.id1, plan.id2);
    let per_message = plan.per_message.max(1);
    let messages = plan.count.div_ceil(per_message);
    let started = Instant::now();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < messages {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publisher lost the broker: {e}")),
            }
        }
        Ok(())
    });

    let mut last: DateTime<Utc> = DateTime::<Utc>::MIN_UTC;
    let mut sent = 0usize;
    let tick = Duration::from_millis(1);
    let per_tick = plan.rate.map(|r| r * tick.as_secs_f64());
    let mut owed = 0.0;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while sent < plan.count {
        let burst = match per_tick {
            Some(n) => {
                ticker.tick().await;
                owed += n;
                let whole = (owed / per_message as f64).floor();
                owed -= whole * per_message as f64;
                whole as usize * per_message
            }
            None => 256 * per_message,
        };
        let mut budget = burst.min(plan.count - sent);
        while budget > 0 {
            let in_message = per_message.min(budget);
            let payload = message(&plan, sent, in_message, per_message > 1, &mut last);
            client
                .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                .await?;
            sent += in_message;
            budget -= in_message;
        }
    }
    acks.await??;
    Ok(started.elapsed())
}

/// One message of `count` readings (numbered from `first`), as a JSON array
/// when `array`; each stamped now, strictly after `last`.
fn message(
    plan: &PublishPlan,
    first: usize,
    count: usize,
    array: bool,
    last: &mut DateTime<Utc>,
) -> String {
    let mut payload = String::with_capacity(count * 120 + 2);
    if array {
        payload.push('[');
    }
    for k in 0..count {
        let now = (Utc::now() - plan.backdate).trunc_subsecs(6);
        let ts = if now > *last {
            now
        } else {
            *last + ChronoDuration::microseconds(1)
        };
        *last = ts;
        if k > 0 {
            payload.push(',');
        }
        payload.push_str(&format!(
            r#"{{"sensor_value":{},"sensor_type":"bench","id1":"{}","id2":{},"timestamp":"{}"}}"#,
            (first + k) as f64 * 0.01,
            plan.id1,
            plan.id2,
            format_timestamp(ts)
        ));
    }
    if array {
        payload.push(']');
    }
    payload
}
