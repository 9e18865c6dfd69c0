//! The data contract of datastream.
//!
//! This crate owns what every other part agrees on:
//!
//! * the domain: [`Reading`] and the newtypes it is made of, with validation
//!   ([`reading`]), [`ReadingFilter`] ([`filter`]) and users ([`user`]);
//! * timestamps as text ([`timestamp`]);
//! * the MQTT wire format and topic names ([`wire`], [`topic`]);
//! * the database: diesel schema and embedded migrations ([`db`]) and the
//!   [`Store`] trait with its MySQL and SQLite implementations ([`store`]).
//!
//! The domain modules know nothing about MQTT clients, HTTP or SQL; the wire
//! and store modules convert at the edge.
#![deny(missing_docs)]

pub mod analytics;
mod db;
pub mod filter;
pub mod mqtt_url;
pub mod reading;
pub mod retention;
pub mod store;
pub mod timestamp;
pub mod topic;
pub mod user;
pub mod wire;

pub use filter::{FilterError, FilterParams, Order, PageCursor, ReadingFilter};
pub use mqtt_url::{MqttUrl, MqttUrlError};
pub use reading::{
    check_sensor_value, Id1, Id2, Reading, ReadingError, SensorType, TimestampBounds,
    MAX_ABS_SENSOR_VALUE,
};
pub use retention::{RetentionError, RetentionPolicy, RetentionStep};
pub use store::{
    connect, InsertOutcome, ReadingStore, SharedStore, Store, StoreError, StoredReading, UserStore,
};
pub use topic::ReadingTopic;
pub use user::{leaves_no_admin, AccountChange, Role, User, UserError, Username};
pub use wire::{decode_message, encode_reading, DecodeError, DecodeLimits, WireReading};
