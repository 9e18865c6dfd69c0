//! The store's contract, run against SQLite and (when available) MariaDB:
//! every behaviour below is one async fn, instantiated once per backend.

use chrono::{DateTime, Duration, TimeZone, Utc};
use datastream_schema::{
    connect, FilterParams, Id1, Id2, Order, Reading, ReadingFilter, Role, SensorType, SharedStore,
    StoreError, TimestampBounds, Username,
};
use datastream_test_support::{unique_id1, TestDb};

fn at(secs: i64, micros: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).unwrap()
        + Duration::seconds(secs)
        + Duration::microseconds(i64::from(micros))
}

fn reading(sensor_type: &str, id1: &str, id2: i64, ts: DateTime<Utc>, value: f64) -> Reading {
    Reading::new(
        value,
        SensorType::parse(sensor_type).unwrap(),
        Id1::parse(id1).unwrap(),
        Id2::new(id2).unwrap(),
        ts,
        &TimestampBounds::default(),
        Utc::now(),
    )
    .unwrap()
}

fn filter_for(id1: &str) -> ReadingFilter {
    ReadingFilter::default().with_id1(Id1::parse(id1).unwrap())
}

async fn inserted_readings_come_back_with_every_field_intact(store: SharedStore) {
    let id1 = unique_id1();
    let r = reading("temperature", &id1, 17, at(0, 123_456), 21.53);
    let outcome = store.insert_batch(std::slice::from_ref(&r)).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicate), (1, 0));
    let rows = store.query(&filter_for(&id1)).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.sensor_value, 21.53);
    assert_eq!(row.sensor_type, "temperature");
    assert_eq!(row.id1, id1);
    assert_eq!(row.id2, 17);
    assert_eq!(row.timestamp, r.timestamp());
    assert!(row.created_at <= Utc::now() + Duration::seconds(5));
    assert_eq!(store.get(row.id).await.unwrap().as_ref(), Some(row));
}

async fn duplicates_are_ignored_and_counted(store: SharedStore) {
    let id1 = unique_id1();
    let batch: Vec<_> = (0..10)
        .map(|i| reading("humidity", &id1, 1, at(i, 0), i as f64))
        .collect();
    store.insert_batch(&batch[..6]).await.unwrap();
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicate), (4, 6));
    assert_eq!(store.count(&filter_for(&id1)).await.unwrap(), 10);
}

async fn a_large_batch_is_stored_completely(store: SharedStore) {
    let id1 = unique_id1();
    let batch: Vec<_> = (0..5_000)
        .map(|i| reading("pressure", &id1, i % 7, at(i, 1), 1000.0 + i as f64))
        .collect();
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!(outcome.inserted, 5_000);
    assert_eq!(store.count(&filter_for(&id1)).await.unwrap(), 5_000);
}

async fn filters_select_by_device_type_and_time(store: SharedStore) {
    let id1 = unique_id1();
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.push(reading("temperature", &id1, 1, at(i, 0), i as f64));
        batch.push(reading("humidity", &id1, 2, at(i, 0), i as f64));
    }
    store.insert_batch(&batch).await.unwrap();
    let from = datastream_schema::wire::format_timestamp(at(2, 0));
    let to = datastream_schema::wire::format_timestamp(at(5, 0));
    let f = ReadingFilter::parse(
        FilterParams {
            id1: Some(&id1),
            id2: Some("1"),
            sensor_type: Some("temperature"),
            from: Some(&from),
            to: Some(&to),
            order: Some("asc"),
            ..Default::default()
        },
        Utc::now(),
    )
    .unwrap();
    let rows = store.query(&f).await.unwrap();
    let values: Vec<f64> = rows.iter().map(|r| r.sensor_value).collect();
    assert_eq!(values, vec![2.0, 3.0, 4.0], "from inclusive, to exclusive");
    assert!(rows
        .iter()
        .all(|r| r.sensor_type == "temperature" && r.id2 == 1));
    let humidity = filter_for(&id1).with_sensor_type(SensorType::parse("humidity").unwrap());
    assert_eq!(store.count(&humidity).await.unwrap(), 10);
}

async fn order_and_limit_page_newest_first_by_default(store: SharedStore) {
    let id1 = unique_id1();
    let batch: Vec<_> = (0..20)
        .map(|i| reading("co2", &id1, 3, at(i, 0), i as f64))
        .collect();
    store.insert_batch(&batch).await.unwrap();
    let newest = store.query(&filter_for(&id1).with_limit(3)).await.unwrap();
    let values: Vec<f64> = newest.iter().map(|r| r.sensor_value).collect();
    assert_eq!(values, vec![19.0, 18.0, 17.0]);
    let oldest = store
        .query(&filter_for(&id1).with_limit(2).with_order(Order::Asc))
        .await
        .unwrap();
    let values: Vec<f64> = oldest.iter().map(|r| r.sensor_value).collect();
    assert_eq!(values, vec![0.0, 1.0]);
}

async fn a_missing_reading_is_none(store: SharedStore) {
    assert!(store.get(i64::MAX).await.unwrap().is_none());
}

async fn users_are_created_found_and_unique(store: SharedStore) {
    let name = Username::parse(&format!("user-{}", unique_id1().to_lowercase())).unwrap();
    assert!(store.find_user(&name).await.unwrap().is_none());
    store
        .create_user(&name, "$argon2id$x", Role::Viewer)
        .await
        .unwrap();
    let user = store.find_user(&name).await.unwrap().unwrap();
    assert_eq!(user.username, name);
    assert_eq!(user.role, Role::Viewer);
    assert_eq!(user.password_hash, "$argon2id$x");
    assert!(matches!(
        store.create_user(&name, "h", Role::Admin).await,
        Err(StoreError::Conflict)
    ));
    assert!(store.count_users().await.unwrap() >= 1);
}

async fn migrations_are_idempotent(db_url: &str) {
    connect(db_url).await.unwrap();
    let again = connect(db_url).await.unwrap();
    again.ping().await.unwrap();
}

macro_rules! store_tests {
    ($backend:ident, $db:expr) => {
        mod $backend {
            use super::*;

            async fn store() -> Option<(TestDb, SharedStore)> {
                let db: TestDb = $db?;
                let store = connect(db.url()).await.expect("connecting to the test database");
                Some((db, store))
            }

            store_tests!(@each
                inserted_readings_come_back_with_every_field_intact,
                duplicates_are_ignored_and_counted,
                a_large_batch_is_stored_completely,
                filters_select_by_device_type_and_time,
                order_and_limit_page_newest_first_by_default,
                a_missing_reading_is_none,
                users_are_created_found_and_unique,
            );

            #[tokio::test]
            async fn migrations_are_idempotent() {
                let Some((db, _store)) = store().await else { return };
                super::migrations_are_idempotent(db.url()).await;
            }
        }
    };
    (@each $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((_db, store)) = store().await else { return };
                super::$name(store).await;
            }
        )*
    };
}

store_tests!(sqlite, Some(TestDb::sqlite()));
store_tests!(mysql, TestDb::mysql().await);
