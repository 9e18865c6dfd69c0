//! Headers every response of every service carries: no framing (no
//! clickjacking of Swagger UI or the dashboard), no referrer leaving the
//! page, no content sniffing, and a Content-Security-Policy where the
//! handler set none: Swagger UI's own, and for everything else (JSON,
//! metrics) one that allows nothing at all.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// Swagger UI: its script files from this origin (no inline script), its
/// inline styles and `data:` icons, requests to this origin only.
pub const SWAGGER_UI_CSP: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
/// Responses that are not pages.
pub const NOTHING_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Middleware (`middleware::from_fn`) adding the headers.
pub async fn add(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let swagger_ui = req.path().starts_with("/swagger-ui");
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = if swagger_ui {
            SWAGGER_UI_CSP
        } else {
            NOTHING_CSP
        };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
    }
    Ok(response)
}
