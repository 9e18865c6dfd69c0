//! `AlertRule`: what to watch (a [`Selection`] of devices), what is wrong
//! (a [`Condition`]), and how often to say it again.

use crate::reading::{check_sensor_value, Id1, Id2, SensorType};
use chrono::Duration;

/// Longest `for` or `repeat_every`: 30 days, in milliseconds.
pub const MAX_SPAN_MS: i64 = 30 * 86_400_000;
/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest webhook URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Shortest and longest webhook secret, in bytes.
pub const WEBHOOK_SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;
/// Shortest `repeat_every`: a second (a faster repeat is a flood).
pub const MIN_REPEAT_MS: i64 = 1000;

/// Why a rule was refused; [`RuleError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// The request field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl RuleError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The request field this error is about.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

/// Which devices a rule watches: every device of a type, optionally
/// narrowed to one `id1` and/or one `id2`. It may match no device yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The sensor type.
    pub sensor_type: SensorType,
    /// Only devices with this `id1`.
    pub id1: Option<Id1>,
    /// Only devices with this `id2`.
    pub id2: Option<Id2>,
}

impl Selection {
    /// Whether the device is selected.
    pub fn matches(&self, sensor_type: &SensorType, id1: &Id1, id2: Id2) -> bool {
        self.sensor_type == *sensor_type
            && self.id1.as_ref().is_none_or(|want| want == id1)
            && self.id2.is_none_or(|want| want == id2)
    }
}

/// Which side of the limit is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Values strictly above the limit.
    Above,
    /// Values strictly below the limit.
    Below,
}

impl Comparison {
    /// `above` or `below`.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => "above",
            Comparison::Below => "below",
        }
    }
}

/// What a rule fires on.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Values beyond a limit for at least `hold`, on reading time.
    Threshold(super::Threshold),
    /// No reading from a device that has reported before, for `after`, on
    /// arrival time.
    Silence {
        /// How long a device may stay quiet.
        after: Duration,
    },
}

impl Condition {
    /// `threshold` or `silence`.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Threshold(_) => "threshold",
            Condition::Silence { .. } => "silence",
        }
    }

    /// The rule's `for`.
    pub fn span(&self) -> Duration {
        match self {
            Condition::Threshold(t) => t.hold,
            Condition::Silence { after } => *after,
        }
    }
}

/// Where a rule's notifications are POSTed, signed with its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A checked rule. `id` and `revision` come from the store; a rule being
/// created has id 0.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// The rule's id.
    pub id: i64,
    /// Bumped on every change: the alerter starts a changed rule afresh.
    pub revision: i64,
    /// A name for people.
    pub name: String,
    /// The devices watched.
    pub selection: Selection,
    /// What fires.
    pub condition: Condition,
    /// Notify a firing alert again at this period while it lasts.
    pub repeat_every: Option<Duration>,
    /// Where notifications are POSTed.
    pub webhook: Option<Webhook>,
}

/// A rule as a request (or a stored row) gives it: every field raw, each
/// checked by [`RuleDraft::check`].
#[derive(Debug, Clone, Default)]
pub struct RuleDraft {
    /// 1 to 128 printable characters.
    pub name: Option<String>,
    /// `threshold` or `silence`.
    pub kind: Option<String>,
    /// The selection's sensor type.
    pub sensor_type: Option<String>,
    /// Optional id1.
    pub id1: Option<String>,
    /// Optional id2.
    pub id2: Option<i64>,
    /// Threshold: the limit values go strictly above.
    pub above: Option<f64>,
    /// Threshold: the limit values go strictly below.
    pub below: Option<f64>,
    /// Threshold: the value that resolves a firing alert (hysteresis).
    pub clear_at: Option<f64>,
    /// `for`: `0s`, `500ms`, `90s`, `15m`, `2h`, `1d`.
    pub span: Option<String>,
    /// Optional repeat period, at least `1s`.
    pub repeat_every: Option<String>,
    /// Optional webhook URL.
    pub webhook_url: Option<String>,
    /// Its secret, required with a URL.
    pub webhook_secret: Option<String>,
}

