//! Retention: how long raw readings and hourly rollups are kept.
//!
//! Raw readings older than [`RetentionPolicy::raw`] are removed in whole
//! hours, oldest first: an hour is first *retired* (the store's horizon
//! moves past it and the device catalog stops counting it; from then on
//! its rollups are the record of it), then its rows are deleted in bounded
//! chunks. Rollups are kept for [`RetentionPolicy::rollups`], forever when
//! unset, so history charts outlive the raw rows.

use crate::filter::parse_duration;
use chrono::{DateTime, Duration, Utc};

/// The shortest raw retention: rollups of an hour settle only once it has
/// ended, so an hour younger than this may not have them yet.
pub const SHORTEST_RETENTION_HOURS: i64 = 2;

/// Why a retention setting is refused; `Display` names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {message}")]
pub struct RetentionError {
    /// `RETENTION` or `ROLLUP_RETENTION`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// How long raw readings and rollups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    raw: Duration,
    rollups: Option<Duration>,
}

impl RetentionPolicy {
    /// Parses the settings: `raw` like `30d` (`RETENTION`), `rollups` like
    /// `400d` (`ROLLUP_RETENTION`; unset keeps rollups forever). Rollups
    /// cannot be kept for less time than raw readings: an hour with rows
    /// but no rollups would answer aggregates wrongly.
    pub fn parse(raw: &str, rollups: Option<&str>) -> Result<Self, RetentionError> {
        let raw = duration("RETENTION", raw)?;
        if raw < Duration::hours(SHORTEST_RETENTION_HOURS) {
            return Err(RetentionError {
                setting: "RETENTION",
                message: format!("must be at least {SHORTEST_RETENTION_HOURS}h"),
            });
        }
        let rollups = rollups
            .map(|text| duration("ROLLUP_RETENTION", text))
            .transpose()?;
        if rollups.is_some_and(|r| r < raw) {
            return Err(RetentionError {
                setting: "ROLLUP_RETENTION",
                message: "must not be shorter than RETENTION".into(),
            });
        }
        Ok(Self { raw, rollups })
    }

    /// How long raw readings are kept.
    pub fn raw(&self) -> Duration {
        self.raw
    }

    /// How long hourly rollups are kept; `None`: forever.
    pub fn rollups(&self) -> Option<Duration> {
        self.rollups
    }

    /// Readings taken before this, at `now`, are due for removal.
    pub fn raw_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.raw
    }

    /// Rollups of hours that started before this, at `now`, are due.
    pub fn rollup_cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.rollups.map(|r| now - r)
    }
}

fn duration(setting: &'static str, text: &str) -> Result<Duration, RetentionError> {
    parse_duration(text.trim()).map_err(|_| RetentionError {
        setting,
        message: format!(
            "must be a whole number from 1 to 999999 with s, m, h or d, e.g. 30d (got {text:?})"
        ),
    })
}

/// What one bounded step of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStep {
    /// Hours retired: the catalog no longer counts them, rollups stand in.
    pub hours_retired: u64,
    /// Raw rows deleted.
    pub rows_deleted: u64,
    /// Rollup rows deleted (`ROLLUP_RETENTION`).
    pub rollup_rows_deleted: u64,
    /// Raw readings before this are gone or going.
    pub horizon: Option<DateTime<Utc>>,
    /// Whether more work was due when the step stopped.
    pub more: bool,
    /// Whether another replica was at work, so this one did nothing.
    pub busy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_and_rollup_retention() {
        let p = RetentionPolicy::parse("30d", Some("400d")).unwrap();
        assert_eq!(p.raw(), Duration::days(30));
        assert_eq!(p.rollups(), Some(Duration::days(400)));
        assert_eq!(RetentionPolicy::parse("2h", None).unwrap().rollups(), None);
    }

    #[test]
    fn refuses_retention_shorter_than_two_hours() {
        let err = RetentionPolicy::parse("90m", None).unwrap_err();
        assert_eq!(err.setting, "RETENTION");
    }

    #[test]
    fn refuses_rollups_kept_shorter_than_raw_readings() {
        let err = RetentionPolicy::parse("30d", Some("7d")).unwrap_err();
        assert_eq!(err.setting, "ROLLUP_RETENTION");
        assert!(err.to_string().contains("shorter than RETENTION"));
    }

    #[test]
    fn refuses_malformed_durations_naming_the_setting() {
        for (raw, rollups, setting) in [
            ("thirty days", None, "RETENTION"),
            ("30d", Some("0d"), "ROLLUP_RETENTION"),
            ("", None, "RETENTION"),
        ] {
            let err = RetentionPolicy::parse(raw, rollups).unwrap_err();
            assert_eq!(err.setting, setting, "{raw:?} {rollups:?}");
        }
    }
}
