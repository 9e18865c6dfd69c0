//! Settings every pooled MySQL / MariaDB connection gets before its first
//! use: UTC, and the planner flags that keep MariaDB 10.x on the index a
//! filter names.
//!
//! DESIGN.md's schema and diesel's query builder leave no room for index
//! hints, so where MariaDB's planner picks a plan that reads far more rows
//! than it returns, the session's `optimizer_adjust_secondary_key_costs`
//! fixes it. docs/DECISIONS.md has the measurements behind each flag.

use diesel_async::{AsyncMysqlConnection, SimpleAsyncConnection};
use std::sync::atomic::{AtomicBool, Ordering};

/// One flag of MariaDB's `optimizer_adjust_secondary_key_costs` and the
/// slow plan it prevents.
struct PlannerFlag {
    /// The flag's name, as the variable takes it.
    name: &'static str,
    /// What is slow where the server does not know the flag.
    slow_without: &'static str,
    /// Whether this process has already warned that the server lacks it.
    warned: AtomicBool,
}

/// The flags, each added by its own statement so that a server that knows
/// only some of them keeps those.
static PLANNER_FLAGS: [PlannerFlag; 2] = [
    // Without it MariaDB 10.11 chose `ref` on `(sensor_type)` over the
    // range on `(sensor_type, timestamp)` for a type's newest-first page
    // below a time bound (`to` or a cursor) and walked back from the type's
    // newest row: 750,101 rows read for a page of 100 over 10M readings.
    // The cost model capped the seeks it charged `ref`; this stops that.
    // Named from MariaDB 10.6.18 / 10.11.8 on.
    PlannerFlag {
        name: "disable_max_seek",
        slow_without:
            "a sensor type's pages below a time bound may read from the type's newest row",
        warned: AtomicBool::new(false),
    },
    // Without it MariaDB 10.x scores an index that only provides the ORDER
    // BY (the time index) by how soon it expects LIMIT matches, and for a
    // device's latest few readings often prefers it to the device index:
    // for a device that went quiet that reads the whole time index (10M
    // entries, 48 s, for `limit=1`). This makes the choice by the cost of
    // each access path, as MariaDB 11 does (MDEV-38072).
    PlannerFlag {
        name: "fix_order_by_index_choice",
        slow_without: "a quiet device's latest readings may scan the whole time index",
        warned: AtomicBool::new(false),
    },
];

impl PlannerFlag {
    /// Appends this flag to the session's value, keeping the server's own.
    /// The name is a constant of this module, never input.
    fn statement(&self) -> String {
        format!(
            "SET SESSION optimizer_adjust_secondary_key_costs = \
             CONCAT_WS(',', NULLIF(@@optimizer_adjust_secondary_key_costs, ''), '{}')",
            self.name
        )
    }

    /// Adds the flag; a server that refuses it keeps its defaults, because
    /// a planner preference is never worth a connection.
    async fn apply(&self, conn: &mut AsyncMysqlConnection) {
        let Err(error) = conn.batch_execute(&self.statement()).await else {
            return;
        };
        let message = match &error {
            diesel::result::Error::DatabaseError(_, info) => info.message(),
            _ => "",
        };
        if message.contains("Unknown system variable") {
            // MySQL and MariaDB before 10.6.17 have other cost models.
            tracing::debug!(%error, flag = self.name, "the server has no optimizer_adjust_secondary_key_costs; keeping its planner defaults");
        } else if !message.contains("can't be set to the value") {
            tracing::warn!(%error, flag = self.name, slow = self.slow_without, "could not add a planner flag to optimizer_adjust_secondary_key_costs");
        } else if !self.warned.swap(true, Ordering::Relaxed) {
            // A server that predates the flag: said once per process, not
            // once per connection.
            tracing::warn!(flag = self.name, slow = self.slow_without, "this MariaDB does not know a planner flag datastream sets (MariaDB 10.11.19 has both; MariaDB 11 does not need them)");
        } else {
            tracing::debug!(%error, flag = self.name, "the server does not know this planner flag");
        }
    }
}

