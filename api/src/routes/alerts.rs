//! `/api/v1/alert-rules` and `/api/v1/alerts`: the rules the alerter
//! evaluates (admins write, everyone reads) and the history of what fired,
//! with each notification's delivery attempts.
//!
//! A rule's webhook secret is write-only: it is never returned. Editing or
//! deleting readings does not rewrite alert history; editing a rule starts
//! it afresh (its firing alerts resolve as `rule_changed`), deleting one
//! resolves them as `rule_deleted` — both done by the active alerter
//! within a second or so.

use crate::state::AppState;
use actix_web::{http::header, web, HttpResponse};
use datastream_domain::alert::{
    format_span, AlertQuery, AlertRecord, AlertRule, Condition, DeliveryAttempt, RuleDraft,
};
use datastream_domain::filter::Order;
use datastream_domain::timestamp::{format_timestamp, parse_timestamp};
use datastream_domain::{Id1, Id2, SensorType};
use datastream_http::error::{ApiError, ErrorBody};
use datastream_http::openapi::NotAnAdmin;
use datastream_http::{Admin, Authenticated, JsonBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A rule, as created or replaced: every field; `kind` decides which of
/// `above`/`below`/`clear_at` apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleBody {
    /// A name for people, 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128, example = "Server room too hot")]
    pub name: Option<String>,
    /// `threshold` or `silence`.
    #[schema(pattern = "^(threshold|silence)$", example = "threshold")]
    pub kind: Option<String>,
    /// The devices watched: this sensor type…
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$", example = "temperature")]
    pub sensor_type: Option<String>,
    /// …optionally only this id1…
    #[schema(pattern = r"^[A-Z]{1,32}$", example = "ROOM")]
    pub id1: Option<String>,
    /// …and only this id2.
    #[schema(minimum = 0, maximum = 2147483647)]
    pub id2: Option<i64>,
    /// Threshold: fires on values strictly above this.
    #[schema(example = 30.0)]
    pub above: Option<f64>,
    /// Threshold: fires on values strictly below this.
    pub below: Option<f64>,
    /// Threshold: a firing alert resolves at this value or beyond, back
    /// towards normal (hysteresis); unset: the limit.
    #[schema(example = 28.0)]
    pub clear_at: Option<f64>,
    /// How long the condition must hold (threshold, on reading time; `0s`
    /// fires at once) or how long a device may stay quiet (silence, on
    /// arrival time): a whole number with `ms`, `s`, `m`, `h` or `d`.
    #[serde(rename = "for")]
    #[schema(pattern = r"^(0|[1-9][0-9]{0,9})(ms|s|m|h|d)$", example = "5m")]
    pub span: Option<String>,
    /// Notify a firing alert again at this period, at least `1s`.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,9})(ms|s|m|h|d)$", example = "1h")]
    pub repeat_every: Option<String>,
    /// POST each notification here (`https://` receivers are checked
    /// against the system's trusted CAs).
    #[schema(example = "http://hooks.internal/datastream")]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the `X-Datastream-Signature` header, 16 to
    /// 256 bytes; write-only. Keeping a rule's URL on PATCH keeps its secret.
    #[schema(min_length = 16, max_length = 256, write_only)]
    pub webhook_secret: Option<String>,
}

impl AlertRuleBody {
    fn draft(self) -> RuleDraft {
        RuleDraft {
            name: self.name,
            kind: self.kind,
            sensor_type: self.sensor_type,
            id1: self.id1,
            id2: self.id2,
            above: self.above,
            below: self.below,
            clear_at: self.clear_at,
            span: self.span,
            repeat_every: self.repeat_every,
            webhook_url: self.webhook_url,
            webhook_secret: self.webhook_secret,
        }
    }

