//! Alerts: rules over the reading stream, and what they decide.
//!
//! * [`AlertRule`] and its parts, built only by [`RuleDraft::check`], so a
//!   rule that exists is valid ([`rule`]);
//! * [`Threshold`] evaluation, one device's readings at a time, and what
//!   counts as a sign of life for a silence rule ([`evaluation`]);
//! * what the store keeps of them ([`record`]);
//! * what a notification says and where it is published ([`notification`]).
//!
//! Timing: a threshold rule's `for` is measured on the readings'
//! timestamps; a silence rule's on arrival time at the alerter (see
//! `evaluation`).

pub mod evaluation;
pub mod notification;
pub mod record;
pub mod rule;

pub use evaluation::{is_sign_of_life, DeviceState, Step, Threshold};
pub use notification::{alert_topic, AlertEvent, AlertNotice, ALERTS_FILTER, ALERTS_ROOT};
pub use record::{
    AlertCommit, AlertQuery, AlertRecord, DeliveryAttempt, DeviceKey, Lease, Outgoing, Resolution,
    StoredState,
};
pub use rule::{
    format_span, parse_span, AlertRule, Comparison, Condition, RuleDraft, RuleError, Selection,
    Webhook, MAX_SPAN_MS,
};
