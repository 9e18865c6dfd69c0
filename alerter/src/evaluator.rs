//! `Evaluator`: the alerter's memory while it holds the lease — the rules,
//! each device's state under each rule, the firing alerts, and the timers
//! (silence deadlines, repeats). It does no I/O: readings and the clock go
//! in, and what must be committed comes out ([`Evaluator::take_commit`]);
//! the caller commits it before acknowledging the readings that caused it.
//!
//! Only changes are written: a threshold state when it changes, and a
//! silence rule's arrival time when it is new or has moved on by more than
//! the rule's persistence slack ([`persist_slack`]). A restarted alerter
//! arms each silence deadline from the stored arrival plus that slack, so
//! after a restart a silence alert may be up to the slack late, never early.

use chrono::{DateTime, Duration, Utc};
use datastream_domain::alert::{
    alert_topic, AlertCommit, AlertEvent, AlertNotice, AlertRecord, AlertRule, Condition,
    DeviceKey, DeviceState, Outgoing, Resolution, Step, StoredState,
};
use datastream_domain::timestamp::format_timestamp;
use datastream_domain::{Reading, SensorType};
use std::collections::{BTreeSet, HashMap, HashSet};

/// How far a silence rule's stored arrival time may lag the real one: half
/// its `for`, within 1 s to 15 s.
pub fn persist_slack(after: Duration) -> Duration {
    (after / 2).clamp(Duration::seconds(1), Duration::seconds(15))
}

/// A rule's state key: the rule and the device.
type Key = (i64, DeviceKey);

/// What the evaluator remembers of one device under one rule.
#[derive(Debug, Clone, Default)]
struct Memo {
    state: DeviceState,
    /// The newest reading time judged (threshold) or seen alive (silence).
    newest: Option<DateTime<Utc>>,
    /// Silence: when the last sign of life arrived.
    last_arrival: Option<DateTime<Utc>>,
    /// Silence: the arrival time as stored.
    stored_arrival: Option<DateTime<Utc>>,
    /// Silence: restored from the store and not heard from since; its
    /// deadline carries the persistence slack.
    restored: bool,
    /// The last value seen (for a silence alert's record).
    last_value: Option<f64>,
    /// The firing alert.
    alert_id: Option<i64>,
    /// Silence: the deadline a timer is armed for.
    armed: Option<DateTime<Utc>>,
}

/// A timer: a silence deadline or a repeat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Silence(Key),
    Repeat(i64),
}

/// The alerter's memory; see the module docs.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: HashMap<i64, AlertRule>,
    by_type: HashMap<SensorType, Vec<i64>>,
    memos: HashMap<Key, Memo>,
    /// Firing alerts, by id.
    firing: HashMap<i64, AlertRecord>,
    timers: BTreeSet<(DateTime<Utc>, Timer)>,
    last_alert_id: i64,
    last_notice_id: i64,
    dirty: HashSet<Key>,
    commit: AlertCommit,
    /// Retained alert topics to clear (devices of rules deleted).
    cleared_topics: Vec<String>,
}

impl Evaluator {
    /// An evaluator resuming from what the store holds at `now`.
    pub fn resume(
        states: Vec<StoredState>,
        firing: Vec<AlertRecord>,
        last_alert_id: i64,
        last_notice_id: i64,
    ) -> Self {
        let mut me = Self {
            last_alert_id,
            last_notice_id,
            ..Self::default()
        };
        for s in states {
            me.memos.insert(
                (s.rule_id, s.device),
                Memo {
                    state: s.state,
                    newest: s.newest,
                    last_arrival: s.last_arrival,
                    stored_arrival: s.last_arrival,
                    restored: true,
                    alert_id: s.alert_id,
                    ..Memo::default()
                },
            );
        }
        for record in firing {
            me.firing.insert(record.id, record);
        }
        me
    }

