//! What the store keeps of alerts: each device's state under a rule, the
//! alerts that fired, the notifications waiting to go out, the attempts
//! made, and the questions the API asks of the history.

use super::evaluation::DeviceState;
use super::notification::AlertNotice;
use super::rule::Webhook;
use crate::filter::Order;
use crate::reading::{Id1, Id2, SensorType};
use chrono::{DateTime, Utc};

/// A device: what a rule's state and alerts are kept per.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    /// Its sensor type.
    pub sensor_type: SensorType,
    /// Its first id.
    pub id1: Id1,
    /// Its second id.
    pub id2: Id2,
}

/// One device's state under one rule, as committed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    /// The rule.
    pub rule_id: i64,
    /// The device.
    pub device: DeviceKey,
    /// Ok, pending since a reading time, or firing.
    pub state: DeviceState,
    /// The newest reading time judged.
    pub newest: Option<DateTime<Utc>>,
    /// Silence rules: an arrival time at most the alerter's persistence
    /// slack before the device's last sign of life.
    pub last_arrival: Option<DateTime<Utc>>,
    /// The firing alert, while firing.
    pub alert_id: Option<i64>,
}

/// One alert, from firing to resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Its id.
    pub id: i64,
    /// The rule that fired it.
    pub rule_id: i64,
    /// The rule's name when it fired.
    pub rule_name: String,
    /// `threshold` or `silence`.
    pub kind: String,
    /// The device.
    pub device: DeviceKey,
    /// Whether it is still firing.
    pub firing: bool,
    /// Reading time of the reading that fired it (threshold) or of the
    /// device's last reading (silence).
    pub started_at: DateTime<Utc>,
    /// That reading's value.
    pub start_value: Option<f64>,
    /// Threshold: when the condition began to hold (reading time).
    pub since: Option<DateTime<Utc>>,
    /// When the alerter fired it (wall clock).
    pub fired_at: DateTime<Utc>,
    /// When it resolved (wall clock).
    pub resolved_at: Option<DateTime<Utc>>,
    /// The value that resolved it, if a reading did.
    pub resolved_value: Option<f64>,
    /// `reading`, `rule_changed` or `rule_deleted`.
    pub resolved_by: Option<String>,
}

/// How an alert ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The alert.
    pub alert_id: i64,
    /// When (wall clock).
    pub at: DateTime<Utc>,
    /// The value that resolved it, if a reading did.
    pub value: Option<f64>,
    /// `reading`, `rule_changed` or `rule_deleted`.
    pub by: &'static str,
}

/// A notification to deliver: its content, fixed when it was created, and
/// where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// What it says (its `id` is the notification's).
    pub notice: AlertNotice,
    /// Whether the broker has acknowledged it.
    pub mqtt_done: bool,
    /// The rule's webhook when it was created.
    pub webhook: Option<Webhook>,
    /// Whether the webhook took it (or there is none, or it was given up).
    pub webhook_done: bool,
    /// Webhook attempts so far.
    pub webhook_attempts: i32,
}

/// Everything one evaluation step commits, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertCommit {
    /// States to write (replacing what was there).
    pub states: Vec<StoredState>,
    /// Alerts that fired.
    pub fired: Vec<AlertRecord>,
    /// Alerts that resolved.
    pub resolved: Vec<Resolution>,
    /// Notifications to deliver.
    pub notices: Vec<Outgoing>,
    /// Rules to forget: their states go, and the rule row if it is marked
    /// deleted.
    pub forget_rules: Vec<i64>,
}

impl AlertCommit {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
            && self.fired.is_empty()
            && self.resolved.is_empty()
            && self.notices.is_empty()
            && self.forget_rules.is_empty()
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// The notification.
    pub notification_id: i64,
    /// Its alert.
    pub alert_id: i64,
    /// `mqtt` or `webhook`.
    pub channel: &'static str,
    /// 1 for the first attempt on this channel.
    pub attempt: i32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Whether the receiver took it.
    pub ok: bool,
    /// What happened (`HTTP 200`, `connection refused`, `PUBACK`).
    pub outcome: String,
    /// Whether this channel is finished with (taken, or given up).
    pub done: bool,
    /// When to try again, if not done.
    pub next_attempt_at: DateTime<Utc>,
}

/// The right to evaluate: held by `holder` until its expiry; `epoch`
/// grows with each new holder, so a holder that lost it cannot commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it.
    pub holder: String,
    /// Which tenure this is.
    pub epoch: i64,
}

/// A question of the alert history: filters like the readings', newest
/// first unless asked otherwise, paged by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertQuery {
    /// Only this sensor type.
    pub sensor_type: Option<SensorType>,
    /// Only this id1.
    pub id1: Option<Id1>,
    /// Only this id2.
    pub id2: Option<Id2>,
    /// Only this rule's alerts.
    pub rule_id: Option<i64>,
    /// Only firing (true) or resolved (false) alerts.
    pub firing: Option<bool>,
    /// Fired at or after.
    pub from: Option<DateTime<Utc>>,
    /// Fired before.
    pub to: Option<DateTime<Utc>>,
    /// Oldest or newest first.
    pub order: Order,
    /// After this alert id in `order` (the previous page's last).
    pub after_id: Option<i64>,
    /// Most alerts returned.
    pub limit: u32,
}
