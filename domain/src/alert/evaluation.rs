//! How a rule judges one device's readings.
//!
//! **Threshold** rules run on reading time. A device's readings are taken
//! in arrival order (one device publishes on one topic, which the broker
//! keeps in order); a reading whose timestamp is not after the newest one
//! already judged is *late* and is skipped: it neither opens, fires, resets
//! nor resolves anything (and a redelivered reading, judged before a crash,
//! is skipped the same way). A reading that meets the condition opens a
//! window at its timestamp; the alert fires at the first reading whose
//! timestamp is at least `for` after the window opened, every reading in
//! between having met the condition; one that does not meet it closes the
//! window. So an alert never fires early, and fires on a reading: without
//! readings nothing is known about the condition. A firing alert resolves
//! at the first reading at or past `clear_at` (the limit, without one).
//!
//! **Silence** rules run on arrival time: a device goes quiet when nothing
//! arrives from it. Only readings newer than the newest seen from the
//! device count as signs of life ([`is_sign_of_life`]): back-filled
//! history neither restarts the clock nor resolves a silence alert.

use super::rule::Comparison;
use chrono::{DateTime, Duration, Utc};

/// A threshold condition: values beyond `limit` for at least `hold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Which side of the limit is wrong.
    pub comparison: Comparison,
    /// The limit (never itself wrong: `above 30` fires on 30.1, not 30).
    pub limit: f64,
    /// A firing alert resolves at this value or beyond it, back towards
    /// normal; unset: the limit.
    pub clear_at: Option<f64>,
    /// How long every reading must have met the condition (`for`).
    pub hold: Duration,
}

/// One device's state under one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceState {
    /// Nothing wrong (or nothing known).
    #[default]
    Ok,
    /// The condition holds since this reading time, not yet for `for`.
    Pending {
        /// The timestamp of the reading that opened the window.
        since: DateTime<Utc>,
    },
    /// An alert is firing.
    Firing,
}

/// What one reading did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Skipped: not newer than the newest reading judged.
    Late,
    /// Judged; the state may have changed, but nothing fired or resolved.
    Judged,
    /// The alert fired on this reading; the condition held since `since`.
    Fired {
        /// When the window opened (reading time).
        since: DateTime<Utc>,
    },
    /// The firing alert resolved on this reading.
    Resolved,
}

impl Threshold {
    /// Whether a value is beyond the limit.
    pub fn meets(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.limit,
            Comparison::Below => value < self.limit,
        }
    }

    /// Whether a value resolves a firing alert.
    pub fn clears(&self, value: f64) -> bool {
        let clear = self.clear_at.unwrap_or(self.limit);
        match self.comparison {
            Comparison::Above => value <= clear,
            Comparison::Below => value >= clear,
        }
    }

    /// Judges one reading of a device whose state is `state` and whose
    /// newest judged reading is `newest`; updates both.
    pub fn step(
        &self,
        state: &mut DeviceState,
        newest: &mut Option<DateTime<Utc>>,
        value: f64,
        at: DateTime<Utc>,
    ) -> Step {
        if newest.is_some_and(|newest| at <= newest) {
            return Step::Late;
        }
        *newest = Some(at);
        match *state {
            DeviceState::Firing if self.clears(value) => {
                *state = DeviceState::Ok;
                Step::Resolved
            }
            DeviceState::Firing => Step::Judged,
            _ if !self.meets(value) => {
                *state = DeviceState::Ok;
                Step::Judged
            }
            DeviceState::Ok | DeviceState::Pending { .. } => {
                let since = match *state {
                    DeviceState::Pending { since } => since,
                    _ => at,
                };
                if at - since >= self.hold {
                    *state = DeviceState::Firing;
                    Step::Fired { since }
                } else {
                    *state = DeviceState::Pending { since };
                    Step::Judged
                }
            }
        }
    }
}

