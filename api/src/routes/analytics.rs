//! `/api/v1/readings/aggregate` (time buckets) and `/api/v1/devices` (the
//! device catalog). Any logged-in user may read them; nothing here writes.

use crate::cursor::{CursorCodec, GroupCursorKind};
use crate::reading_conditions::{ConditionKind, ConditionsOf, ConditionsQuery, EndpointParams};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use datastream_domain::analytics::{
    AggregateParams as AggregateInput, AggregateQuery, Bucket, Device, DeviceQuery, GroupBy,
    GroupKey, GroupPage,
};
use datastream_domain::timestamp::timestamp_text;
use datastream_http::{ApiError, Authenticated, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The own parameters of `/api/v1/readings/aggregate`, beside its
/// conditions (`reading_conditions.rs`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AggregateParams {
    /// Bucket width, `1s` to `30d`; buckets are aligned to the Unix epoch
    /// in UTC. Omitted: the shortest of 1s, 2s, 5s, 10s, 15s, 30s, 1m, 2m,
    /// 5m, 10m, 15m, 30m, 1h, 2h, 3h, 6h, 12h, 1d, 2d, 7d, 30d that makes at
    /// most `max_points` buckets. At most `max_points` × 10 buckets.
    #[param(pattern = r"^[1-9][0-9]{0,5}[smhd]$", example = "1h")]
    interval: Option<String>,
    /// `device` (default: `sensor_type`, `id1`, `id2`), `sensor_type`,
    /// `id1` or `none`. Fields not grouped on are absent from the answer.
    #[param(value_type = Option<GroupByDto>)]
    group_by: Option<String>,
    /// The most buckets an automatic interval makes (default 1000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    max_points: Option<String>,
    /// Groups per answer (default 1000): every bucket of at most this many
    /// groups, by key (sensor type, `id1`, `id2`). At most 1,000,000
    /// buckets in all.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// `page.next_cursor` of the previous answer: the groups after its
    /// last.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,512}$")]
    cursor: Option<String>,
}

impl EndpointParams for AggregateParams {
    // Rollups keep device, type and time: a condition on anything else
    // could not be answered from them, and is refused rather than ignored.
    const HONOURS: &'static [ConditionKind] = &[ConditionKind::Device, ConditionKind::Window];
    const REFUSAL: &'static str = "cannot be applied to aggregates";
}

/// How buckets are grouped.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documents the `group_by` parameter; requests read it as text
pub enum GroupByDto {
    /// One group per device.
    Device,
    /// One group per sensor type.
    SensorType,
    /// One group per `id1`.
    Id1,
    /// One group.
    None,
}

/// The cursor kind of a grouping's pages.
fn cursor_kind(group_by: GroupBy) -> GroupCursorKind {
    match group_by {
        GroupBy::Device | GroupBy::None => GroupCursorKind::ByDevice,
        GroupBy::SensorType => GroupCursorKind::BySensorType,
        GroupBy::Id1 => GroupCursorKind::ById1,
    }
}

/// A group cursor of `kind` from the request, or a 400 naming `cursor`.
fn decode_cursor(
    cursors: &CursorCodec,
    text: Option<&str>,
    kind: GroupCursorKind,
) -> Result<Option<GroupKey>, ApiError> {
    text.map(|text| {
        cursors.decode_group(text, kind).ok_or_else(|| {
            ApiError::bad_request(
                "cursor",
                "must be a next_cursor this endpoint returned for the same grouping",
            )
        })
    })
    .transpose()
}

/// The aggregate query a request describes.
fn aggregate_query(
    request: &ConditionsQuery<AggregateParams>,
    cursors: &CursorCodec,
) -> Result<AggregateQuery, ApiError> {
    let own = &request.own;
    let group_by = own
        .group_by
        .as_deref()
        .map(GroupBy::parse)
        .transpose()?
        .unwrap_or_default();
    let after = decode_cursor(cursors, own.cursor.as_deref(), cursor_kind(group_by))?;
    let params = AggregateInput {
        filter: request.conditions.filter_params(),
        interval: own.interval.as_deref(),
        group_by: own.group_by.as_deref(),
        max_points: own.max_points.as_deref(),
        limit: own.limit.as_deref(),
        after,
    };
    Ok(AggregateQuery::parse(params, Utc::now())?)
}

/// One bucket of one group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BucketDto {
    /// Start of the bucket (inclusive), UTC.
    #[serde(with = "timestamp_text")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00Z")]
    pub bucket: DateTime<Utc>,
    /// Sensor type, when grouped by device or sensor type.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sensor_type: Option<String>,
    /// `id1`, when grouped by device or `id1`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id1: Option<String>,
    /// `id2`, when grouped by device.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id2: Option<i32>,
    /// Readings in the bucket (at least 1: empty buckets are left out).
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub avg: f64,
    /// Sum of the values.
    pub sum: f64,
    /// The value with the earliest timestamp (on a tie, the smaller value).
    pub first: f64,
    /// The value with the latest timestamp (on a tie, the larger value).
    pub last: f64,
}

impl From<Bucket> for BucketDto {
    fn from(b: Bucket) -> Self {
        let a = b.aggregate;
        Self {
            bucket: b.start,
            sensor_type: b.key.sensor_type,
            id1: b.key.id1,
            id2: b.key.id2,
            count: a.count,
            min: a.min,
            max: a.max,
            avg: a.avg(),
            sum: a.sum.value(),
            first: a.first.value,
            last: a.last.value,
        }
    }
}

