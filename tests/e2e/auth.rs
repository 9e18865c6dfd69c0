//! The API answers only to valid tokens, and errors are JSON.

use crate::support::{start_api, TestSystem, ADMIN_PASSWORD, TEST_JWT_SECRET};
use datastream_http::auth::Claims;
use datastream_http::TokenKeys;
use datastream_test_support::TestDb;
use futures_util::future::join_all;
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
    let admin = |iat: u64, exp: u64| Claims {
        sub: "admin".into(),
        uid: 1,
        created: 0,
        role: "admin".into(),
        iat,
        exp,
    };
    let expired = keys.sign(&admin(now - 7200, now - 3600));
    let other = TokenKeys::new(&[42u8; 48], Duration::from_secs(3600)).unwrap();
    let wrongly_signed = other.sign(&admin(now, now + 3600));
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

/// Issue 14: the budget was checked before and charged after the password
/// check, so a burst of concurrent guesses all got 401, none 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_are_throttled_at_the_budget() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let guesses =
        (0..30).map(|_| async { sys.login("admin", "wrong-password").await.status().as_u16() });
    let statuses = join_all(guesses).await;
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(unauthorized <= 10, "{unauthorized} guesses were checked");
    assert_eq!(unauthorized + throttled, 30, "{statuses:?}");
    sys.stop().await;
}

/// Issue 14: a correct login to one's own account reset the failures of
/// the guesses at another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_to_another_account_does_not_forgive_guesses() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let _ = sys.user_token("mallory", "viewer").await;
    for round in 0..3 {
        for _ in 0..3 {
            let status = sys.login("admin", "wrong-password").await.status().as_u16();
            assert!(status == 401 || status == 429, "round {round}: {status}");
        }
        let own = sys
            .login("mallory", "mallory-password")
            .await
            .status()
            .as_u16();
        assert!(own == 200 || own == 429, "round {round}: {own}");
    }
    // 9 guesses so far: the 10th is checked, the 11th refused.
    assert_eq!(
        sys.login("admin", "wrong-password").await.status().as_u16(),
        401
    );
    let refused = sys.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(refused.status().as_u16(), 429);
    sys.stop().await;
}

/// Issue 14: each argon2 check holds ~19 MiB, and a burst of logins ran
/// them all at once (80 logins: 1.5 GB, never given back). 100 logins from
/// 100 client addresses (127.0.0.x) for 100 user names, so the throttle
/// lets every one reach a password check (unknown names are checked against
/// a dummy hash, to take as long as known ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_logins_keep_memory_within_64_mib_of_idle() {
    let db = TestDb::sqlite();
    let api = start_api(db.url()).await;
    let idle = api.rss_bytes().expect("reading the API's memory");
    let logins = (0..100u8).map(|i| {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, i + 2]))
            .build()
            .expect("a client");
        let url = format!("{}/api/v1/auth/login", api.base_url());
        async move {
            let resp = client
                .post(url)
                .json(&serde_json::json!({"username": format!("nobody{i}"), "password": "guess"}))
                .send()
                .await
                .expect("a login answer");
            let status = resp.status().as_u16();
            if status == 503 {
                assert!(resp.headers().contains_key("retry-after"));
            }
            status
        }
    });
    let statuses = join_all(logins).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&401), "{statuses:?}");
    let grown = api
        .rss_bytes()
        .expect("reading the API's memory")
        .saturating_sub(idle);
    assert!(
        grown < 64 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown / (1024 * 1024)
    );
}

/// Issue 14: tokens named their user only by name, so a token of a deleted
/// viewer opened the admin account created later under the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_tokens_never_open_a_new_account_of_the_same_name() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let old = sys.user_token("reused", "viewer").await;
    assert_eq!(
        sys.get("/api/v1/readings", &old).await.status().as_u16(),
        200
    );

    let deleted = sys
        .send(
            reqwest::Method::DELETE,
            "/api/v1/users/reused",
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status().as_u16(), 204);
    let recreated = sys
        .send(
            reqwest::Method::POST,
            "/api/v1/users",
            &admin,
            Some(serde_json::json!({"username": "reused", "password": "a-new-password", "role": "admin"})),
        )
        .await;
    assert_eq!(recreated.status().as_u16(), 201);

    for path in ["/api/v1/readings", "/api/v1/users"] {
        let (status, body) = error_code(sys.get(path, &old).await).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    // The new account's own tokens work.
    let body: Value = sys
        .login("reused", "a-new-password")
        .await
        .json()
        .await
        .unwrap();
    let new = body["access_token"].as_str().unwrap();
    assert_eq!(sys.get("/api/v1/users", new).await.status().as_u16(), 200);
    sys.stop().await;
}

