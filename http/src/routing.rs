//! Routing defaults every service registers: query and path errors as
//! 400s naming the parameter, 405 with `Allow` for a method a path does not
//! take, and a JSON 404 for everything else.

use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};

/// The handler for a method a path does not take: 405, naming the methods
/// it does take in the `Allow` header.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        })
    })
}

/// A resource at `$path` answering each listed method with its handler,
/// and any other method with 405 and an `Allow` header naming the listed
/// ones: `resource!("/users", GET => users::list, POST => users::create)`.
#[macro_export]
macro_rules! resource {
    ($path:expr, $($method:ident => $handler:expr),+ $(,)?) => {
        actix_web::web::resource($path)
            $(.route($crate::resource!(@method $method).to($handler)))+
            .default_service($crate::routing::method_not_allowed(
                $crate::resource!(@allow $($method),+),
            ))
    };
    (@method GET) => { actix_web::web::get() };
    (@method POST) => { actix_web::web::post() };
    (@method PUT) => { actix_web::web::put() };
    (@method PATCH) => { actix_web::web::patch() };
    (@method DELETE) => { actix_web::web::delete() };
    (@allow $first:ident $(, $rest:ident)*) => {
        concat!(stringify!($first) $(, ", ", stringify!($rest))*)
    };
}

/// `/swagger-ui` (as typed, without the slash) redirects to Swagger UI at
/// `/swagger-ui/`, where it is served.
pub fn swagger_ui_redirect(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/swagger-ui")
            .route(web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((actix_web::http::header::LOCATION, "/swagger-ui/"))
                    .finish()
            }))
            .default_service(method_not_allowed("GET")),
    );
}

/// Makes query string and path errors API errors (400 naming the field;
/// JSON bodies are read by [`JsonBody`](crate::json_body::JsonBody), which
/// names theirs). Every server of the project registers this so bad input
/// is answered the same way everywhere.
pub fn input_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|err, _req| query_error(&err.to_string()).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|err, req| {
        // Every path of the project has one parameter: name it.
        let field = req
            .match_info()
            .iter()
            .next()
            .map_or("path", |(name, _)| name);
        ApiError::bad_request(field, err.to_string()).into()
    }));
}

/// Names the parameter serde complained about when it can tell.
pub fn query_error(message: &str) -> ApiError {
    let field = message
        .split('`')
        .nth(1)
        .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or("query");
    ApiError::bad_request(field, message)
}

/// Every unknown path: a JSON 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
