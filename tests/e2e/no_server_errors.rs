//! Property test: no query string, path or body, however odd, makes the API
//! answer 5xx (or panic).

use crate::support::TestSystem;
use datastream_test_support::TestDb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The real parameters, an unknown one and an empty name.
fn keys() -> Vec<&'static str> {
    let mut keys = crate::support::READING_PARAMS.to_vec();
    keys.extend([
        "interval",
        "group_by",
        "max_points",
        "silent_for",
        "format",
        "other",
        "",
    ]);
    keys
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[0-9-]{0,25}",
        Just("2026-11-25T07:00:00Z".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("15m".to_owned()),
        Just("1s".to_owned()),
        Just("30d".to_owned()),
        Just("desc".to_owned()),
        Just("csv".to_owned()),
        Just("none".to_owned()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let pair = (prop::sample::select(keys()), value(), any::<bool>()).prop_map(|(k, v, raw)| {
        // Sometimes send the value unencoded: broken escapes and all.
        let v = if raw {
            v.replace(['&', '#', ' '], "")
        } else {
            percent_encode(&v)
        };
        format!("{k}={v}")
    });
    prop::collection::vec(pair, 0..5).prop_map(|pairs| pairs.join("&"))
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/api/v1/readings".to_owned()),
        Just("/api/v1/readings/aggregate".to_owned()),
        Just("/api/v1/readings/export".to_owned()),
        Just("/api/v1/devices".to_owned()),
        "[A-Za-z0-9%._-]{0,30}".prop_map(|s| format!("/api/v1/readings/{s}")),
        Just("/api/v1/users".to_owned()),
        "[A-Za-z0-9%._-]{1,30}".prop_map(|s| format!("/api/v1/users/{s}")),
        Just("/api/v1/auth/login".to_owned()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        "\"\\PC{0,30}\"",
        Just("null".to_owned()),
        Just("1e999".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ];
    let key = prop::sample::select(&["sensor_value", "username", "password", "role", "x"][..]);
    let object = prop::collection::vec((key, json_value), 0..4).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(",")).into_bytes()
    });
    prop_oneof![object, prop::collection::vec(any::<u8>(), 0..200)]
}

#[test]
fn no_request_gets_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sys = rt.block_on(TestSystem::start(TestDb::sqlite(), None, vec![]));
    let token = rt.block_on(sys.admin_token());
    const METHODS: &[&str] = &["GET", "POST", "PATCH", "DELETE"];
    let mut runner = TestRunner::new(Config {
        cases: 400,
        ..Config::default()
    });
    let strategy = (prop::sample::select(METHODS), path(), query(), body());
    let result = runner.run(&strategy, |(method, path, query, body)| {
        let url = format!("{}{path}?{query}", sys.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let status = rt.block_on(async {
            sys.http
                .request(method, &url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        // A URL reqwest itself refuses never reached the server.
        if let Ok(status) = status {
            prop_assert!(status < 500, "{url} answered {status}");
        }
        Ok(())
    });
    rt.block_on(sys.stop());
    result.expect("no 5xx");
}