/// Whether a reading at `at` is a sign of life for a silence rule that has
/// seen readings up to `newest`: only a reading newer than every one seen
/// (back-filled history is not).
pub fn is_sign_of_life(newest: Option<DateTime<Utc>>, at: DateTime<Utc>) -> bool {
    newest.is_none_or(|newest| at > newest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn above(limit: f64, hold_s: i64, clear_at: Option<f64>) -> Threshold {
        Threshold {
            comparison: Comparison::Above,
            limit,
            clear_at,
            hold: Duration::seconds(hold_s),
        }
    }

    /// Runs a sequence; returns the indices where the alert fired (+) or
    /// resolved (-).
    fn run(rule: &Threshold, readings: &[(i64, f64)]) -> Vec<(usize, bool)> {
        let (mut state, mut newest) = (DeviceState::Ok, None);
        let mut out = Vec::new();
        for (i, (at, value)) in readings.iter().enumerate() {
            match rule.step(&mut state, &mut newest, *value, t(*at)) {
                Step::Fired { .. } => out.push((i, true)),
                Step::Resolved => out.push((i, false)),
                _ => {}
            }
        }
        out
    }

    /// The plain reading of the rule: keep the readings newer than every
    /// earlier one; an alert fires at reading i when it is not firing and
    /// the run of readings meeting the condition that ends at i spans at
    /// least `for`; it resolves at the first later reading that clears.
    fn reference(rule: &Threshold, readings: &[(i64, f64)]) -> Vec<(usize, bool)> {
        let mut kept: Vec<usize> = Vec::new();
        for (i, (at, _)) in readings.iter().enumerate() {
            if kept.last().is_none_or(|&k| readings[k].0 < *at) {
                kept.push(i);
            }
        }
        let mut out = Vec::new();
        let mut firing = false;
        for (pos, &i) in kept.iter().enumerate() {
            let (at, value) = readings[i];
            if firing {
                if rule.clears(value) {
                    firing = false;
                    out.push((i, false));
                }
                continue;
            }
            // The run of meeting readings ending here, after the last
            // resolution (a resolving reading never meets: clear ≤ limit).
            let run_start = kept[..=pos]
                .iter()
                .rev()
                .take_while(|&&k| rule.meets(readings[k].1) && !out.iter().any(|&(o, _)| o == k))
                .last();
            if let Some(&start) = run_start {
                if rule.meets(value) && at - readings[start].0 >= rule.hold.num_seconds() {
                    firing = true;
                    out.push((i, true));
                }
            }
        }
        out
    }

    #[test]
    fn fires_once_the_condition_has_held_for_the_span_on_reading_time() {
        let rule = above(30.0, 60, None);
        let readings = [(0, 31.0), (30, 35.0), (59, 32.0), (60, 31.0), (61, 40.0)];
        assert_eq!(run(&rule, &readings), vec![(3, true)]);
    }

    #[test]
    fn one_reading_within_the_limit_resets_the_window() {
        let rule = above(30.0, 60, None);
        let readings = [(0, 31.0), (50, 30.0), (60, 31.0), (110, 31.0), (120, 31.0)];
        assert_eq!(run(&rule, &readings), vec![(4, true)]);
    }

    #[test]
    fn a_zero_span_fires_on_the_first_reading_beyond_the_limit() {
        assert_eq!(
            run(&above(30.0, 0, None), &[(0, 29.0), (1, 30.5)]),
            vec![(1, true)]
        );
    }

    #[test]
    fn hysteresis_holds_the_alert_until_clear_at() {
        let rule = above(30.0, 0, Some(25.0));
        let readings = [(0, 31.0), (1, 28.0), (2, 26.0), (3, 25.0), (4, 31.0)];
        assert_eq!(
            run(&rule, &readings),
            vec![(0, true), (3, false), (4, true)]
        );
    }

    #[test]
    fn late_and_repeated_readings_are_skipped() {
        let rule = above(30.0, 10, None);
        // The 5 s reading arrives after the 20 s one: it would have reset.
        let readings = [(0, 31.0), (20, 31.0), (5, 10.0), (20, 10.0)];
        assert_eq!(run(&rule, &readings), vec![(1, true)]);
    }

    #[test]
    fn back_filled_history_is_no_sign_of_life() {
        assert!(is_sign_of_life(None, t(0)));
        assert!(is_sign_of_life(Some(t(0)), t(1)));
        assert!(!is_sign_of_life(Some(t(1)), t(1)));
        assert!(!is_sign_of_life(Some(t(1)), t(0)));
    }

    proptest! {
        /// Random sequences with gaps, repeats and out-of-order timestamps:
        /// the evaluator and the plain reading agree on every firing and
        /// resolution, and no firing comes before the span has passed.
        #[test]
        fn the_evaluator_agrees_with_the_plain_reading_of_the_rule(
            hold in 0i64..40,
            clear_below in prop::option::of(0.0f64..10.0),
            steps in prop::collection::vec((-5i64..15, 20.0f64..40.0), 0..80),
        ) {
            let rule = above(30.0, hold, clear_below.map(|c| 30.0 - c));
            let mut at = 0;
            let readings: Vec<(i64, f64)> = steps
                .iter()
                .map(|(dt, v)| { at += dt; (at, (v * 2.0).round() / 2.0) })
                .collect();
            let got = run(&rule, &readings);
            prop_assert_eq!(&got, &reference(&rule, &readings));
            // Never early: every firing reading is `hold` after a meeting
            // reading with only meeting readings between.
            let (mut state, mut newest) = (DeviceState::Ok, None);
            for (at, value) in &readings {
                if let Step::Fired { since } = rule.step(&mut state, &mut newest, *value, t(*at)) {
                    prop_assert!(t(*at) - since >= rule.hold);
                }
            }
        }
    }
}
