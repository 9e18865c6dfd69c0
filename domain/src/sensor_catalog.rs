//! The sensor-type catalog: how the readings of a type are labelled (its
//! unit and display name) and what values to expect of it. Readings never
//! depend on it: a type seen in readings but not catalogued is listed with
//! no unit, and a catalogued type need not have readings yet.

use crate::reading::{check_sensor_value, SensorType};

/// Longest unit, in characters (`°C`, `mm/s`, `µg/m³`).
pub const MAX_UNIT_CHARS: usize = 16;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Why a catalog entry was refused; [`CatalogError::field`] names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The unit is empty, too long, or holds a control character.
    #[error("unit must be 1 to {MAX_UNIT_CHARS} printable characters")]
    Unit,
    /// The display name is empty, too long, or holds a control character.
    #[error("display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} printable characters")]
    DisplayName,
    /// One bound of the expected range without the other.
    #[error("expected_min and expected_max go together: give both or neither")]
    HalfRange(&'static str),
    /// A bound that no reading could have.
    #[error("{0} must be a finite number within ±1e15")]
    Bound(&'static str),
    /// `expected_min` is not below `expected_max`.
    #[error("expected_min ({min}) must be below expected_max ({max})")]
    EmptyRange {
        /// The lower bound given.
        min: f64,
        /// The upper bound given.
        max: f64,
    },
}

impl CatalogError {
    /// The request field this error is about.
    pub fn field(&self) -> &'static str {
        match self {
            CatalogError::Unit => "unit",
            CatalogError::DisplayName => "display_name",
            CatalogError::HalfRange(field) | CatalogError::Bound(field) => field,
            CatalogError::EmptyRange { .. } => "expected_max",
        }
    }
}

/// The values a type's readings are expected to fall within: a hint for
/// charts and people, never a check on what is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpectedRange {
    min: f64,
    max: f64,
}

impl ExpectedRange {
    /// A range from optional bounds: none when both are absent; refused
    /// when only one is given, one is not a possible reading, or they are
    /// not in order.
    pub fn from_bounds(min: Option<f64>, max: Option<f64>) -> Result<Option<Self>, CatalogError> {
        let (min, max) = match (min, max) {
            (None, None) => return Ok(None),
            (Some(min), Some(max)) => (min, max),
            (Some(_), None) => return Err(CatalogError::HalfRange("expected_max")),
            (None, Some(_)) => return Err(CatalogError::HalfRange("expected_min")),
        };
        check_sensor_value(min).map_err(|_| CatalogError::Bound("expected_min"))?;
        check_sensor_value(max).map_err(|_| CatalogError::Bound("expected_max"))?;
        if min < max {
            Ok(Some(Self { min, max }))
        } else {
            Err(CatalogError::EmptyRange { min, max })
        }
    }

    /// The lower bound.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// The upper bound.
    pub fn max(&self) -> f64 {
        self.max
    }
}

/// One sensor type as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorTypeInfo {
    /// The type, as in readings and topics.
    pub name: SensorType,
    /// Its unit (`°C`), if known.
    pub unit: Option<String>,
    /// A name for people (`Temperature`), if given.
    pub display_name: Option<String>,
    /// The values to expect, if given.
    pub expected: Option<ExpectedRange>,
}

impl SensorTypeInfo {
    /// An entry from request fields, each checked.
    pub fn new(
        name: SensorType,
        unit: Option<&str>,
        display_name: Option<&str>,
        expected: Option<ExpectedRange>,
    ) -> Result<Self, CatalogError> {
        let unit = unit
            .map(|u| label(u, MAX_UNIT_CHARS).ok_or(CatalogError::Unit))
            .transpose()?;
        let display_name = display_name
            .map(|d| label(d, MAX_DISPLAY_NAME_CHARS).ok_or(CatalogError::DisplayName))
            .transpose()?;
        Ok(Self {
            name,
            unit,
            display_name,
            expected,
        })
    }

