//! What every OpenAPI document of the project shares.

use std::collections::BTreeMap;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify};

/// Tags of the operations anyone may call: logging in, and health and
/// metrics.
const OPEN_TAGS: [&str; 2] = ["auth", "operations"];

/// The bearer token every other operation takes: adds the `bearer_auth`
/// scheme (Swagger UI's Authorize button uses it) and, to each operation
/// not tagged `auth` or `operations`, the scheme as its security and the
/// 401 it answers without a valid token. Declared once here rather than on
/// every handler.
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
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if !is_open(operation) {
                    require_token(operation);
                }
            }
        }
    }
}

/// Whether anyone may call `operation`.
fn is_open(operation: &Operation) -> bool {
    operation
        .tags
        .iter()
        .flatten()
        .any(|tag| OPEN_TAGS.contains(&tag.as_str()))
}

/// Makes `operation` take a bearer token, and answer 401 without one.
fn require_token(operation: &mut Operation) {
    operation.security = Some(vec![SecurityRequirement::new(
        "bearer_auth",
        Vec::<String>::new(),
    )]);
    operation
        .responses
        .responses
        .entry("401".to_owned())
        .or_insert(error_response("Missing, invalid or expired token").into());
}

/// The 403 an admin-only operation answers a viewer with: list it in the
/// `responses(...)` of every handler that takes [`crate::auth::Admin`].
pub struct NotAnAdmin;

impl IntoResponses for NotAnAdmin {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([("403".to_owned(), error_response("Not an admin").into())])
    }
}

/// A response whose body is an `ErrorBody`.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