/// Body of `GET /api/v1/readings/aggregate`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AggregateResponse {
    /// The bucket width used (`1h`, `15m`, …).
    #[schema(example = "1h")]
    pub interval: String,
    /// Buckets in time order, then by group.
    pub data: Vec<BucketDto>,
    /// Paging by group.
    pub page: GroupPageDto,
}

/// Where a group-paged answer stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupPageDto {
    /// Groups (devices) per answer, as used.
    pub limit: u32,
    /// Pass as `cursor` for the next groups (devices); null on the last
    /// page.
    pub next_cursor: Option<String>,
}

/// Time-bucket aggregates (count, min, max, avg, sum, first, last) of the
/// readings matching the filters, exactly as a `GROUP BY` over the stored
/// readings would give them.
#[utoipa::path(get, path = "/api/v1/readings/aggregate", operation_id = "aggregate_readings", tag = "analytics",
    params(ConditionsOf<AggregateParams>, AggregateParams),
    responses(
        (status = 200, description = "Non-empty buckets, in time order", body = AggregateResponse),
        (status = 400, description = "A bad parameter, named in `field` (`interval`, `group_by`, `max_points`, a filter); `interval` also when it makes more than `max_points` × 10 buckets", body = ErrorBody),
    ))]
pub async fn aggregate(
    _user: Authenticated,
    state: web::Data<AppState>,
    request: ConditionsQuery<AggregateParams>,
) -> Result<HttpResponse, ApiError> {
    let query = aggregate_query(&request, &state.cursors)?;
    let page = state.reads.aggregate(&query).await?;
    let kind = cursor_kind(query.group_by());
    Ok(HttpResponse::Ok().json(AggregateResponse {
        interval: query.interval().label(),
        data: page.items.into_iter().map(BucketDto::from).collect(),
        page: GroupPageDto {
            limit: query.page().limit as u32,
            next_cursor: page
                .next_after
                .map(|key| state.cursors.encode_group(kind, &key)),
        },
    }))
}

/// The own parameters of `/api/v1/devices`, beside its device conditions
/// (`reading_conditions.rs`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DevicesParams {
    /// Only devices whose latest reading is older than this span (`10m`,
    /// `2h`): the ones that went quiet.
    // No example: Swagger UI would fill it in, and on a fresh `up` no
    // device has been quiet that long.
    #[param(pattern = r"^[1-9][0-9]{0,5}[smhd]$")]
    silent_for: Option<String>,
    /// Only devices whose `id1/id2` starts with this: `AB` (any id1
    /// starting so, letters compared in upper case), or `ABC/1` (id1 `ABC`,
    /// id2 starting with 1).
    #[param(pattern = r"^[A-Za-z]{1,32}(/[0-9]{0,10})?$", example = "ABC")]
    search: Option<String>,
    /// Devices per answer (default 1000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// `page.next_cursor` of the previous answer: the devices after its
    /// last.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,512}$")]
    cursor: Option<String>,
}

impl EndpointParams for DevicesParams {
    const HONOURS: &'static [ConditionKind] = &[ConditionKind::Device];
    const REFUSAL: &'static str =
        "does not apply to the device catalog (use silent_for for devices that went quiet)";
}

/// One device in the catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceDto {
    /// Sensor type.
    pub sensor_type: String,
    /// Device id part 1.
    pub id1: String,
    /// Device id part 2.
    pub id2: i32,
    /// Its earliest stored reading.
    #[serde(with = "timestamp_text")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-25T07:00:00.123456Z")]
    pub first_seen: DateTime<Utc>,
    /// Its latest stored reading.
    #[serde(with = "timestamp_text")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-25T09:41:00.5Z")]
    pub last_seen: DateTime<Utc>,
    /// The value of that reading.
    pub last_value: f64,
    /// Readings stored.
    pub count: u64,
}

impl From<Device> for DeviceDto {
    fn from(d: Device) -> Self {
        Self {
            sensor_type: d.sensor_type,
            id1: d.id1,
            id2: d.id2,
            first_seen: d.first_seen,
            last_seen: d.last_seen,
            last_value: d.last_value,
            count: d.count,
        }
    }
}

/// Body of `GET /api/v1/devices`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicesResponse {
    /// Devices by sensor type, `id1`, `id2`.
    pub data: Vec<DeviceDto>,
    /// Paging.
    pub page: GroupPageDto,
}

/// The devices that have stored readings, one row per (`sensor_type`,
/// `id1`, `id2`), answered from the device catalog rather than the
/// readings table.
#[utoipa::path(get, path = "/api/v1/devices", operation_id = "list_devices", tag = "analytics",
    params(ConditionsOf<DevicesParams>, DevicesParams),
    responses(
        (status = 200, description = "Matching devices", body = DevicesResponse),
        (status = 400, description = "A bad parameter, named in `field`", body = ErrorBody),
    ))]
pub async fn devices(
    _user: Authenticated,
    state: web::Data<AppState>,
    request: ConditionsQuery<DevicesParams>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let own = &request.own;
    let filter = request.conditions.filter_params();
    let query = DeviceQuery::parse(filter, own.silent_for.as_deref(), now)?
        .with_search(own.search.as_deref())?;
    let after = decode_cursor(
        &state.cursors,
        own.cursor.as_deref(),
        GroupCursorKind::Devices,
    )?;
    let query = query.with_page(GroupPage::parse(own.limit.as_deref(), after)?);
    let page = state.reads.devices(&query, now).await?;
    Ok(HttpResponse::Ok().json(DevicesResponse {
        data: page.items.into_iter().map(DeviceDto::from).collect(),
        page: GroupPageDto {
            limit: query.page().limit as u32,
            next_cursor: page
                .next_after
                .map(|key| state.cursors.encode_group(GroupCursorKind::Devices, &key)),
        },
    }))
}
