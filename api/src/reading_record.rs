//! The one outward shape of a reading: the field list in the
//! [`reading_record!`] call below is the only place a reading's outward
//! fields are named. From it come
//!
//! * [`ReadingDto`] and [`LiveReadingDto`], the types the OpenAPI document
//!   describes (a stored reading; a live one, without the store's fields);
//! * [`write_json`] and [`write_live_json`], which write exactly what serde
//!   writes for those types, field by field without serde's general path
//!   (a page of 100 readings spent most of its time there; `page_json.rs`
//!   holds the two to each other with a property test);
//! * [`CSV_HEADER`] and [`write_csv_row`], the export's columns.
//!
//! A field is listed once, in one of three groups: the store's fields
//! before the sensor's (`stored_first`), what a sensor sent (`sent`: in
//! stored and live readings alike), and the store's after them
//! (`stored_last`). Each names its DTO type and how to read it from a
//! [`StoredReading`] (and, when sent, from a live [`Reading`]) as a
//! [`Cell`].

use chrono::{DateTime, Utc};
use datastream_domain::timestamp::{timestamp_text, TimestampText};
use datastream_domain::{Reading, StoredReading};
use serde::{Deserialize, Serialize};
use serde_json::ser::{CompactFormatter, Formatter};
use std::io;
use utoipa::ToSchema;

/// One field's value, as the writers see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A whole number.
    Int(i64),
    /// A number (JSON `null` and an empty CSV field when not finite, as
    /// serde_json writes it).
    Float(f64),
    /// Text.
    Text(&'a str),
    /// A time, as its wire text.
    Time(DateTime<Utc>),
    /// No value: JSON `null`, an empty CSV field.
    Null,
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Cell::Null, Cell::Text)
    }
}

