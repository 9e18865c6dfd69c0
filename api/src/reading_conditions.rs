//! The conditions that select readings — which devices, which time window —
//! declared once for every endpoint that reads or changes readings: the
//! list, edits and deletes, the export, the live stream, aggregates and the
//! device catalog.
//!
//! [`ReadingConditions`] is the one declaration of each parameter: its
//! name, documentation, OpenAPI schema and [`ConditionKind`]. An endpoint
//! takes its query as [`ConditionsQuery<E>`], where `E` holds its own
//! parameters (paging, format, …) and says which kinds of condition it can
//! honour; a condition of any other kind is refused with a 400 naming it,
//! never ignored, and an unknown parameter is refused like any other (a
//! typo must not widen a delete).

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use datastream_domain::FilterParams;
use datastream_http::routing::query_error;
use datastream_http::ApiError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::future::{ready, Ready};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

/// What a condition is about: an endpoint honours some kinds and refuses
/// the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    /// Which devices: `id1`, `id2`, `sensor_type`.
    Device,
    /// Which time window: `from`, `to`, `duration`.
    Window,
}

impl ConditionKind {
    /// Every kind: what lists and exports honour, since they read rows.
    pub const ALL: &'static [ConditionKind] = &[ConditionKind::Device, ConditionKind::Window];
}

/// The condition parameters of a request, as received.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadingConditions {
    /// Device id part 1.
    #[param(pattern = r"^[A-Z]{1,32}$", example = "ABC")]
    id1: Option<String>,
    /// Device id part 2.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 2147483647, example = 1)]
    id2: Option<String>,
    /// Sensor type.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$", example = "temperature")]
    sensor_type: Option<String>,
    /// Inclusive start, RFC 3339 with any offset; not after `to`.
    /// Aggregates default to 24 hours before `to`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Exclusive end, RFC 3339 with any offset. Aggregates default to now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// A positive whole number of seconds, minutes, hours or days (`90s`,
    /// `15m`, `2h`, `7d`): with `from` it sets `to`, with `to` it sets
    /// `from`, alone it means the last span up to now; not with both.
    #[param(pattern = r"^[1-9][0-9]{0,5}[smhd]$", example = "15m")]
    duration: Option<String>,
}

impl ReadingConditions {
    /// Each parameter's kind.
    const KINDS: [(&'static str, ConditionKind); 6] = [
        ("id1", ConditionKind::Device),
        ("id2", ConditionKind::Device),
        ("sensor_type", ConditionKind::Device),
        ("from", ConditionKind::Window),
        ("to", ConditionKind::Window),
        ("duration", ConditionKind::Window),
    ];

    /// The kind of the condition parameter `name`, if it is one.
    fn kind_of(name: &str) -> Option<ConditionKind> {
        Self::KINDS
            .iter()
            .find(|(param, _)| *param == name)
            .map(|(_, kind)| *kind)
    }

    /// The conditions as the domain's filter parameters (no paging).
    pub fn filter_params(&self) -> FilterParams<'_> {
        FilterParams {
            id1: self.id1.as_deref(),
            id2: self.id2.as_deref(),
            sensor_type: self.sensor_type.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            duration: self.duration.as_deref(),
            ..FilterParams::default()
        }
    }

    /// The OpenAPI parameters of the conditions of `kinds`.
    pub fn params_of(kinds: &[ConditionKind]) -> Vec<Parameter> {
        Self::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .filter(|p| Self::kind_of(&p.name).is_some_and(|k| kinds.contains(&k)))
            .collect()
    }
}

/// An endpoint's own query parameters, beside the conditions.
pub trait EndpointParams: DeserializeOwned + Default {
    /// The kinds of condition the endpoint honours.
    const HONOURS: &'static [ConditionKind];
    /// Why the endpoint refuses a condition of another kind.
    const REFUSAL: &'static str;
}

/// An endpoint with no parameters of its own (edits and deletes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl EndpointParams for NoParams {
    // Deliberately by device and time only, whatever else lists honour: an
    // edit or delete selects whole stretches of a device's readings.
    const HONOURS: &'static [ConditionKind] = &[ConditionKind::Device, ConditionKind::Window];
    const REFUSAL: &'static str = "edits and deletes select readings by device and time only";
}

