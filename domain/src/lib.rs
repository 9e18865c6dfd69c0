//! The domain of datastream: what every part agrees on, and nothing of how
//! it is stored or carried.
//!
//! * [`Reading`] and the newtypes it is made of, with validation, and a
//!   reading as stored ([`reading`]);
//! * [`ReadingFilter`], built from request strings ([`filter`]);
//! * analytics: intervals, groupings, exact aggregates, pages of groups
//!   ([`analytics`]); retention policy ([`retention`]);
//! * alert rules, their evaluation and notifications ([`alert`]);
//! * users and roles ([`user`]); the sensor-type catalog ([`sensor_catalog`]);
//! * timestamps as text ([`timestamp`]);
//! * the MQTT wire format, topic names and broker URLs ([`wire`], [`topic`],
//!   [`mqtt_url`]);
//! * what a store operation can fail with ([`store_error`]).
//!
//! No database, broker or HTTP type appears here: the store, ingestor and
//! API crates convert at their edges.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alert;
pub mod analytics;
pub mod filter;
pub mod mqtt_url;
pub mod reading;
pub mod redact;
pub mod retention;
pub mod sensor_catalog;
pub mod store_error;
pub mod timestamp;
pub mod topic;
pub mod user;
pub mod wire;

pub use filter::{FilterError, FilterParams, Order, PageCursor, ReadingFilter};
pub use mqtt_url::{MqttTls, MqttUrl, MqttUrlError};
pub use reading::{
    check_sensor_value, Id1, Id2, Reading, ReadingBuilder, ReadingError, SensorType, StoredReading,
    TimestampBounds, MAX_ABS_SENSOR_VALUE,
};
pub use redact::redact_url;
pub use retention::{RetentionError, RetentionPolicy, RetentionStep};
pub use sensor_catalog::{CatalogError, ExpectedRange, SensorTypeInfo};
pub use store_error::StoreError;
pub use topic::ReadingTopic;
pub use user::{leaves_no_admin, AccountChange, Role, User, UserError, Username};
pub use wire::{decode_message, encode_reading, DecodeError, DecodeLimits, WireReading};
