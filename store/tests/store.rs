//! The store's contract, run against SQLite and (when available) MariaDB:
//! every behaviour below is one async fn, instantiated once per backend.

use chrono::{DateTime, Duration, TimeZone, Utc};
use datastream_domain::{
    FilterParams, Id1, Order, PageCursor, ReadingFilter, Role, SensorType, StoreError, Username,
};
use datastream_store::{connect, SharedStore};
use datastream_test_support::{reading, unique_id1, TestDb};

fn at(secs: i64, micros: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).unwrap()
        + Duration::seconds(secs)
        + Duration::microseconds(i64::from(micros))
}

fn filter_for(id1: &str) -> ReadingFilter {
    ReadingFilter::default().with_id1(Id1::parse(id1).unwrap())
}

async fn inserted_readings_come_back_with_every_field_intact(store: SharedStore) {
    let id1 = unique_id1();
    let r = reading()
        .sensor_type("temperature")
        .id1(&id1)
        .id2(17)
        .at(at(0, 123_456))
        .value(21.53)
        .build();
    let outcome = store.insert_batch(vec![r.clone()].into()).await.unwrap();
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
        .map(|i| {
            reading()
                .sensor_type("humidity")
                .id1(&id1)
                .id2(1)
                .at(at(i, 0))
                .value(i as f64)
                .build()
        })
        .collect();
    store.insert_batch(batch[..6].into()).await.unwrap();
    let outcome = store.insert_batch(batch.clone().into()).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicate), (4, 6));
    assert_eq!(store.count(&filter_for(&id1)).await.unwrap(), 10);
}

async fn a_large_batch_is_stored_completely(store: SharedStore) {
    let id1 = unique_id1();
    let batch: Vec<_> = (0..5_000)
        .map(|i| {
            reading()
                .sensor_type("pressure")
                .id1(&id1)
                .id2(i % 7)
                .at(at(i, 1))
                .value(1000.0 + i as f64)
                .build()
        })
        .collect();
    let outcome = store.insert_batch(batch.clone().into()).await.unwrap();
    assert_eq!(outcome.inserted, 5_000);
    assert_eq!(store.count(&filter_for(&id1)).await.unwrap(), 5_000);
}

async fn filters_select_by_device_type_and_time(store: SharedStore) {
    let id1 = unique_id1();
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.push(
            reading()
                .sensor_type("temperature")
                .id1(&id1)
                .id2(1)
                .at(at(i, 0))
                .value(i as f64)
                .build(),
        );
        batch.push(
            reading()
                .sensor_type("humidity")
                .id1(&id1)
                .id2(2)
                .at(at(i, 0))
                .value(i as f64)
                .build(),
        );
    }
    store.insert_batch(batch.clone().into()).await.unwrap();
    let from = datastream_domain::timestamp::format_timestamp(at(2, 0));
    let to = datastream_domain::timestamp::format_timestamp(at(5, 0));
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
        .map(|i| {
            reading()
                .sensor_type("co2")
                .id1(&id1)
                .id2(3)
                .at(at(i, 0))
                .value(i as f64)
                .build()
        })
        .collect();
    store.insert_batch(batch.clone().into()).await.unwrap();
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

async fn user_names_differing_only_in_case_are_one_name(store: SharedStore) {
    let lower = format!("case-{}", unique_id1().to_lowercase());
    let upper = lower.to_uppercase();
    store
        .create_user(&Username::parse(&upper).unwrap(), "h", Role::Viewer)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_user(&Username::parse(&lower).unwrap(), "h", Role::Admin)
            .await,
        Err(StoreError::Conflict)
    ));
    let found = store
        .find_user(&Username::parse(&lower).unwrap())
        .await
        .unwrap()
        .expect("found under either case");
    assert_eq!(found.username.as_str(), lower);
}

