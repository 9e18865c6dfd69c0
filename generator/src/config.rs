//! The JSON form of a generator: what a retained config message carries,
//! what the REST API accepts and returns. Parsing names the field at fault
//! for every mistake (wrong type, unknown field, invalid value), so both
//! the REST 400 and the MQTT error status can say exactly what is wrong.

use crate::model::{ModelKind, ModelSettings};
use crate::spec::{check_identifier, GeneratorSpec, SpecError, DEFAULT_FLEET};
use datastream_domain::{Id1, Id2, SensorType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A generator's configuration document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GeneratorConfig {
    /// Unique name across all fleets; `[A-Za-z0-9_-]{1,64}`.
    #[schema(example = "temperature-abc")]
    pub name: String,
    /// The generator process (`datastream generator --fleet NAME`) that
    /// runs it.
    #[schema(example = "default")]
    pub fleet: String,
    /// The one sensor type it publishes.
    #[schema(example = "temperature")]
    pub sensor_type: String,
    /// Its devices' id1.
    #[schema(example = "ABC")]
    pub id1: String,
    /// The (first) device's id2.
    #[schema(example = 1)]
    pub id2: i64,
    /// The last device's id2, for a generator standing for the devices
    /// `id2..=id2_end`; absent for one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 1000)]
    pub id2_end: Option<i64>,
    /// Readings per second per device, 0.001 to 10000.
    #[schema(example = 1.0)]
    pub frequency_hz: f64,
    /// A paused generator publishes nothing.
    pub paused: bool,
    /// `sine` (daily cycle plus noise) or `random_walk`.
    #[schema(example = "sine")]
    pub model: String,
    /// Lowest value (default: the sensor type's typical range).
    pub min: f64,
    /// Highest value.
    pub max: f64,
    /// Jitter (sine) or largest step (random walk).
    pub noise: f64,
}

impl From<&GeneratorSpec> for GeneratorConfig {
    fn from(spec: &GeneratorSpec) -> Self {
        Self {
            name: spec.name().to_owned(),
            fleet: spec.fleet().to_owned(),
            sensor_type: spec.sensor_type().to_string(),
            id1: spec.id1().to_string(),
            id2: i64::from(spec.id2().get()),
            id2_end: (spec.devices() > 1).then(|| i64::from(spec.last_id2().get())),
            frequency_hz: spec.frequency_hz(),
            paused: spec.paused(),
            model: spec.model().kind().as_str().to_owned(),
            min: spec.model().min(),
            max: spec.model().max(),
            noise: spec.model().noise(),
        }
    }
}

/// The JSON text of `spec`'s config (what goes on the config topic).
pub fn config_json(spec: &GeneratorSpec) -> Vec<u8> {
    serde_json::to_vec(&GeneratorConfig::from(spec)).expect("a GeneratorConfig always serializes")
}

/// The fields a config document may have.
const CONFIG_FIELDS: &[&str] = &[
    "name",
    "fleet",
    "sensor_type",
    "id1",
    "id2",
    "id2_end",
    "frequency_hz",
    "paused",
    "model",
    "min",
    "max",
    "noise",
];
/// The fields a PATCH may change.
const PATCH_FIELDS: &[&str] = &[
    "frequency_hz",
    "paused",
    "model",
    "min",
    "max",
    "noise",
    "fleet",
];

/// A JSON object whose fields are read one by one, each error naming its
/// field.
struct Document(Map<String, Value>);

