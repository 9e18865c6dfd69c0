//! Analytics are exact: after any mix of inserts, redelivered duplicates,
//! PATCH and DELETE by filter, with the rollups refreshed partly or not at
//! all, every aggregate and every catalog entry equals a plain GROUP BY
//! over the stored rows at that moment. Run against SQLite and (when
//! available) MariaDB.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use datastream_domain::analytics::{
    AggregateParams, AggregateQuery, Bucket, Device, DeviceQuery, GroupPage,
};
use datastream_domain::{FilterParams, Reading, ReadingFilter, RetentionPolicy, StoredReading};
use datastream_store::SharedStore;
use datastream_store::StoreOptions;
use datastream_test_support::exact_sum::within_two_ulps_of_exact_sum;
use datastream_test_support::{reading, TestDb};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::{BTreeMap, BTreeSet};

const TYPES: [&str; 2] = ["temperature", "humidity"];
const SITES: [&str; 2] = ["SITEA", "SITEB"];
/// Readings fall in the 8 hours from `T0`.
const SPAN_SECS: i64 = 8 * 3_600;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
}

/// A device by index: type, site, id2.
fn device(i: usize) -> (&'static str, &'static str, i64) {
    (TYPES[i % 2], SITES[(i / 2) % 2], 1 + (i / 4) as i64 % 2)
}

/// A reading generated as (device, second, microsecond, value in cents).
type Seed = (usize, i64, u32, i32);

/// The value a seed's cents stand for: mostly small, and one in five near
/// ±1e15 (the largest a reading may carry), so that sums cancel and naive
/// summation would lose whole units.
fn value_of(cents: i32) -> f64 {
    let small = f64::from(cents) / 100.0;
    if cents % 5 == 0 {
        small + 9.99e14 * f64::from(cents.signum())
    } else {
        small
    }
}

/// The reading a seed stands for.
fn seeded((d, secs, micros, cents): Seed) -> Reading {
    let (sensor_type, id1, id2) = device(d);
    reading()
        .value(value_of(cents))
        .sensor_type(sensor_type)
        .id1(id1)
        .id2(id2)
        .at(t0() + Duration::seconds(secs) + Duration::microseconds(i64::from(micros)))
        .build()
}

/// Which readings an edit or a question is about: an optional type, site
/// and id2, and an optional window in seconds from `T0`.
#[derive(Debug, Clone)]
struct Selection {
    sensor_type: Option<&'static str>,
    id1: Option<&'static str>,
    id2: Option<i64>,
    window: Option<(i64, i64)>,
}

#[derive(Debug, Clone)]
enum Step {
    Insert(Vec<Seed>),
    /// Readings sent before, sent again with another value (by index into
    /// what was sent, wrapping): the stored value must not change.
    Redeliver(Vec<(usize, i32)>),
    Patch(Selection, i32),
    Delete(Selection),
    /// Rebuilds at most this many dirty hours.
    Refresh(usize),
}

#[derive(Debug, Clone)]
struct Question {
    selection: Selection,
    interval: &'static str,
    group_by: &'static str,
    /// The zone `from` and `to` are written in, in minutes east of UTC.
    zone_minutes: i32,
    silent_for: &'static str,
    /// Groups (devices) per page; answers are read page by page.
    limit: usize,
    /// The device search, `/devices` only.
    search: Option<&'static str>,
}

fn seed() -> impl Strategy<Value = Seed> {
    // Seconds cluster on hour edges half the time.
    let secs = prop_oneof![
        0..SPAN_SECS,
        (0..8i64, -2..2i64).prop_map(|(h, d)| (h * 3_600 + d).clamp(0, SPAN_SECS - 1)),
    ];
    (
        0..8usize,
        secs,
        prop_oneof![Just(0u32), 0..1_000_000u32],
        -5_000..5_000i32,
    )
}

