//! Value models: plausible numbers for each kind of sensor.
//!
//! [`ModelSettings`] is the validated, serialisable description (kind,
//! range, noise) a generator is configured with; [`ValueModel`] is the
//! running state that turns it into numbers.

use chrono::{DateTime, Timelike, Utc};
use datastream_domain::check_sensor_value;
use rand::Rng;
use std::f64::consts::TAU;

/// How values move over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// A daily sine (peak mid-afternoon) plus noise: temperature, light.
    #[default]
    Sine,
    /// A bounded random walk: each value is the last plus a step of at most
    /// `noise`.
    RandomWalk,
}

impl ModelKind {
    /// The name used in configs: `sine` or `random_walk`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Sine => "sine",
            ModelKind::RandomWalk => "random_walk",
        }
    }

    /// Parses `sine` or `random_walk`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sine" => Some(ModelKind::Sine),
            "random_walk" => Some(ModelKind::RandomWalk),
            _ => None,
        }
    }
}

/// A bad value-model setting, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// `min`/`max` are not within ±1e15 (what a reading may carry) or
    /// not `min < max`.
    #[error("min and max must be from -1e15 to 1e15 with min < max, got min {min}, max {max}")]
    Range {
        /// The lower bound given.
        min: f64,
        /// The upper bound given.
        max: f64,
    },
    /// `noise` is negative, not finite or wider than the range.
    #[error("noise must be finite, at least 0 and at most max - min ({span}), got {noise}")]
    Noise {
        /// The noise given.
        noise: f64,
        /// `max - min`.
        span: f64,
    },
}

impl ModelError {
    /// The config field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ModelError::Range { .. } => "min",
            ModelError::Noise { .. } => "noise",
        }
    }
}

/// The validated description of a value model: what a config carries.
/// Values centre on the middle of `min..=max`; a sine swings a quarter of
/// the range either way over the day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSettings {
    kind: ModelKind,
    min: f64,
    max: f64,
    noise: f64,
}

impl ModelSettings {
    /// Sensible defaults for well-known sensor types, as their typical
    /// indoor range: °C, % relative humidity, hPa, ppm, mm/s, lux;
    /// anything else gets a neutral 0..100.
    pub fn for_sensor_type(sensor_type: &str) -> Self {
        let (min, max, noise) = match sensor_type {
            "temperature" => (15.0, 27.0, 0.1),
            "humidity" => (25.0, 65.0, 0.5),
            "pressure" => (1009.25, 1017.25, 0.2),
            "co2" => (400.0, 1200.0, 10.0),
            "vibration" => (0.0, 4.0, 0.3),
            "light" => (0.0, 1200.0, 10.0),
            _ => (0.0, 100.0, 1.0),
        };
        Self {
            kind: ModelKind::Sine,
            min,
            max,
            noise,
        }
    }

    /// These settings with some changed. A new range without a new noise
    /// keeps the noise proportionate (at most a tenth of the range).
    pub fn changed(
        &self,
        kind: Option<ModelKind>,
        min: Option<f64>,
        max: Option<f64>,
        noise: Option<f64>,
    ) -> Result<Self, ModelError> {
        let mut settings = *self;
        settings.kind = kind.unwrap_or(settings.kind);
        if min.is_some() || max.is_some() {
            let (low, high) = (min.unwrap_or(settings.min), max.unwrap_or(settings.max));
            // Every value made must be a valid reading's (which also keeps
            // the span finite: -1e308..1e308 would have an infinite one).
            let valid = |v: f64| check_sensor_value(v).is_ok();
            if !(valid(low) && valid(high) && low < high) {
                return Err(ModelError::Range {
                    min: low,
                    max: high,
                });
            }
            settings.min = low;
            settings.max = high;
            settings.noise = settings.noise.min((high - low) / 10.0);
        }
        if let Some(noise) = noise {
            settings.noise = noise;
        }
        let span = settings.max - settings.min;
        if !(settings.noise.is_finite() && settings.noise >= 0.0 && settings.noise <= span) {
            return Err(ModelError::Noise {
                noise: settings.noise,
                span,
            });
        }
        Ok(settings)
    }

    /// How values move.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }
    /// Lowest value produced.
    pub fn min(&self) -> f64 {
        self.min
    }
    /// Highest value produced.
    pub fn max(&self) -> f64 {
        self.max
    }
    /// Jitter (sine) or largest step (random walk).
    pub fn noise(&self) -> f64 {
        self.noise
    }
    fn centre(&self) -> f64 {
        self.min + (self.max - self.min) / 2.0
    }
}

impl ModelSettings {
    /// Where a device's value starts: the middle of the range.
    pub fn start(&self) -> f64 {
        self.centre()
    }

    /// The next value at instant `at` for a device whose last value was
    /// `position` (updated; it is what a random walk walks from).
    pub fn next_value(&self, at: DateTime<Utc>, position: &mut f64, rng: &mut impl Rng) -> f64 {
        let jitter = rng.random_range(-1.0..=1.0) * self.noise;
        let value = match self.kind {
            ModelKind::Sine => {
                let day_fraction = f64::from(at.num_seconds_from_midnight()) / 86_400.0;
                let amplitude = (self.max - self.min) / 4.0;
                // Peak mid-afternoon, trough before dawn.
                self.centre() + amplitude * (TAU * (day_fraction - 0.375)).sin() + jitter
            }
            ModelKind::RandomWalk => *position + jitter,
        };
        // Sensors report a few decimals, not 17 significant digits. Past
        // 1e12 an f64 has no third decimal to round, and scaling a value
        // near f64::MAX by 1000 would overflow to infinity.
        let value = value.clamp(self.min, self.max);
        let value = if value.abs() < 1e12 {
            (value * 1000.0).round() / 1000.0
        } else {
            value
        };
        *position = value;
        value
    }
}

