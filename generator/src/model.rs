//! Value models: plausible numbers for each kind of sensor.

use chrono::{DateTime, Timelike, Utc};
use rand::Rng;
use std::f64::consts::TAU;

/// A daily sine around a base value, plus a bounded random walk and noise,
/// clamped to the physical range of the sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueModel {
    base: f64,
    daily_amplitude: f64,
    walk_step: f64,
    noise: f64,
    min: f64,
    max: f64,
    walk: f64,
}

impl ValueModel {
    /// Sensible defaults for well-known sensor types (°C, %, hPa, ppm, mm/s,
    /// lux); anything else gets a neutral 0..100 model.
    pub fn for_sensor_type(sensor_type: &str) -> Self {
        let (base, daily_amplitude, walk_step, noise, min, max) = match sensor_type {
            "temperature" => (21.0, 3.0, 0.05, 0.1, -40.0, 85.0),
            "humidity" => (45.0, 10.0, 0.2, 0.5, 0.0, 100.0),
            "pressure" => (1013.25, 2.0, 0.1, 0.2, 870.0, 1085.0),
            "co2" => (600.0, 200.0, 5.0, 10.0, 400.0, 5000.0),
            "vibration" => (2.0, 0.5, 0.05, 0.3, 0.0, 50.0),
            "light" => (300.0, 280.0, 5.0, 10.0, 0.0, 100_000.0),
            _ => (50.0, 10.0, 0.5, 1.0, 0.0, 100.0),
        };
        Self {
            base,
            daily_amplitude,
            walk_step,
            noise,
            min,
            max,
            walk: 0.0,
        }
    }

    /// The next value at instant `at`.
    pub fn next_value(&mut self, at: DateTime<Utc>, rng: &mut impl Rng) -> f64 {
        let day_fraction = f64::from(at.num_seconds_from_midnight()) / 86_400.0;
        // Peak mid-afternoon, trough before dawn.
        let daily = self.daily_amplitude * (TAU * (day_fraction - 0.375)).sin();
        let span = self.max - self.min;
        self.walk = (self.walk + rng.random_range(-1.0..=1.0) * self.walk_step)
            .clamp(-span / 10.0, span / 10.0);
        let noise = rng.random_range(-1.0..=1.0) * self.noise;
        let value = (self.base + daily + self.walk + noise).clamp(self.min, self.max);
        // Sensors report a few decimals, not 17 significant digits.
        (value * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn values_stay_in_the_physical_range() {
        let mut rng = StdRng::seed_from_u64(7);
        for t in [
            "temperature",
            "humidity",
            "pressure",
            "co2",
            "vibration",
            "unknown",
        ] {
            let mut m = ValueModel::for_sensor_type(t);
            let (min, max) = (m.min, m.max);
            let mut at = Utc::now();
            for _ in 0..10_000 {
                at += chrono::Duration::seconds(17);
                let v = m.next_value(at, &mut rng);
                assert!(v.is_finite() && v >= min && v <= max, "{t}: {v}");
            }
        }
    }

    #[test]
    fn temperature_looks_like_room_temperature() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut m = ValueModel::for_sensor_type("temperature");
        let v = m.next_value(Utc::now(), &mut rng);
        assert!((10.0..35.0).contains(&v), "{v}");
    }
}
