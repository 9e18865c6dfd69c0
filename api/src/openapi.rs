//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! request/response types, and the Swagger UI that serves it (all assets
//! compiled into the binary: no network at build time or in the browser).

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{auth, health, readings, users};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "datastream", description = "Sensor readings: query, edit and delete them; manage users."),
    paths(
        auth::login,
        readings::list, readings::get_one, readings::update, readings::delete,
        users::list, users::create, users::delete,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(
        readings::ReadingDto, readings::ReadingsPage, readings::PageInfo, readings::ReadingPatch,
        auth::LoginRequest, auth::LoginResponse,
        users::UserDto, users::NewUser, users::RoleDto, readings::SortOrder,
        ErrorBody, ErrorDetail,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in for a bearer token"),
        (name = "readings", description = "Sensor readings"),
        (name = "users", description = "Users and roles (admin)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer_auth` scheme (used by every OpenAPI document of the
/// project) Swagger UI's Authorize button uses.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
