//! Diesel row types: the edge where database rows meet domain types.

use super::StoredReading;
use crate::db::{sensor_data, users};
use crate::reading::Reading;
use crate::user::{Role, User, Username};
use chrono::NaiveDateTime;
use diesel::{AsChangeset, Insertable, Queryable};

/// What changing a user writes: the fields that are `Some`.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
pub(super) struct UserChangeRow {
    pub(super) password_hash: Option<String>,
    pub(super) role: Option<&'static str>,
}

/// A full `sensor_data` row, in column order.
#[derive(Queryable)]
pub(super) struct ReadingRow {
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
pub(super) struct NewReadingRow<'a> {
    sensor_value: f64,
    sensor_type: &'a str,
    id1: &'a str,
    id2: i32,
    timestamp: NaiveDateTime,
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
pub(super) struct NewUserRow {
    username: String,
    password_hash: String,
    role: &'static str,
}

impl NewUserRow {
    pub(super) fn new(username: &Username, password_hash: &str, role: Role) -> Self {
        Self {
            username: username.as_str().to_owned(),
            password_hash: password_hash.to_owned(),
            role: role.as_str(),
        }
    }
}

/// A `users` row, in column order.
#[derive(Queryable)]
pub(super) struct UserRow {
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
    pub(super) fn into_user(self) -> Option<User> {
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
