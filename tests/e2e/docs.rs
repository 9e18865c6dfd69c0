//! The OpenAPI document and Swagger UI, served by the binary itself.

use crate::support::TestSystem;
use datastream_test_support::TestDb;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_the_bearer_scheme() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let doc: Value = sys
        .http
        .get(format!("{}/api-docs/openapi.json", sys.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/api/v1/auth/login", &["post"][..]),
        ("/api/v1/readings", &["get", "patch", "delete"][..]),
        ("/api/v1/readings/{id}", &["get"][..]),
        ("/api/v1/readings/aggregate", &["get"][..]),
        ("/api/v1/readings/export", &["get"][..]),
        ("/api/v1/readings/stream", &["get"][..]),
        ("/api/v1/devices", &["get"][..]),
        ("/api/v1/users", &["get", "post"][..]),
        ("/api/v1/users/{username}", &["patch", "delete"][..]),
        ("/api/v1/sensor-types", &["get"][..]),
        ("/api/v1/sensor-types/{name}", &["put", "delete"][..]),
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path} missing");
        }
    }
    let params: Vec<&str> = paths["/api/v1/readings"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in crate::support::READING_PARAMS {
        assert!(
            params.contains(name),
            "parameter {name} missing: {params:?}"
        );
    }
    for method in ["patch", "delete"] {
        let names: Vec<&str> = paths["/api/v1/readings"][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"id1"), "{method}: {names:?}");
        for paging in ["limit", "order", "cursor", "page"] {
            assert!(!names.contains(&paging), "{method} documents {paging}");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer_auth"]["scheme"],
        "bearer"
    );
    for (path, method) in [
        ("/api/v1/users", "post"),
        ("/api/v1/readings", "delete"),
        ("/api/v1/sensor-types/{name}", "put"),
    ] {
        let forbidden = &paths[path][method]["responses"]["403"];
        assert_eq!(forbidden["description"], "Not an admin", "{method} {path}");
        assert_eq!(
            forbidden["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_from_the_binary_without_a_cdn() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let get = |path: &str| {
        let url = format!("{}{path}", sys.base);
        let http = sys.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let index = get("/swagger-ui/").await;
    assert_eq!(index.status().as_u16(), 200);
    let html = index.text().await.unwrap();
    assert!(
        !html.contains("https://"),
        "index.html loads nothing from elsewhere"
    );
    for asset in [
        "/swagger-ui/swagger-ui.css",
        "/swagger-ui/swagger-ui-bundle.js",
        "/swagger-ui/swagger-initializer.js",
    ] {
        assert_eq!(get(asset).await.status().as_u16(), 200, "{asset}");
    }
    let init = get("/swagger-ui/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api-docs/openapi.json"), "{init}");
    sys.stop().await;
}

/// OpenAPI requires operation ids unique in a document; client generators
/// and Swagger UI's deep links key on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_has_an_operation_id_of_its_own() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    for base in [&sys.base, &sys.generators_base] {
        let doc: Value = reqwest::get(format!("{base}/api-docs/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, methods) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in methods.as_object().expect("methods") {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(
                    seen.insert(id.to_owned()),
                    "{method} {path}: {id} used twice"
                );
            }
        }
    }
    sys.stop().await;
}

/// `/swagger-ui` as typed, without the slash, leads to Swagger UI on both
/// services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_without_the_trailing_slash_redirects_to_it() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for base in [&sys.base, &sys.generators_base] {
        let r = no_redirects
            .get(format!("{base}/swagger-ui"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 308, "{base}");
        assert_eq!(r.headers()["location"], "/swagger-ui/", "{base}");
        let followed = reqwest::get(format!("{base}/swagger-ui")).await.unwrap();
        assert_eq!(followed.status().as_u16(), 200, "{base}");
    }
    sys.stop().await;
}

/// The query that Swagger UI's "Try it out" fills in from the examples of
/// `GET path`'s parameters.
fn example_query(doc: &Value, path: &str) -> String {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| {
            let example = p.get("example").or_else(|| p["schema"].get("example"))?;
            let value = match example {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{}={value}", p["name"].as_str()?))
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_examples_find_data_on_a_system_running_the_default_generators() {
    let sys = TestSystem::start(
        TestDb::sqlite(),
        None,
        datastream_generator::default_fleet(),
    )
    .await;
    let doc: Value = reqwest::get(format!("{}/api-docs/openapi.json", sys.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = example_query(&doc, "/api/v1/readings");
    assert!(!first.is_empty(), "the readings parameters have examples");
    sys.wait_for_readings(&first, 1, std::time::Duration::from_secs(20))
        .await;
    let token = sys.admin_token().await;
    for path in [
        "/api/v1/readings",
        "/api/v1/readings/aggregate",
        "/api/v1/devices",
    ] {
        let query = example_query(&doc, path);
        let answer = sys.get(&format!("{path}?{query}"), &token).await;
        assert_eq!(answer.status().as_u16(), 200, "{path}?{query}");
        let body: Value = answer.json().await.unwrap();
        assert!(
            body["data"].as_array().is_some_and(|d| !d.is_empty()),
            "{path}?{query} found nothing: {body}"
        );
    }
    let query = example_query(&doc, "/api/v1/readings/export");
    let csv = sys
        .get(&format!("/api/v1/readings/export?{query}"), &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines().count() > 1,
        "export?{query} found nothing: {csv}"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_refuses_to_be_framed_and_keeps_its_referrer() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    for (base, path) in [
        (&sys.base, "/"),
        (&sys.base, "/swagger-ui/"),
        (&sys.base, "/api-docs/openapi.json"),
        (&sys.base, "/healthz"),
        (&sys.generators_base, "/swagger-ui/"),
    ] {
        let answer = reqwest::get(format!("{base}{path}")).await.unwrap();
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path == "/swagger-ui/" {
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        }
    }
    sys.stop().await;
}