fn selection() -> impl Strategy<Value = Selection> {
    let edge = prop_oneof![(0..9i64).prop_map(|h| h * 3_600), -600..SPAN_SECS + 600,];
    (
        prop::option::of(prop::sample::select(TYPES.to_vec())),
        prop::option::of(prop::sample::select(SITES.to_vec())),
        prop::option::of(1..3i64),
        prop::option::of((edge.clone(), edge)),
    )
        .prop_map(|(sensor_type, id1, id2, window)| Selection {
            sensor_type,
            id1,
            id2,
            window: window.map(|(a, b)| (a.min(b), a.max(b) + 1)),
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::vec(seed(), 1..40).prop_map(Step::Insert),
        1 => prop::collection::vec((any::<usize>(), -5_000..5_000i32), 1..10)
            .prop_map(Step::Redeliver),
        1 => (selection(), -5_000..5_000i32).prop_map(|(s, v)| Step::Patch(s, v)),
        1 => selection().prop_map(Step::Delete),
        2 => (1..12usize).prop_map(Step::Refresh),
    ]
}

fn question() -> impl Strategy<Value = Question> {
    (
        selection(),
        prop::sample::select(vec!["1h", "2h", "1d", "30m", "7m", "90s", "3h"]),
        prop::sample::select(vec!["device", "sensor_type", "id1", "none"]),
        prop::sample::select(vec![0, 330, -480, 60]),
        prop::sample::select(vec!["1s", "2h", "5h"]),
        prop::sample::select(vec![1usize, 2, 3, 1_000]),
        prop::sample::select(vec![
            None,
            Some("SITE"),
            Some("sitea"),
            Some("SITEB/1"),
            Some("SITEA/"),
            Some("X"),
        ]),
    )
        .prop_map(
            |(selection, interval, group_by, zone_minutes, silent_for, limit, search)| Question {
                selection,
                interval,
                group_by,
                zone_minutes,
                silent_for,
                limit,
                search,
            },
        )
}

/// `T0 + secs` written as RFC 3339 in a zone `zone_minutes` east of UTC.
fn in_zone(secs: i64, zone_minutes: i32) -> String {
    let zone = FixedOffset::east_opt(zone_minutes * 60).unwrap();
    (t0() + Duration::seconds(secs))
        .with_timezone(&zone)
        .to_rfc3339()
}

fn filter_of(s: &Selection) -> ReadingFilter {
    let (from, to) = s.window.map_or((None, None), |(a, b)| {
        (Some(in_zone(a, 0)), Some(in_zone(b, 0)))
    });
    let id2 = s.id2.map(|v| v.to_string());
    ReadingFilter::parse(
        FilterParams {
            sensor_type: s.sensor_type,
            id1: s.id1,
            id2: id2.as_deref(),
            from: from.as_deref(),
            to: to.as_deref(),
            ..FilterParams::default()
        },
        Utc::now(),
    )
    .unwrap()
}

async fn apply(store: &SharedStore, step: &Step, sent: &mut Vec<Seed>) {
    match step {
        Step::Insert(seeds) => {
            sent.extend(seeds);
            let batch: Vec<Reading> = seeds.iter().copied().map(seeded).collect();
            store.insert_batch(batch.into()).await.unwrap();
        }
        Step::Redeliver(picks) => {
            if sent.is_empty() {
                return;
            }
            let batch: Vec<Reading> = picks
                .iter()
                .map(|&(i, cents)| {
                    let (d, secs, micros, _) = sent[i % sent.len()];
                    seeded((d, secs, micros, cents))
                })
                .collect();
            store.insert_batch(batch.into()).await.unwrap();
        }
        Step::Patch(s, cents) => {
            store
                .update_value(&filter_of(s), value_of(*cents))
                .await
                .unwrap();
        }
        Step::Delete(s) => {
            store.delete(&filter_of(s)).await.unwrap();
        }
        Step::Refresh(most) => {
            // Far enough ahead that every hour has settled.
            let later = Utc::now() + Duration::days(3_650);
            store.refresh_rollups(later, *most).await.unwrap();
        }
    }
}

async fn all_rows(store: &SharedStore) -> Vec<StoredReading> {
    let rows = store
        .query(&ReadingFilter::default().with_limit(10_000))
        .await
        .unwrap();
    assert!(rows.len() < 10_000, "the reference needs every row");
    rows
}

fn selected(s: &Selection, r: &StoredReading) -> bool {
    s.sensor_type.is_none_or(|t| t == r.sensor_type)
        && s.id1.is_none_or(|i| i == r.id1)
        && s.id2.is_none_or(|i| i == i64::from(r.id2))
}

/// The answer of a plain `GROUP BY bucket, <group>` over `rows`, written
/// without the store's aggregate code: (bucket, type, id1, id2) →
/// (count, sum, min, max, first, last), first and last broken by value on
/// equal times (smaller first, larger last).
type Expected = BTreeMap<(i64, Option<String>, Option<String>, Option<i32>), Row>;
/// Count, the values (the sum is checked against their exact sum), min,
/// max, first, last.
type Row = (u64, Vec<f64>, f64, f64, f64, f64);

fn group_by(q: &Question, from: i64, to: i64, interval: i64, rows: &[StoredReading]) -> Expected {
    let mut groups: BTreeMap<_, Vec<&StoredReading>> = BTreeMap::new();
    for r in rows.iter().filter(|r| selected(&q.selection, r)) {
        let t = r.timestamp.timestamp();
        let since_t0 = (r.timestamp - t0()).num_microseconds().unwrap();
        if since_t0 < from * 1_000_000 || since_t0 >= to * 1_000_000 {
            continue;
        }
        let bucket = t.div_euclid(interval) * interval;
        let key = match q.group_by {
            "device" => (
                bucket,
                Some(r.sensor_type.clone()),
                Some(r.id1.clone()),
                Some(r.id2),
            ),
            "sensor_type" => (bucket, Some(r.sensor_type.clone()), None, None),
            "id1" => (bucket, None, Some(r.id1.clone()), None),
            _ => (bucket, None, None, None),
        };
        groups.entry(key).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(key, mut rs)| {
            rs.sort_by(|a, b| {
                (a.timestamp, a.sensor_value)
                    .partial_cmp(&(b.timestamp, b.sensor_value))
                    .unwrap()
            });
            let values: Vec<f64> = rs.iter().map(|r| r.sensor_value).collect();
            let row = (
                rs.len() as u64,
                values.clone(),
                values.iter().copied().fold(f64::INFINITY, f64::min),
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                values[0],
                values[values.len() - 1],
            );
            (key, row)
        })
        .collect()
}

fn answered(buckets: &[Bucket]) -> Expected {
    buckets
        .iter()
        .map(|b| {
            let a = &b.aggregate;
            let key = (
                b.start.timestamp(),
                b.key.sensor_type.clone(),
                b.key.id1.clone(),
                b.key.id2,
            );
            (
                key,
                (
                    a.count,
                    vec![a.sum.value()],
                    a.min,
                    a.max,
                    a.first.value,
                    a.last.value,
                ),
            )
        })
        .collect()
}

/// Whether the answer equals the reference: everything exactly, and each
/// sum within two units in the last place of the exact (rational) sum of
/// the bucket's values.
fn same(expected: &Expected, got: &Expected) -> bool {
    expected.len() == got.len()
        && expected.iter().zip(got).all(|((ke, e), (kg, g))| {
            ke == kg
                && e.0 == g.0
                && within_two_ulps_of_exact_sum(&e.1, g.1[0])
                && (e.2, e.3, e.4, e.5) == (g.2, g.3, g.4, g.5)
        })
}

async fn check_aggregate(store: &SharedStore, q: &Question, rows: &[StoredReading]) {
    let (from, to) = q.selection.window.unwrap_or((-3_600, SPAN_SECS + 3_600));
    let (from_text, to_text) = (in_zone(from, q.zone_minutes), in_zone(to, q.zone_minutes));
    let id2 = q.selection.id2.map(|v| v.to_string());
    let limit = q.limit.to_string();
    let parse = |after| {
        AggregateQuery::parse(
            AggregateParams {
                filter: FilterParams {
                    sensor_type: q.selection.sensor_type,
                    id1: q.selection.id1,
                    id2: id2.as_deref(),
                    from: Some(&from_text),
                    to: Some(&to_text),
                    ..FilterParams::default()
                },
                interval: Some(q.interval),
                group_by: Some(q.group_by),
                max_points: Some("10000"),
                limit: Some(&limit),
                after,
            },
            Utc::now(),
        )
        .unwrap()
    };
    // Every page, each starting after the last group of the one before.
    let (mut buckets, mut after, mut pages) = (Vec::new(), None, 0);
    let parsed = loop {
        let parsed = parse(after);
        let page = store.aggregate(&parsed).await.unwrap();
        let groups: BTreeSet<_> = page.items.iter().map(|b| b.key.clone()).collect();
        assert!(
            groups.len() <= q.limit,
            "{q:?}: {} groups on a page",
            groups.len()
        );
        buckets.extend(page.items);
        pages += 1;
        assert!(pages < 100, "{q:?}: paging does not end");
        match page.next_after {
            Some(last) => after = Some(last),
            None => break parsed,
        }
    };
    buckets.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
    let got = answered(&buckets);
    let expected = group_by(q, from, to, parsed.interval().seconds(), rows);
    assert!(
        same(&expected, &got),
        "{q:?}\nexpected {expected:#?}\ngot {got:#?}"
    );
}

async fn check_devices(store: &SharedStore, q: &Question, rows: &[StoredReading]) {
    let now = t0() + Duration::hours(9);
    let id2 = q.selection.id2.map(|v| v.to_string());
    let parsed = DeviceQuery::parse(
        FilterParams {
            sensor_type: q.selection.sensor_type,
            id1: q.selection.id1,
            id2: id2.as_deref(),
            ..FilterParams::default()
        },
        Some(q.silent_for),
        now,
    )
    .unwrap()
    .with_search(q.search)
    .unwrap();
    let quiet = datastream_domain::filter::parse_duration(q.silent_for).unwrap();
    let mut expected: BTreeMap<(String, String, i32), Device> = BTreeMap::new();
    for r in rows.iter().filter(|r| selected(&q.selection, r)) {
        let key = (r.sensor_type.clone(), r.id1.clone(), r.id2);
        let d = expected.entry(key).or_insert_with(|| Device {
            sensor_type: r.sensor_type.clone(),
            id1: r.id1.clone(),
            id2: r.id2,
            first_seen: r.timestamp,
            last_seen: r.timestamp,
            last_value: r.sensor_value,
            count: 0,
        });
        d.count += 1;
        d.first_seen = d.first_seen.min(r.timestamp);
        if r.timestamp >= d.last_seen {
            d.last_seen = r.timestamp;
            d.last_value = r.sensor_value;
        }
    }
    let expected: Vec<Device> = expected
        .into_values()
        .filter(|d| d.last_seen < now - quiet)
        // A search finds the devices whose `ID1/id2` starts with it.
        .filter(|d| {
            q.search.is_none_or(|text| {
                format!("{}/{}", d.id1, d.id2).starts_with(&text.to_ascii_uppercase())
            })
        })
        .collect();
    let (mut got, mut after) = (Vec::new(), None);
    loop {
        let page_query = parsed
            .clone()
            .with_page(GroupPage::parse(Some(&q.limit.to_string()), after).unwrap());
        let page = store.devices(&page_query, now).await.unwrap();
        assert!(page.items.len() <= q.limit, "{q:?}");
        got.extend(page.items);
        assert!(
            got.len() <= expected.len() + 1,
            "{q:?}: paging does not end"
        );
        match page.next_after {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    assert_eq!(expected, got, "{q:?}");
}

/// Runs `cases` random histories, each on a new database from `db`.
fn every_answer_equals_a_plain_group_by(cases: u32, db: impl Fn() -> Option<TestDb>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let history = (
        prop::collection::vec((step(), prop::collection::vec(question(), 2)), 1..8),
        prop::collection::vec(question(), 4),
    );
    let result = runner.run(&history, |(steps, finally)| {
        let Some(db) = db() else { return Ok(()) };
        runtime.block_on(async {
            let store = datastream_store::connect_with(db.url(), StoreOptions::default())
                .await
                .unwrap();
            let mut sent = Vec::new();
            for (step, questions) in &steps {
                apply(&store, step, &mut sent).await;
                let rows = all_rows(&store).await;
                for q in questions {
                    check_aggregate(&store, q, &rows).await;
                    check_devices(&store, q, &rows).await;
                }
            }
            // Once every hour is rebuilt, answers come from rollups alone.
            apply(&store, &Step::Refresh(1_000), &mut sent).await;
            assert_eq!(
                store
                    .dirty_hours(Utc::now() + Duration::days(3_650))
                    .await
                    .unwrap(),
                0
            );
            let rows = all_rows(&store).await;
            for q in &finally {
                check_aggregate(&store, q, &rows).await;
                check_devices(&store, q, &rows).await;
            }
        });
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn aggregates_and_devices_equal_a_plain_group_by_on_sqlite() {
    every_answer_equals_a_plain_group_by(48, || Some(TestDb::sqlite()));
}

#[test]
fn aggregates_and_devices_equal_a_plain_group_by_on_mysql() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    every_answer_equals_a_plain_group_by(16, || runtime.block_on(TestDb::mysql()));
}

/// Values near ±1e15 that cancel, with small ones between, in every
/// device and hour: each sum, from rows and from rollups (before and after
/// they are rebuilt), is within two units in the last place of the exact
/// sum. Naive summation is off by whole units here.
async fn sums_of_values_that_cancel_are_exact(db: TestDb) {
    let store = datastream_store::connect(db.url()).await.unwrap();
    let pattern = [
        9.99e14,
        0.1,
        -9.99e14,
        0.2,
        1e15,
        0.37,
        -1e15,
        -0.05,
        7e14,
        -7e14 + 0.01,
    ];
    let mut batch = Vec::new();
    for d in 0..8usize {
        for hour in 0..3i64 {
            for (i, v) in pattern.iter().enumerate() {
                let (sensor_type, id1, id2) = device(d);
                batch.push(
                    reading()
                        .value(*v * if d % 2 == 0 { 1.0 } else { -1.0 })
                        .sensor_type(sensor_type)
                        .id1(id1)
                        .id2(id2)
                        .at(t0() + Duration::seconds(hour * 3_600 + i as i64 * 60))
                        .build(),
                );
            }
        }
    }
    store.insert_batch(batch.into()).await.unwrap();
    let rows = all_rows(&store).await;
    for refreshed in [false, true] {
        if refreshed {
            apply(&store, &Step::Refresh(1_000), &mut Vec::new()).await;
        }
        for group_by in ["device", "sensor_type", "id1", "none"] {
            for interval in ["1h", "3h", "10m"] {
                let q = Question {
                    interval,
                    ..everything(group_by)
                };
                check_aggregate(&store, &q, &rows).await;
            }
        }
    }
}

#[tokio::test]
async fn sums_of_values_that_cancel_are_exact_on_sqlite() {
    sums_of_values_that_cancel_are_exact(TestDb::sqlite()).await;
}

#[tokio::test]
async fn sums_of_values_that_cancel_are_exact_on_mysql() {
    if let Some(db) = TestDb::mysql().await {
        sums_of_values_that_cancel_are_exact(db).await;
    }
}

/// Every stored row, page by page.
async fn every_row(store: &SharedStore) -> Vec<StoredReading> {
    let mut rows = Vec::new();
    let mut filter = ReadingFilter::default().with_limit(10_000);
    loop {
        let page = store.query(&filter).await.unwrap();
        let Some(last) = page.last() else {
            return rows;
        };
        let cursor = datastream_domain::PageCursor {
            timestamp: last.timestamp,
            id: last.id,
        };
        rows.extend(page);
        filter = ReadingFilter::default()
            .with_limit(10_000)
            .with_cursor(cursor)
            .unwrap();
    }
}

/// An hour with more rows than one slice of its rebuild holds: 3,000
/// devices of two types and thirty `id1`s, and one device whose 25,000
/// readings a slice's limit cuts. Rebuilt, then partly deleted and rebuilt
/// again (devices left with no readings): every answer still equals the
/// rows.
async fn an_hour_of_many_devices_is_rebuilt_slice_by_slice_exactly(db: TestDb) {
    let store = datastream_store::connect(db.url()).await.unwrap();
    let id1s: Vec<String> = (0..30u8)
        .map(|i| {
            format!(
                "SLICE{}{}",
                char::from(b'A' + i / 26),
                char::from(b'A' + i % 26)
            )
        })
        .collect();
    let mut batch = Vec::new();
    for sensor_type in TYPES {
        for id1 in &id1s {
            for id2 in 0..50 {
                for n in 0..15i64 {
                    batch.push(
                        reading()
                            .sensor_type(sensor_type)
                            .id1(id1)
                            .id2(id2)
                            .at(t0() + Duration::microseconds(n * 200_000_000 + id2))
                            .value(n as f64)
                            .build(),
                    );
                }
            }
        }
    }
    for n in 0..25_000i64 {
        batch.push(
            reading()
                .sensor_type("humidity")
                .id1(&id1s[7])
                .id2(999)
                .at(t0() + Duration::microseconds(n * 100_000))
                .value((n % 97) as f64)
                .build(),
        );
    }
    for chunk in batch.chunks(10_000) {
        store.insert_batch(chunk.to_vec().into()).await.unwrap();
    }
    let everything = |group_by| Question {
        limit: 1_000,
        ..everything(group_by)
    };
    for round in 0..2 {
        apply(&store, &Step::Refresh(1_000), &mut Vec::new()).await;
        assert_eq!(
            store
                .dirty_hours(Utc::now() + Duration::days(3_650))
                .await
                .unwrap(),
            0
        );
        let rows = every_row(&store).await;
        for group_by in ["device", "sensor_type", "id1", "none"] {
            check_aggregate(&store, &everything(group_by), &rows).await;
        }
        check_devices(&store, &everything("device"), &rows).await;
        if round == 0 {
            // Whole devices gone from the hour, in several slices.
            for id1 in id1s.iter().step_by(4) {
                apply(
                    &store,
                    &Step::Delete(Selection {
                        sensor_type: Some("temperature"),
                        id1: Some(Box::leak(id1.clone().into_boxed_str())),
                        id2: None,
                        window: None,
                    }),
                    &mut Vec::new(),
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_many_devices_is_rebuilt_slice_by_slice_exactly_on_sqlite() {
    an_hour_of_many_devices_is_rebuilt_slice_by_slice_exactly(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_many_devices_is_rebuilt_slice_by_slice_exactly_on_mysql() {
    if let Some(db) = TestDb::mysql().await {
        an_hour_of_many_devices_is_rebuilt_slice_by_slice_exactly(db).await;
    }
}

/// Writes with rollups off, then with them on again: the refresher marks
/// every hour dirty, and answers stay exact before and after it has run.
async fn turning_rollups_back_on_rebuilds_every_hour(db: TestDb) {
    let open = |rollups| {
        datastream_store::connect_with(
            db.url(),
            StoreOptions {
                rollups,
                ..StoreOptions::default()
            },
        )
    };
    let on = open(true).await.unwrap();
    let mut sent = Vec::new();
    let first: Vec<Seed> = (0..40)
        .map(|i| (i % 8, i as i64 * 600, 0, i as i32))
        .collect();
    apply(&on, &Step::Insert(first), &mut sent).await;
    apply(&on, &Step::Refresh(1_000), &mut sent).await;
    let off = open(false).await.unwrap();
    let more: Vec<Seed> = (0..40)
        .map(|i| (i % 8, i as i64 * 600 + 7, 0, -(i as i32)))
        .collect();
    apply(&off, &Step::Insert(more), &mut sent).await;
    let everything = Question {
        selection: Selection {
            sensor_type: None,
            id1: None,
            id2: None,
            window: None,
        },
        interval: "1h",
        group_by: "device",
        zone_minutes: 0,
        silent_for: "1s",
        limit: 1_000,
        search: None,
    };
    let rows = all_rows(&on).await;
    assert_eq!(rows.len(), 80);
    // Before the refresher runs, the stale mark sends answers to the rows.
    check_aggregate(&on, &everything, &rows).await;
    check_devices(&on, &everything, &rows).await;
    apply(&on, &Step::Refresh(1_000), &mut sent).await;
    assert_eq!(
        on.dirty_hours(Utc::now() + Duration::days(3_650))
            .await
            .unwrap(),
        0
    );
    for group_by in ["device", "sensor_type", "none"] {
        let q = Question {
            group_by,
            ..everything.clone()
        };
        check_aggregate(&on, &q, &rows).await;
    }
    check_devices(&on, &everything, &rows).await;
}

#[tokio::test]
async fn turning_rollups_back_on_rebuilds_every_hour_on_sqlite() {
    turning_rollups_back_on_rebuilds_every_hour(TestDb::sqlite()).await;
}

#[tokio::test]
async fn turning_rollups_back_on_rebuilds_every_hour_on_mysql() {
    if let Some(db) = TestDb::mysql().await {
        turning_rollups_back_on_rebuilds_every_hour(db).await;
    }
}

/// Writers, edits, deletes and two refreshers running at once on the same
/// hours: once all have stopped and the last marks are rebuilt, every
/// answer still equals the rows.
async fn concurrent_writes_and_refreshers_leave_rollups_exact(db: TestDb) {
    let store = datastream_store::connect_with(db.url(), StoreOptions::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for writer in 0..3u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..30u32 {
                let seeds: Vec<Seed> = (0..20u32)
                    .map(|i| {
                        let n = writer * 10_000 + round * 20 + i;
                        (
                            n as usize % 8,
                            i64::from(n * 37) % SPAN_SECS,
                            n,
                            (n % 5_000) as i32,
                        )
                    })
                    .collect();
                apply(&store, &Step::Insert(seeds), &mut Vec::new()).await;
            }
        }));
    }
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10i64 {
                let hours = Selection {
                    sensor_type: Some(TYPES[round as usize % 2]),
                    id1: None,
                    id2: None,
                    window: Some((round % 8 * 3_600, (round % 8 + 1) * 3_600)),
                };
                apply(
                    &store,
                    &Step::Patch(hours.clone(), round as i32),
                    &mut Vec::new(),
                )
                .await;
                if round % 3 == 0 {
                    apply(&store, &Step::Delete(hours), &mut Vec::new()).await;
                }
            }
        }));
    }
    for _ in 0..2 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                apply(&store, &Step::Refresh(3), &mut Vec::new()).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    apply(&store, &Step::Refresh(1_000), &mut Vec::new()).await;
    assert_eq!(
        store
            .dirty_hours(Utc::now() + Duration::days(3_650))
            .await
            .unwrap(),
        0
    );
    let rows = all_rows(&store).await;
    for group_by in ["device", "sensor_type", "id1", "none"] {
        let q = Question {
            selection: Selection {
                sensor_type: None,
                id1: None,
                id2: None,
                window: None,
            },
            interval: "1h",
            group_by,
            zone_minutes: 0,
            silent_for: "1s",
            limit: 1_000,
            search: None,
        };
        check_aggregate(&store, &q, &rows).await;
        check_devices(&store, &q, &rows).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_and_refreshers_leave_rollups_exact_on_sqlite() {
    concurrent_writes_and_refreshers_leave_rollups_exact(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_and_refreshers_leave_rollups_exact_on_mysql() {
    if let Some(db) = TestDb::mysql().await {
        concurrent_writes_and_refreshers_leave_rollups_exact(db).await;
    }
}

/// Another deployment on the same server (its own database) refreshing
/// its rollups all the time must not take this one's turn: every refresh
/// here rebuilds what is due, however busy the neighbour is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_neighbour_database_refreshing_at_once_does_not_take_this_ones_turn_on_mysql() {
    let (Some(ours), Some(theirs)) = (TestDb::mysql().await, TestDb::mysql().await) else {
        return;
    };
    let ours_store = datastream_store::connect(ours.url()).await.unwrap();
    let theirs_store = datastream_store::connect(theirs.url()).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The neighbour re-marks its eight hours and rebuilds them, one at a
    // time, as fast as it can.
    let neighbour = {
        let (store, stop) = (theirs_store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut round = 0i32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let seeds: Vec<Seed> = (0..8i64)
                    .map(|h| (0, h * 3_600, round as u32, round))
                    .collect();
                apply(&store, &Step::Insert(seeds), &mut Vec::new()).await;
                apply(&store, &Step::Refresh(1), &mut Vec::new()).await;
            }
        })
    };
    for round in 0..20i64 {
        // Two fresh readings in two hours of ours, then a refresh: it
        // rebuilds both.
        let seeds: Vec<Seed> = (0..2i64)
            .map(|h| (1, ((round * 2 + h) % 8) * 3_600 + round, 0, round as i32))
            .collect();
        apply(&ours_store, &Step::Insert(seeds), &mut Vec::new()).await;
        let later = Utc::now() + Duration::days(3_650);
        let rebuilt = ours_store.refresh_rollups(later, 100).await.unwrap();
        assert_eq!(
            rebuilt, 2,
            "round {round}: the neighbour took this database's turn"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    neighbour.await.unwrap();
}

/// Applies retention at `now` until no more work is due (waiting while
/// another sweeper works).
async fn retain(store: &SharedStore, policy: &RetentionPolicy, now: DateTime<Utc>) {
    for _ in 0..1_000 {
        let step = store.apply_retention(policy, now, 7).await.unwrap();
        if step.busy {
            // Another sweeper holds the turn: wait for it.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        } else if !step.more {
            return;
        }
    }
    panic!("retention never finished");
}

fn everything(group_by: &'static str) -> Question {
    Question {
        selection: Selection {
            sensor_type: None,
            id1: None,
            id2: None,
            window: None,
        },
        interval: "1h",
        group_by,
        zone_minutes: 0,
        silent_for: "1s",
        limit: 1_000,
        search: None,
    }
}

/// After retention up to `horizon`: exactly the rows before it are gone,
/// hourly aggregates still equal what `before` gave, and the catalog counts
/// what is left. Returns what is left.
async fn check_retired(
    store: &SharedStore,
    before: &[StoredReading],
    horizon: DateTime<Utc>,
) -> Vec<StoredReading> {
    let after = all_rows(store).await;
    let kept: Vec<StoredReading> = before
        .iter()
        .filter(|r| r.timestamp >= horizon)
        .cloned()
        .collect();
    assert_eq!(after, kept, "exactly the readings before the horizon went");
    for group_by in ["device", "sensor_type", "id1", "none"] {
        check_aggregate(store, &everything(group_by), before).await;
    }
    check_devices(store, &everything("device"), &after).await;
    after
}

/// Two sweepers (two processes' stores) at once on the same table: each
/// hour is retired once, and the answers are as with one. MySQL only: an
/// SQLite database has one process (and in it, one sweeper and one
/// refresher take turns).
async fn two_sweepers_at_once_retire_each_hour_once(db: TestDb) {
    let open = || datastream_store::connect_with(db.url(), StoreOptions::default());
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    let mut sent = Vec::new();
    let seeds: Vec<Seed> = (0..96)
        .map(|i| (i % 8, i as i64 * 300 + 1, 0, i as i32))
        .collect();
    apply(&a, &Step::Insert(seeds), &mut sent).await;
    let before = all_rows(&a).await;
    let policy = RetentionPolicy::parse("2h", None).unwrap();
    let now = t0() + Duration::hours(7) + Duration::minutes(1);
    tokio::join!(retain(&a, &policy, now), retain(&b, &policy, now));
    check_retired(&a, &before, t0() + Duration::hours(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweepers_at_once_retire_each_hour_once_on_mysql() {
    if let Some(db) = TestDb::mysql().await {
        two_sweepers_at_once_retire_each_hour_once(db).await;
    }
}

/// Retention removes the rows of hours older than `RETENTION`, leaves
/// their rollups as the record (hourly aggregates over them still equal
/// what the rows gave), and the device catalog counts only what is stored;
/// a reading written into a retired hour later is removed and changes no
/// rollup; `ROLLUP_RETENTION` then removes old rollups.
async fn retention_keeps_history_in_rollups(db: TestDb) {
    let store = datastream_store::connect_with(db.url(), StoreOptions::default())
        .await
        .unwrap();
    let mut sent = Vec::new();
    let seeds: Vec<Seed> = (0..96)
        .map(|i| {
            (
                i % 8,
                i as i64 * 300 + (i as i64 % 3),
                0,
                i as i32 * 7 - 300,
            )
        })
        .collect();
    apply(&store, &Step::Insert(seeds), &mut sent).await;
    // One hour left dirty: retention must rebuild it before retiring it.
    apply(&store, &Step::Refresh(3), &mut sent).await;
    let before = all_rows(&store).await;
    // Raw readings are kept for 2 h: at T0 + 6h, the first 4 hours go.
    let horizon = t0() + Duration::hours(4);
    let policy = RetentionPolicy::parse("2h", None).unwrap();
    retain(
        &store,
        &policy,
        t0() + Duration::hours(6) + Duration::minutes(10),
    )
    .await;
    check_retired(&store, &before, horizon).await;

    // A late reading into a retired hour, and more readings after it.
    let late = vec![(3, 600, 1, 4_242)];
    let fresh: Vec<Seed> = (0..8)
        .map(|d| (d, 5 * 3_600 + 60 * d as i64, 0, 1))
        .collect();
    apply(&store, &Step::Insert(late), &mut sent).await;
    apply(&store, &Step::Insert(fresh), &mut sent).await;
    apply(&store, &Step::Refresh(1_000), &mut sent).await;
    retain(
        &store,
        &policy,
        t0() + Duration::hours(6) + Duration::minutes(20),
    )
    .await;
    let after = all_rows(&store).await;
    assert!(
        after.iter().all(|r| r.timestamp >= horizon),
        "the late reading went"
    );
    let history: Vec<StoredReading> = before
        .iter()
        .filter(|r| r.timestamp < horizon)
        .chain(&after)
        .cloned()
        .collect();
    for group_by in ["device", "none"] {
        check_aggregate(&store, &everything(group_by), &history).await;
    }
    check_devices(&store, &everything("device"), &after).await;

    // Rollups kept for 3 h: hours before T0 + 3h lose theirs.
    let policy = RetentionPolicy::parse("2h", Some("3h")).unwrap();
    retain(
        &store,
        &policy,
        t0() + Duration::hours(6) + Duration::minutes(30),
    )
    .await;
    let rollup_horizon = t0() + Duration::hours(3);
    let remembered: Vec<StoredReading> = history
        .into_iter()
        .filter(|r| r.timestamp >= rollup_horizon)
        .collect();
    check_aggregate(&store, &everything("device"), &remembered).await;
    check_devices(&store, &everything("device"), &after).await;
}

#[tokio::test]
async fn retention_keeps_history_in_rollups_on_sqlite() {
    retention_keeps_history_in_rollups(TestDb::sqlite()).await;
}

#[tokio::test]
async fn retention_keeps_history_in_rollups_on_mysql() {
    if let Some(db) = TestDb::mysql().await {
        retention_keeps_history_in_rollups(db).await;
    }
}