impl Document {
    fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Self, SpecError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| SpecError::field_error("body", format!("not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(SpecError::field_error("body", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(SpecError::field_error(
                truncate(unknown),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            ));
        }
        Ok(Self(map))
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<Option<&str>, SpecError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(SpecError::field_error(field, "must be a string")),
        }
    }

    fn number(&self, field: &str) -> Result<Option<f64>, SpecError> {
        self.numeric(field, serde_json::Number::as_f64, "must be a number")
    }

    fn integer(&self, field: &str) -> Result<Option<i64>, SpecError> {
        self.numeric(field, serde_json::Number::as_i64, "must be an integer")
    }

    /// A number field read as `as_kind` reads it; `message` names what it
    /// must be when it is not.
    fn numeric<T>(
        &self,
        field: &str,
        as_kind: fn(&serde_json::Number) -> Option<T>,
        message: &str,
    ) -> Result<Option<T>, SpecError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => as_kind(n)
                .map(Some)
                .ok_or_else(|| SpecError::field_error(field, message)),
            Some(_) => Err(SpecError::field_error(field, message)),
        }
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>, SpecError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(SpecError::field_error(field, "must be true or false")),
        }
    }

    fn model_kind(&self) -> Result<Option<ModelKind>, SpecError> {
        self.string("model")?
            .map(|m| {
                ModelKind::parse(m).ok_or_else(|| {
                    SpecError::field_error("model", "must be `sine` or `random_walk`")
                })
            })
            .transpose()
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, SpecError> {
    value.ok_or_else(|| SpecError::field_error(field, "is required"))
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Parses a config document. `name_from_topic` is the name a config
/// topic gives; the document may then omit `name`, and must agree if it
/// has one. Without a `fleet` the generator goes to `default_fleet`.
pub fn parse_config(
    name_from_topic: Option<&str>,
    bytes: &[u8],
    default_fleet: &str,
) -> Result<GeneratorSpec, SpecError> {
    let doc = Document::parse(bytes, CONFIG_FIELDS)?;
    let name = match (name_from_topic, doc.string("name")?) {
        (Some(topic), Some(body)) if topic != body => {
            return Err(SpecError::field_error(
                "name",
                format!(
                    "{:?} differs from the topic's name {topic:?}",
                    truncate(body)
                ),
            ))
        }
        (Some(topic), _) => topic,
        (None, body) => required(body, "name")?,
    };
    check_identifier("name", name)?;
    let sensor_type = SensorType::parse(required(doc.string("sensor_type")?, "sensor_type")?)?;
    let id1 = Id1::parse(required(doc.string("id1")?, "id1")?)?;
    let id2 = Id2::new(required(doc.integer("id2")?, "id2")?)?;
    let frequency_hz = required(doc.number("frequency_hz")?, "frequency_hz")?;
    let model = ModelSettings::for_sensor_type(sensor_type.as_str()).changed(
        doc.model_kind()?,
        doc.number("min")?,
        doc.number("max")?,
        doc.number("noise")?,
    )?;
    let mut spec = GeneratorSpec::new(name, sensor_type, id1, id2, frequency_hz)?
        .with_fleet(doc.string("fleet")?.unwrap_or(default_fleet))?
        .with_model(model)
        .with_paused(doc.boolean("paused")?.unwrap_or(false));
    if let Some(last) = doc.integer("id2_end")? {
        spec = spec.with_last_id2(last)?;
    }
    Ok(spec)
}

/// Applies a PATCH document (`frequency_hz`, `paused`, `model`, `min`,
/// `max`, `noise`, `fleet`) to `spec`.
pub fn apply_patch(spec: &GeneratorSpec, bytes: &[u8]) -> Result<GeneratorSpec, SpecError> {
    let doc = Document::parse(bytes, CONFIG_FIELDS).map_err(|e| match e {
        SpecError::Field { field, .. } if field != "body" => SpecError::field_error(
            field,
            format!(
                "unknown field; a PATCH may change {}",
                PATCH_FIELDS.join(", ")
            ),
        ),
        other => other,
    })?;
    if let Some(fixed) = CONFIG_FIELDS
        .iter()
        .find(|f| !PATCH_FIELDS.contains(f) && doc.get(f).is_some())
    {
        return Err(SpecError::field_error(
            *fixed,
            "cannot be changed; delete the generator and create it again",
        ));
    }
    let model = spec.model().changed(
        doc.model_kind()?,
        doc.number("min")?,
        doc.number("max")?,
        doc.number("noise")?,
    )?;
    let mut changed = spec.clone().with_model(model);
    if let Some(frequency_hz) = doc.number("frequency_hz")? {
        changed = changed.with_frequency(frequency_hz)?;
    }
    if let Some(paused) = doc.boolean("paused")? {
        changed = changed.with_paused(paused);
    }
    if let Some(fleet) = doc.string("fleet")? {
        changed = changed.with_fleet(fleet)?;
    }
    Ok(changed)
}

/// The fleet a config document asks for, read leniently from a document
/// that may be invalid otherwise: it decides which fleet reports the error.
/// A fleet name that is not valid claims no fleet, so the default fleet
/// (where the generator would run without one) reports the error instead
/// of no process at all.
pub fn claimed_fleet(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("fleet").and_then(Value::as_str).map(str::to_owned))
        .filter(|fleet| crate::spec::check_identifier("fleet", fleet).is_ok())
        .unwrap_or_else(|| DEFAULT_FLEET.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<GeneratorSpec, SpecError>) -> String {
        result.unwrap_err().field().to_owned()
    }

    #[test]
    fn a_minimal_document_gets_defaults() {
        let spec = parse_config(
            Some("t1"),
            br#"{"sensor_type":"humidity","id1":"ABC","id2":3,"frequency_hz":5}"#,
            DEFAULT_FLEET,
        )
        .unwrap();
        assert_eq!(
            (spec.name(), spec.fleet(), spec.devices()),
            ("t1", "default", 1)
        );
        assert!(!spec.paused());
        assert_eq!(spec.model(), &ModelSettings::for_sensor_type("humidity"));
    }

    #[test]
    fn a_config_round_trips_through_its_json() {
        let spec = parse_config(
            None,
            br#"{"name":"walk","fleet":"edge-1","sensor_type":"co2","id1":"XY","id2":10,"id2_end":19,
                "frequency_hz":0.5,"paused":true,"model":"random_walk","min":400,"max":900,"noise":3}"#,
            DEFAULT_FLEET,
        )
        .unwrap();
        assert_eq!(spec.devices(), 10);
        assert_eq!(
            parse_config(Some("walk"), &config_json(&spec), DEFAULT_FLEET).unwrap(),
            spec
        );
    }

    #[test]
    fn every_mistake_names_its_field() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "body"),
            (b"[1]", "body"),
            (br#"{"id1":"ABC","id2":1,"frequency_hz":1}"#, "sensor_type"),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":"fast"}"#,
                "frequency_hz",
            ),
            (
                br#"{"sensor_type":"t","id1":"abc","id2":1,"frequency_hz":1}"#,
                "id1",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":-1,"frequency_hz":1}"#,
                "id2",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1.5,"frequency_hz":1}"#,
                "id2",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":0}"#,
                "frequency_hz",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":5,"id2_end":4,"frequency_hz":1}"#,
                "id2_end",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1,"model":"x"}"#,
                "model",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1,"min":9,"max":1}"#,
                "min",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1,"noise":-2}"#,
                "noise",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1,"paused":"no"}"#,
                "paused",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1,"fleet":"a/b"}"#,
                "fleet",
            ),
            (
                br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1,"colour":1}"#,
                "colour",
            ),
            (
                br#"{"name":"other","sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1}"#,
                "name",
            ),
        ];
        for (doc, field) in cases {
            assert_eq!(
                field_of(parse_config(Some("t1"), doc, DEFAULT_FLEET)),
                *field,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn a_rest_document_needs_a_name() {
        let doc = br#"{"sensor_type":"t","id1":"ABC","id2":1,"frequency_hz":1}"#;
        assert_eq!(field_of(parse_config(None, doc, DEFAULT_FLEET)), "name");
    }

    #[test]
    fn a_patch_changes_rate_pause_and_model_only() {
        let spec = GeneratorSpec::parse("g", "temperature", "ABC", 1, 1.0).unwrap();
        let patched =
            apply_patch(&spec, br#"{"frequency_hz":20,"paused":true,"noise":0.5}"#).unwrap();
        assert_eq!(patched.frequency_hz(), 20.0);
        assert!(patched.paused());
        assert_eq!(patched.model().noise(), 0.5);
        assert_eq!(patched.model().min(), spec.model().min());
        for (doc, field) in [
            (&br#"{"sensor_type":"co2"}"#[..], "sensor_type"),
            (br#"{"id2":4}"#, "id2"),
            (br#"{"frequency_hz":-1}"#, "frequency_hz"),
            (br#"{"speed":1}"#, "speed"),
        ] {
            assert_eq!(field_of(apply_patch(&spec, doc)), field);
        }
    }

    #[test]
    fn the_claimed_fleet_is_read_from_invalid_documents_too() {
        assert_eq!(
            claimed_fleet(br#"{"fleet":"edge","frequency_hz":"x"}"#),
            "edge"
        );
        assert_eq!(claimed_fleet(b"garbage"), DEFAULT_FLEET);
        assert_eq!(claimed_fleet(br#"{"fleet":"a/b"}"#), DEFAULT_FLEET);
        assert_eq!(claimed_fleet(br#"{"fleet":""}"#), DEFAULT_FLEET);
    }
}