/// A DTO field's value from its [`Cell`].
trait FromCell {
    fn from_cell(cell: Cell<'_>) -> Self;
}

impl FromCell for i64 {
    fn from_cell(cell: Cell<'_>) -> Self {
        match cell {
            Cell::Int(v) => v,
            _ => 0,
        }
    }
}

impl FromCell for i32 {
    fn from_cell(cell: Cell<'_>) -> Self {
        i32::try_from(i64::from_cell(cell)).unwrap_or_default()
    }
}

impl FromCell for f64 {
    fn from_cell(cell: Cell<'_>) -> Self {
        match cell {
            Cell::Float(v) => v,
            _ => f64::NAN,
        }
    }
}

impl FromCell for String {
    fn from_cell(cell: Cell<'_>) -> Self {
        Option::<String>::from_cell(cell).unwrap_or_default()
    }
}

impl FromCell for Option<String> {
    fn from_cell(cell: Cell<'_>) -> Self {
        match cell {
            Cell::Text(v) => Some(v.to_owned()),
            _ => None,
        }
    }
}

impl FromCell for DateTime<Utc> {
    fn from_cell(cell: Cell<'_>) -> Self {
        match cell {
            Cell::Time(v) => v,
            _ => DateTime::<Utc>::MIN_UTC,
        }
    }
}

/// Generates the record's types and writers from its field list (see the
/// module docs).
macro_rules! reading_record {
    (
        stored_first { $( $(#[$fa:meta])* $f:ident: $ft:ty = |$fr:ident| $fget:expr; )* }
        sent { $( $(#[$sa:meta])* $s:ident: $st:ty = |$sr:ident| $sget:expr, |$sl:ident| $slive:expr; )* }
        stored_last { $( $(#[$la:meta])* $l:ident: $lt:ty = |$lr:ident| $lget:expr; )* }
    ) => {
        /// A reading as the API returns it.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        pub struct ReadingDto {
            $( $(#[$fa])* pub $f: $ft, )*
            $( $(#[$sa])* pub $s: $st, )*
            $( $(#[$la])* pub $l: $lt, )*
        }

        /// One live reading, a stream event's `data`: what the sensor sent.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        pub struct LiveReadingDto {
            $( $(#[$sa])* pub $s: $st, )*
        }

        impl From<&StoredReading> for ReadingDto {
            fn from(r: &StoredReading) -> Self {
                Self {
                    $( $f: FromCell::from_cell({ let $fr = r; $fget }), )*
                    $( $s: FromCell::from_cell({ let $sr = r; $sget }), )*
                    $( $l: FromCell::from_cell({ let $lr = r; $lget }), )*
                }
            }
        }

        impl From<&Reading> for LiveReadingDto {
            fn from(r: &Reading) -> Self {
                Self {
                    $( $s: FromCell::from_cell({ let $sl = r; $slive }), )*
                }
            }
        }

        /// The export's CSV header row: the fields of [`ReadingDto`], in order.
        pub const CSV_HEADER: &str = concat!(
            reading_record!(@names $($f)* $($s)* $($l)*),
            "\n"
        );

        /// The fields of a stored reading, named, in order.
        fn stored_cells(r: &StoredReading) -> [(&'static str, Cell<'_>); reading_record!(@count $($f)* $($s)* $($l)*)] {
            [
                $( (stringify!($f), { let $fr = r; $fget }), )*
                $( (stringify!($s), { let $sr = r; $sget }), )*
                $( (stringify!($l), { let $lr = r; $lget }), )*
            ]
        }

        /// The sent fields of a stored reading, named, in order.
        fn sent_cells(r: &StoredReading) -> [(&'static str, Cell<'_>); reading_record!(@count $($s)*)] {
            [ $( (stringify!($s), { let $sr = r; $sget }), )* ]
        }

        /// The fields of a live reading, named, in order.
        fn live_cells(r: &Reading) -> [(&'static str, Cell<'_>); reading_record!(@count $($s)*)] {
            [ $( (stringify!($s), { let $sl = r; $slive }), )* ]
        }
    };
    (@names $first:ident $($rest:ident)*) => {
        concat!(stringify!($first) $(, ",", stringify!($rest))*)
    };
    (@count $($name:ident)*) => {
        <[()]>::len(&[$(reading_record!(@unit $name)),*])
    };
    (@unit $name:ident) => { () };
}

reading_record! {
    stored_first {
        /// Database id.
        id: i64 = |r| Cell::Int(r.id);
    }
    sent {
        /// Measured value.
        sensor_value: f64 = |r| Cell::Float(r.sensor_value), |l| Cell::Float(l.sensor_value());
        /// Sensor type.
        sensor_type: String = |r| Cell::Text(&r.sensor_type), |l| Cell::Text(l.sensor_type().as_str());
        /// First device id part.
        id1: String = |r| Cell::Text(&r.id1), |l| Cell::Text(l.id1().as_str());
        /// Second device id part.
        id2: i32 = |r| Cell::Int(i64::from(r.id2)), |l| Cell::Int(i64::from(l.id2().get()));
        /// When it was measured (RFC 3339, UTC, microseconds).
        #[serde(with = "timestamp_text")]
        #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.123456Z")]
        timestamp: DateTime<Utc> = |r| Cell::Time(r.timestamp), |l| Cell::Time(l.timestamp());
    }
    stored_last {
        /// When it was stored.
        #[serde(with = "timestamp_text")]
        #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.201337Z")]
        created_at: DateTime<Utc> = |r| Cell::Time(r.created_at);
        /// When it was last changed.
        #[serde(with = "timestamp_text")]
        #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.201337Z")]
        updated_at: DateTime<Utc> = |r| Cell::Time(r.updated_at);
    }
}

/// Writes a stored reading as the JSON object serde writes for its
/// [`ReadingDto`].
pub fn write_json(out: &mut Vec<u8>, r: &StoredReading) -> io::Result<()> {
    write_object(out, stored_cells(r))
}

/// Writes a live reading as the JSON object serde writes for its
/// [`LiveReadingDto`].
pub fn write_live_json(out: &mut Vec<u8>, r: &Reading) -> io::Result<()> {
    write_object(out, live_cells(r))
}

/// Writes what a stored reading's sensor sent as the JSON object serde
/// writes for its [`LiveReadingDto`] (a resumed stream's stored readings).
pub fn write_sent_json(out: &mut Vec<u8>, r: &StoredReading) -> io::Result<()> {
    write_object(out, sent_cells(r))
}

/// Writes a stored reading as one CSV line, its columns in
/// [`CSV_HEADER`]'s order. A field with a comma, quote or line break is
/// quoted.
pub fn write_csv_row(out: &mut Vec<u8>, r: &StoredReading) -> io::Result<()> {
    for (i, (_, cell)) in stored_cells(r).into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match cell {
            Cell::Int(v) => CompactFormatter.write_i64(out, v)?,
            Cell::Float(v) if v.is_finite() => CompactFormatter.write_f64(out, v)?,
            Cell::Float(_) | Cell::Null => {}
            Cell::Text(v) => write_csv_field(out, v),
            Cell::Time(v) => out.extend_from_slice(TimestampText::new(v).as_bytes()),
        }
    }
    out.push(b'\n');
    Ok(())
}

/// `{"name":value,…}` of `cells`.
fn write_object<'a>(
    out: &mut Vec<u8>,
    cells: impl IntoIterator<Item = (&'static str, Cell<'a>)>,
) -> io::Result<()> {
    out.push(b'{');
    for (i, (name, cell)) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Field names are Rust identifiers: nothing to escape.
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_json_value(out, cell)?;
    }
    out.push(b'}');
    Ok(())
}

/// One JSON value, as serde_json writes the DTO's field.
fn write_json_value(out: &mut Vec<u8>, cell: Cell<'_>) -> io::Result<()> {
    match cell {
        Cell::Int(v) => CompactFormatter.write_i64(out, v),
        // As serde_json's serializer: non-finite numbers have no JSON form.
        Cell::Float(v) if v.is_finite() => CompactFormatter.write_f64(out, v),
        Cell::Float(_) | Cell::Null => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        Cell::Text(v) => write_json_str(out, v),
        Cell::Time(v) => {
            // Digits, '-', ':', 'T', '.', 'Z' and '+': nothing to escape.
            out.push(b'"');
            out.extend_from_slice(TimestampText::new(v).as_bytes());
            out.push(b'"');
            Ok(())
        }
    }
}

/// A JSON string: copied as is when nothing in it needs escaping (the
/// ingest path only admits such ids and types), else escaped by serde_json.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s).map_err(io::Error::from)
    }
}

/// A CSV field, quoted (with quotes doubled) only when it must be.
pub(crate) fn write_csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_test_support::reading;

    #[test]
    fn the_csv_header_names_every_field_of_the_dto_in_its_order() {
        let json = serde_json::to_string(&ReadingDto::from(&reading().stored())).unwrap();
        let at = |name: &str| json.find(&format!("\"{name}\":"));
        let columns: Vec<&str> = CSV_HEADER.trim_end().split(',').collect();
        let positions: Vec<Option<usize>> = columns.iter().map(|c| at(c)).collect();
        assert!(
            positions.iter().all(Option::is_some),
            "{columns:?} in {json}"
        );
        assert!(positions.is_sorted(), "{columns:?} in the order of {json}");
        assert_eq!(columns.len(), json.matches("\":").count(), "{json}");
    }

    #[test]
    fn a_csv_row_has_every_column_in_header_order() {
        let mut out = Vec::new();
        write_csv_row(&mut out, &reading().id(7).stored()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "7,21.5,temperature,ABC,1,2026-11-25T07:00:00.000000Z,2026-11-25T07:00:00.000000Z,2026-11-25T07:00:00.000000Z\n"
        );
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        let mut out = Vec::new();
        write_csv_field(&mut out, "a,\"b\"");
        assert_eq!(out, b"\"a,\"\"b\"\"\"");
    }

    #[test]
    fn a_stored_reading_resumed_on_a_stream_is_written_as_it_was_live() {
        let fixture = reading().value(3.25).id2(9);
        let (mut live, mut stored) = (Vec::new(), Vec::new());
        write_live_json(&mut live, &fixture.build()).unwrap();
        write_sent_json(&mut stored, &fixture.stored()).unwrap();
        assert_eq!(live, stored);
    }

    #[test]
    fn a_live_reading_is_written_as_serde_writes_its_dto() {
        let live = reading().value(-0.25).build();
        let mut out = Vec::new();
        write_live_json(&mut out, &live).unwrap();
        let serde = serde_json::to_vec(&LiveReadingDto::from(&live)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(serde).unwrap()
        );
    }
}