impl RuleDraft {
    /// Checks every field and builds the rule (id 0, revision 0).
    pub fn check(self) -> Result<AlertRule, RuleError> {
        let name = self
            .name
            .ok_or_else(|| RuleError::new("name", "is required"))?;
        let printable = !name.trim().is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && !name.chars().any(char::is_control);
        if !printable {
            return Err(RuleError::new(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} printable characters"),
            ));
        }
        let selection = Selection {
            sensor_type: SensorType::parse(
                self.sensor_type
                    .as_deref()
                    .ok_or_else(|| RuleError::new("sensor_type", "is required"))?,
            )
            .map_err(|e| RuleError::new("sensor_type", e.to_string()))?,
            id1: self
                .id1
                .as_deref()
                .map(Id1::parse)
                .transpose()
                .map_err(|e| RuleError::new("id1", e.to_string()))?,
            id2: self
                .id2
                .map(Id2::new)
                .transpose()
                .map_err(|e| RuleError::new("id2", e.to_string()))?,
        };
        let span_text = self
            .span
            .ok_or_else(|| RuleError::new("for", "is required, e.g. 30s (0s fires at once)"))?;
        let span = parse_span(&span_text).map_err(|m| RuleError::new("for", m))?;
        let condition = match self.kind.as_deref() {
            Some("threshold") => {
                Condition::Threshold(threshold(self.above, self.below, self.clear_at, span)?)
            }
            Some("silence") => {
                for (field, given) in [
                    ("above", self.above.is_some()),
                    ("below", self.below.is_some()),
                    ("clear_at", self.clear_at.is_some()),
                ] {
                    if given {
                        return Err(RuleError::new(field, "is for threshold rules only"));
                    }
                }
                if span <= Duration::zero() {
                    return Err(RuleError::new("for", "a silence rule needs at least 1s"));
                }
                Condition::Silence { after: span }
            }
            Some(other) => {
                return Err(RuleError::new(
                    "kind",
                    format!("must be threshold or silence (got {other:?})"),
                ))
            }
            None => return Err(RuleError::new("kind", "is required: threshold or silence")),
        };
        let repeat_every = self
            .repeat_every
            .as_deref()
            .map(|text| {
                let span = parse_span(text).map_err(|m| RuleError::new("repeat_every", m))?;
                if span.num_milliseconds() < MIN_REPEAT_MS {
                    return Err(RuleError::new("repeat_every", "must be at least 1s"));
                }
                Ok(span)
            })
            .transpose()?;
        let webhook = webhook(self.webhook_url, self.webhook_secret)?;
        Ok(AlertRule {
            id: 0,
            revision: 0,
            name,
            selection,
            condition,
            repeat_every,
            webhook,
        })
    }
}

fn threshold(
    above: Option<f64>,
    below: Option<f64>,
    clear_at: Option<f64>,
    hold: Duration,
) -> Result<super::Threshold, RuleError> {
    let value = |field: &'static str, v: f64| {
        check_sensor_value(v).map_err(|e| RuleError::new(field, e.to_string()))
    };
    let (comparison, limit) = match (above, below) {
        (Some(limit), None) => (Comparison::Above, value("above", limit)?),
        (None, Some(limit)) => (Comparison::Below, value("below", limit)?),
        (Some(_), Some(_)) => {
            return Err(RuleError::new(
                "below",
                "a threshold rule has one limit: above or below, not both",
            ))
        }
        (None, None) => {
            return Err(RuleError::new(
                "above",
                "a threshold rule needs a limit: above or below",
            ))
        }
    };
    let clear_at = clear_at.map(|v| value("clear_at", v)).transpose()?;
    match (comparison, clear_at) {
        (Comparison::Above, Some(c)) if c > limit => Err(RuleError::new(
            "clear_at",
            format!("must not be above the limit {limit} of an above rule"),
        )),
        (Comparison::Below, Some(c)) if c < limit => Err(RuleError::new(
            "clear_at",
            format!("must not be below the limit {limit} of a below rule"),
        )),
        _ => Ok(super::Threshold {
            comparison,
            limit,
            clear_at,
            hold,
        }),
    }
}

fn webhook(url: Option<String>, secret: Option<String>) -> Result<Option<Webhook>, RuleError> {
    match (url, secret) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(RuleError::new(
            "webhook_secret",
            "goes with webhook_url: give both or neither",
        )),
        (Some(_), None) => Err(RuleError::new(
            "webhook_secret",
            "is required with webhook_url (the HMAC-SHA256 key receivers check)",
        )),
        (Some(url), Some(secret)) => {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            let host_ok = url
                .split_once("://")
                .map(|(_, rest)| rest)
                .and_then(|rest| rest.split(['/', '?', '#']).next())
                .is_some_and(|host| !host.is_empty());
            if !scheme_ok
                || !host_ok
                || url.len() > MAX_URL_LEN
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(RuleError::new(
                    "webhook_url",
                    format!("must be an http:// or https:// URL with a host, at most {MAX_URL_LEN} bytes"),
                ));
            }
            if !WEBHOOK_SECRET_LEN.contains(&secret.len()) || secret.chars().any(char::is_control) {
                return Err(RuleError::new(
                    "webhook_secret",
                    "must be 16 to 256 bytes without control characters",
                ));
            }
            Ok(Some(Webhook { url, secret }))
        }
    }
}

/// Parses a rule's span: a whole number (no leading zeros) with `ms`, `s`,
/// `m`, `h` or `d`, from `0s` to 30 days (`^(0|[1-9][0-9]{0,9})(ms|s|m|h|d)$`).
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("must be a whole number with ms, s, m, h or d, from 0s to 30d (got {text:?})");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 10 || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let ms = n
        .checked_mul(ms_per_unit)
        .filter(|ms| *ms <= MAX_SPAN_MS)
        .ok_or_else(bad)?;
    Ok(Duration::milliseconds(ms))
}

