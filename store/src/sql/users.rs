//! Users: the `users` table.

use super::core::Conn;
use crate::failure::Outcome;
use crate::rows::{NewUserRow, UserChangeRow, UserRow};
use crate::schema::users;
use datastream_domain::user::{Role, User, Username};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;

/// A change to one user: the fields that are `Some`.
pub(super) type UserChange = UserChangeRow;

/// How many users exist.
pub(super) async fn count(conn: &mut Conn) -> Outcome<u64> {
    let n: i64 = users::table.count().get_result(conn).await?;
    Ok(n.max(0) as u64)
}

/// One user by name.
pub(super) async fn find(conn: &mut Conn, username: &Username) -> Outcome<Option<User>> {
    let rows: Vec<UserRow> = users::table
        .filter(users::username.eq(username.as_str()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().next().and_then(UserRow::into_user))
}

/// Every user, by name.
pub(super) async fn list(conn: &mut Conn) -> Outcome<Vec<User>> {
    let rows: Vec<UserRow> = users::table.order(users::username.asc()).load(conn).await?;
    Ok(rows.into_iter().filter_map(UserRow::into_user).collect())
}

/// Deletes a user; false if there was none.
pub(super) async fn delete(conn: &mut Conn, username: &Username) -> Outcome<bool> {
    let n = diesel::delete(users::table.filter(users::username.eq(username.as_str())))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Creates a user (a taken name fails as a conflict).
pub(super) async fn create(
    conn: &mut Conn,
    username: &Username,
    password_hash: &str,
    role: Role,
) -> Outcome<()> {
    diesel::insert_into(users::table)
        .values(NewUserRow::new(username, password_hash, role))
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies `change` to one user; false if there is none. MySQL counts
/// matched rows here (diesel-async asks for found rows), so an unchanged
/// value still says the user exists.
pub(super) async fn change(
    conn: &mut Conn,
    username: &Username,
    change: UserChange,
) -> Outcome<bool> {
    let n = diesel::update(users::table.filter(users::username.eq(username.as_str())))
        .set(change)
        .execute(conn)
        .await?;
    Ok(n > 0)
}