async fn editing_by_filter_changes_only_matching_rows_in_chunks(store: SharedStore) {
    let id1 = unique_id1();
    let batch: Vec<_> = (0..2_500)
        .map(|i| {
            reading()
                .sensor_type("temperature")
                .id1(&id1)
                .id2(i % 2)
                .at(at(i, 0))
                .value(1.0)
                .build()
        })
        .collect();
    store.insert_batch(batch.clone().into()).await.unwrap();
    let before = store.query(&filter_for(&id1).with_limit(1)).await.unwrap()[0].updated_at;
    let evens = ReadingFilter::parse(
        FilterParams {
            id1: Some(&id1),
            id2: Some("0"),
            ..Default::default()
        },
        Utc::now(),
    )
    .unwrap();
    assert_eq!(store.update_value(&evens, 42.5).await.unwrap(), 1_250);
    let changed = store
        .query(&evens.clone().with_limit(10_000))
        .await
        .unwrap();
    assert!(changed
        .iter()
        .all(|r| r.sensor_value == 42.5 && r.updated_at >= before));
    let odds = ReadingFilter::parse(
        FilterParams {
            id1: Some(&id1),
            id2: Some("1"),
            ..Default::default()
        },
        Utc::now(),
    )
    .unwrap();
    let untouched = store.query(&odds.with_limit(10_000)).await.unwrap();
    assert!(untouched.iter().all(|r| r.sensor_value == 1.0));
}

async fn deleting_by_filter_removes_only_matching_rows_in_chunks(store: SharedStore) {
    let id1 = unique_id1();
    let batch: Vec<_> = (0..2_300)
        .map(|i| {
            reading()
                .sensor_type("humidity")
                .id1(&id1)
                .id2(5)
                .at(at(i, 0))
                .value(1.0)
                .build()
        })
        .collect();
    store.insert_batch(batch.clone().into()).await.unwrap();
    let from = datastream_domain::timestamp::format_timestamp(at(300, 0));
    let newer = ReadingFilter::parse(
        FilterParams {
            id1: Some(&id1),
            from: Some(&from),
            ..Default::default()
        },
        Utc::now(),
    )
    .unwrap();
    assert_eq!(store.delete(&newer).await.unwrap(), 2_000);
    assert_eq!(store.count(&filter_for(&id1)).await.unwrap(), 300);
    assert_eq!(store.delete(&newer).await.unwrap(), 0);
}

async fn offset_and_cursor_pages_walk_the_same_rows(store: SharedStore) {
    let id1 = unique_id1();
    // Pairs of readings share a timestamp (two devices), so the cursor must
    // break ties by id.
    let batch: Vec<_> = (0..30)
        .map(|i| {
            reading()
                .sensor_type("co2")
                .id1(&id1)
                .id2(i % 2)
                .at(at(i / 2, 0))
                .value(i as f64)
                .build()
        })
        .collect();
    store.insert_batch(batch.clone().into()).await.unwrap();
    for order in ["asc", "desc"] {
        let base = |page: Option<&str>| {
            ReadingFilter::parse(
                FilterParams {
                    id1: Some(&id1),
                    limit: Some("7"),
                    order: Some(order),
                    page,
                    ..Default::default()
                },
                Utc::now(),
            )
            .unwrap()
        };
        let all = store.query(&base(None).with_limit(100)).await.unwrap();
        let mut by_offset = Vec::new();
        for page in 1..=5 {
            let p = page.to_string();
            by_offset.extend(store.query(&base(Some(&p))).await.unwrap());
        }
        let mut by_cursor = Vec::new();
        let mut filter = base(None);
        loop {
            let page = store.query(&filter).await.unwrap();
            let Some(last) = page.last() else { break };
            let cursor = PageCursor {
                timestamp: last.timestamp,
                id: last.id,
            };
            by_cursor.extend(page.iter().cloned());
            filter = base(None).with_cursor(cursor).unwrap();
        }
        let ids = |rows: &[datastream_domain::StoredReading]| {
            rows.iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&by_offset), ids(&all), "{order}");
        assert_eq!(ids(&by_cursor), ids(&all), "{order}");
        assert_eq!(all.len(), 30);
    }
}

