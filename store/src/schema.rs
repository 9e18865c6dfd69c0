//! The diesel schema shared by MySQL and SQLite, and the embedded migrations.
//!
//! Both backends use the same `table!` definitions; the SQL in
//! `migrations/mysql` and `migrations/sqlite` creates equivalent tables
//! (`DATETIME(6)` on MySQL, ISO text on SQLite).

// diesel's `table!` generates one undocumented type per column.
#![allow(missing_docs)]

use diesel_migrations::{embed_migrations, EmbeddedMigrations};

/// Migrations for MySQL / MariaDB.
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
/// Migrations for SQLite.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

diesel::table! {
    /// One row per reading; `(id1, id2, sensor_type, timestamp)` is unique.
    sensor_data (id) {
        id -> BigInt,
        sensor_value -> Double,
        sensor_type -> Varchar,
        id1 -> Varchar,
        id2 -> Integer,
        timestamp -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// API users with argon2 password hashes.
    users (id) {
        id -> BigInt,
        username -> Varchar,
        password_hash -> Varchar,
        role -> Varchar,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Hours whose rollups may not match their rows (the refresher rebuilds
    /// them); every other hour's rollups are exact.
    rollup_dirty (bucket) {
        bucket -> Timestamp,
        /// When the hour was first marked since its last rebuild.
        marked_at -> Timestamp,
    }
}

diesel::table! {
    /// One row (id 1) while rollups are stale: a writer ran with them off.
    rollup_stale (id) {
        id -> Integer,
    }
}

/// A rollup table: its key columns, then the aggregate columns every
/// rollup table ends with (`rollup_rows.rs` reads them into an
/// `Aggregate`).
macro_rules! rollup_table {
    ($(#[$doc:meta])* $name:ident ($($key:ident -> $ty:ident),*)) => {
        diesel::table! {
            $(#[$doc])*
            $name ($($key,)* bucket) {
                $($key -> $ty,)*
                bucket -> Timestamp,
                reading_count -> BigInt,
                value_sum -> Double,
                value_min -> Double,
                value_max -> Double,
                first_at -> Timestamp,
                first_value -> Double,
                last_at -> Timestamp,
                last_value -> Double,
                value_sum_error -> Double,
            }
        }
    };
}

rollup_table! {
    /// Per device and hour: the aggregate of its readings.
    rollup_device_hour (id1 -> Varchar, id2 -> Integer, sensor_type -> Varchar)
}

rollup_table! {
    /// Per sensor type and hour, over every device.
    rollup_type_hour (sensor_type -> Varchar)
}

rollup_table! {
    /// Per `id1`, sensor type and hour, over every `id2`.
    rollup_id1_hour (id1 -> Varchar, sensor_type -> Varchar)
}

diesel::table! {
    /// Retention's horizon (one row, id 1): raw readings before
    /// `raw_before` are being removed, and rollups are the record there.
    retention_horizon (id) {
        id -> Integer,
        raw_before -> Timestamp,
    }
}

diesel::table! {
    /// The device catalog: one row per device with stored readings in clean
    /// hours' rollups (the store adds what dirty hours hold).
    devices (id1, id2, sensor_type) {
        id1 -> Varchar,
        id2 -> Integer,
        sensor_type -> Varchar,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
        last_value -> Double,
        reading_count -> BigInt,
    }
}

diesel::table! {
    /// The sensor-type catalog: unit, display name and expected range per
    /// type (`datastream_domain::sensor_catalog`).
    sensor_types (name) {
        name -> Varchar,
        unit -> Nullable<Varchar>,
        display_name -> Nullable<Varchar>,
        expected_min -> Nullable<Double>,
        expected_max -> Nullable<Double>,
    }
}

diesel::table! {
    /// Alert rules (`datastream_domain::alert`); a deleted rule stays,
    /// marked, until the alerter has resolved its alerts.
    alert_rules (id) {
        id -> BigInt,
        revision -> BigInt,
        name -> Varchar,
        kind -> Varchar,
        sensor_type -> Varchar,
        id1 -> Nullable<Varchar>,
        id2 -> Nullable<Integer>,
        comparison -> Nullable<Varchar>,
        limit_value -> Nullable<Double>,
        clear_at -> Nullable<Double>,
        span_ms -> BigInt,
        repeat_ms -> Nullable<BigInt>,
        webhook_url -> Nullable<Varchar>,
        webhook_secret -> Nullable<Varchar>,
        deleted -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Each device's state under each rule, as the alerter last committed it.
    alert_states (rule_id, sensor_type, id1, id2) {
        rule_id -> BigInt,
        sensor_type -> Varchar,
        id1 -> Varchar,
        id2 -> Integer,
        state -> Varchar,
        since -> Nullable<Timestamp>,
        newest -> Nullable<Timestamp>,
        last_arrival -> Nullable<Timestamp>,
        alert_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Every alert that fired, from start to resolution.
    alerts (id) {
        id -> BigInt,
        rule_id -> BigInt,
        rule_name -> Varchar,
        kind -> Varchar,
        sensor_type -> Varchar,
        id1 -> Varchar,
        id2 -> Integer,
        state -> Varchar,
        started_at -> Timestamp,
        start_value -> Nullable<Double>,
        since -> Nullable<Timestamp>,
        fired_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        resolved_value -> Nullable<Double>,
        resolved_by -> Nullable<Varchar>,
    }
}

diesel::table! {
    /// The outbox: notifications written with the state that caused them,
    /// marked when delivered.
    alert_notifications (id) {
        id -> BigInt,
        alert_id -> BigInt,
        topic -> Varchar,
        payload -> Text,
        mqtt_done -> Bool,
        webhook_url -> Nullable<Varchar>,
        webhook_secret -> Nullable<Varchar>,
        webhook_done -> Bool,
        webhook_attempts -> Integer,
        next_attempt_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Each delivery attempt and its outcome.
    alert_deliveries (id) {
        id -> BigInt,
        notification_id -> BigInt,
        alert_id -> BigInt,
        channel -> Varchar,
        attempt -> Integer,
        at -> Timestamp,
        ok -> Bool,
        outcome -> Varchar,
    }
}

diesel::table! {
    /// Who evaluates alerts, until when (one row, `alerter`).
    alerter_lease (name) {
        name -> Varchar,
        holder -> Varchar,
        epoch -> BigInt,
        expires_at -> Timestamp,
    }
}