    /// Takes the rules as the store lists them at `now` (with whether each
    /// is marked deleted): new ones start, changed ones start afresh (their
    /// firing alerts resolved as `rule_changed`), deleted ones resolve
    /// theirs as `rule_deleted` and are forgotten.
    pub fn sync_rules(&mut self, listed: Vec<(AlertRule, bool)>, now: DateTime<Utc>) {
        let mut seen = HashSet::new();
        for (rule, deleted) in listed {
            seen.insert(rule.id);
            if deleted {
                self.retire(rule.id, "rule_deleted", now, true);
                continue;
            }
            match self.rules.get(&rule.id) {
                Some(current) if *current == rule => {}
                Some(_) => {
                    self.retire(rule.id, "rule_changed", now, false);
                    self.start_rule(rule, now);
                }
                None => self.start_rule(rule, now),
            }
        }
        // Rules gone from the table altogether, and states or alerts left
        // of rules nobody lists.
        let mut gone: Vec<i64> = self.rules.keys().copied().collect();
        gone.extend(self.memos.keys().map(|k| k.0));
        gone.extend(self.firing.values().map(|r| r.rule_id));
        gone.sort_unstable();
        gone.dedup();
        gone.retain(|id| !seen.contains(id));
        for id in gone {
            self.retire(id, "rule_deleted", now, true);
        }
    }

    fn start_rule(&mut self, rule: AlertRule, now: DateTime<Utc>) {
        let id = rule.id;
        tracing::info!(rule = id, revision = rule.revision, name = %rule.name, kind = rule.condition.kind(), "evaluating alert rule");
        self.by_type
            .entry(rule.selection.sensor_type.clone())
            .or_default()
            .push(id);
        // States restored for this rule: arm silence deadlines and repeats.
        let keys: Vec<Key> = self.memos.keys().filter(|k| k.0 == id).cloned().collect();
        if let Condition::Silence { after } = rule.condition {
            for key in keys {
                self.arm_silence(&key, after);
            }
        }
        if let Some(period) = rule.repeat_every {
            for record in self.firing.values().filter(|r| r.rule_id == id) {
                let next = next_boundary(record.fired_at, period, now);
                self.timers.insert((next, Timer::Repeat(record.id)));
            }
        }
        self.rules.insert(id, rule);
    }

    /// Resolves a rule's firing alerts and forgets its states.
    fn retire(&mut self, rule_id: i64, by: &'static str, now: DateTime<Utc>, deleted: bool) {
        if let Some(rule) = self.rules.remove(&rule_id) {
            tracing::info!(rule = rule_id, reason = by, "alert rule retired");
            if let Some(ids) = self.by_type.get_mut(&rule.selection.sensor_type) {
                ids.retain(|id| *id != rule_id);
            }
        }
        let keys: Vec<Key> = self
            .memos
            .keys()
            .filter(|k| k.0 == rule_id)
            .cloned()
            .collect();
        for key in keys {
            if let Some(memo) = self.memos.remove(&key) {
                if let Some(alert_id) = memo.alert_id {
                    self.resolve(alert_id, now, None, by);
                }
            }
            self.dirty.remove(&key);
            if deleted {
                self.cleared_topics.push(alert_topic(
                    rule_id,
                    &key.1.sensor_type,
                    &key.1.id1,
                    key.1.id2,
                ));
            }
        }
        // Alerts of the rule not in any memo (a state lost by hand).
        let orphans: Vec<i64> = self
            .firing
            .values()
            .filter(|r| r.rule_id == rule_id)
            .map(|r| r.id)
            .collect();
        for alert_id in orphans {
            self.resolve(alert_id, now, None, by);
        }
        if !self.commit.forget_rules.contains(&rule_id) {
            self.commit.forget_rules.push(rule_id);
        }
    }

