//! Edits, deletes, users, roles and paging through the REST API.

use crate::support::{publish, TestSystem};
use chrono::{Duration as ChronoDuration, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_test_support::{unique_id1, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Publishes `n` readings for `id1` (devices 0 and 1) and waits until stored.
async fn seed(sys: &TestSystem, id1: &str, n: usize) {
    let client = sys.publisher().await;
    let base = Utc::now() - ChronoDuration::minutes(30);
    for i in 0..n {
        let id2 = i % 2;
        let body = json!({"sensor_value": i as f64, "sensor_type": "temperature", "id1": id1,
            "id2": id2, "timestamp": format_timestamp(base + ChronoDuration::seconds(i as i64))});
        publish(
            &client,
            &format!("sensors/temperature/{id1}/{id2}"),
            body.to_string(),
        )
        .await;
    }
    let got = sys
        .wait_for_readings(
            &format!("id1={id1}&limit=10000"),
            n,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(got.len(), n);
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_and_delete_by_filter() {
    edit_and_delete_by_filter(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_and_delete_by_filter_on_mariadb() {
    if let Some(db) = TestDb::mysql().await {
        edit_and_delete_by_filter(db).await;
    }
}

async fn edit_and_delete_by_filter(db: TestDb) {
    let sys = TestSystem::start(db, None, vec![]).await;
    let id1 = unique_id1();
    seed(&sys, &id1, 20).await;
    let admin = sys.admin_token().await;

    let (status, body) = json_of(
        sys.send(
            Method::PATCH,
            &format!("/api/v1/readings?id1={id1}&id2=0"),
            &admin,
            Some(json!({"sensor_value": 99.5})),
        )
        .await,
    )
    .await;
    assert_eq!((status, body["updated"].as_u64()), (200, Some(10)));
    let edited = sys
        .wait_for_readings(&format!("id1={id1}&id2=0"), 10, Duration::ZERO)
        .await;
    assert!(edited
        .iter()
        .all(|r| r["sensor_value"] == 99.5 && r["updated_at"] != r["created_at"]));

    let (status, body) = json_of(
        sys.send(
            Method::DELETE,
            &format!("/api/v1/readings?id1={id1}&id2=1"),
            &admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, body["deleted"].as_u64()), (200, Some(10)));
    let left = sys
        .wait_for_readings(&format!("id1={id1}"), 20, Duration::ZERO)
        .await;
    assert_eq!(left.len(), 10);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_refuse_an_empty_filter() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    for (method, body) in [
        (Method::PATCH, Some(json!({"sensor_value": 1}))),
        (Method::DELETE, None),
    ] {
        for query in ["", "?limit=5", "?order=asc"] {
            let (status, body) = json_of(
                sys.send(
                    method.clone(),
                    &format!("/api/v1/readings{query}"),
                    &admin,
                    body.clone(),
                )
                .await,
            )
            .await;
            assert_eq!(status, 400, "{method} {query}");
            assert!(
                ["filter", "limit", "order"].contains(&body["error"]["field"].as_str().unwrap()),
                "{body}"
            );
        }
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_but_cannot_write() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let viewer = sys.user_token("vera", "viewer").await;
    assert_eq!(
        sys.get("/api/v1/readings", &viewer).await.status().as_u16(),
        200
    );
    let writes = [
        (
            Method::PATCH,
            "/api/v1/readings?id1=ABC",
            Some(json!({"sensor_value": 1})),
        ),
        (Method::DELETE, "/api/v1/readings?id1=ABC", None),
        (Method::GET, "/api/v1/users", None),
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "x", "password": "long-enough", "role": "admin"})),
        ),
        (Method::DELETE, "/api/v1/users/admin", None),
        (
            Method::PATCH,
            "/api/v1/users/vera",
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PUT,
            "/api/v1/sensor-types/temperature",
            Some(json!({"unit": "K"})),
        ),
        (Method::DELETE, "/api/v1/sensor-types/temperature", None),
    ];
    for (method, path, body) in writes {
        let (status, body) = json_of(sys.send(method.clone(), path, &viewer, body).await).await;
        assert_eq!(status, 403, "{method} {path}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_listed_and_deleted_and_deleted_users_lose_access() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let token = sys.user_token("olga", "viewer").await;
    assert_eq!(
        sys.get("/api/v1/readings", &token).await.status().as_u16(),
        200
    );

    let (status, list) = json_of(sys.get("/api/v1/users", &admin).await).await;
    assert_eq!(status, 200);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "olga" && u["role"] == "viewer"));

    let again = json!({"username": "olga", "password": "another-password", "role": "viewer"});
    let (status, _) = json_of(
        sys.send(Method::POST, "/api/v1/users", &admin, Some(again))
            .await,
    )
    .await;
    assert_eq!(status, 409);

    let resp = sys
        .send(Method::DELETE, "/api/v1/users/olga", &admin, None)
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        sys.get("/api/v1/readings", &token).await.status().as_u16(),
        401
    );
    let resp = sys
        .send(Method::DELETE, "/api/v1/users/olga", &admin, None)
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_users_are_refused_naming_the_field_and_the_last_admin_stays() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    for (body, field) in [
        (
            json!({"username": "a b", "password": "long-enough", "role": "viewer"}),
            "username",
        ),
        (
            json!({"username": "ok", "password": "short", "role": "viewer"}),
            "password",
        ),
        (
            json!({"username": "ok", "password": "long-enough", "role": "root"}),
            "role",
        ),
        (json!({"username": "ok", "password": "long-enough"}), "role"),
    ] {
        let (status, resp) = json_of(
            sys.send(Method::POST, "/api/v1/users", &admin, Some(body))
                .await,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    let (status, resp) = json_of(
        sys.send(Method::DELETE, "/api/v1/users/ADMIN", &admin, None)
            .await,
    )
    .await;
    assert_eq!(
        status, 409,
        "an admin cannot delete their own account: {resp}"
    );
    let other = sys.user_token("deputy", "admin").await;
    let (status, _) = json_of(
        sys.send(Method::DELETE, "/api/v1/users/admin", &other, None)
            .await,
    )
    .await;
    assert_eq!(status, 204, "another admin can");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pages_walk_every_reading_once_and_end_with_null() {
    cursor_pages(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pages_walk_every_reading_once_and_end_with_null_on_mariadb() {
    if let Some(db) = TestDb::mysql().await {
        cursor_pages(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_roles_work_on_mariadb() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let sys = TestSystem::start(db, None, vec![]).await;
    let viewer = sys.user_token("mira", "viewer").await;
    assert_eq!(
        sys.get("/api/v1/readings", &viewer).await.status().as_u16(),
        200
    );
    let resp = sys
        .send(Method::DELETE, "/api/v1/readings?id1=ABC", &viewer, None)
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    let admin = sys.admin_token().await;
    let resp = sys
        .send(Method::DELETE, "/api/v1/users/mira", &admin, None)
        .await;
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        sys.get("/api/v1/readings", &viewer).await.status().as_u16(),
        401
    );
    sys.stop().await;
}

async fn cursor_pages(db: TestDb) {
    let sys = TestSystem::start(db, None, vec![]).await;
    let id1 = unique_id1();
    seed(&sys, &id1, 25).await;
    let token = sys.admin_token().await;
    let mut seen = Vec::new();
    let mut query = format!("id1={id1}&limit=10");
    let mut pages = 0;
    loop {
        let (status, page) =
            json_of(sys.get(&format!("/api/v1/readings?{query}"), &token).await).await;
        assert_eq!(status, 200);
        pages += 1;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["page"]["next_cursor"].as_str() {
            Some(cursor) => query = format!("id1={id1}&limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (25, 25));

    let (status, body) = json_of(
        sys.get(&format!("/api/v1/readings?id1={id1}&cursor=AAAA"), &token)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("cursor"))
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    let huge =
        json!({"username": "x".repeat(100_000), "password": "long-enough", "role": "viewer"});
    let (status, body) = json_of(
        sys.send(Method::POST, "/api/v1/users", &admin, Some(huge))
            .await,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_queries_go_to_the_read_replica_and_writes_to_the_primary() {
    // A second database stands in for a replica: it holds a reading the
    // primary does not, so the answer shows where each request went.
    let replica = TestDb::sqlite();
    let replica_store = datastream_store::connect(replica.url()).await.unwrap();
    let id1 = unique_id1();
    let only_on_replica = datastream_test_support::reading()
        .value(7.0)
        .id1(&id1)
        .at(Utc::now() - ChronoDuration::minutes(1))
        .build();
    replica_store
        .insert_batch(vec![only_on_replica].into())
        .await
        .unwrap();

    let replica_url = replica.url().to_owned();
    let sys = TestSystem::start_with(TestDb::sqlite(), None, vec![], |s| {
        s.database_read_url = Some(replica_url);
    })
    .await;
    let token = sys.admin_token().await;
    let (_, page) = json_of(
        sys.get(&format!("/api/v1/readings?id1={id1}"), &token)
            .await,
    )
    .await;
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        1,
        "read from the replica"
    );
    let (_, body) = json_of(
        sys.send(
            Method::DELETE,
            &format!("/api/v1/readings?id1={id1}"),
            &token,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        body["deleted"], 0,
        "the delete went to the primary, which has none"
    );
    sys.stop().await;
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_change_roles_and_reset_passwords_over_rest() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    sys.user_token("petra", "viewer").await;
    let patch = |body: Value| sys.send(Method::PATCH, "/api/v1/users/petra", &admin, Some(body));

    let (status, body) = json_of(patch(json!({"role": "admin"})).await).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    let (status, list) = json_of(sys.get("/api/v1/users", &admin).await).await;
    assert_eq!(status, 200);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "petra" && u["role"] == "admin"));

    let (status, _) = json_of(patch(json!({"password": "a brand new password"})).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        sys.login("petra", "a brand new password")
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        sys.login("petra", "petra-password").await.status().as_u16(),
        401
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_changes_are_refused_naming_the_field_and_never_demote_the_caller() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let admin = sys.admin_token().await;
    sys.user_token("quinn", "viewer").await;
    let patch = |user: &'static str, body: Value| {
        let path = format!("/api/v1/users/{user}");
        let (sys, admin) = (&sys, &admin);
        async move { json_of(sys.send(Method::PATCH, &path, admin, Some(body)).await).await }
    };
    for (body, field) in [
        (json!({}), "role"),
        (json!({"password": "short"}), "password"),
        (json!({"role": "boss"}), "role"),
        (json!({"role": "admin", "colour": "red"}), "colour"),
    ] {
        let (status, answer) = patch("quinn", body.clone()).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    let (status, _) = patch("nobody", json!({"role": "admin"})).await;
    assert_eq!(status, 404);
    // The only admin is the caller: demoting themselves would leave none.
    let (status, answer) = patch("admin", json!({"role": "viewer"})).await;
    assert_eq!(status, 409, "{answer}");
    sys.stop().await;
}