/// Issue 14: what schemathesis and a hostile client found at the edges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_cases_of_http_get_the_documented_4xx() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;

    // A 100 KB header: 431, not served.
    let big = sys
        .http
        .get(format!("{}/healthz", sys.base))
        .header("x-big", "x".repeat(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 431);

    // A method a path does not take: 405 with the methods it does.
    for (path, allow) in [
        ("/healthz", "GET"),
        ("/api/v1/readings", "GET, PATCH, DELETE"),
        ("/api/v1/auth/login", "POST"),
    ] {
        let resp = sys
            .http
            .request(reqwest::Method::TRACE, format!("{}{path}", sys.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{path}");
        assert_eq!(resp.headers()["allow"], allow, "{path}");
    }

    // A value of the wrong type names its field.
    let (status, body) = error_code(
        sys.send(
            reqwest::Method::PATCH,
            "/api/v1/readings?id1=ABC",
            &token,
            Some(serde_json::json!({"sensor_value": true})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("sensor_value"))
    );

    // Path parameters that cannot be what they name: 400 naming them.
    for (path, field) in [
        ("/api/v1/readings/9223372036854775808", "id"),
        ("/api/v1/users/%C2%B5x", "username"),
    ] {
        let method = if path.contains("users") {
            reqwest::Method::DELETE
        } else {
            reqwest::Method::GET
        };
        let (status, body) = error_code(sys.send(method, path, &token, None).await).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{path}"
        );
    }
    sys.stop().await;
}

/// Issue 14: on SQLite `ADMIN0` and `admin0` could both exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_are_one_name_whatever_their_case() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let token = sys.admin_token().await;
    let create = |name: &'static str| {
        sys.send(
            reqwest::Method::POST,
            "/api/v1/users",
            &token,
            Some(
                serde_json::json!({"username": name, "password": "long-enough", "role": "viewer"}),
            ),
        )
    };
    let first = create("ADMIN0").await;
    assert_eq!(first.status().as_u16(), 201);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["username"], "admin0");
    assert_eq!(create("admin0").await.status().as_u16(), 409);
    assert_eq!(
        sys.login("Admin0", "long-enough").await.status().as_u16(),
        200
    );
    sys.stop().await;
}

/// A client bound to loopback address 127.0.0.`last`.
fn client_at(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("a client")
}

/// Issue 25: ten wrong passwords a minute for a name, from anywhere, made
/// its owner's correct password get 429 from every address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_an_accounts_password_never_locks_its_owner_out() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let login = |client: reqwest::Client, password: &'static str| {
        let url = format!("{}/api/v1/auth/login", sys.base);
        async move {
            client
                .post(url)
                .json(&serde_json::json!({"username": "admin", "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The owner has logged in from .20 before; the guesser uses .21-.40,
    // ten guesses a minute from each.
    assert_eq!(login(client_at(20), ADMIN_PASSWORD).await, 200);
    let guess_from = |guesser: u8| {
        let login = &login;
        async move {
            for _ in 0..10 {
                let status = login(client_at(guesser), "wrong-password").await;
                assert!(status == 401 || status == 429, "{status}");
            }
            assert_eq!(login(client_at(guesser), "wrong-password").await, 429);
        }
    };
    for guesser in 21..=25u8 {
        guess_from(guesser).await;
    }
    // 50 guesses: the owner logs in from anywhere.
    assert_eq!(login(client_at(41), ADMIN_PASSWORD).await, 200);
    for guesser in 26..=40u8 {
        guess_from(guesser).await;
    }
    // 200 guesses: past the account's budget, a new address waits; the
    // owner's known addresses never do.
    assert_eq!(login(client_at(42), ADMIN_PASSWORD).await, 429);
    assert_eq!(login(client_at(20), ADMIN_PASSWORD).await, 200);
    assert_eq!(login(client_at(41), ADMIN_PASSWORD).await, 200);
    sys.stop().await;
}

/// Issue 25: a user name with a line break forged a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_sends_cannot_forge_a_log_line() {
    let db = TestDb::sqlite();
    let api = start_api(db.url()).await;
    let forged = "nobody\n2026-12-05T00:00:00.000000Z  INFO datastream: admin logged in";
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", api.base_url()))
        .json(&serde_json::json!({"username": forged, "password": "whatever"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = api.log();
    assert!(log.contains("login failed"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-05T00:00:00")),
        "a forged line: {log}"
    );
    assert!(log.contains("nobody\\n2026-12-05"), "escaped: {log}");
}