    /// Judges one reading that arrived at `arrival`.
    pub fn judge(&mut self, reading: &Reading, arrival: DateTime<Utc>) {
        let Some(rule_ids) = self.by_type.get(reading.sensor_type()) else {
            return;
        };
        let device = DeviceKey {
            sensor_type: reading.sensor_type().clone(),
            id1: reading.id1().clone(),
            id2: reading.id2(),
        };
        let rule_ids: Vec<i64> = rule_ids.clone();
        for rule_id in rule_ids {
            let Some(rule) = self.rules.get(&rule_id) else {
                continue;
            };
            if !rule
                .selection
                .matches(&device.sensor_type, &device.id1, device.id2)
            {
                continue;
            }
            let condition = rule.condition.clone();
            let key = (rule_id, device.clone());
            match condition {
                Condition::Threshold(threshold) => {
                    let memo = self.memos.entry(key.clone()).or_default();
                    let before = memo.state;
                    let step = threshold.step(
                        &mut memo.state,
                        &mut memo.newest,
                        reading.sensor_value(),
                        reading.timestamp(),
                    );
                    let changed = memo.state != before;
                    match step {
                        Step::Fired { since } => {
                            let at = reading.timestamp();
                            let alert_id = self.fire(
                                &key,
                                at,
                                Some(reading.sensor_value()),
                                Some(since),
                                arrival,
                            );
                            if let Some(memo) = self.memos.get_mut(&key) {
                                memo.alert_id = Some(alert_id);
                            }
                        }
                        Step::Resolved => {
                            let alert_id = self.memos.get_mut(&key).and_then(|m| m.alert_id.take());
                            if let Some(alert_id) = alert_id {
                                self.resolve(
                                    alert_id,
                                    arrival,
                                    Some(reading.sensor_value()),
                                    "reading",
                                );
                            }
                        }
                        Step::Late | Step::Judged => {}
                    }
                    if changed {
                        self.dirty.insert(key);
                    }
                }
                Condition::Silence { after } => {
                    let memo = self.memos.entry(key.clone()).or_default();
                    if !datastream_domain::alert::is_sign_of_life(memo.newest, reading.timestamp())
                    {
                        continue;
                    }
                    memo.newest = Some(reading.timestamp());
                    memo.last_arrival = Some(arrival);
                    memo.last_value = Some(reading.sensor_value());
                    memo.restored = false;
                    let persist = memo
                        .stored_arrival
                        .is_none_or(|stored| arrival - stored > persist_slack(after));
                    if memo.state == DeviceState::Firing {
                        memo.state = DeviceState::Ok;
                        let alert_id = memo.alert_id.take();
                        self.dirty.insert(key.clone());
                        if let Some(alert_id) = alert_id {
                            self.resolve(
                                alert_id,
                                arrival,
                                Some(reading.sensor_value()),
                                "reading",
                            );
                        }
                    } else if persist {
                        self.dirty.insert(key.clone());
                    }
                    self.arm_silence(&key, after);
                }
            }
        }
    }

