//! The JSON body of `GET /api/v1/readings`, written field by field.
//!
//! Byte for byte what `serde_json` writes for a [`ReadingsPage`] (a test
//! holds it to that, and the OpenAPI document still describes
//! [`ReadingsPage`]), at a fraction of the cost: serde escapes every key
//! and every timestamp through its general string path, which was the
//! largest single cost of a 100-reading page after decoding the rows. The
//! readings are written by the outward record's writer
//! (`reading_record.rs`).
//!
//! [`ReadingsPage`]: super::readings::ReadingsPage

use crate::reading_record::{write_json, write_json_str};
use datastream_domain::StoredReading;
use serde_json::ser::{CompactFormatter, Formatter};
use std::io;

/// Writes `{"data":[…],"page":{"limit":…,"next_cursor":…}}` into `out`.
pub fn write_readings_page(
    out: &mut Vec<u8>,
    rows: &[StoredReading],
    limit: u32,
    next_cursor: Option<&str>,
) -> io::Result<()> {
    out.extend_from_slice(b"{\"data\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, row)?;
    }
    out.extend_from_slice(b"],\"page\":{\"limit\":");
    CompactFormatter.write_u32(out, limit)?;
    out.extend_from_slice(b",\"next_cursor\":");
    match next_cursor {
        Some(cursor) => write_json_str(out, cursor)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_readings_page;
    use crate::reading_record::ReadingDto;
    use crate::routes::readings::{PageInfo, ReadingsPage};
    use chrono::{DateTime, TimeZone, Utc};
    use datastream_domain::StoredReading;
    use proptest::prelude::*;

    /// A row with awkward text in both text columns and distinct times.
    fn reading(id: i64, value: f64, text: &str, ts: DateTime<Utc>) -> StoredReading {
        let id1: String = text.chars().rev().collect();
        datastream_test_support::reading()
            .id(id)
            .value(value)
            .sensor_type(text)
            .id1(&id1)
            .id2(id % i64::from(i32::MAX))
            .at(ts)
            .created_at(ts + chrono::Duration::microseconds(1))
            .updated_at(ts + chrono::Duration::days(400))
            .stored()
    }

    /// What serde_json writes for the same page (the documented schema).
    fn serde_body(rows: &[StoredReading], limit: u32, next_cursor: Option<&str>) -> String {
        let page = ReadingsPage {
            data: rows.iter().map(ReadingDto::from).collect(),
            page: PageInfo {
                limit,
                next_cursor: next_cursor.map(str::to_owned),
            },
        };
        serde_json::to_string(&page).expect("serializes")
    }

    fn written_body(rows: &[StoredReading], limit: u32, next_cursor: Option<&str>) -> String {
        let mut out = Vec::new();
        write_readings_page(&mut out, rows, limit, next_cursor).expect("writes");
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn an_empty_last_page_matches_serde_json() {
        assert_eq!(written_body(&[], 100, None), serde_body(&[], 100, None));
    }

    #[test]
    fn awkward_values_match_serde_json() {
        let ts = Utc.with_ymd_and_hms(2026, 11, 29, 7, 0, 0).unwrap();
        let rows = vec![
            reading(1, 0.1, "temperature", ts),
            reading(i64::MAX, -0.0, "quote\" back\\slash", ts),
            reading(-7, 1e300, "tab\tnewline\nnul\u{0}", ts),
            reading(3, 5e-324, "ünïcødé 🌡 \u{7f}", ts),
            reading(4, f64::NAN, "", ts),
            reading(5, f64::NEG_INFINITY, "x", ts),
            reading(
                6,
                42.0,
                "far",
                Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            ),
            reading(
                7,
                -1.5,
                "first",
                Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            ),
        ];
        let cursor = Some("eyJ0IjoxfQ.c2ln");
        assert_eq!(
            written_body(&rows, 10_000, cursor),
            serde_body(&rows, 10_000, cursor)
        );
    }

    proptest! {
        #[test]
        fn any_page_matches_serde_json(
            rows in prop::collection::vec(
                (any::<i64>(), any::<f64>(), any::<String>(), -62_000_000_000i64..300_000_000_000i64, 0u32..1_000_000),
                0..8,
            ),
            limit in 1u32..=10_000,
            cursor in prop::option::of(any::<String>()),
        ) {
            let rows: Vec<StoredReading> = rows
                .into_iter()
                .map(|(id, value, text, secs, micros)| {
                    let ts = Utc.timestamp_opt(secs, micros * 1_000).single().expect("in range");
                    reading(id, value, &text, ts)
                })
                .collect();
            prop_assert_eq!(
                written_body(&rows, limit, cursor.as_deref()),
                serde_body(&rows, limit, cursor.as_deref())
            );
        }
    }
}
