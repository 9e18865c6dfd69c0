//! Diesel rows of the alert tables, and their conversion to and from the
//! domain's alert types (`datastream_domain::alert`).

use crate::schema::{alert_deliveries, alert_notifications, alert_rules, alert_states, alerts};
use chrono::{DateTime, NaiveDateTime, Utc};
use datastream_domain::alert::{
    format_span, AlertNotice, AlertRecord, AlertRule, Condition, DeliveryAttempt, DeviceKey,
    DeviceState, Outgoing, RuleDraft, StoredState, Webhook,
};
use datastream_domain::reading::{Id1, Id2, SensorType};
use diesel::{AsChangeset, Insertable, Queryable};

/// An `alert_rules` row.
#[derive(Queryable, Insertable)]
#[diesel(table_name = alert_rules, treat_none_as_default_value = false)]
pub(crate) struct RuleRow {
    pub id: i64,
    pub revision: i64,
    pub name: String,
    pub kind: String,
    pub sensor_type: String,
    pub id1: Option<String>,
    pub id2: Option<i32>,
    pub comparison: Option<String>,
    pub limit_value: Option<f64>,
    pub clear_at: Option<f64>,
    pub span_ms: i64,
    pub repeat_ms: Option<i64>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub deleted: bool,
    pub updated_at: NaiveDateTime,
}

impl RuleRow {
    /// The row of `rule` as `id` at `revision`.
    pub(crate) fn new(rule: &AlertRule, id: i64, revision: i64) -> Self {
        let (comparison, limit_value, clear_at) = match &rule.condition {
            Condition::Threshold(t) => (
                Some(t.comparison.as_str().to_owned()),
                Some(t.limit),
                t.clear_at,
            ),
            Condition::Silence { .. } => (None, None, None),
        };
        Self {
            id,
            revision,
            name: rule.name.clone(),
            kind: rule.condition.kind().to_owned(),
            sensor_type: rule.selection.sensor_type.as_str().to_owned(),
            id1: rule.selection.id1.as_ref().map(|i| i.as_str().to_owned()),
            id2: rule.selection.id2.map(Id2::get),
            comparison,
            limit_value,
            clear_at,
            span_ms: rule.condition.span().num_milliseconds(),
            repeat_ms: rule.repeat_every.map(|d| d.num_milliseconds()),
            webhook_url: rule.webhook.as_ref().map(|w| w.url.clone()),
            webhook_secret: rule.webhook.as_ref().map(|w| w.secret.clone()),
            deleted: false,
            updated_at: Utc::now().naive_utc(),
        }
    }

    /// The rule, checked again as a draft (a row edited by hand into
    /// something invalid is skipped, with a log line); and whether it is
    /// marked deleted.
    pub(crate) fn into_rule(self) -> Option<(AlertRule, bool)> {
        let span = |ms: i64| format_span(chrono::Duration::milliseconds(ms));
        let (above, below) = match self.comparison.as_deref() {
            Some("above") => (self.limit_value, None),
            Some("below") => (None, self.limit_value),
            _ => (None, None),
        };
        let draft = RuleDraft {
            name: Some(self.name),
            kind: Some(self.kind),
            sensor_type: Some(self.sensor_type),
            id1: self.id1,
            id2: self.id2.map(i64::from),
            above,
            below,
            clear_at: self.clear_at,
            span: Some(span(self.span_ms)),
            repeat_every: self.repeat_ms.map(span),
            webhook_url: self.webhook_url,
            webhook_secret: self.webhook_secret,
        };
        match draft.check() {
            Ok(mut rule) => {
                rule.id = self.id;
                rule.revision = self.revision;
                Some((rule, self.deleted))
            }
            Err(error) => {
                tracing::error!(rule = self.id, %error, "stored alert rule is invalid; skipped");
                None
            }
        }
    }
}