async fn users_are_listed_and_deleted(store: SharedStore) {
    let name = Username::parse(&format!("gone-{}", unique_id1().to_lowercase())).unwrap();
    store.create_user(&name, "h", Role::Viewer).await.unwrap();
    assert!(store
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.username == name));
    assert!(store.delete_user(&name).await.unwrap());
    assert!(!store.delete_user(&name).await.unwrap());
    assert!(store.find_user(&name).await.unwrap().is_none());
}

async fn a_users_password_and_role_are_changed_in_place(store: SharedStore) {
    let name = Username::parse(&format!("chg-{}", unique_id1().to_lowercase())).unwrap();
    store
        .create_user(&name, "old-hash", Role::Viewer)
        .await
        .unwrap();
    let before = store.find_user(&name).await.unwrap().unwrap();
    assert!(store.set_password(&name, "new-hash").await.unwrap());
    assert!(store.set_role(&name, Role::Admin).await.unwrap());
    // The same role again still finds the user (MySQL counts matched rows).
    assert!(store.set_role(&name, Role::Admin).await.unwrap());
    let after = store.find_user(&name).await.unwrap().unwrap();
    assert_eq!(after.password_hash, "new-hash");
    assert_eq!(after.role, Role::Admin);
    assert_eq!(
        (after.id, after.created_at),
        (before.id, before.created_at),
        "the same account"
    );
    let nobody = Username::parse("nobody-at-all").unwrap();
    assert!(!store.set_password(&nobody, "h").await.unwrap());
    assert!(!store.set_role(&nobody, Role::Viewer).await.unwrap());
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
                user_names_differing_only_in_case_are_one_name,
                editing_by_filter_changes_only_matching_rows_in_chunks,
                deleting_by_filter_removes_only_matching_rows_in_chunks,
                offset_and_cursor_pages_walk_the_same_rows,
                users_are_listed_and_deleted,
                a_users_password_and_role_are_changed_in_place,
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

/// Ids of the server's connections to database `name`.
async fn connections_to(admin: &mut diesel_async::AsyncMysqlConnection, name: &str) -> Vec<u64> {
    use diesel::sql_types::{BigInt, Text, Unsigned};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Process {
        #[diesel(sql_type = Unsigned<BigInt>)]
        id: u64,
    }
    let rows: Vec<Process> =
        diesel::sql_query("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ?")
            .bind::<Text, _>(name)
            .load(admin)
            .await
            .expect("listing connections");
    rows.into_iter().map(|p| p.id).collect()
}

/// Pooled connections are not pinged before every use (busy ones skip the
/// check), so one the server has closed must still leave the pool: at most
/// one query per killed connection fails, then queries run on new ones.
#[tokio::test]
async fn mysql_connections_killed_by_the_server_are_replaced() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let Some(server) = datastream_test_support::mysql_server() else {
        return;
    };
    let name = db.url().rsplit('/').next().unwrap().to_owned();
    let store = datastream_store::connect_with(
        db.url(),
        datastream_store::StoreOptions {
            pool_size: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let family = filter_for(&unique_id1());
    // Two at once, so the pool opens both its connections.
    let (a, b) = tokio::join!(store.query(&family), store.query(&family));
    a.unwrap();
    b.unwrap();

    let mut admin = diesel_async::AsyncMysqlConnection::establish(&server)
        .await
        .unwrap();
    let pooled = connections_to(&mut admin, &name).await;
    assert!(!pooled.is_empty(), "the pool holds open connections");
    for id in &pooled {
        diesel::sql_query(format!("KILL CONNECTION {id}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    let mut failures = 0;
    for _ in 0..pooled.len() + 1 {
        if store.query(&family).await.is_err() {
            failures += 1;
        }
    }
    assert!(
        failures <= pooled.len(),
        "{failures} failures for {} killed connections",
        pooled.len()
    );
    for _ in 0..5 {
        store
            .query(&family)
            .await
            .expect("queries run on new connections");
    }
    let now_open = connections_to(&mut admin, &name).await;
    assert!(
        now_open.iter().all(|id| !pooled.contains(id)),
        "killed connections are gone from the pool"
    );
}
