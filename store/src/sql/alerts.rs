//! Alerts: rules, device states, the alert history, the notification
//! outbox with its delivery attempts, and the alerter's lease.
//!
//! Alert and notification ids are chosen by the alerter holding the lease
//! (the largest stored id, counted on), so one evaluation step writes its
//! alerts and notifications as multi-row inserts; every commit of the
//! alerter is fenced by its lease ([`commit`]). Rule ids are the largest
//! plus one, taken again on the rare conflict between two API replicas.

use super::core::Conn;
use crate::alert_rows::{
    AlertRow, DeliveryRow, NewDeliveryRow, NotificationRow, RuleFieldsRow, RuleRow, StateRow,
};
use crate::failure::{Failure, Outcome};
use crate::schema::{
    alert_deliveries, alert_notifications, alert_rules, alert_states, alerter_lease, alerts,
};
use crate::transaction::in_transaction;
use chrono::{DateTime, Utc};
use datastream_domain::alert::{
    AlertCommit, AlertQuery, AlertRecord, AlertRule, DeliveryAttempt, Lease, Outgoing, StoredState,
};
use datastream_domain::filter::Order;
use datastream_domain::StoreError;
use diesel::{BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::RunQueryDsl;

/// The lease row's name.
const LEASE: &str = "alerter";

/// Every rule, with whether it is marked deleted (the API leaves those
/// out; the alerter resolves their alerts, then forgets them).
pub(super) async fn rules(conn: &mut Conn) -> Outcome<Vec<(AlertRule, bool)>> {
    let rows: Vec<RuleRow> = alert_rules::table
        .order(alert_rules::id.asc())
        .load(conn)
        .await?;
    Ok(rows.into_iter().filter_map(RuleRow::into_rule).collect())
}

/// One rule, unless deleted.
pub(super) async fn rule(conn: &mut Conn, id: i64) -> Outcome<Option<AlertRule>> {
    let row: Option<RuleRow> = alert_rules::table
        .filter(alert_rules::id.eq(id).and(alert_rules::deleted.eq(false)))
        .first(conn)
        .await
        .optional()?;
    Ok(row.and_then(RuleRow::into_rule).map(|(rule, _)| rule))
}

/// Stores a new rule; returns it with its id.
pub(super) async fn create_rule(conn: &mut Conn, rule: &AlertRule) -> Outcome<AlertRule> {
    let mut tries = 0;
    loop {
        let last: Option<i64> = alert_rules::table
            .select(diesel::dsl::max(alert_rules::id))
            .first(conn)
            .await?;
        let id = last.unwrap_or(0) + 1;
        let inserted = diesel::insert_into(alert_rules::table)
            .values(RuleRow::new(rule, id, 1))
            .execute(conn)
            .await;
        match inserted.map_err(Failure::from) {
            Ok(_) => {
                return Ok(AlertRule {
                    id,
                    revision: 1,
                    ..rule.clone()
                })
            }
            Err(Failure(StoreError::Conflict)) if tries < 5 => tries += 1,
            Err(other) => return Err(other),
        }
    }
}

/// Replaces a rule (not a deleted one) and bumps its revision; `None` if
/// there is no such rule.
pub(super) async fn replace_rule(
    conn: &mut Conn,
    id: i64,
    rule: &AlertRule,
) -> Outcome<Option<AlertRule>> {
    let rule = rule.clone();
    in_transaction(conn, move |conn| {
        Box::pin(async move {
            let live = alert_rules::table
                .filter(alert_rules::id.eq(id).and(alert_rules::deleted.eq(false)));
            let n = diesel::update(live)
                .set((
                    RuleFieldsRow::new(&rule),
                    alert_rules::revision.eq(alert_rules::revision + 1),
                ))
                .execute(conn)
                .await?;
            if n == 0 {
                return Ok(None);
            }
            let revision: i64 = live.select(alert_rules::revision).first(conn).await?;
            Ok(Some(AlertRule {
                id,
                revision,
                ..rule
            }))
        })
    })
    .await
}

/// Marks a rule deleted; false if there was none.
pub(super) async fn delete_rule(conn: &mut Conn, id: i64) -> Outcome<bool> {
    let n = diesel::update(
        alert_rules::table.filter(alert_rules::id.eq(id).and(alert_rules::deleted.eq(false))),
    )
    .set((
        alert_rules::deleted.eq(true),
        alert_rules::revision.eq(alert_rules::revision + 1),
        alert_rules::updated_at.eq(Utc::now().naive_utc()),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Alerts matching `query`, in its order, after its id.
pub(super) async fn history(conn: &mut Conn, query: &AlertQuery) -> Outcome<Vec<AlertRecord>> {
    let mut q = alerts::table.into_boxed();
    if let Some(t) = &query.sensor_type {
        q = q.filter(alerts::sensor_type.eq(t.as_str().to_owned()));
    }
    if let Some(id1) = &query.id1 {
        q = q.filter(alerts::id1.eq(id1.as_str().to_owned()));
    }
    if let Some(id2) = query.id2 {
        q = q.filter(alerts::id2.eq(id2.get()));
    }
    if let Some(rule) = query.rule_id {
        q = q.filter(alerts::rule_id.eq(rule));
    }
    if let Some(firing) = query.firing {
        q = q.filter(alerts::state.eq(if firing { "firing" } else { "resolved" }));
    }
    if let Some(from) = query.from {
        q = q.filter(alerts::fired_at.ge(from.naive_utc()));
    }
    if let Some(to) = query.to {
        q = q.filter(alerts::fired_at.lt(to.naive_utc()));
    }
    q = match (query.order, query.after_id) {
        (Order::Asc, Some(after)) => q.filter(alerts::id.gt(after)).order(alerts::id.asc()),
        (Order::Asc, None) => q.order(alerts::id.asc()),
        (Order::Desc, Some(after)) => q.filter(alerts::id.lt(after)).order(alerts::id.desc()),
        (Order::Desc, None) => q.order(alerts::id.desc()),
    };
    let rows: Vec<AlertRow> = q.limit(i64::from(query.limit)).load(conn).await?;
    Ok(rows.into_iter().filter_map(AlertRow::into_record).collect())
}

/// One alert.
pub(super) async fn alert(conn: &mut Conn, id: i64) -> Outcome<Option<AlertRecord>> {
    let row: Option<AlertRow> = alerts::table
        .filter(alerts::id.eq(id))
        .first(conn)
        .await
        .optional()?;
    Ok(row.and_then(AlertRow::into_record))
}

/// Every delivery attempt of an alert's notifications, oldest first.
pub(super) async fn deliveries(conn: &mut Conn, alert_id: i64) -> Outcome<Vec<DeliveryAttempt>> {
    let rows: Vec<DeliveryRow> = alert_deliveries::table
        .filter(alert_deliveries::alert_id.eq(alert_id))
        .order(alert_deliveries::id.asc())
        .limit(10_000)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(DeliveryRow::into_attempt).collect())
}

/// Takes the lease for `holder` until `until` if it has expired at `now`
/// (or `holder` has it already); the new tenure's lease, or `None` while
/// another holds it.
pub(super) async fn acquire_lease(
    conn: &mut Conn,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Outcome<Option<Lease>> {
    let holder = holder.to_owned();
    in_transaction(conn, move |conn| {
        Box::pin(async move {
            let n = diesel::update(
                alerter_lease::table.filter(
                    alerter_lease::name.eq(LEASE).and(
                        alerter_lease::expires_at
                            .lt(now.naive_utc())
                            .or(alerter_lease::holder.eq(&holder)),
                    ),
                ),
            )
            .set((
                alerter_lease::holder.eq(&holder),
                alerter_lease::epoch.eq(alerter_lease::epoch + 1),
                alerter_lease::expires_at.eq(until.naive_utc()),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(None);
            }
            let epoch: i64 = alerter_lease::table
                .select(alerter_lease::epoch)
                .filter(alerter_lease::name.eq(LEASE))
                .first(conn)
                .await?;
            Ok(Some(Lease { holder, epoch }))
        })
    })
    .await
}

/// Extends the lease to `until`; [`StoreError::LeaseLost`] if another
/// alerter has taken it.
pub(super) async fn renew_lease(
    conn: &mut Conn,
    lease: &Lease,
    until: DateTime<Utc>,
) -> Outcome<()> {
    let n = diesel::update(
        alerter_lease::table.filter(
            alerter_lease::name
                .eq(LEASE)
                .and(alerter_lease::holder.eq(&lease.holder))
                .and(alerter_lease::epoch.eq(lease.epoch)),
        ),
    )
    .set(alerter_lease::expires_at.eq(until.naive_utc()))
    .execute(conn)
    .await?;
    if n == 0 {
        return Err(Failure(StoreError::LeaseLost));
    }
    Ok(())
}

/// Ends the lease at once, so a standby need not wait for it to expire.
pub(super) async fn release_lease(conn: &mut Conn, lease: &Lease) -> Outcome<()> {
    renew_lease(conn, lease, DateTime::UNIX_EPOCH).await
}

/// What a new lease holder starts from: every state, the firing alerts,
/// and the largest alert and notification ids.
pub(super) async fn evaluation_start(
    conn: &mut Conn,
) -> Outcome<(Vec<StoredState>, Vec<AlertRecord>, i64, i64)> {
    let rows: Vec<StateRow> = alert_states::table.load(conn).await?;
    let states = rows.into_iter().filter_map(StateRow::into_state).collect();
    let rows: Vec<AlertRow> = alerts::table
        .filter(alerts::state.eq("firing"))
        .load(conn)
        .await?;
    let firing = rows.into_iter().filter_map(AlertRow::into_record).collect();
    let last_alert: Option<i64> = alerts::table
        .select(diesel::dsl::max(alerts::id))
        .first(conn)
        .await?;
    let last_notice: Option<i64> = alert_notifications::table
        .select(diesel::dsl::max(alert_notifications::id))
        .first(conn)
        .await?;
    Ok((
        states,
        firing,
        last_alert.unwrap_or(0),
        last_notice.unwrap_or(0),
    ))
}

/// Writes one evaluation step in one transaction, fenced by `lease`
/// (which it extends to `until`): nothing is written by an alerter that
/// has lost its lease.
pub(super) async fn commit(
    conn: &mut Conn,
    lease: &Lease,
    until: DateTime<Utc>,
    work: AlertCommit,
) -> Outcome<()> {
    let lease = lease.clone();
    in_transaction(conn, move |conn| {
        Box::pin(async move {
            renew_lease(conn, &lease, until).await?;
            let states: Vec<StateRow> = work.states.iter().map(StateRow::from).collect();
            for row in &states {
                diesel::replace_into(alert_states::table)
                    .values(row)
                    .execute(conn)
                    .await?;
            }
            let fired: Vec<AlertRow> = work.fired.iter().map(AlertRow::from).collect();
            for row in &fired {
                diesel::insert_into(alerts::table)
                    .values(row)
                    .execute(conn)
                    .await?;
            }
            for r in &work.resolved {
                diesel::update(alerts::table.filter(alerts::id.eq(r.alert_id)))
                    .set((
                        alerts::state.eq("resolved"),
                        alerts::resolved_at.eq(r.at.naive_utc()),
                        alerts::resolved_value.eq(r.value),
                        alerts::resolved_by.eq(r.by),
                    ))
                    .execute(conn)
                    .await?;
            }
            let notices: Vec<NotificationRow> =
                work.notices.iter().map(NotificationRow::new).collect();
            for row in &notices {
                diesel::insert_into(alert_notifications::table)
                    .values(row)
                    .execute(conn)
                    .await?;
            }
            for rule in &work.forget_rules {
                diesel::delete(alert_states::table.filter(alert_states::rule_id.eq(rule)))
                    .execute(conn)
                    .await?;
                diesel::delete(
                    alert_rules::table
                        .filter(alert_rules::id.eq(rule).and(alert_rules::deleted.eq(true))),
                )
                .execute(conn)
                .await?;
            }
            Ok(())
        })
    })
    .await
}

/// Notifications with a channel still to deliver at `now`, oldest first.
pub(super) async fn undelivered(
    conn: &mut Conn,
    now: DateTime<Utc>,
    limit: usize,
) -> Outcome<Vec<Outgoing>> {
    let rows: Vec<NotificationRow> = alert_notifications::table
        .filter(
            alert_notifications::mqtt_done
                .eq(false)
                .or(alert_notifications::webhook_done
                    .eq(false)
                    .and(alert_notifications::next_attempt_at.le(now.naive_utc()))),
        )
        .order(alert_notifications::id.asc())
        .limit(limit as i64)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(NotificationRow::into_outgoing)
        .collect())
}

/// Records one delivery attempt, and marks its channel done or due again.
pub(super) async fn record_delivery(conn: &mut Conn, attempt: DeliveryAttempt) -> Outcome<()> {
    in_transaction(conn, move |conn| {
        Box::pin(async move {
            diesel::insert_into(alert_deliveries::table)
                .values(NewDeliveryRow {
                    notification_id: attempt.notification_id,
                    alert_id: attempt.alert_id,
                    channel: attempt.channel,
                    attempt: attempt.attempt,
                    at: attempt.at.naive_utc(),
                    ok: attempt.ok,
                    outcome: &attempt.outcome,
                })
                .execute(conn)
                .await?;
            let row = alert_notifications::table
                .filter(alert_notifications::id.eq(attempt.notification_id));
            if attempt.channel == "mqtt" {
                diesel::update(row)
                    .set(alert_notifications::mqtt_done.eq(attempt.done))
                    .execute(conn)
                    .await?;
            } else {
                diesel::update(row)
                    .set((
                        alert_notifications::webhook_done.eq(attempt.done),
                        alert_notifications::webhook_attempts.eq(attempt.attempt),
                        alert_notifications::next_attempt_at
                            .eq(attempt.next_attempt_at.naive_utc()),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
    })
    .await
}
