//! The dashboard's files, served by the binary. (The page itself is used in
//! a real browser by scripts/dashboard-walkthrough.cjs, which .ci/run runs.)

use crate::support::TestSystem;
use datastream_test_support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_has_a_login_form_and_allows_only_its_own_origin() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    let page = sys.http.get(format!("{}/", sys.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="username""#));
    assert!(html.contains(r#"name="password""#));
    for src in [
        "/assets/uPlot.iife.min.js",
        "/assets/api-client.js",
        "/assets/page-parts.js",
        "/assets/manage.js",
        "/assets/alerts.js",
        "/assets/dashboard.js",
    ] {
        assert!(html.contains(&format!(r#"src="{src}""#)), "{src}");
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_assets_are_served_from_the_binary_with_their_types() {
    let sys = TestSystem::start(TestDb::sqlite(), None, vec![]).await;
    for (name, content_type) in [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("api-client.js", "text/javascript; charset=utf-8"),
        ("page-parts.js", "text/javascript; charset=utf-8"),
        ("manage.js", "text/javascript; charset=utf-8"),
        ("alerts.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("uPlot.min.css", "text/css; charset=utf-8"),
    ] {
        let resp = sys
            .http
            .get(format!("{}/assets/{name}", sys.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["content-type"], content_type, "{name}");
        assert!(!resp.bytes().await.unwrap().is_empty(), "{name}");
    }
    let missing = sys
        .http
        .get(format!("{}/assets/other.js", sys.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    sys.stop().await;
}
