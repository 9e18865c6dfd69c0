//! `GeneratorSpec`: what one simulated sensor publishes and how often.

use datastream_schema::{Id1, Id2, ReadingError, SensorType};

/// Lowest accepted publishing frequency.
pub const MIN_FREQUENCY_HZ: f64 = 0.001;
/// Highest accepted publishing frequency.
pub const MAX_FREQUENCY_HZ: f64 = 10_000.0;

/// A bad generator setting, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A device field is invalid.
    #[error(transparent)]
    Reading(#[from] ReadingError),
    /// `frequency_hz` is out of range.
    #[error("frequency_hz must be from {MIN_FREQUENCY_HZ} to {MAX_FREQUENCY_HZ}, got {0}")]
    Frequency(f64),
    /// `name` is invalid.
    #[error("name must match [A-Za-z0-9_-]{{1,64}}, got {0:?}")]
    Name(String),
}

/// One simulated sensor: a fixed sensor type and device, publishing at a
/// fixed rate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorSpec {
    name: String,
    sensor_type: SensorType,
    id1: Id1,
    id2: Id2,
    frequency_hz: f64,
}

impl GeneratorSpec {
    /// Validates a generator's settings.
    pub fn new(
        name: &str,
        sensor_type: SensorType,
        id1: Id1,
        id2: Id2,
        frequency_hz: f64,
    ) -> Result<Self, SpecError> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(SpecError::Name(name.chars().take(80).collect()));
        }
        if !(MIN_FREQUENCY_HZ..=MAX_FREQUENCY_HZ).contains(&frequency_hz) {
            return Err(SpecError::Frequency(frequency_hz));
        }
        Ok(Self {
            name: name.to_owned(),
            sensor_type,
            id1,
            id2,
            frequency_hz,
        })
    }

    /// Parses every field from text (CLI flags), naming the bad one.
    pub fn parse(
        name: &str,
        sensor_type: &str,
        id1: &str,
        id2: i64,
        frequency_hz: f64,
    ) -> Result<Self, SpecError> {
        Self::new(
            name,
            SensorType::parse(sensor_type)?,
            Id1::parse(id1)?,
            Id2::new(id2)?,
            frequency_hz,
        )
    }

    /// The generator's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The sensor type it publishes.
    pub fn sensor_type(&self) -> &SensorType {
        &self.sensor_type
    }
    /// Its device's id1.
    pub fn id1(&self) -> &Id1 {
        &self.id1
    }
    /// Its device's id2.
    pub fn id2(&self) -> Id2 {
        self.id2
    }
    /// Readings per second.
    pub fn frequency_hz(&self) -> f64 {
        self.frequency_hz
    }
}

/// The generators `datastream up` starts: three sensor types on two devices.
pub fn default_fleet() -> Vec<GeneratorSpec> {
    [
        ("temperature-abc-1", "temperature", "ABC", 1),
        ("humidity-abc-1", "humidity", "ABC", 1),
        ("pressure-def-2", "pressure", "DEF", 2),
    ]
    .into_iter()
    .map(|(name, t, id1, id2)| {
        GeneratorSpec::parse(name, t, id1, id2, 2.0).expect("default generators are valid")
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_spec() {
        let s = GeneratorSpec::parse("t1", "temperature", "ABC", 1, 10.0).unwrap();
        assert_eq!(s.frequency_hz(), 10.0);
    }

    #[test]
    fn rejects_frequencies_out_of_range() {
        for f in [0.0, 0.0009, 10_000.1, f64::NAN, f64::INFINITY, -1.0] {
            assert!(matches!(
                GeneratorSpec::parse("t", "temperature", "ABC", 1, f),
                Err(SpecError::Frequency(_))
            ));
        }
    }

    #[test]
    fn rejects_bad_devices_naming_the_field() {
        match GeneratorSpec::parse("t", "temperature", "abc", 1, 1.0) {
            Err(SpecError::Reading(e)) => assert_eq!(e.field(), "id1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn default_fleet_has_three_sensor_types() {
        let mut types: Vec<_> = default_fleet()
            .iter()
            .map(|s| s.sensor_type().to_string())
            .collect();
        types.dedup();
        assert_eq!(types.len(), 3);
    }
}
