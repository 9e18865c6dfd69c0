//! Query building shared by every backend: a [`ReadingFilter`] becomes the
//! same boxed diesel query on MySQL and SQLite.

use crate::db::sensor_data;
use crate::filter::{Order, ReadingFilter};
use chrono::NaiveDateTime;
use diesel::backend::{Backend, DieselReserveSpecialization};
use diesel::query_dsl::methods::BoxedDsl;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text, Timestamp};
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};

/// `sensor_data` rows matching `filter`'s conditions, ordered by
/// `(timestamp, id)` in the filter's direction. Paging (`limit`) is applied
/// by the caller.
pub(super) fn filtered_readings<'a, DB>(filter: &ReadingFilter) -> sensor_data::BoxedQuery<'a, DB>
where
    DB: Backend
        + DieselReserveSpecialization
        + HasSqlType<Text>
        + HasSqlType<Integer>
        + HasSqlType<Timestamp>
        + HasSqlType<BigInt>
        + 'a,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    sensor_data::table: BoxedDsl<'a, DB, Output = sensor_data::BoxedQuery<'a, DB>>,
{
    let mut q = sensor_data::table.into_boxed::<DB>();
    q = filter_conditions(q, filter);
    // Keyset paging, written as `ts > ? OR (ts = ? AND id > ?)`: MariaDB
    // range-scans the timestamp index for this form, not for a row
    // constructor `(ts, id) > (?, ?)`.
    if let Some(after) = filter.after() {
        let ts = after.timestamp.naive_utc();
        q = match filter.order() {
            Order::Asc => q.filter(
                sensor_data::timestamp.gt(ts).or(sensor_data::timestamp
                    .eq(ts)
                    .and(sensor_data::id.gt(after.id))),
            ),
            Order::Desc => q.filter(
                sensor_data::timestamp.lt(ts).or(sensor_data::timestamp
                    .eq(ts)
                    .and(sensor_data::id.lt(after.id))),
            ),
        };
    }
    match filter.order() {
        Order::Asc => q.order((sensor_data::timestamp.asc(), sensor_data::id.asc())),
        Order::Desc => q.order((sensor_data::timestamp.desc(), sensor_data::id.desc())),
    }
}

/// Adds the `WHERE` conditions of `filter` to a boxed `sensor_data` query.
pub(super) fn filter_conditions<'a, DB>(
    mut q: sensor_data::BoxedQuery<'a, DB>,
    filter: &ReadingFilter,
) -> sensor_data::BoxedQuery<'a, DB>
where
    DB: Backend
        + DieselReserveSpecialization
        + HasSqlType<Text>
        + HasSqlType<Integer>
        + HasSqlType<Timestamp>
        + 'a,
    String: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    if let Some(id1) = filter.id1() {
        q = q.filter(sensor_data::id1.eq(id1.as_str().to_owned()));
    }
    if let Some(id2) = filter.id2() {
        q = q.filter(sensor_data::id2.eq(id2.get()));
    }
    if let Some(t) = filter.sensor_type() {
        q = q.filter(sensor_data::sensor_type.eq(t.as_str().to_owned()));
    }
    if let Some(from) = filter.from() {
        q = q.filter(sensor_data::timestamp.ge(from.naive_utc()));
    }
    if let Some(to) = filter.to() {
        q = q.filter(sensor_data::timestamp.lt(to.naive_utc()));
    }
    q
}
