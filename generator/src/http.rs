//! The generator service's REST API on `GENERATOR_LISTEN`: list, create,
//! change and delete generators, with the same JWT as the main API
//! (viewers read, admins change), its own OpenAPI document and Swagger UI,
//! and `/healthz`, `/readyz`, `/metrics`.
//!
//! Handlers only translate HTTP to [`GeneratorService`] calls; every change
//! goes through the broker like a config message would.

use crate::config::parse_config;
use crate::service::{GeneratorService, GeneratorView, ServiceError};
use crate::status::{GeneratorState, GeneratorStatus};
use crate::GeneratorConfig;
use actix_web::{web, HttpResponse};
use async_trait::async_trait;
use datastream_http::health;
use datastream_http::openapi::{BearerAuth, NotAnAdmin};
use datastream_http::resource;
use datastream_http::routing::{input_errors, not_found};
use datastream_http::{
    Admin, ApiError, Authenticated, ComponentState, ErrorBody, ErrorDetail, JsonBody,
    ReadinessCheck, Server, TokenVerifier,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

/// Body of `POST /api/v1/generators`, for the OpenAPI document: requests
/// are read field by field by [`parse_config`], which names the field at
/// fault. `null` means absent. Rules across fields, answered with a 400
/// naming the field: `id2_end` from `id2` to `id2` + 999,999;
/// `frequency_hz` × devices at most 200,000; `min` < `max` with a finite
/// `max - min`; `noise` at most `max - min`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the body; see above
pub struct NewGenerator {
    /// Unique name across all fleets.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "line-1")]
    pub name: String,
    /// The fleet that runs it (default: the fleet of the process answering).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "default")]
    pub fleet: Option<String>,
    /// The one sensor type it publishes.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$", example = "vibration")]
    pub sensor_type: String,
    /// Its devices' id1.
    #[schema(pattern = r"^[A-Z]{1,32}$", example = "LINE")]
    pub id1: String,
    /// The (first) device's id2.
    #[schema(minimum = 0, maximum = 2147483647, example = 1)]
    pub id2: i64,
    /// The last device's id2, for a generator standing for `id2..=id2_end`.
    #[schema(minimum = 0, maximum = 2147483647)]
    pub id2_end: Option<i64>,
    /// Readings per second per device.
    #[schema(minimum = 0.001, maximum = 10000.0, example = 5.0)]
    pub frequency_hz: f64,
    /// A paused generator publishes nothing (default false).
    pub paused: Option<bool>,
    /// How values move (default `sine`).
    pub model: Option<ModelName>,
    /// Lowest value (default: the sensor type's typical range).
    #[schema(minimum = -1.7976931348623157e308, maximum = 1.7976931348623157e308)]
    pub min: Option<f64>,
    /// Highest value.
    #[schema(minimum = -1.7976931348623157e308, maximum = 1.7976931348623157e308)]
    pub max: Option<f64>,
    /// Jitter (sine) or largest step (random walk).
    #[schema(minimum = 0.0, maximum = 1.7976931348623157e308)]
    pub noise: Option<f64>,
}

/// How a generator's values move.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents the `model` field
pub enum ModelName {
    /// A daily cycle plus noise.
    Sine,
    /// A bounded random walk.
    RandomWalk,
}

/// Body of `PATCH /api/v1/generators/{name}`: every field optional, `null`
/// meaning absent; the same rules across fields as [`NewGenerator`].
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body; requests are read by `apply_patch`
pub struct GeneratorPatch {
    /// Readings per second per device.
    #[schema(minimum = 0.001, maximum = 10000.0, example = 5.0)]
    pub frequency_hz: Option<f64>,
    /// Pause or resume.
    pub paused: Option<bool>,
    /// How values move.
    pub model: Option<ModelName>,
    /// Lowest value.
    #[schema(minimum = -1.7976931348623157e308, maximum = 1.7976931348623157e308)]
    pub min: Option<f64>,
    /// Highest value.
    #[schema(minimum = -1.7976931348623157e308, maximum = 1.7976931348623157e308)]
    pub max: Option<f64>,
    /// Jitter (sine) or largest step (random walk).
    #[schema(minimum = 0.0, maximum = 1.7976931348623157e308)]
    pub noise: Option<f64>,
    /// Move the generator to another fleet.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub fleet: Option<String>,
}

/// The generator service's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "datastream generators", description = "Simulated sensors: list, create, change and delete generators. Log in on the main API (`POST /api/v1/auth/login`) and paste the token into Authorize."),
    paths(list, create, get_one, update, delete, health::healthz, health::readyz, health::metrics),
    components(schemas(GeneratorConfig, GeneratorView, GeneratorStatus, GeneratorState, NewGenerator, ModelName, GeneratorPatch, ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "generators", description = "Simulated sensors"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct GeneratorApiDoc;

/// Registers the generator routes, health, docs and JSON 404s.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(input_errors)
        .service(resource!("/api/v1/generators", GET => list, POST => create))
        .service(resource!("/api/v1/generators/{name}",
            GET => get_one, PATCH => update, DELETE => delete))
        .configure(health::configure)
        .configure(datastream_http::routing::swagger_ui_redirect)
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/swagger-ui/{_:.*}")
                .url("/api-docs/openapi.json", GeneratorApiDoc::openapi()),
        )
        .default_service(web::to(not_found));
}

/// Serves the generator API on `listener` until `shutdown`.
pub fn start_server(
    listener: impl Into<datastream_http::HttpListener>,
    service: GeneratorService,
    verifier: TokenVerifier,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    let readiness: datastream_http::SharedReadiness =
        std::sync::Arc::new(BrokerReadiness(service.clone()));
    let service = web::Data::new(service);
    let verifier = web::Data::new(verifier);
    let readiness = web::Data::new(readiness);
    let prometheus = web::Data::new(prometheus);
    Server::serve(listener, 1, "generator API", shutdown, move |cfg| {
        cfg.app_data(service.clone())
            .app_data(verifier.clone())
            .app_data(readiness.clone())
            .app_data(prometheus.clone())
            .configure(configure);
    })
}

/// Ready while the broker connection is up.
struct BrokerReadiness(GeneratorService);

#[async_trait]
impl ReadinessCheck for BrokerReadiness {
    async fn check(&self) -> Vec<ComponentState> {
        vec![ComponentState {
            name: "mqtt",
            problem: (!self.0.connected()).then(|| "not connected to the MQTT broker".to_owned()),
        }]
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(e) => ApiError::bad_request(e.field(), e.to_string()),
            ServiceError::NotFound(_) => ApiError::NotFound(error.to_string()),
            ServiceError::Conflict(_) => ApiError::Conflict(error.to_string()),
            ServiceError::Unconfirmed(_) | ServiceError::BrokerUnreachable(_) => {
                ApiError::Unavailable("MQTT broker")
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn body_bytes(body: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("a JSON value always serializes")
}

/// Every generator, in every fleet, with its status.
#[utoipa::path(get, path = "/api/v1/generators", operation_id = "list_generators", tag = "generators",
    responses(
        (status = 200, description = "All generators", body = Vec<GeneratorView>),
    ))]
pub async fn list(
    _user: Authenticated,
    service: web::Data<GeneratorService>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service.list()))
}

