//! The dashboard at `/`: a page, its script and styles, and the chart
//! library (uPlot, vendored from the npm registry at a pinned version,
//! `scripts/vendor-uplot.sh`), all compiled into the binary. Nothing is
//! fetched from another host, at build time or in the browser.
//!
//! The page logs in through the API, keeps its token in session storage
//! and sends it as a bearer header (the live stream is read with `fetch`,
//! since `EventSource` cannot send one). The files need no auth: what they
//! show comes from the API, which checks the token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use datastream_http::ApiError;

/// A file served under `/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/dashboard.js"),
    },
    Asset {
        name: "api-client.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/api-client.js"),
    },
    Asset {
        name: "page-parts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/page-parts.js"),
    },
    Asset {
        name: "manage.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/manage.js"),
    },
    Asset {
        name: "alerts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/alerts.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/dashboard.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/uPlot.min.css"),
    },
];

const INDEX: &[u8] = include_bytes!("../../assets/dashboard/index.html");

/// Scripts, styles and requests from this origin only; no inline script.
/// (uPlot sizes its elements through `element.style`, which `style-src`
/// does not govern; the favicon is an empty `data:` URL.)
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// `GET /`: the dashboard page.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX)
}

/// `GET /assets/{name}`: one of the page's files.
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no asset {name}")))?;
    Ok(HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Revalidated each time: a new binary may bring new files.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body))
}