    /// Arms a silence timer for `key` unless one is armed (a timer that
    /// finds the deadline moved on re-arms itself).
    fn arm_silence(&mut self, key: &Key, after: Duration) {
        let Some(memo) = self.memos.get_mut(key) else {
            return;
        };
        if memo.armed.is_some() || memo.state == DeviceState::Firing {
            return;
        }
        let Some(deadline) = silence_deadline(memo, after) else {
            return;
        };
        memo.armed = Some(deadline);
        self.timers.insert((deadline, Timer::Silence(key.clone())));
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Runs every timer due at `now`.
    pub fn run_timers(&mut self, now: DateTime<Utc>) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((_, timer)) = self.timers.pop_first() else {
                break;
            };
            match timer {
                Timer::Silence(key) => self.silence_due(key, now),
                Timer::Repeat(alert_id) => self.repeat_due(alert_id, now),
            }
        }
    }

    fn silence_due(&mut self, key: Key, now: DateTime<Utc>) {
        let Some(Condition::Silence { after }) =
            self.rules.get(&key.0).map(|r| r.condition.clone())
        else {
            return;
        };
        let Some(memo) = self.memos.get_mut(&key) else {
            return;
        };
        memo.armed = None;
        if memo.state == DeviceState::Firing {
            return;
        }
        let Some(deadline) = silence_deadline(memo, after) else {
            return;
        };
        if deadline > now {
            memo.armed = Some(deadline);
            self.timers.insert((deadline, Timer::Silence(key)));
            return;
        }
        memo.state = DeviceState::Firing;
        let (started, value) = (memo.newest.unwrap_or(now), memo.last_value);
        let alert_id = self.fire(&key, started, value, None, now);
        if let Some(memo) = self.memos.get_mut(&key) {
            memo.alert_id = Some(alert_id);
        }
        self.dirty.insert(key);
    }

    fn repeat_due(&mut self, alert_id: i64, now: DateTime<Utc>) {
        let Some(record) = self.firing.get(&alert_id).cloned() else {
            return;
        };
        let Some(period) = self.rules.get(&record.rule_id).and_then(|r| r.repeat_every) else {
            return;
        };
        self.notify(&record, AlertEvent::Repeat, now);
        let next = next_boundary(record.fired_at, period, now);
        self.timers.insert((next, Timer::Repeat(alert_id)));
    }

    /// Starts an alert; returns its id.
    fn fire(
        &mut self,
        key: &Key,
        started_at: DateTime<Utc>,
        value: Option<f64>,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> i64 {
        self.last_alert_id += 1;
        let rule = &self.rules[&key.0];
        let record = AlertRecord {
            id: self.last_alert_id,
            rule_id: key.0,
            rule_name: rule.name.clone(),
            kind: rule.condition.kind().to_owned(),
            device: key.1.clone(),
            firing: true,
            started_at,
            start_value: value,
            since,
            fired_at: now,
            resolved_at: None,
            resolved_value: None,
            resolved_by: None,
        };
        if let Some(period) = rule.repeat_every {
            self.timers.insert((now + period, Timer::Repeat(record.id)));
        }
        self.commit.fired.push(record.clone());
        self.notify(&record, AlertEvent::Firing, now);
        self.firing.insert(record.id, record);
        self.last_alert_id
    }

    fn resolve(&mut self, alert_id: i64, now: DateTime<Utc>, value: Option<f64>, by: &'static str) {
        let Some(mut record) = self.firing.remove(&alert_id) else {
            return;
        };
        record.firing = false;
        record.resolved_at = Some(now);
        record.resolved_value = value;
        record.resolved_by = Some(by.to_owned());
        // An alert fired in this same step is written whole, resolved.
        if let Some(pending) = self.commit.fired.iter_mut().find(|r| r.id == alert_id) {
            *pending = record.clone();
        } else {
            self.commit.resolved.push(Resolution {
                alert_id,
                at: now,
                value,
                by,
            });
        }
        self.notify(&record, AlertEvent::Resolved, now);
    }

    fn notify(&mut self, record: &AlertRecord, event: AlertEvent, now: DateTime<Utc>) {
        self.last_notice_id += 1;
        let webhook = self
            .rules
            .get(&record.rule_id)
            .and_then(|r| r.webhook.clone());
        let notice = AlertNotice {
            id: self.last_notice_id,
            alert_id: record.id,
            event,
            state: if record.firing { "firing" } else { "resolved" }.to_owned(),
            rule_id: record.rule_id,
            rule_name: record.rule_name.clone(),
            kind: record.kind.clone(),
            sensor_type: record.device.sensor_type.as_str().to_owned(),
            id1: record.device.id1.as_str().to_owned(),
            id2: record.device.id2.get(),
            started_at: format_timestamp(record.started_at),
            value: record.start_value,
            fired_at: format_timestamp(record.fired_at),
            resolved_at: record.resolved_at.map(format_timestamp),
            resolved_value: record.resolved_value,
            resolved_by: record.resolved_by.clone(),
            sent_at: format_timestamp(now),
        };
        self.commit.notices.push(Outgoing {
            notice,
            mqtt_done: false,
            webhook_done: webhook.is_none(),
            webhook,
            webhook_attempts: 0,
        });
    }

    /// Whether anything waits to be committed.
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || !self.commit.is_empty()
    }

    /// Takes what must be committed since the last call.
    pub fn take_commit(&mut self) -> AlertCommit {
        let mut commit = std::mem::take(&mut self.commit);
        for key in std::mem::take(&mut self.dirty) {
            let Some(memo) = self.memos.get_mut(&key) else {
                continue;
            };
            if memo.last_arrival.is_some() {
                memo.stored_arrival = memo.last_arrival;
            }
            commit.states.push(StoredState {
                rule_id: key.0,
                device: key.1,
                state: memo.state,
                newest: memo.newest,
                last_arrival: memo.last_arrival,
                alert_id: memo.alert_id,
            });
        }
        commit
    }

    /// Takes the retained topics to clear (devices of deleted rules).
    pub fn take_cleared_topics(&mut self) -> Vec<String> {
        std::mem::take(&mut self.cleared_topics)
    }

    /// How many device states and firing alerts are held (for metrics).
    pub fn size(&self) -> (usize, usize) {
        (self.memos.len(), self.firing.len())
    }
}

