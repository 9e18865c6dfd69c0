//! What a notification says, the same on MQTT, webhooks and the SSE
//! stream, and where it is published.

use crate::reading::{Id1, Id2, SensorType};
use serde::{Deserialize, Serialize};

/// Prefix of the alert topics.
pub const ALERTS_ROOT: &str = "datastream/alerts";
/// Filter matching every alert topic.
pub const ALERTS_FILTER: &str = "datastream/alerts/#";

/// Why a notification was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The alert started firing.
    Firing,
    /// Still firing: the rule's `repeat_every` came round.
    Repeat,
    /// It resolved (a reading, or its rule was changed or deleted).
    Resolved,
}

impl AlertEvent {
    /// `firing`, `repeat` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Firing => "firing",
            AlertEvent::Repeat => "repeat",
            AlertEvent::Resolved => "resolved",
        }
    }

    /// Parses [`AlertEvent::as_str`]'s text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "firing" => Some(AlertEvent::Firing),
            "repeat" => Some(AlertEvent::Repeat),
            "resolved" => Some(AlertEvent::Resolved),
            _ => None,
        }
    }
}

/// One notification. `id` is stable: a notification sent again (after a
/// failed attempt or a restart) carries the same id, so receivers can
/// de-duplicate on it. Timestamps are RFC 3339 text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotice {
    /// The notification's id, unique in the deployment.
    pub id: i64,
    /// The alert it is about (one firing, from start to resolution).
    pub alert_id: i64,
    /// Why it was sent.
    pub event: AlertEvent,
    /// `firing` or `resolved`: the alert's state after this notification.
    pub state: String,
    /// The rule's id.
    pub rule_id: i64,
    /// The rule's name.
    pub rule_name: String,
    /// `threshold` or `silence`.
    pub kind: String,
    /// The device.
    pub sensor_type: String,
    /// The device.
    pub id1: String,
    /// The device.
    pub id2: i32,
    /// Reading time of the reading that fired it (threshold) or the
    /// device's last reading (silence).
    pub started_at: String,
    /// That reading's value.
    pub value: Option<f64>,
    /// When the alerter fired it.
    pub fired_at: String,
    /// When it resolved (wall clock), if it has.
    pub resolved_at: Option<String>,
    /// The value of the reading that resolved it, if one did.
    pub resolved_value: Option<f64>,
    /// `reading`, `rule_changed` or `rule_deleted`, once resolved.
    pub resolved_by: Option<String>,
    /// When this notification was created.
    pub sent_at: String,
}

impl AlertNotice {
    /// The topic of the alert's retained state.
    pub fn topic(&self) -> String {
        format!(
            "{ALERTS_ROOT}/{}/{}/{}/{}",
            self.rule_id, self.sensor_type, self.id1, self.id2
        )
    }
}

/// The topic of a rule's alert for one device.
pub fn alert_topic(rule_id: i64, sensor_type: &SensorType, id1: &Id1, id2: Id2) -> String {
    format!("{ALERTS_ROOT}/{rule_id}/{sensor_type}/{id1}/{}", id2.get())
}
