//! A database an older version wrote: a leap second stored as MySQL's zero
//! date (or SQLite's second 60) and a value near `f64::MAX`. Opening it
//! sets those readings aside (`quarantined_readings`), after which every
//! read works and every sum is finite; and the table refuses them itself,
//! whoever writes.

use chrono::Utc;
use datastream_domain::analytics::{AggregateParams, AggregateQuery};
use datastream_domain::{FilterParams, ReadingFilter};
use datastream_store::{connect, SharedStore};
use datastream_test_support::TestDb;

/// The migration that quarantines them, and how to undo it, so that a
/// test can stand where an older version left the database.
const VERSION: &str = "20261205000007";
const MYSQL_DOWN: &str =
    include_str!("../migrations/mysql/2026-12-05-000007_valid_readings_and_exact_sums/down.sql");
const SQLITE_DOWN: &str =
    include_str!("../migrations/sqlite/2026-12-05-000007_valid_readings_and_exact_sums/down.sql");

/// What an older version stored: two good readings and two hostile ones.
const OLD_ROWS: &str =
    "INSERT INTO sensor_data (sensor_value, sensor_type, id1, id2, `timestamp`) VALUES \
    (21.5, 'temperature', 'OLD', 1, '2025-06-30 23:59:59.5'), \
    (1.7e308, 'temperature', 'OLD', 1, '2025-06-30 22:10:00'), \
    (22.5, 'temperature', 'OLD', 1, '2025-06-30 23:59:60'), \
    (23.5, 'temperature', 'OLD', 2, '2025-06-30 21:00:00'); \
    INSERT INTO rollup_dirty (bucket, marked_at) VALUES \
    ('2025-06-30 21:00:00', '2025-06-30 21:00:00'), \
    ('2025-06-30 22:00:00', '2025-06-30 22:00:00'), \
    ('2025-06-30 23:00:00', '2025-06-30 23:00:00')";

/// Every read that failed on such a database: pages both ways, the
/// hostile row's neighbours by id, and aggregates over the hours.
async fn every_read_works(store: &SharedStore) {
    let all = ReadingFilter::default().with_limit(100);
    let rows = store.query(&all).await.expect("a page of readings");
    assert_eq!(rows.len(), 2, "the two good readings: {rows:?}");
    for r in &rows {
        assert!(store.get(r.id).await.expect("one reading").is_some());
        assert!(r.sensor_value.abs() < 1e15);
    }
    let query = AggregateQuery::parse(
        AggregateParams {
            filter: FilterParams {
                from: Some("2025-06-30T00:00:00Z"),
                to: Some("2025-07-01T01:00:00Z"),
                ..FilterParams::default()
            },
            interval: Some("1h"),
            group_by: Some("none"),
            ..AggregateParams::default()
        },
        Utc::now(),
    )
    .unwrap();
    let buckets = store.aggregate(&query).await.expect("aggregates").items;
    assert!(buckets.iter().all(|b| b.aggregate.sum.value().is_finite()));
    let counted: u64 = buckets.iter().map(|b| b.aggregate.count).sum();
    assert_eq!(counted, 2);
}

#[tokio::test]
async fn an_older_mysql_database_with_a_zero_date_and_a_huge_value_is_repaired_at_start() {
    use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    drop(connect(db.url()).await.unwrap());
    let mut conn = AsyncMysqlConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(MYSQL_DOWN).await.unwrap();
    diesel::sql_query(format!(
        "DELETE FROM __diesel_schema_migrations WHERE version = '{VERSION}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // As an older version's INSERT IGNORE / LOAD DATA … IGNORE stored them.
    conn.batch_execute(&OLD_ROWS.replace("INSERT", "INSERT IGNORE"))
        .await
        .unwrap();

    let store = connect(db.url())
        .await
        .expect("opening repairs the database");
    every_read_works(&store).await;
    let quarantined: Vec<(f64, Option<chrono::NaiveDateTime>, String)> = {
        use diesel::sql_types::{Double, Nullable, Text, Timestamp};
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Double)]
            sensor_value: f64,
            #[diesel(sql_type = Nullable<Timestamp>)]
            timestamp: Option<chrono::NaiveDateTime>,
            #[diesel(sql_type = Text)]
            reason: String,
        }
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT sensor_value, `timestamp`, reason FROM quarantined_readings ORDER BY sensor_value",
        )
        .load(&mut conn)
        .await
        .unwrap();
        rows.into_iter()
            .map(|r| (r.sensor_value, r.timestamp, r.reason))
            .collect()
    };
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert_eq!(quarantined[0].0, 22.5);
    assert!(quarantined[0].1.is_none() && quarantined[0].2.contains("leap second"));
    assert_eq!(quarantined[1].0, 1.7e308);
    assert!(quarantined[1].2.contains("1e15"));

    // From now on the table itself skips them, whoever writes.
    conn.batch_execute(&OLD_ROWS.replace("INSERT", "INSERT IGNORE"))
        .await
        .unwrap();
    every_read_works(&store).await;
    let refreshed = store
        .refresh_rollups(Utc::now() + chrono::Duration::days(1), 100)
        .await
        .expect("every hour rebuilds");
    assert_eq!(refreshed, 3);
    every_read_works(&store).await;
}

#[tokio::test]
async fn an_older_sqlite_database_with_a_leap_second_and_a_huge_value_is_repaired_at_start() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let db = TestDb::sqlite();
    drop(connect(db.url()).await.unwrap());
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
    conn.batch_execute(SQLITE_DOWN).unwrap();
    conn.batch_execute(&format!(
        "DELETE FROM __diesel_schema_migrations WHERE version = '{VERSION}'"
    ))
    .unwrap();
    conn.batch_execute(&OLD_ROWS.replace('`', "\"")).unwrap();

    let store = connect(db.url())
        .await
        .expect("opening repairs the database");
    every_read_works(&store).await;
    let reasons: i64 = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT COUNT(*) AS n FROM quarantined_readings")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n
    };
    assert_eq!(reasons, 2);
    conn.batch_execute(
        &OLD_ROWS
            .replace('`', "\"")
            .replace("INSERT", "INSERT OR IGNORE"),
    )
    .unwrap();
    every_read_works(&store).await;
}