    /// The body that would create `rule` (with its secret, for merging).
    fn of(rule: &AlertRule) -> Self {
        let (above, below, clear_at) = match &rule.condition {
            Condition::Threshold(t) => match t.comparison {
                datastream_domain::alert::Comparison::Above => (Some(t.limit), None, t.clear_at),
                datastream_domain::alert::Comparison::Below => (None, Some(t.limit), t.clear_at),
            },
            Condition::Silence { .. } => (None, None, None),
        };
        Self {
            name: Some(rule.name.clone()),
            kind: Some(rule.condition.kind().to_owned()),
            sensor_type: Some(rule.selection.sensor_type.as_str().to_owned()),
            id1: rule.selection.id1.as_ref().map(|i| i.as_str().to_owned()),
            id2: rule.selection.id2.map(|i| i64::from(i.get())),
            above,
            below,
            clear_at,
            span: Some(format_span(rule.condition.span())),
            repeat_every: rule.repeat_every.map(format_span),
            webhook_url: rule.webhook.as_ref().map(|w| w.url.clone()),
            webhook_secret: rule.webhook.as_ref().map(|w| w.secret.clone()),
        }
    }
}

/// A rule as stored (the webhook secret never leaves the server).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertRuleDto {
    /// The rule's id.
    pub id: i64,
    /// Bumped on every change.
    pub revision: i64,
    /// Its name.
    pub name: String,
    /// `threshold` or `silence`.
    pub kind: String,
    /// The sensor type watched.
    pub sensor_type: String,
    /// Only this id1, or null.
    pub id1: Option<String>,
    /// Only this id2, or null.
    pub id2: Option<i32>,
    /// Threshold: the upper limit, or null.
    pub above: Option<f64>,
    /// Threshold: the lower limit, or null.
    pub below: Option<f64>,
    /// Threshold: the resolving value, or null.
    pub clear_at: Option<f64>,
    /// The rule's `for`.
    #[serde(rename = "for")]
    pub span: String,
    /// The repeat period, or null.
    pub repeat_every: Option<String>,
    /// The webhook, or null.
    pub webhook_url: Option<String>,
}

impl From<&AlertRule> for AlertRuleDto {
    fn from(rule: &AlertRule) -> Self {
        let body = AlertRuleBody::of(rule);
        Self {
            id: rule.id,
            revision: rule.revision,
            name: rule.name.clone(),
            kind: rule.condition.kind().to_owned(),
            sensor_type: rule.selection.sensor_type.as_str().to_owned(),
            id1: body.id1,
            id2: rule.selection.id2.map(Id2::get),
            above: body.above,
            below: body.below,
            clear_at: body.clear_at,
            span: format_span(rule.condition.span()),
            repeat_every: body.repeat_every,
            webhook_url: body.webhook_url,
        }
    }
}

/// Checks a body into a rule; webhooks must be plain HTTP for now.
fn check(body: AlertRuleBody) -> Result<AlertRule, ApiError> {
    body.draft()
        .check()
        .map_err(|e| ApiError::bad_request(e.field(), e.message))
}

fn rule_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("id", "must be a positive whole number"))
}

/// Every rule, by id.
#[utoipa::path(get, path = "/api/v1/alert-rules", operation_id = "list_alert_rules", tag = "alerts",
    responses((status = 200, description = "Every rule", body = Vec<AlertRuleDto>)))]
pub async fn list_rules(
    _user: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rules: Vec<AlertRuleDto> = state
        .store
        .alert_rules()
        .await?
        .iter()
        .filter(|(_, deleted)| !deleted)
        .map(|(rule, _)| AlertRuleDto::from(rule))
        .collect();
    Ok(HttpResponse::Ok().json(rules))
}

/// Creates a rule (admin). Its selection may match no device yet.
#[utoipa::path(post, path = "/api/v1/alert-rules", operation_id = "create_alert_rule", tag = "alerts",
    request_body = AlertRuleBody,
    responses(
        (status = 201, description = "Created", body = AlertRuleDto),
        (status = 400, description = "Bad field, named", body = ErrorBody),
        NotAnAdmin,
    ))]