/// Writes a span the way [`parse_span`] reads it, in its largest whole
/// unit (`90s`, `15m`, `0s`).
pub fn format_span(span: Duration) -> String {
    let ms = span.num_milliseconds();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> RuleDraft {
        RuleDraft {
            name: Some("hot".into()),
            kind: Some("threshold".into()),
            sensor_type: Some("temperature".into()),
            above: Some(30.0),
            span: Some("1m".into()),
            ..RuleDraft::default()
        }
    }

    fn refused(d: RuleDraft) -> &'static str {
        d.check().unwrap_err().field
    }

    #[test]
    fn a_threshold_rule_with_every_field_is_accepted() {
        let rule = RuleDraft {
            id1: Some("ROOM".into()),
            id2: Some(7),
            clear_at: Some(28.0),
            repeat_every: Some("10m".into()),
            webhook_url: Some("https://hooks.example/alert".into()),
            webhook_secret: Some("0123456789abcdef".into()),
            ..draft()
        }
        .check()
        .unwrap();
        let Condition::Threshold(t) = rule.condition else {
            panic!()
        };
        assert_eq!(
            (t.comparison, t.limit, t.clear_at),
            (Comparison::Above, 30.0, Some(28.0))
        );
        assert_eq!(t.hold, Duration::minutes(1));
        assert_eq!(rule.repeat_every, Some(Duration::minutes(10)));
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(
            refused(RuleDraft {
                name: Some(" ".into()),
                ..draft()
            }),
            "name"
        );
        assert_eq!(
            refused(RuleDraft {
                kind: Some("rate".into()),
                ..draft()
            }),
            "kind"
        );
        assert_eq!(
            refused(RuleDraft {
                sensor_type: Some("Temp!".into()),
                ..draft()
            }),
            "sensor_type"
        );
        assert_eq!(
            refused(RuleDraft {
                id1: Some("room".into()),
                ..draft()
            }),
            "id1"
        );
        assert_eq!(
            refused(RuleDraft {
                id2: Some(-1),
                ..draft()
            }),
            "id2"
        );
        assert_eq!(
            refused(RuleDraft {
                span: Some("5 minutes".into()),
                ..draft()
            }),
            "for"
        );
        assert_eq!(
            refused(RuleDraft {
                span: None,
                ..draft()
            }),
            "for"
        );
        assert_eq!(
            refused(RuleDraft {
                above: None,
                ..draft()
            }),
            "above"
        );
        assert_eq!(
            refused(RuleDraft {
                below: Some(1.0),
                ..draft()
            }),
            "below"
        );
        assert_eq!(
            refused(RuleDraft {
                above: Some(f64::NAN),
                ..draft()
            }),
            "above"
        );
        assert_eq!(
            refused(RuleDraft {
                clear_at: Some(31.0),
                ..draft()
            }),
            "clear_at"
        );
        assert_eq!(
            refused(RuleDraft {
                repeat_every: Some("10ms".into()),
                ..draft()
            }),
            "repeat_every"
        );
        assert_eq!(
            refused(RuleDraft {
                webhook_url: Some("ftp://x".into()),
                webhook_secret: Some("0123456789abcdef".into()),
                ..draft()
            }),
            "webhook_url"
        );
        assert_eq!(
            refused(RuleDraft {
                webhook_url: Some("http://x".into()),
                ..draft()
            }),
            "webhook_secret"
        );
        assert_eq!(
            refused(RuleDraft {
                webhook_url: Some("http://x".into()),
                webhook_secret: Some("short".into()),
                ..draft()
            }),
            "webhook_secret"
        );
    }

    #[test]
    fn a_silence_rule_takes_no_limit_and_needs_a_span() {
        let silence = RuleDraft {
            kind: Some("silence".into()),
            above: None,
            ..draft()
        };
        assert!(matches!(
            silence.clone().check().unwrap().condition,
            Condition::Silence { .. }
        ));
        assert_eq!(
            refused(RuleDraft {
                above: Some(1.0),
                ..silence.clone()
            }),
            "above"
        );
        assert_eq!(
            refused(RuleDraft {
                span: Some("0s".into()),
                ..silence
            }),
            "for"
        );
    }

    #[test]
    fn spans_read_and_write_alike() {
        for text in ["0s", "500ms", "90s", "15m", "2h", "30d"] {
            assert_eq!(format_span(parse_span(text).unwrap()), text);
        }
        for bad in ["", "s", "05s", "1", "1w", "31d", "-1s", "1.5s"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_selection_narrows_by_each_id_given() {
        let st = SensorType::parse("temperature").unwrap();
        let room = Id1::parse("ROOM").unwrap();
        let hall = Id1::parse("HALL").unwrap();
        let sel = Selection {
            sensor_type: st.clone(),
            id1: Some(room.clone()),
            id2: None,
        };
        assert!(sel.matches(&st, &room, Id2::new(3).unwrap()));
        assert!(!sel.matches(&st, &hall, Id2::new(3).unwrap()));
        assert!(!sel.matches(
            &SensorType::parse("co2").unwrap(),
            &room,
            Id2::new(3).unwrap()
        ));
    }
}
