//! `GeneratorSpec`: what one generator publishes, for which devices, how
//! often, and in which fleet it runs. Always valid once built.

use crate::model::{ModelError, ModelSettings};
use datastream_domain::{Id1, Id2, ReadingError, SensorType};

/// Lowest accepted publishing frequency per device.
pub const MIN_FREQUENCY_HZ: f64 = 0.001;
/// Highest accepted publishing frequency per device.
pub const MAX_FREQUENCY_HZ: f64 = 10_000.0;
/// Most devices one generator stands for.
pub const MAX_DEVICES: u32 = 1_000_000;
/// Highest total rate of one generator (devices × frequency), readings/s.
pub const MAX_READINGS_PER_SECOND: f64 = 200_000.0;
/// The fleet a generator runs in unless it names one.
pub const DEFAULT_FLEET: &str = "default";

/// A bad generator setting, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A device field is invalid.
    #[error(transparent)]
    Reading(#[from] ReadingError),
    /// A value-model field is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// `frequency_hz` is out of range.
    #[error("frequency_hz must be from {MIN_FREQUENCY_HZ} to {MAX_FREQUENCY_HZ}, got {0}")]
    Frequency(f64),
    /// Devices × frequency is more than one generator may publish.
    #[error(
        "frequency_hz × devices must be at most {MAX_READINGS_PER_SECOND} readings/s, got {0}"
    )]
    TotalRate(f64),
    /// `id2_end` is before `id2`, past the id2 range, or spans too many devices.
    #[error("id2_end must be from id2 ({first}) to id2 + {max} - 1 and at most 2147483647, got {last}", max = MAX_DEVICES)]
    Devices {
        /// `id2`.
        first: i64,
        /// `id2_end`.
        last: i64,
    },
    /// `name` or `fleet` is not a valid identifier.
    #[error("{field} must match [A-Za-z0-9_-]{{1,64}}, got {value:?}")]
    Identifier {
        /// `name` or `fleet`.
        field: &'static str,
        /// The value given (truncated).
        value: String,
    },
    /// A config document field has the wrong type, is unknown, or cannot
    /// be changed.
    #[error("{field}: {message}")]
    Field {
        /// The field at fault (`body` for the document as a whole).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl SpecError {
    /// The config field at fault.
    pub fn field(&self) -> &str {
        match self {
            SpecError::Reading(e) => e.field(),
            SpecError::Model(e) => e.field(),
            SpecError::Frequency(_) | SpecError::TotalRate(_) => "frequency_hz",
            SpecError::Devices { .. } => "id2_end",
            SpecError::Identifier { field, .. } => field,
            SpecError::Field { field, .. } => field,
        }
    }

    /// A field-level error.
    pub fn field_error(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a generator or fleet name: it becomes an MQTT topic level, so no
/// `/`, `+` or `#`.
pub fn check_identifier(field: &'static str, value: &str) -> Result<(), SpecError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::Identifier {
            field,
            value: value.chars().take(80).collect(),
        })
    }
}

/// One generator: a fixed sensor type, one `id1`, a run of `id2` devices,
/// a per-device rate and a value model.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorSpec {
    name: String,
    fleet: String,
    sensor_type: SensorType,
    id1: Id1,
    first_id2: Id2,
    devices: u32,
    frequency_hz: f64,
    model: ModelSettings,
    paused: bool,
}