pub async fn create_rule(
    user: Admin,
    state: web::Data<AppState>,
    body: JsonBody<AlertRuleBody>,
) -> Result<HttpResponse, ApiError> {
    let rule = check(body.into_inner())?;
    let rule = state.store.create_alert_rule(&rule).await?;
    tracing::info!(by = %user.username, rule = rule.id, name = %rule.name, "alert rule created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/alert-rules/{}", rule.id)))
        .json(AlertRuleDto::from(&rule)))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/alert-rules/{id}", operation_id = "get_alert_rule", tag = "alerts",
    params(("id" = i64, Path, description = "The rule's id", minimum = 1)),
    responses(
        (status = 200, description = "The rule", body = AlertRuleDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
pub async fn get_rule(
    _user: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    let rule = state
        .store
        .alert_rule(id)
        .await?
        .ok_or_else(|| no_rule(id))?;
    Ok(HttpResponse::Ok().json(AlertRuleDto::from(&rule)))
}

/// Changes a rule (admin) as a JSON merge patch (RFC 7396): fields given
/// replace the rule's, `null` clears an optional one. The rule starts
/// afresh: its firing alerts resolve as `rule_changed`.
#[utoipa::path(patch, path = "/api/v1/alert-rules/{id}", operation_id = "update_alert_rule", tag = "alerts",
    params(("id" = i64, Path, description = "The rule's id", minimum = 1)),
    request_body = AlertRuleBody,
    responses(
        (status = 200, description = "The rule as changed", body = AlertRuleDto),
        (status = 400, description = "Bad field, named", body = ErrorBody),
        NotAnAdmin,
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
pub async fn update_rule(
    user: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    patch: JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    let current = state
        .store
        .alert_rule(id)
        .await?
        .ok_or_else(|| no_rule(id))?;
    let mut merged = match serde_json::to_value(AlertRuleBody::of(&current)) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(ApiError::Internal("could not represent the rule".into())),
    };
    let patch = patch.into_inner();
    // A new webhook URL without a secret must not inherit the old secret.
    if patch.contains_key("webhook_url") && !patch.contains_key("webhook_secret") {
        merged.remove("webhook_secret");
    }
    for (key, value) in patch {
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    merged.retain(|_, v| !v.is_null());
    let body: AlertRuleBody = serde_path_to_error::deserialize(serde_json::Value::Object(merged))
        .map_err(|e| {
        let field = e.path().to_string();
        ApiError::bad_request(
            if field == "." { "body".into() } else { field },
            e.inner().to_string(),
        )
    })?;
    let rule = check(body)?;
    let rule = state
        .store
        .replace_alert_rule(id, &rule)
        .await?
        .ok_or_else(|| no_rule(id))?;
    tracing::info!(by = %user.username, rule = id, revision = rule.revision, "alert rule changed");
    Ok(HttpResponse::Ok().json(AlertRuleDto::from(&rule)))
}

/// Deletes a rule (admin); its firing alerts resolve as `rule_deleted`
/// and its retained alert topics are cleared. Its history stays.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", operation_id = "delete_alert_rule", tag = "alerts",
    params(("id" = i64, Path, description = "The rule's id", minimum = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not an id", body = ErrorBody),
        NotAnAdmin,
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
pub async fn delete_rule(
    user: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    if !state.store.delete_alert_rule(id).await? {
        return Err(no_rule(id));
    }
    tracing::info!(by = %user.username, rule = id, "alert rule deleted");
    Ok(HttpResponse::NoContent().finish())
}

fn no_rule(id: i64) -> ApiError {
    ApiError::NotFound(format!("no alert rule {id}"))
}

/// One alert, from firing to resolution.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertDto {
    /// Its id.
    pub id: i64,
    /// The rule that fired it.
    pub rule_id: i64,
    /// The rule's name when it fired.
    pub rule_name: String,
    /// `threshold` or `silence`.
    pub kind: String,
    /// The device.
    pub sensor_type: String,
    /// The device.
    pub id1: String,
    /// The device.
    pub id2: i32,
    /// `firing` or `resolved`.
    pub state: String,
    /// Reading time of the reading that fired it (threshold), or of the
    /// device's last reading (silence).
    pub started_at: String,
    /// That reading's value.
    pub start_value: Option<f64>,
    /// Threshold: since when the condition held (reading time).
    pub since: Option<String>,
    /// When the alerter fired it.
    pub fired_at: String,
    /// When it resolved.
    pub resolved_at: Option<String>,
    /// The value of the reading that resolved it.
    pub resolved_value: Option<f64>,
    /// `reading`, `rule_changed` or `rule_deleted`.
    pub resolved_by: Option<String>,
}

impl From<AlertRecord> for AlertDto {
    fn from(a: AlertRecord) -> Self {
        Self {
            id: a.id,
            rule_id: a.rule_id,
            rule_name: a.rule_name,
            kind: a.kind,
            sensor_type: a.device.sensor_type.as_str().to_owned(),
            id1: a.device.id1.as_str().to_owned(),
            id2: a.device.id2.get(),
            state: if a.firing { "firing" } else { "resolved" }.to_owned(),
            started_at: format_timestamp(a.started_at),
            start_value: a.start_value,
            since: a.since.map(format_timestamp),
            fired_at: format_timestamp(a.fired_at),
            resolved_at: a.resolved_at.map(format_timestamp),
            resolved_value: a.resolved_value,
            resolved_by: a.resolved_by,
        }
    }
}

/// A page of alerts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertsPage {
    /// The alerts, newest first unless `order=asc`.
    pub data: Vec<AlertDto>,
    /// Paging.
    pub page: crate::routes::readings::PageInfo,
}

/// The parameters of `GET /api/v1/alerts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertListParams {
    /// `firing` or `resolved`.
    #[param(value_type = Option<String>, pattern = "^(firing|resolved)$")]
    state: Option<String>,
    /// Only this sensor type.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$")]
    sensor_type: Option<String>,
    /// Only this id1.
    #[param(pattern = r"^[A-Z]{1,32}$")]
    id1: Option<String>,
    /// Only this id2.
    #[param(value_type = Option<u32>, maximum = 2147483647)]
    id2: Option<String>,
    /// Only this rule's alerts.
    #[param(value_type = Option<u64>, minimum = 1)]
    rule_id: Option<String>,
    /// Fired at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Fired before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// Page size (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// By firing order: `asc` or `desc` (default).
    #[param(value_type = Option<crate::routes::readings::SortOrder>)]
    order: Option<String>,
    /// `next_cursor` of the previous page, unchanged.
    cursor: Option<String>,
}

impl AlertListParams {
    /// The firing alerts a stream (`alert_stream.rs`) starts with.
    pub(crate) fn for_stream(
        sensor_type: Option<String>,
        id1: Option<String>,
        id2: Option<String>,
        rule_id: Option<String>,
        most: u32,
    ) -> Self {
        Self {
            state: Some("firing".into()),
            sensor_type,
            id1,
            id2,
            rule_id,
            limit: Some(most.to_string()),
            order: Some("asc".into()),
            ..Self::default()
        }
    }

    /// The store's question, every parameter checked.
    pub(crate) fn query(&self) -> Result<AlertQuery, ApiError> {
        let bad = |field: &'static str, message: String| ApiError::bad_request(field, message);
        let time = |field: &'static str, text: &Option<String>| {
            text.as_deref()
                .map(|t| parse_timestamp(t).map_err(|e| bad(field, e.to_string())))
                .transpose()
        };
        let positive = |field: &'static str, text: &Option<String>, max: i64| {
            text.as_deref()
                .map(|t| {
                    t.parse::<i64>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| {
                            bad(field, format!("must be a whole number from 1 to {max}"))
                        })
                })
                .transpose()
        };
        let order = match self.order.as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(_) => return Err(bad("order", "must be asc or desc".into())),
        };
        Ok(AlertQuery {
            sensor_type: self
                .sensor_type
                .as_deref()
                .map(SensorType::parse)
                .transpose()
                .map_err(|e| bad("sensor_type", e.to_string()))?,
            id1: self
                .id1
                .as_deref()
                .map(Id1::parse)
                .transpose()
                .map_err(|e| bad("id1", e.to_string()))?,
            id2: self
                .id2
                .as_deref()
                .map(Id2::parse)
                .transpose()
                .map_err(|e| bad("id2", e.to_string()))?,
            rule_id: positive("rule_id", &self.rule_id, i64::MAX)?,
            firing: match self.state.as_deref() {
                None => None,
                Some("firing") => Some(true),
                Some("resolved") => Some(false),
                Some(_) => return Err(bad("state", "must be firing or resolved".into())),
            },
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            order,
            after_id: positive("cursor", &self.cursor, i64::MAX).map_err(|_| {
                bad(
                    "cursor",
                    "is not a cursor this API issued (pass next_cursor back unchanged)".into(),
                )
            })?,
            limit: positive("limit", &self.limit, 10_000)?.map_or(100, |n| n as u32),
        })
    }
}

