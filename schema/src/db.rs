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