/// Prepares a freshly opened connection for the store.
pub(super) async fn configure_session(conn: &mut AsyncMysqlConnection) -> diesel::QueryResult<()> {
    // created_at/updated_at default to CURRENT_TIMESTAMP(6), which is in the
    // session time zone; every value here is UTC.
    conn.batch_execute("SET time_zone = '+00:00'").await?;
    for flag in &PLANNER_FLAGS {
        flag.apply(conn).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastream_test_support::TestDb;
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }

    async fn session_value(conn: &mut AsyncMysqlConnection, expr: &str) -> String {
        let rows: Vec<Setting> = diesel::sql_query(format!("SELECT CAST({expr} AS CHAR) AS value"))
            .load(conn)
            .await
            .unwrap();
        rows.into_iter().next().unwrap().value
    }

    /// Whether the server has `optimizer_adjust_secondary_key_costs` at all
    /// (MariaDB 10.6.17+; not MySQL).
    async fn knows_cost_settings(conn: &mut AsyncMysqlConnection) -> bool {
        session_value(
            conn,
            "(SELECT COUNT(*) FROM information_schema.SYSTEM_VARIABLES \
              WHERE VARIABLE_NAME = 'OPTIMIZER_ADJUST_SECONDARY_KEY_COSTS')",
        )
        .await
            == "1"
    }

    /// The session's `optimizer_adjust_secondary_key_costs`.
    async fn cost_settings(conn: &mut AsyncMysqlConnection) -> String {
        session_value(conn, "@@session.optimizer_adjust_secondary_key_costs").await
    }

    /// Whether this server takes `flag`, asked in a session of its own.
    async fn server_knows(url: &str, flag: &PlannerFlag) -> bool {
        let mut probe = AsyncMysqlConnection::establish(url).await.unwrap();
        probe.batch_execute(&flag.statement()).await.is_ok()
    }

    #[tokio::test]
    async fn pooled_sessions_run_in_utc_and_add_every_planner_flag_the_server_knows() {
        let Some(db) = TestDb::mysql().await else {
            return;
        };
        let mut conn = AsyncMysqlConnection::establish(db.url()).await.unwrap();
        let knows_setting = knows_cost_settings(&mut conn).await;
        let before = if knows_setting {
            cost_settings(&mut conn).await
        } else {
            String::new()
        };

        configure_session(&mut conn).await.unwrap();

        assert_eq!(
            session_value(&mut conn, "@@session.time_zone").await,
            "+00:00"
        );
        if !knows_setting {
            return;
        }
        let after = cost_settings(&mut conn).await;
        let flags: Vec<&str> = after.split(',').collect();
        for kept in before.split(',').filter(|f| !f.is_empty()) {
            assert!(flags.contains(&kept), "{kept} kept in {after}");
        }
        for flag in &PLANNER_FLAGS {
            if server_knows(db.url(), flag).await {
                assert!(flags.contains(&flag.name), "{} in {after}", flag.name);
            }
        }
    }

    #[tokio::test]
    async fn a_flag_the_server_refuses_leaves_the_session_as_it_was() {
        let Some(db) = TestDb::mysql().await else {
            return;
        };
        let mut conn = AsyncMysqlConnection::establish(db.url()).await.unwrap();
        if !knows_cost_settings(&mut conn).await {
            return;
        }
        let unknown = PlannerFlag {
            name: "no_such_planner_flag",
            slow_without: "nothing",
            warned: AtomicBool::new(false),
        };
        let before = cost_settings(&mut conn).await;

        unknown.apply(&mut conn).await;
        unknown.apply(&mut conn).await;

        // Warned the first time, so the second refusal is only a debug line.
        assert!(AtomicBool::load(&unknown.warned, Ordering::Relaxed));
        assert_eq!(cost_settings(&mut conn).await, before);
        assert_eq!(session_value(&mut conn, "1 + 1").await, "2");
    }

    #[tokio::test]
    async fn mariadb_10_11_19_knows_every_planner_flag() {
        // The machine CI runs on has MariaDB 10.11.19; on it, a flag that
        // silently stopped applying (a typo, a renamed flag) must fail here
        // rather than leave the planner on its defaults.
        let Some(db) = TestDb::mysql().await else {
            return;
        };
        let mut conn = AsyncMysqlConnection::establish(db.url()).await.unwrap();
        let version = session_value(&mut conn, "VERSION()").await;
        let Some(release) = version.strip_prefix("10.11.") else {
            return;
        };
        let patch: u32 = release
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if patch < 19 {
            return;
        }
        for flag in &PLANNER_FLAGS {
            assert!(
                server_knows(db.url(), flag).await,
                "{} on {version}",
                flag.name
            );
        }
    }
}