/// What replacing a rule writes: every field a request gives (absent
/// ones become NULL).
#[derive(AsChangeset)]
#[diesel(table_name = alert_rules, treat_none_as_null = true)]
pub(crate) struct RuleFieldsRow {
    name: String,
    kind: String,
    sensor_type: String,
    id1: Option<String>,
    id2: Option<i32>,
    comparison: Option<String>,
    limit_value: Option<f64>,
    clear_at: Option<f64>,
    span_ms: i64,
    repeat_ms: Option<i64>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    updated_at: NaiveDateTime,
}

impl RuleFieldsRow {
    pub(crate) fn new(rule: &AlertRule) -> Self {
        let r = RuleRow::new(rule, 0, 0);
        Self {
            name: r.name,
            kind: r.kind,
            sensor_type: r.sensor_type,
            id1: r.id1,
            id2: r.id2,
            comparison: r.comparison,
            limit_value: r.limit_value,
            clear_at: r.clear_at,
            span_ms: r.span_ms,
            repeat_ms: r.repeat_ms,
            webhook_url: r.webhook_url,
            webhook_secret: r.webhook_secret,
            updated_at: r.updated_at,
        }
    }
}

/// A device's columns as domain types; `None` for a row edited into
/// something that is not a device.
fn device(sensor_type: &str, id1: &str, id2: i32) -> Option<DeviceKey> {
    Some(DeviceKey {
        sensor_type: SensorType::parse(sensor_type).ok()?,
        id1: Id1::parse(id1).ok()?,
        id2: Id2::new(i64::from(id2)).ok()?,
    })
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// An `alert_states` row.
#[derive(Queryable, Insertable)]
#[diesel(table_name = alert_states, treat_none_as_default_value = false)]
pub(crate) struct StateRow {
    pub rule_id: i64,
    pub sensor_type: String,
    pub id1: String,
    pub id2: i32,
    pub state: String,
    pub since: Option<NaiveDateTime>,
    pub newest: Option<NaiveDateTime>,
    pub last_arrival: Option<NaiveDateTime>,
    pub alert_id: Option<i64>,
}

impl From<&StoredState> for StateRow {
    fn from(s: &StoredState) -> Self {
        let (state, since) = match s.state {
            DeviceState::Ok => ("ok", None),
            DeviceState::Pending { since } => ("pending", Some(since.naive_utc())),
            DeviceState::Firing => ("firing", None),
        };
        Self {
            rule_id: s.rule_id,
            sensor_type: s.device.sensor_type.as_str().to_owned(),
            id1: s.device.id1.as_str().to_owned(),
            id2: s.device.id2.get(),
            state: state.to_owned(),
            since,
            newest: s.newest.map(|t| t.naive_utc()),
            last_arrival: s.last_arrival.map(|t| t.naive_utc()),
            alert_id: s.alert_id,
        }
    }
}

impl StateRow {
    pub(crate) fn into_state(self) -> Option<StoredState> {
        let state = match (self.state.as_str(), self.since) {
            ("pending", Some(since)) => DeviceState::Pending { since: utc(since) },
            ("firing", _) => DeviceState::Firing,
            _ => DeviceState::Ok,
        };
        Some(StoredState {
            rule_id: self.rule_id,
            device: device(&self.sensor_type, &self.id1, self.id2)?,
            state,
            newest: self.newest.map(utc),
            last_arrival: self.last_arrival.map(utc),
            alert_id: self.alert_id,
        })
    }
}

/// An `alerts` row.
#[derive(Queryable, Insertable)]
#[diesel(table_name = alerts, treat_none_as_default_value = false)]
pub(crate) struct AlertRow {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub kind: String,
    pub sensor_type: String,
    pub id1: String,
    pub id2: i32,
    pub state: String,
    pub started_at: NaiveDateTime,
    pub start_value: Option<f64>,
    pub since: Option<NaiveDateTime>,
    pub fired_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolved_value: Option<f64>,
    pub resolved_by: Option<String>,
}

impl From<&AlertRecord> for AlertRow {
    fn from(a: &AlertRecord) -> Self {
        Self {
            id: a.id,
            rule_id: a.rule_id,
            rule_name: a.rule_name.clone(),
            kind: a.kind.clone(),
            sensor_type: a.device.sensor_type.as_str().to_owned(),
            id1: a.device.id1.as_str().to_owned(),
            id2: a.device.id2.get(),
            state: if a.firing { "firing" } else { "resolved" }.to_owned(),
            started_at: a.started_at.naive_utc(),
            start_value: a.start_value,
            since: a.since.map(|t| t.naive_utc()),
            fired_at: a.fired_at.naive_utc(),
            resolved_at: a.resolved_at.map(|t| t.naive_utc()),
            resolved_value: a.resolved_value,
            resolved_by: a.resolved_by.clone(),
        }
    }
}

impl AlertRow {
    pub(crate) fn into_record(self) -> Option<AlertRecord> {
        Some(AlertRecord {
            id: self.id,
            rule_id: self.rule_id,
            rule_name: self.rule_name,
            kind: self.kind,
            device: device(&self.sensor_type, &self.id1, self.id2)?,
            firing: self.state == "firing",
            started_at: utc(self.started_at),
            start_value: self.start_value,
            since: self.since.map(utc),
            fired_at: utc(self.fired_at),
            resolved_at: self.resolved_at.map(utc),
            resolved_value: self.resolved_value,
            resolved_by: self.resolved_by,
        })
    }
}

/// An `alert_notifications` row.
#[derive(Queryable, Insertable)]
#[diesel(table_name = alert_notifications, treat_none_as_default_value = false)]
pub(crate) struct NotificationRow {
    pub id: i64,
    pub alert_id: i64,
    pub topic: String,
    pub payload: String,
    pub mqtt_done: bool,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub webhook_done: bool,
    pub webhook_attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl NotificationRow {
    pub(crate) fn new(out: &Outgoing) -> Self {
        let now = Utc::now().naive_utc();
        Self {
            id: out.notice.id,
            alert_id: out.notice.alert_id,
            topic: out.notice.topic(),
            // Serializing a struct of strings and numbers cannot fail.
            payload: serde_json::to_string(&out.notice).unwrap_or_default(),
            mqtt_done: out.mqtt_done,
            webhook_url: out.webhook.as_ref().map(|w| w.url.clone()),
            webhook_secret: out.webhook.as_ref().map(|w| w.secret.clone()),
            webhook_done: out.webhook_done,
            webhook_attempts: out.webhook_attempts,
            next_attempt_at: now,
            created_at: now,
        }
    }

    pub(crate) fn into_outgoing(self) -> Option<Outgoing> {
        let notice: AlertNotice = match serde_json::from_str(&self.payload) {
            Ok(notice) => notice,
            Err(error) => {
                tracing::error!(notification = self.id, %error, "stored notification is not readable; skipped");
                return None;
            }
        };
        Some(Outgoing {
            notice,
            mqtt_done: self.mqtt_done,
            webhook: match (self.webhook_url, self.webhook_secret) {
                (Some(url), Some(secret)) => Some(Webhook { url, secret }),
                _ => None,
            },
            webhook_done: self.webhook_done,
            webhook_attempts: self.webhook_attempts,
        })
    }
}

/// A new `alert_deliveries` row.
#[derive(Insertable)]
#[diesel(table_name = alert_deliveries)]
pub(crate) struct NewDeliveryRow<'a> {
    pub notification_id: i64,
    pub alert_id: i64,
    pub channel: &'a str,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub ok: bool,
    pub outcome: &'a str,
}

/// An `alert_deliveries` row as read.
#[derive(Queryable)]
pub(crate) struct DeliveryRow {
    pub _id: i64,
    pub notification_id: i64,
    pub alert_id: i64,
    pub channel: String,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub ok: bool,
    pub outcome: String,
}

impl DeliveryRow {
    pub(crate) fn into_attempt(self) -> DeliveryAttempt {
        let at = utc(self.at);
        DeliveryAttempt {
            notification_id: self.notification_id,
            alert_id: self.alert_id,
            channel: if self.channel == "mqtt" {
                "mqtt"
            } else {
                "webhook"
            },
            attempt: self.attempt,
            at,
            ok: self.ok,
            outcome: self.outcome,
            done: self.ok,
            next_attempt_at: at,
        }
    }
}