impl GeneratorSpec {
    /// A running generator for one device, in the default fleet, with the
    /// sensor type's default value model.
    pub fn new(
        name: &str,
        sensor_type: SensorType,
        id1: Id1,
        id2: Id2,
        frequency_hz: f64,
    ) -> Result<Self, SpecError> {
        check_identifier("name", name)?;
        let model = ModelSettings::for_sensor_type(sensor_type.as_str());
        let spec = Self {
            name: name.to_owned(),
            fleet: DEFAULT_FLEET.to_owned(),
            sensor_type,
            id1,
            first_id2: id2,
            devices: 1,
            frequency_hz,
            model,
            paused: false,
        };
        spec.with_frequency(frequency_hz)
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

    /// Stands for the devices `id2 ..= last_id2` instead of one.
    pub fn with_last_id2(mut self, last_id2: i64) -> Result<Self, SpecError> {
        let first = i64::from(self.first_id2.get());
        let span = last_id2 - first + 1;
        if span < 1 || span > i64::from(MAX_DEVICES) || Id2::new(last_id2).is_err() {
            return Err(SpecError::Devices {
                first,
                last: last_id2,
            });
        }
        self.devices = span as u32;
        let frequency_hz = self.frequency_hz;
        self.with_frequency(frequency_hz)
    }

    /// Publishes at `frequency_hz` per device.
    pub fn with_frequency(mut self, frequency_hz: f64) -> Result<Self, SpecError> {
        if !(MIN_FREQUENCY_HZ..=MAX_FREQUENCY_HZ).contains(&frequency_hz) {
            return Err(SpecError::Frequency(frequency_hz));
        }
        let total = frequency_hz * f64::from(self.devices);
        if total > MAX_READINGS_PER_SECOND {
            return Err(SpecError::TotalRate(total));
        }
        self.frequency_hz = frequency_hz;
        Ok(self)
    }

    /// Runs in fleet `fleet`.
    pub fn with_fleet(mut self, fleet: &str) -> Result<Self, SpecError> {
        check_identifier("fleet", fleet)?;
        self.fleet = fleet.to_owned();
        Ok(self)
    }

    /// Uses `model` for values.
    pub fn with_model(mut self, model: ModelSettings) -> Self {
        self.model = model;
        self
    }

    /// Paused generators keep their place but publish nothing.
    pub fn with_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// The generator's name (unique across all fleets).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The fleet that runs it.
    pub fn fleet(&self) -> &str {
        &self.fleet
    }
    /// The sensor type it publishes.
    pub fn sensor_type(&self) -> &SensorType {
        &self.sensor_type
    }
    /// Its devices' id1.
    pub fn id1(&self) -> &Id1 {
        &self.id1
    }
    /// The first device's id2.
    pub fn id2(&self) -> Id2 {
        self.first_id2
    }
    /// The last device's id2 (equal to [`id2`](Self::id2) for one device).
    pub fn last_id2(&self) -> Id2 {
        Id2::new(i64::from(self.first_id2.get()) + i64::from(self.devices) - 1)
            .expect("the device range was checked when built")
    }
    /// How many devices it stands for.
    pub fn devices(&self) -> u32 {
        self.devices
    }
    /// Readings per second per device.
    pub fn frequency_hz(&self) -> f64 {
        self.frequency_hz
    }
    /// Readings per second over all its devices.
    pub fn total_rate(&self) -> f64 {
        self.frequency_hz * f64::from(self.devices)
    }
    /// Its value model.
    pub fn model(&self) -> &ModelSettings {
        &self.model
    }
    /// Whether it is paused.
    pub fn paused(&self) -> bool {
        self.paused
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
        assert_eq!((s.devices(), s.fleet()), (1, DEFAULT_FLEET));
    }

    #[test]
    fn rejects_frequencies_out_of_range() {
        for f in [0.0, 0.0009, 10_000.1, f64::NAN, f64::INFINITY, -1.0] {
            let e = GeneratorSpec::parse("t", "temperature", "ABC", 1, f).unwrap_err();
            assert_eq!(e.field(), "frequency_hz");
        }
    }

    #[test]
    fn rejects_bad_devices_naming_the_field() {
        let e = GeneratorSpec::parse("t", "temperature", "abc", 1, 1.0).unwrap_err();
        assert_eq!(e.field(), "id1");
    }

    #[test]
    fn a_device_range_counts_its_devices() {
        let s = GeneratorSpec::parse("t", "co2", "ABC", 10, 1.0)
            .unwrap()
            .with_last_id2(10_009)
            .unwrap();
        assert_eq!((s.devices(), s.last_id2().get()), (10_000, 10_009));
        assert_eq!(s.total_rate(), 10_000.0);
    }

    #[test]
    fn rejects_backwards_or_huge_device_ranges_naming_id2_end() {
        let s = GeneratorSpec::parse("t", "co2", "ABC", 10, 0.01).unwrap();
        for last in [9, 10 + i64::from(MAX_DEVICES), 1 << 31] {
            assert_eq!(
                s.clone().with_last_id2(last).unwrap_err().field(),
                "id2_end"
            );
        }
    }

    #[test]
    fn rejects_a_total_rate_over_the_limit_naming_frequency() {
        let s = GeneratorSpec::parse("t", "co2", "ABC", 1, 10_000.0).unwrap();
        assert_eq!(s.with_last_id2(100).unwrap_err().field(), "frequency_hz");
    }

    #[test]
    fn rejects_names_that_are_not_topic_levels() {
        for name in ["", "a/b", "a+", "#", "with space", &"x".repeat(65)] {
            let e = GeneratorSpec::parse(name, "co2", "ABC", 1, 1.0).unwrap_err();
            assert_eq!(e.field(), "name", "{name:?}");
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