/// One device's running value model: settings plus its last value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueModel {
    settings: ModelSettings,
    position: f64,
}

impl ValueModel {
    /// Defaults for `sensor_type` (see [`ModelSettings::for_sensor_type`]).
    pub fn for_sensor_type(sensor_type: &str) -> Self {
        Self::new(ModelSettings::for_sensor_type(sensor_type))
    }

    /// Starts a model in the middle of its range.
    pub fn new(settings: ModelSettings) -> Self {
        Self {
            position: settings.start(),
            settings,
        }
    }

    /// The next value at instant `at`.
    pub fn next_value(&mut self, at: DateTime<Utc>, rng: &mut impl Rng) -> f64 {
        self.settings.next_value(at, &mut self.position, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn values(settings: ModelSettings, n: usize) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut model = ValueModel::new(settings);
        let mut at = Utc::now();
        (0..n)
            .map(|_| {
                at += chrono::Duration::seconds(17);
                model.next_value(at, &mut rng)
            })
            .collect()
    }

    #[test]
    fn values_stay_in_the_physical_range() {
        for t in [
            "temperature",
            "humidity",
            "pressure",
            "co2",
            "vibration",
            "unknown",
        ] {
            let s = ModelSettings::for_sensor_type(t);
            for kind in [ModelKind::Sine, ModelKind::RandomWalk] {
                let s = ModelSettings { kind, ..s };
                for v in values(s, 10_000) {
                    assert!(v.is_finite() && v >= s.min() && v <= s.max(), "{t}: {v}");
                }
            }
        }
    }

    #[test]
    fn changing_only_the_noise_keeps_the_range() {
        let t = ModelSettings::for_sensor_type("temperature");
        let s = t.changed(None, None, None, Some(0.5)).unwrap();
        assert_eq!((s.min(), s.max(), s.noise()), (t.min(), t.max(), 0.5));
    }

    #[test]
    fn temperature_looks_like_room_temperature() {
        let v = values(ModelSettings::for_sensor_type("temperature"), 1)[0];
        assert!((10.0..35.0).contains(&v), "{v}");
    }

    #[test]
    fn a_custom_range_is_respected_and_used() {
        let s = ModelSettings::for_sensor_type("temperature")
            .changed(
                Some(ModelKind::RandomWalk),
                Some(100.0),
                Some(110.0),
                Some(1.0),
            )
            .unwrap();
        let vs = values(s, 5_000);
        assert!(vs.iter().all(|v| (100.0..=110.0).contains(v)));
        let spread = vs.iter().cloned().fold(f64::MIN, f64::max)
            - vs.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 2.0, "a walk moves: spread {spread}");
    }

    #[test]
    fn a_random_walk_moves_in_small_steps() {
        let s = ModelSettings::for_sensor_type("humidity")
            .changed(Some(ModelKind::RandomWalk), None, None, Some(0.5))
            .unwrap();
        let vs = values(s, 1_000);
        assert!(vs.windows(2).all(|w| (w[1] - w[0]).abs() <= 0.5 + 1e-3));
    }

    #[test]
    fn inverted_or_infinite_ranges_are_refused_naming_min() {
        for (min, max) in [
            (5.0, 1.0),
            (1.0, 1.0),
            (f64::NEG_INFINITY, 1.0),
            (0.0, f64::NAN),
        ] {
            let e = ModelSettings::for_sensor_type("co2")
                .changed(None, Some(min), Some(max), None)
                .unwrap_err();
            assert_eq!(e.field(), "min");
        }
    }

    #[test]
    fn a_range_whose_span_overflows_is_refused_naming_min() {
        // Issue 14: accepted, then every reading was infinite.
        let e = ModelSettings::for_sensor_type("co2")
            .changed(None, Some(-1e308), Some(1e308), Some(1e308))
            .unwrap_err();
        assert_eq!(e.field(), "min");
    }

    #[test]
    fn a_range_beyond_what_a_reading_may_carry_is_refused_naming_min() {
        for (min, max) in [(0.0, 1.7e308), (-1.1e15, 0.0), (1e15, 2e15)] {
            let e = ModelSettings::for_sensor_type("co2")
                .changed(None, Some(min), Some(max), None)
                .unwrap_err();
            assert_eq!(e.field(), "min", "{min}..{max}");
        }
    }

    #[test]
    fn values_stay_within_the_range_at_the_edges_of_what_readings_may_carry() {
        for (min, max) in [(-1e15, 1e15), (1e15 - 1.0, 1e15), (-1e15, -1e15 + 0.5)] {
            for kind in [ModelKind::Sine, ModelKind::RandomWalk] {
                let s = ModelSettings::for_sensor_type("co2")
                    .changed(Some(kind), Some(min), Some(max), None)
                    .unwrap();
                let s = s
                    .changed(None, None, None, Some(s.max() - s.min()))
                    .unwrap();
                for v in values(s, 2_000) {
                    assert!(v.is_finite() && v >= min && v <= max, "{min}..{max}: {v}");
                }
            }
        }
    }

    #[test]
    fn negative_or_oversized_noise_is_refused_naming_noise() {
        for noise in [-1.0, f64::NAN, 1e9] {
            let e = ModelSettings::for_sensor_type("co2")
                .changed(None, None, None, Some(noise))
                .unwrap_err();
            assert_eq!(e.field(), "noise");
        }
    }
}
