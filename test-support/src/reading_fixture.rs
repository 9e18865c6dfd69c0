//! [`reading`]: the one way a test makes a reading, as the domain holds it
//! ([`ReadingFixture::build`]) or as the store gives it back
//! ([`ReadingFixture::stored`]). Every part has a default; a test names only
//! the parts its behaviour is about.

use chrono::{DateTime, TimeZone, Utc};
use datastream_domain::{
    Id1, Id2, Reading, ReadingError, SensorType, StoredReading, TimestampBounds,
};

/// A temperature reading of 21.5 from device `ABC`/1 at
/// 2026-11-25T07:00:00Z, id 1, stored at the time it was taken.
pub fn reading() -> ReadingFixture {
    ReadingFixture {
        id: 1,
        sensor_value: 21.5,
        sensor_type: "temperature".to_owned(),
        id1: "ABC".to_owned(),
        id2: 1,
        timestamp: Utc
            .with_ymd_and_hms(2026, 11, 25, 7, 0, 0)
            .single()
            .expect("a valid date"),
        created_at: None,
        updated_at: None,
    }
}

/// A reading being described by a test (see [`reading`]).
#[derive(Debug, Clone)]
pub struct ReadingFixture {
    id: i64,
    sensor_value: f64,
    sensor_type: String,
    id1: String,
    id2: i64,
    timestamp: DateTime<Utc>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

impl ReadingFixture {
    /// Its value.
    pub fn value(mut self, value: f64) -> Self {
        self.sensor_value = value;
        self
    }
    /// Its sensor type.
    pub fn sensor_type(mut self, sensor_type: &str) -> Self {
        sensor_type.clone_into(&mut self.sensor_type);
        self
    }
    /// Its first device id part.
    pub fn id1(mut self, id1: &str) -> Self {
        id1.clone_into(&mut self.id1);
        self
    }
    /// Its second device id part.
    pub fn id2(mut self, id2: i64) -> Self {
        self.id2 = id2;
        self
    }
    /// When it was taken.
    pub fn at(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// Its database id (stored readings only).
    pub fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }
    /// When it was stored (default: when it was taken).
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = Some(at);
        self
    }
    /// When it was last changed (default: when it was stored).
    pub fn updated_at(mut self, at: DateTime<Utc>) -> Self {
        self.updated_at = Some(at);
        self
    }

    /// The domain reading, or why the domain refuses it. Timestamps from
    /// 2000 on are accepted up to a day ahead of now.
    pub fn try_build(&self) -> Result<Reading, ReadingError> {
        Reading::builder()
            .sensor_value(self.sensor_value)
            .sensor_type(SensorType::parse(&self.sensor_type)?)
            .id1(Id1::parse(&self.id1)?)
            .id2(Id2::new(self.id2)?)
            .timestamp(self.timestamp)
            .build(&TimestampBounds::default(), Utc::now())
    }

    /// The domain reading; panics when the domain refuses it (the test
    /// described an invalid reading: use [`try_build`](Self::try_build)).
    pub fn build(&self) -> Reading {
        self.try_build()
            .unwrap_or_else(|e| panic!("the fixture describes an invalid reading: {e}"))
    }

    /// The reading as a stored row, taken as given (a row may hold what the
    /// domain would refuse).
    pub fn stored(&self) -> StoredReading {
        let created_at = self.created_at.unwrap_or(self.timestamp);
        StoredReading {
            id: self.id,
            sensor_value: self.sensor_value,
            sensor_type: self.sensor_type.clone(),
            id1: self.id1.clone(),
            id2: i32::try_from(self.id2).unwrap_or(i32::MAX),
            timestamp: self.timestamp,
            created_at,
            updated_at: self.updated_at.unwrap_or(created_at),
        }
    }
}
