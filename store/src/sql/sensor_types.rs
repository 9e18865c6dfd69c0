//! The sensor-type catalog: the `sensor_types` table, and the types seen in
//! stored readings.

use super::core::Conn;
use crate::failure::Outcome;
use crate::rows::SensorTypeRow;
use crate::schema::{sensor_data, sensor_types};
use datastream_domain::reading::SensorType;
use datastream_domain::sensor_catalog::SensorTypeInfo;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;

/// Every catalogued type, by name.
pub(super) async fn list(conn: &mut Conn) -> Outcome<Vec<SensorTypeInfo>> {
    let rows: Vec<SensorTypeRow> = sensor_types::table
        .order(sensor_types::name.asc())
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(SensorTypeRow::into_info)
        .collect())
}

/// Most types [`seen`] looks for.
const MOST_SEEN: usize = 1000;

/// The types that have stored readings, up to [`MOST_SEEN`]: one index
/// seek per type on `(sensor_type, timestamp)` (`MIN(sensor_type)` above
/// the last one found), where `SELECT DISTINCT` would read the whole index
/// on SQLite. Unlike the device catalog, it does not wait for rollups.
pub(super) async fn seen(conn: &mut Conn) -> Outcome<Vec<SensorType>> {
    let mut found = Vec::new();
    let mut last = String::new();
    while found.len() < MOST_SEEN {
        let next: Option<String> = sensor_data::table
            .select(diesel::dsl::min(sensor_data::sensor_type))
            .filter(sensor_data::sensor_type.gt(&last))
            .first(conn)
            .await?;
        let Some(name) = next else { break };
        if let Ok(parsed) = SensorType::parse(&name) {
            found.push(parsed);
        }
        last = name;
    }
    Ok(found)
}

/// Creates or replaces one entry.
pub(super) async fn put(conn: &mut Conn, info: &SensorTypeInfo) -> Outcome<()> {
    diesel::replace_into(sensor_types::table)
        .values(SensorTypeRow::from(info))
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes one entry; false if there was none.
pub(super) async fn delete(conn: &mut Conn, name: &SensorType) -> Outcome<bool> {
    let n = diesel::delete(sensor_types::table.filter(sensor_types::name.eq(name.as_str())))
        .execute(conn)
        .await?;
    Ok(n > 0)
}
