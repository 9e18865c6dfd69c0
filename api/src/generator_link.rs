//! The generator service as the API reaches it: the dashboard manages
//! generators through `/api/v1/generators` on the API's own origin, and the
//! API passes each request on with the caller's token, so the page needs
//! no second origin (nor CORS) and the generator service still decides who
//! may do what.

use actix_web::http::StatusCode;
use std::time::Duration;

/// How long a request to the generator service may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer passed back (a list of every generator is far less).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why the generator service's URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("GENERATORS_URL must be http://host:port of the generator service's REST API, got {0:?}")]
pub struct GeneratorUrlError(String);

/// What went wrong passing a request on.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorLinkError {
    /// The service did not answer (down, or too slow).
    #[error("the generator service at {base} did not answer: {reason}")]
    Unreachable {
        /// Its URL.
        base: String,
        /// What the client said.
        reason: String,
    },
    /// Its answer was larger than [`MAX_ANSWER_BYTES`].
    #[error("the generator service's answer was over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// An answer of the generator service, to pass back as it is.
pub struct GeneratorAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its content type, if it gave one.
    pub content_type: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// The generator service's REST API.
#[derive(Clone)]
pub struct GeneratorLink {
    base: String,
    client: reqwest::Client,
}

impl GeneratorLink {
    /// A link to the service at `base` (`http://host:port`, no path).
    pub fn new(base: &str) -> Result<Self, GeneratorUrlError> {
        let base = base.trim_end_matches('/');
        let authority = base.strip_prefix("http://").unwrap_or_default();
        let ok = !authority.is_empty()
            && !authority.contains(['/', '?', '#', '@', ' '])
            && authority.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
        if !ok {
            return Err(GeneratorUrlError(base.to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| GeneratorUrlError(base.to_owned()))?;
        Ok(Self {
            base: base.to_owned(),
            client,
        })
    }

    /// Where the service is.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method` to `path_and_query` (which starts `/api/v1/generators`)
    /// on the service, with the caller's `authorization` and JSON `body`.
    pub async fn forward(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<GeneratorAnswer, GeneratorLinkError> {
        let unreachable = |e: reqwest::Error| GeneratorLinkError::Unreachable {
            base: self.base.clone(),
            reason: e.to_string(),
        };
        let mut request = self
            .client
            .request(method, format!("{}{path_and_query}", self.base));
        if let Some(value) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let mut response = request.send().await.map_err(unreachable)?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(GeneratorLinkError::TooLarge);
            }
            answer.extend_from_slice(&chunk);
        }
        Ok(GeneratorAnswer {
            status,
            content_type,
            body: answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_http_host_and_port_is_accepted() {
        for good in [
            "http://127.0.0.1:8081",
            "http://generators:8081/",
            "http://[::1]:9000",
        ] {
            assert!(GeneratorLink::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "127.0.0.1:8081",
            "https://x:1",
            "http://x",
            "http://x:0",
            "http://x:1/api",
            "http://user@x:1",
            "http://:1",
        ] {
            assert!(GeneratorLink::new(bad).is_err(), "{bad}");
        }
    }
}