    /// A type seen in readings with no catalog entry: no unit, no name.
    pub fn uncatalogued(name: SensorType) -> Self {
        Self {
            name,
            unit: None,
            display_name: None,
            expected: None,
        }
    }
}

/// `text` trimmed, if it is 1 to `most` characters with no control
/// character (a label ends up in chart axes and CSV headers).
fn label(text: &str, most: usize) -> Option<String> {
    let text = text.trim();
    let count = text.chars().count();
    let printable = !text.chars().any(char::is_control);
    (count >= 1 && count <= most && printable).then(|| text.to_owned())
}

/// The catalog as the API lists it: every catalogued type, plus every type
/// seen in readings (`seen`) that is not catalogued, by name.
pub fn catalog_with_seen(
    catalogued: Vec<SensorTypeInfo>,
    seen: impl IntoIterator<Item = SensorType>,
) -> Vec<SensorTypeInfo> {
    let mut all = catalogued;
    for name in seen {
        if !all.iter().any(|entry| entry.name == name) {
            all.push(SensorTypeInfo::uncatalogued(name));
        }
    }
    all.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temperature() -> SensorType {
        SensorType::parse("temperature").unwrap()
    }

    #[test]
    fn an_entry_keeps_trimmed_unit_and_name() {
        let entry =
            SensorTypeInfo::new(temperature(), Some(" °C "), Some("Temperature"), None).unwrap();
        assert_eq!(entry.unit.as_deref(), Some("°C"));
        assert_eq!(entry.display_name.as_deref(), Some("Temperature"));
    }

    #[test]
    fn a_unit_that_is_blank_overlong_or_has_a_control_character_is_refused() {
        for bad in ["", "   ", "abcdefghijklmnopq", "m\ns"] {
            let err = SensorTypeInfo::new(temperature(), Some(bad), None, None).unwrap_err();
            assert_eq!(err.field(), "unit", "{bad:?}");
        }
        // Sixteen characters, not bytes: µg/m³ is fine.
        assert!(SensorTypeInfo::new(temperature(), Some("µg/m³µg/m³µg/m³µ"), None, None).is_ok());
    }

    #[test]
    fn a_display_name_over_64_characters_is_refused() {
        let long = "x".repeat(65);
        let err = SensorTypeInfo::new(temperature(), None, Some(&long), None).unwrap_err();
        assert_eq!(err.field(), "display_name");
    }

    #[test]
    fn a_range_needs_both_bounds_in_order_and_possible() {
        assert_eq!(ExpectedRange::from_bounds(None, None), Ok(None));
        assert_eq!(
            ExpectedRange::from_bounds(Some(1.0), None)
                .unwrap_err()
                .field(),
            "expected_max"
        );
        assert_eq!(
            ExpectedRange::from_bounds(None, Some(1.0))
                .unwrap_err()
                .field(),
            "expected_min"
        );
        assert_eq!(
            ExpectedRange::from_bounds(Some(5.0), Some(5.0))
                .unwrap_err()
                .field(),
            "expected_max"
        );
        assert_eq!(
            ExpectedRange::from_bounds(Some(f64::NAN), Some(5.0))
                .unwrap_err()
                .field(),
            "expected_min"
        );
        assert_eq!(
            ExpectedRange::from_bounds(Some(0.0), Some(2e15))
                .unwrap_err()
                .field(),
            "expected_max"
        );
        let range = ExpectedRange::from_bounds(Some(-40.0), Some(85.0))
            .unwrap()
            .unwrap();
        assert_eq!((range.min(), range.max()), (-40.0, 85.0));
    }

    #[test]
    fn types_seen_but_not_catalogued_are_listed_without_a_unit_in_name_order() {
        let catalogued = vec![SensorTypeInfo::new(temperature(), Some("°C"), None, None).unwrap()];
        let seen = ["wind", "temperature", "co2"].map(|s| SensorType::parse(s).unwrap());
        let all = catalog_with_seen(catalogued, seen);
        let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["co2", "temperature", "wind"]);
        assert_eq!(all[1].unit.as_deref(), Some("°C"));
        assert_eq!(all[0].unit, None);
    }
}