/// A silence memo's deadline: its last arrival plus `after`, plus the
/// persistence slack while it is only the stored arrival.
fn silence_deadline(memo: &Memo, after: Duration) -> Option<DateTime<Utc>> {
    let last = memo.last_arrival?;
    Some(if memo.restored {
        last + after + persist_slack(after)
    } else {
        last + after
    })
}

/// The first `start + k·period` (k ≥ 1) after `now`.
fn next_boundary(start: DateTime<Utc>, period: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    let period_ms = period.num_milliseconds().max(1);
    let elapsed = (now - start).num_milliseconds().max(0);
    start + Duration::milliseconds((elapsed / period_ms + 1) * period_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_domain::alert::RuleDraft;
    use datastream_domain::{Id1, Id2};

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn rule(id: i64, draft: RuleDraft) -> (AlertRule, bool) {
        let mut rule = draft.check().unwrap();
        rule.id = id;
        rule.revision = 1;
        (rule, false)
    }

    fn silence(id: i64, span: &str) -> (AlertRule, bool) {
        rule(
            id,
            RuleDraft {
                name: Some("quiet".into()),
                kind: Some("silence".into()),
                sensor_type: Some("vibration".into()),
                span: Some(span.into()),
                ..RuleDraft::default()
            },
        )
    }

    fn above(id: i64, limit: f64, repeat: Option<&str>) -> (AlertRule, bool) {
        rule(
            id,
            RuleDraft {
                name: Some("hot".into()),
                kind: Some("threshold".into()),
                sensor_type: Some("vibration".into()),
                above: Some(limit),
                span: Some("0s".into()),
                repeat_every: repeat.map(str::to_owned),
                ..RuleDraft::default()
            },
        )
    }

    fn reading(id2: i64, value: f64, at: DateTime<Utc>) -> Reading {
        Reading::builder()
            .sensor_type(SensorType::parse("vibration").unwrap())
            .id1(Id1::parse("PUMP").unwrap())
            .id2(Id2::new(id2).unwrap())
            .sensor_value(value)
            .timestamp(at)
            .build(&datastream_domain::TimestampBounds::default(), at)
            .unwrap()
    }

    fn events(commit: &AlertCommit) -> Vec<(AlertEvent, i32)> {
        commit
            .notices
            .iter()
            .map(|o| (o.notice.event, o.notice.id2))
            .collect()
    }

    #[test]
    fn a_silence_alert_fires_at_the_last_arrival_plus_for_and_not_before() {
        let mut e = Evaluator::default();
        e.sync_rules(vec![silence(1, "2s")], t(0));
        e.judge(&reading(1, 1.0, t(0)), t(10));
        e.judge(&reading(1, 1.0, t(1000)), t(1010));
        assert_eq!(
            e.take_commit().states.len(),
            1,
            "a new device is stored once"
        );
        e.run_timers(t(3009));
        assert!(
            events(&e.take_commit()).is_empty(),
            "not before 2 s after the last arrival"
        );
        assert_eq!(e.next_deadline(), Some(t(3010)));
        e.run_timers(t(3010));
        assert_eq!(events(&e.take_commit()), vec![(AlertEvent::Firing, 1)]);
        e.judge(&reading(1, 2.0, t(5000)), t(5000));
        let commit = e.take_commit();
        assert_eq!(events(&commit), vec![(AlertEvent::Resolved, 1)]);
        assert_eq!(commit.resolved[0].value, Some(2.0));
    }

    #[test]
    fn back_filled_history_neither_restarts_the_clock_nor_resolves() {
        let mut e = Evaluator::default();
        e.sync_rules(vec![silence(1, "2s")], t(0));
        e.judge(&reading(1, 1.0, t(1000)), t(1000));
        e.judge(&reading(1, 1.0, t(500)), t(2500));
        e.run_timers(t(3000));
        assert_eq!(events(&e.take_commit()), vec![(AlertEvent::Firing, 1)]);
        e.judge(&reading(1, 1.0, t(900)), t(4000));
        assert!(
            events(&e.take_commit()).is_empty(),
            "history older than the newest reading resolves nothing"
        );
    }

    #[test]
    fn a_resumed_silence_deadline_carries_the_persistence_slack_and_is_never_early() {
        let mut first = Evaluator::default();
        first.sync_rules(vec![silence(1, "10s")], t(0));
        first.judge(&reading(1, 1.0, t(0)), t(0));
        let stored = first.take_commit().states;
        // Arrivals within the slack (5 s) are not written.
        first.judge(&reading(1, 1.0, t(4000)), t(4000));
        assert!(first.take_commit().states.is_empty());

        let mut resumed = Evaluator::resume(stored, vec![], 0, 0);
        resumed.sync_rules(vec![silence(1, "10s")], t(4500));
        // Stored arrival 0 + 10 s + 5 s slack: after the true deadline (14 s).
        assert_eq!(resumed.next_deadline(), Some(t(15_000)));
    }

    #[test]
    fn threshold_readings_that_change_nothing_write_nothing() {
        let mut e = Evaluator::default();
        e.sync_rules(vec![above(1, 30.0, None)], t(0));
        for i in 0..10 {
            e.judge(&reading(1, 20.0, t(i * 1000)), t(i * 1000));
        }
        assert!(!e.has_changes());
        e.judge(&reading(1, 31.0, t(20_000)), t(20_000));
        let commit = e.take_commit();
        assert_eq!((commit.fired.len(), commit.states.len()), (1, 1));
    }

    #[test]
    fn a_firing_alert_repeats_at_its_period() {
        let mut e = Evaluator::default();
        e.sync_rules(vec![above(1, 30.0, Some("1m"))], t(0));
        e.judge(&reading(1, 31.0, t(0)), t(0));
        e.take_commit();
        e.run_timers(t(59_999));
        assert!(!e.has_changes());
        e.run_timers(t(60_000));
        assert_eq!(events(&e.take_commit()), vec![(AlertEvent::Repeat, 1)]);
        assert_eq!(e.next_deadline(), Some(t(120_000)));
    }

    #[test]
    fn a_changed_rule_resolves_its_alerts_and_a_deleted_one_clears_its_topics() {
        let mut e = Evaluator::default();
        e.sync_rules(vec![above(1, 30.0, None)], t(0));
        e.judge(&reading(1, 31.0, t(0)), t(0));
        e.take_commit();
        let (mut changed, _) = above(1, 40.0, None);
        changed.revision = 2;
        e.sync_rules(vec![(changed.clone(), false)], t(1000));
        let commit = e.take_commit();
        assert_eq!(commit.resolved[0].by, "rule_changed");
        assert_eq!(commit.forget_rules, vec![1]);
        e.judge(&reading(1, 41.0, t(2000)), t(2000));
        assert_eq!(
            e.take_commit().fired.len(),
            1,
            "the new revision starts afresh"
        );
        e.sync_rules(vec![(changed, true)], t(3000));
        let commit = e.take_commit();
        assert_eq!(commit.resolved[0].by, "rule_deleted");
        assert_eq!(
            e.take_cleared_topics(),
            vec!["datastream/alerts/1/vibration/PUMP/1".to_owned()]
        );
    }
}