/// A request's conditions and the endpoint's own parameters `E`.
#[derive(Debug)]
pub struct ConditionsQuery<E> {
    /// Which readings.
    pub conditions: ReadingConditions,
    /// The endpoint's own parameters.
    pub own: E,
}

impl<E: EndpointParams> ConditionsQuery<E> {
    /// Splits `query` (a raw query string) into conditions and the
    /// endpoint's own parameters, refusing conditions `E` cannot honour.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let (mut conditions, mut own) = (Vec::new(), Vec::new());
        for segment in query.split('&').filter(|s| !s.is_empty()) {
            let pairs = web::Query::<Vec<(String, String)>>::from_query(segment)
                .map_err(|e| query_error(&e.to_string()))?;
            let name = pairs.first().map_or("", |(name, _)| name.as_str());
            match ReadingConditions::kind_of(name) {
                Some(kind) if !E::HONOURS.contains(&kind) => {
                    let field = ReadingConditions::KINDS
                        .iter()
                        .find(|(param, _)| *param == name)
                        .map_or("query", |(param, _)| *param);
                    return Err(ApiError::bad_request(field, E::REFUSAL));
                }
                Some(_) => conditions.push(segment),
                None => own.push(segment),
            }
        }
        Ok(Self {
            conditions: parse_segments(&conditions)?,
            own: parse_segments(&own)?,
        })
    }
}

/// `T` from the `name=value` segments of a query string.
fn parse_segments<T: DeserializeOwned>(segments: &[&str]) -> Result<T, ApiError> {
    web::Query::<T>::from_query(&segments.join("&"))
        .map(web::Query::into_inner)
        .map_err(|e| query_error(&e.to_string()))
}

impl<E: EndpointParams> FromRequest for ConditionsQuery<E> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::parse(req.query_string()))
    }
}

/// OpenAPI parameters: the conditions endpoint `E` honours, as
/// `params(ConditionsOf<E>, E)` documents them.
pub struct ConditionsOf<E>(std::marker::PhantomData<E>);

impl<E: EndpointParams> IntoParams for ConditionsOf<E> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        ReadingConditions::params_of(E::HONOURS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Devices only, with a parameter of its own.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DevicesOnly {
        limit: Option<String>,
    }

    impl EndpointParams for DevicesOnly {
        const HONOURS: &'static [ConditionKind] = &[ConditionKind::Device];
        const REFUSAL: &'static str = "has no time window";
    }

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::BadRequest { field, .. } => field.to_string(),
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn conditions_and_own_parameters_are_told_apart() {
        let q = ConditionsQuery::<DevicesOnly>::parse("id1=ABC&limit=5&sensor_type=co2").unwrap();
        assert_eq!(q.conditions.id1.as_deref(), Some("ABC"));
        assert_eq!(q.conditions.sensor_type.as_deref(), Some("co2"));
        assert_eq!(q.own.limit.as_deref(), Some("5"));
    }

    #[test]
    fn a_condition_the_endpoint_cannot_honour_is_refused_naming_it() {
        let error =
            ConditionsQuery::<DevicesOnly>::parse("id1=ABC&from=2026-01-01T00:00:00Z").unwrap_err();
        assert_eq!(field_of(error), "from");
    }

    #[test]
    fn an_unknown_parameter_is_refused_naming_it() {
        let error = ConditionsQuery::<NoParams>::parse("id1=ABC&limt=5").unwrap_err();
        assert_eq!(field_of(error), "limt");
    }

    #[test]
    fn a_repeated_condition_is_refused_naming_it() {
        let error = ConditionsQuery::<NoParams>::parse("id1=ABC&id1=DEF").unwrap_err();
        assert_eq!(field_of(error), "id1");
    }

    #[test]
    fn encoded_values_are_decoded() {
        let q =
            ConditionsQuery::<NoParams>::parse("from=2026-01-01T00%3A00%3A00%2B01%3A00").unwrap();
        assert_eq!(
            q.conditions.from.as_deref(),
            Some("2026-01-01T00:00:00+01:00")
        );
    }

    #[test]
    fn the_openapi_parameters_follow_the_kinds_honoured() {
        let names = |params: Vec<Parameter>| params.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            names(ConditionsOf::<DevicesOnly>::into_params(|| None)),
            ["id1", "id2", "sensor_type"]
        );
        assert_eq!(
            names(ConditionsOf::<NoParams>::into_params(|| None)).len(),
            6
        );
    }
}
