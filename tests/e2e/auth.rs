//! The API answers only to valid tokens, and errors are JSON.

use crate::support::{TestSystem, ADMIN_PASSWORD, TEST_JWT_SECRET};
use datastream_api::auth::Claims;
use datastream_api::TokenKeys;
use datastream_test_support::TestDb;
use serde_json::Value;
use std::time::Duration;

async fn error_code(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON error body");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_without_a_token_are_401() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let resp = sys
        .http
        .get(format!("{}/api/v1/readings", sys.base))
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wrongly_signed_and_malformed_tokens_are_401() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let keys = TokenKeys::new(TEST_JWT_SECRET.as_bytes(), Duration::from_secs(3600)).unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    let expired = keys.sign(&Claims {
        sub: "admin".into(),
        role: "admin".into(),
        iat: now - 7200,
        exp: now - 3600,
    });
    let other = TokenKeys::new(&[42u8; 48], Duration::from_secs(3600)).unwrap();
    let wrongly_signed = other.issue("admin", datastream_schema::Role::Admin);
    for token in [expired.as_str(), wrongly_signed.as_str(), "not.a.jwt", ""] {
        for path in ["/api/v1/readings", "/api/v1/readings/1"] {
            let (status, body) = error_code(sys.get(path, token).await).await;
            assert_eq!(status, 401, "{path} with {token:?}");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_issues_a_bearer_token_that_opens_the_api() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let body: Value = sys
        .login("admin", ADMIN_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    let resp = sys.get("/api/v1/readings", token).await;
    assert_eq!(resp.status().as_u16(), 200);
    let page: Value = resp.json().await.unwrap();
    assert!(page["data"].is_array());
    assert_eq!(page["page"]["limit"], 100);
    assert!(page["page"]["next_cursor"].is_null());
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_wrong_password_or_unknown_user_is_401() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    for (user, pass) in [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)] {
        let (status, body) = error_code(sys.login(user, pass).await).await;
        assert_eq!(status, 401, "{user}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_400_naming_the_field() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    for (query, field) in [
        ("id1=abc", "id1"),
        ("id2=-4", "id2"),
        ("sensor_type=A%20B", "sensor_type"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("order=sideways", "order"),
        ("duration=5w", "duration"),
        ("colour=red", "colour"),
    ] {
        let (status, body) =
            error_code(sys.get(&format!("/api/v1/readings?{query}"), &token).await).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_readings_and_routes_are_404_and_bad_ids_400() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let (status, _) = error_code(sys.get("/api/v1/readings/999999", &token).await).await;
    assert_eq!(status, 404);
    let (status, _) = error_code(sys.get("/api/v1/readings/abc", &token).await).await;
    assert_eq!(status, 400);
    let (status, _) = error_code(sys.get("/api/v1/nothing-here", &token).await).await;
    assert_eq!(status, 404);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_need_no_token() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = sys
            .http
            .get(format!("{}{path}", sys.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_throttled_with_429() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    for _ in 0..10 {
        assert_eq!(
            sys.login("admin", "wrong-password").await.status().as_u16(),
            401
        );
    }
    let resp = sys.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 429, "even the right password waits");
    assert!(resp.headers().contains_key("retry-after"));
    let (_, body) = error_code(resp).await;
    assert_eq!(body["error"]["code"], "too_many_requests");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_route() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    sys.get("/api/v1/readings/12345", &token).await;
    let text = sys
        .http
        .get(format!("{}/metrics", sys.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/readings/{id}",status="404"}"#
        ),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    sys.stop().await;
}