/// Creates a generator (admin). `fleet` picks the process that runs it
/// (default: the fleet of the process answering).
#[utoipa::path(post, path = "/api/v1/generators", operation_id = "create_generator", tag = "generators",
    request_body(content = NewGenerator, description = "`name`, `sensor_type`, `id1`, `id2` and `frequency_hz` are required; the rest default"),
    responses(
        (status = 201, description = "Created", body = GeneratorView),
        (status = 400, description = "Bad field, named", body = ErrorBody),
        NotAnAdmin,
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 503, description = "The broker did not confirm", body = ErrorBody),
    ))]
pub async fn create(
    user: Admin,
    service: web::Data<GeneratorService>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    // Created over this process's API, it runs here unless it says otherwise.
    let spec =
        parse_config(None, &body_bytes(&body), service.fleet_name()).map_err(ServiceError::from)?;
    let created = service.create(spec).await?;
    tracing::info!(by = %user.username, generator = created.config.name, "generator created");
    Ok(HttpResponse::Created().json(created))
}

/// One generator.
#[utoipa::path(get, path = "/api/v1/generators/{name}", operation_id = "get_generator", tag = "generators",
    params(("name" = String, Path, description = "Generator name", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The generator", body = GeneratorView),
        (status = 404, description = "No such generator", body = ErrorBody),
    ))]
pub async fn get_one(
    _user: Authenticated,
    service: web::Data<GeneratorService>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = service
        .get(&name)
        .ok_or_else(|| ServiceError::NotFound(name.into_inner()))?;
    Ok(HttpResponse::Ok().json(view))
}

/// Changes a generator's rate, pause, value model or fleet (admin).
#[utoipa::path(patch, path = "/api/v1/generators/{name}", operation_id = "update_generator", tag = "generators",
    params(("name" = String, Path, description = "Generator name", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    request_body = GeneratorPatch,
    responses(
        (status = 200, description = "The changed generator", body = GeneratorView),
        (status = 400, description = "Bad field, named", body = ErrorBody),
        NotAnAdmin,
        (status = 404, description = "No such generator", body = ErrorBody),
        (status = 503, description = "The broker did not confirm", body = ErrorBody),
    ))]
pub async fn update(
    user: Admin,
    service: web::Data<GeneratorService>,
    name: web::Path<String>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let changed = service.update(&name, &body_bytes(&body)).await?;
    tracing::info!(by = %user.username, generator = %name, "generator changed");
    Ok(HttpResponse::Ok().json(changed))
}

/// Deletes a generator (admin): it stops, and its retained config and
/// status are cleared.
#[utoipa::path(delete, path = "/api/v1/generators/{name}", operation_id = "delete_generator", tag = "generators",
    params(("name" = String, Path, description = "Generator name", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted"),
        NotAnAdmin,
        (status = 404, description = "No such generator", body = ErrorBody),
        (status = 503, description = "The broker did not confirm", body = ErrorBody),
    ))]
pub async fn delete(
    user: Admin,
    service: web::Data<GeneratorService>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service.delete(&name).await?;
    tracing::info!(by = %user.username, generator = %name, "generator deleted");
    Ok(HttpResponse::NoContent().finish())
}
