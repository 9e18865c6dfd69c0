//! MySQL batches go in as `LOAD DATA LOCAL INFILE`, streamed from memory,
//! and as multi-row INSERTs where the server does not allow it. Counted on
//! a MariaDB server of the test's own ([`OwnMariadb`]): the count of LOAD
//! DATA statements and `local_infile` are server-wide.

use chrono::{Duration, TimeZone, Utc};
use datastream_domain::{Id1, Reading, ReadingFilter};
use datastream_store::{connect, SharedStore};
use datastream_test_support::{reading, unique_id1, OwnMariadb};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

/// Values whose text form must parse back to the same bits.
const VALUES: [f64; 6] = [
    0.1 + 0.2,
    -1e-300,
    1e15,
    12_345.678_901_234_567,
    f64::MIN_POSITIVE,
    -273.15,
];

fn batch(id1: &str) -> Vec<Reading> {
    VALUES
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            reading()
                .value(v)
                .sensor_type("load_data-test")
                .id1(id1)
                .id2(i as i64)
                .at(Utc.with_ymd_and_hms(2026, 12, 1, 23, 59, 59).unwrap()
                    + Duration::microseconds(999_999 - i as i64))
                .build()
        })
        .collect()
}

/// LOAD DATA statements the server has run, over every connection.
async fn loads_run(admin: &mut AsyncMysqlConnection) -> u64 {
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let rows: Vec<Status> = diesel::sql_query(
        "SELECT VARIABLE_VALUE AS value FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_LOAD'",
    )
    .load(admin)
    .await
    .unwrap();
    rows[0].value.parse().unwrap()
}

/// Writes a batch twice; checks every value came back to the bit, the
/// second write was all duplicates, and returns the server's LOAD DATA
/// statements it took.
async fn write_twice_and_check(store: &SharedStore, admin: &mut AsyncMysqlConnection) -> u64 {
    let id1 = unique_id1();
    let before = loads_run(admin).await;
    let first = store.insert_batch(batch(&id1).into()).await.unwrap();
    assert_eq!((first.inserted, first.duplicate), (6, 0));
    let again = store.insert_batch(batch(&id1).into()).await.unwrap();
    assert_eq!((again.inserted, again.duplicate), (0, 6));
    let loads = loads_run(admin).await - before;
    let rows = store
        .query(&ReadingFilter::default().with_id1(Id1::parse(&id1).unwrap()))
        .await
        .unwrap();
    assert_eq!(rows.len(), VALUES.len());
    // Newest first: the first reading is the newest.
    for (row, reading) in rows.iter().zip(batch(&id1)) {
        assert_eq!(row.sensor_value.to_bits(), reading.sensor_value().to_bits());
        assert_eq!(row.timestamp, reading.timestamp());
        assert_eq!(row.id2, reading.id2().get());
    }
    loads
}

#[tokio::test]
async fn batches_go_in_as_load_data_and_as_inserts_where_the_server_forbids_it() {
    // The server's own: its global count of LOAD DATA statements is ours
    // alone, and switching `local_infile` off disturbs nobody.
    let Some(server) = OwnMariadb::start(&["--local-infile=1"]) else {
        return;
    };
    let mut admin = AsyncMysqlConnection::establish(&server.server_url())
        .await
        .unwrap();

    let store = connect(&server.url()).await.unwrap();
    assert_eq!(
        write_twice_and_check(&store, &mut admin).await,
        2,
        "one LOAD DATA per batch"
    );

    server.sql("SET GLOBAL local_infile = 0");
    let store = connect(&server.url()).await.unwrap();
    // The first batch finds out (the server counts the refused
    // statement); it and every later one go in as INSERTs.
    assert_eq!(
        write_twice_and_check(&store, &mut admin).await,
        1,
        "one refused LOAD DATA, then multi-row INSERTs"
    );
}
