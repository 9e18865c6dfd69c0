//! Diesel row types: the edge where database rows meet domain types.

use crate::schema::{sensor_data, sensor_types, users};
use chrono::NaiveDateTime;
use datastream_domain::reading::{Reading, SensorType};
use datastream_domain::sensor_catalog::{ExpectedRange, SensorTypeInfo};
use datastream_domain::user::{Role, User, Username};
use datastream_domain::StoredReading;
use diesel::{AsChangeset, Insertable, Queryable};

/// What changing a user writes: the fields that are `Some`.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
pub(crate) struct UserChangeRow {
    password_hash: Option<String>,
    role: Option<&'static str>,
}

impl UserChangeRow {
    /// A new password hash.
    pub(crate) fn password(hash: &str) -> Self {
        Self {
            password_hash: Some(hash.to_owned()),
            role: None,
        }
    }

    /// A new role.
    pub(crate) fn role(role: Role) -> Self {
        Self {
            password_hash: None,
            role: Some(role.as_str()),
        }
    }
}

/// A full `sensor_data` row, in column order.
#[derive(Queryable)]
pub(crate) struct ReadingRow {
    id: i64,
    sensor_value: f64,
    sensor_type: String,
    id1: String,
    id2: i32,
    timestamp: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<ReadingRow> for StoredReading {
    fn from(r: ReadingRow) -> Self {
        StoredReading {
            id: r.id,
            sensor_value: r.sensor_value,
            sensor_type: r.sensor_type,
            id1: r.id1,
            id2: r.id2,
            timestamp: r.timestamp.and_utc(),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

/// The columns a batch insert writes; the rest take their defaults.
#[derive(Insertable)]
#[diesel(table_name = sensor_data)]
pub(crate) struct NewReadingRow<'a> {
    sensor_value: f64,
    sensor_type: &'a str,
    id1: &'a str,
    id2: i32,
    timestamp: NaiveDateTime,
}

impl NewReadingRow<'_> {
    /// The columns of [`write_tab_separated`](Self::write_tab_separated)'s
    /// lines, in order, as `LOAD DATA` names them.
    pub(crate) const TAB_SEPARATED_COLUMNS: &'static str =
        "sensor_value, sensor_type, id1, id2, `timestamp`";

    /// The row as one tab-separated line for `LOAD DATA`. Validated values
    /// hold no tab, newline or backslash, so nothing needs escaping; `{}`
    /// writes the shortest text that parses back to the same f64.
    pub(crate) fn write_tab_separated(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            self.sensor_value,
            self.sensor_type,
            self.id1,
            self.id2,
            self.timestamp.format("%Y-%m-%d %H:%M:%S%.6f"),
        );
    }
}

impl<'a> From<&'a Reading> for NewReadingRow<'a> {
    fn from(r: &'a Reading) -> Self {
        Self {
            sensor_value: r.sensor_value(),
            sensor_type: r.sensor_type().as_str(),
            id1: r.id1().as_str(),
            id2: r.id2().get(),
            timestamp: r.timestamp().naive_utc(),
        }
    }
}

/// The columns creating a user writes; `id` and `created_at` take their
/// defaults.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUserRow {
    username: String,
    password_hash: String,
    role: &'static str,
}

impl NewUserRow {
    pub(crate) fn new(username: &Username, password_hash: &str, role: Role) -> Self {
        Self {
            username: username.as_str().to_owned(),
            password_hash: password_hash.to_owned(),
            role: role.as_str(),
        }
    }
}

/// A `users` row, in column order.
#[derive(Queryable)]
pub(crate) struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    created_at: NaiveDateTime,
}

impl UserRow {
    /// Converts to the domain user. A row with a name or role the domain
    /// would refuse (edited by hand in SQL) is treated as absent rather than
    /// trusted.
    pub(crate) fn into_user(self) -> Option<User> {
        let username = Username::parse(&self.username).ok()?;
        let role = Role::parse(&self.role).ok()?;
        Some(User {
            id: self.id,
            created_at: self.created_at.and_utc(),
            username,
            password_hash: self.password_hash,
            role,
        })
    }
}

/// A `sensor_types` row, read and written whole.
#[derive(Queryable, Insertable)]
#[diesel(table_name = sensor_types)]
pub(crate) struct SensorTypeRow {
    name: String,
    unit: Option<String>,
    display_name: Option<String>,
    expected_min: Option<f64>,
    expected_max: Option<f64>,
}

impl From<&SensorTypeInfo> for SensorTypeRow {
    fn from(info: &SensorTypeInfo) -> Self {
        Self {
            name: info.name.as_str().to_owned(),
            unit: info.unit.clone(),
            display_name: info.display_name.clone(),
            expected_min: info.expected.map(|r| r.min()),
            expected_max: info.expected.map(|r| r.max()),
        }
    }
}

impl SensorTypeRow {
    /// Converts to the domain entry. A row the domain would refuse (edited
    /// by hand in SQL) keeps what is valid of it: a bad name drops the
    /// row, a bad label or range is left out.
    pub(crate) fn into_info(self) -> Option<SensorTypeInfo> {
        let name = SensorType::parse(&self.name).ok()?;
        let expected = ExpectedRange::from_bounds(self.expected_min, self.expected_max)
            .ok()
            .flatten();
        let unit = self.unit.as_deref();
        let display_name = self.display_name.as_deref();
        let entry = SensorTypeInfo::new(name.clone(), unit, display_name, expected)
            .or_else(|_| SensorTypeInfo::new(name.clone(), unit, None, expected))
            .or_else(|_| SensorTypeInfo::new(name.clone(), None, display_name, expected))
            .unwrap_or_else(|_| SensorTypeInfo::uncatalogued(name));
        Some(entry)
    }
}