/// The alert history, newest first, filtered like readings (`state`,
/// device, `rule_id`, `from`/`to` on firing time) and paged by cursor.
#[utoipa::path(get, path = "/api/v1/alerts", operation_id = "list_alerts", tag = "alerts",
    params(AlertListParams),
    responses(
        (status = 200, description = "A page of alerts", body = AlertsPage),
        (status = 400, description = "Bad parameter, named", body = ErrorBody),
    ))]
pub async fn list_alerts(
    _user: Authenticated,
    state: web::Data<AppState>,
    params: web::Query<AlertListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.query()?;
    let alerts = state.store.alerts(&query).await?;
    let next_cursor = (alerts.len() == query.limit as usize)
        .then(|| alerts.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(AlertsPage {
        data: alerts.into_iter().map(AlertDto::from).collect(),
        page: crate::routes::readings::PageInfo {
            limit: query.limit,
            next_cursor,
        },
    }))
}

/// One alert.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", operation_id = "get_alert", tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id", minimum = 1)),
    responses(
        (status = 200, description = "The alert", body = AlertDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
pub async fn get_alert(
    _user: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    let alert = state
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(HttpResponse::Ok().json(AlertDto::from(alert)))
}

/// One delivery attempt of a notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDto {
    /// The notification (its `id` in the payload).
    pub notification_id: i64,
    /// `mqtt` or `webhook`.
    pub channel: String,
    /// 1 for the first attempt on the channel.
    pub attempt: i32,
    /// When it was made.
    pub at: String,
    /// Whether the receiver took it.
    pub ok: bool,
    /// What happened: `PUBACK`, `HTTP 200`, `could not connect`…
    pub outcome: String,
}

impl From<DeliveryAttempt> for DeliveryDto {
    fn from(d: DeliveryAttempt) -> Self {
        Self {
            notification_id: d.notification_id,
            channel: d.channel.to_owned(),
            attempt: d.attempt,
            at: format_timestamp(d.at),
            ok: d.ok,
            outcome: d.outcome,
        }
    }
}

/// Every delivery attempt of an alert's notifications, oldest first.
#[utoipa::path(get, path = "/api/v1/alerts/{id}/deliveries", operation_id = "list_alert_deliveries", tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id", minimum = 1)),
    responses(
        (status = 200, description = "Attempts, oldest first", body = Vec<DeliveryDto>),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
pub async fn deliveries(
    _user: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    if state.store.alert(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    }
    let attempts: Vec<DeliveryDto> = state
        .store
        .alert_deliveries(id)
        .await?
        .into_iter()
        .map(DeliveryDto::from)
        .collect();
    Ok(HttpResponse::Ok().json(attempts))
}
