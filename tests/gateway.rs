//! End to end through the local API server: what real clients send that our own clients did not
//! (issue 11) — percent-encoded paths, gzip and non-UTF-8 bodies under any content type,
//! over-long identifiers on every route that keys DynamoDB, and many concurrent large answers
//! from different functions. None of it may produce a 5xx.

use std::io::Write;

use e2e::{Server, unique_key};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn raw(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.url))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request reaches the server");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn percent_encoded_current_project_is_the_current_project() {
    let s = Server::from_env();
    let key = unique_key("encoded-current");
    let body =
        json!({"key": key, "filters": {"groups": [{"properties": [], "rollout_percentage": 10}]}});
    let created = s
        .call(
            "POST",
            "/api/projects/%40current/feature_flags/",
            Some(&body),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_i64().expect("id");
    for project in ["@current", "%40current", &s.project_id.to_string()] {
        let path = format!("/api/projects/{project}/feature_flags/{id}/");
        let reply = s.call("GET", &path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json()["key"], key.as_str());
    }
}

#[tokio::test]
async fn gzip_captures_are_read_whatever_their_content_type() {
    let s = Server::from_env();
    let distinct_id = unique_key("gzip-capture");
    let batch = json!({"api_key": s.project_api_token, "batch": [{
        "event": "$identify", "distinct_id": distinct_id,
        "properties": {"$set": {"plan": "gzip"}}, "timestamp": "2026-01-01T00:00:00Z"}]});
    let zipped = gzip(batch.to_string().as_bytes());
    // posthog-python with gzip=True; posthog-js's gzip-js; a client that says nothing.
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (
            "/batch/",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        ),
        (
            "/e/?compression=gzip-js&ver=1.449.2",
            &[("content-type", "text/plain")],
        ),
        ("/i/v0/e/", &[]),
    ];
    for (path, headers) in cases {
        let (status, text) = raw(&s, "POST", path, headers, zipped.clone()).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    let persons = s
        .call(
            "GET",
            &format!(
                "/api/projects/{}/persons/?distinct_id={distinct_id}",
                s.project_id
            ),
            None,
        )
        .await;
    assert_eq!(persons.status, 200, "{}", persons.text);
    assert_eq!(persons.json()["results"][0]["properties"]["plan"], "gzip");
}

#[tokio::test]
async fn bodies_that_are_not_utf8_are_client_errors_not_500s() {
    let s = Server::from_env();
    let garbage = vec![0xff, 0xfe, 0x00, 0x81, b'{'];
    for (method, path, content_type) in [
        ("POST", "/flags/?v=2", "application/json"),
        ("POST", "/batch/", "text/plain"),
        ("POST", &*s.flags_path(""), "application/json"),
        ("PATCH", &*s.flags_path("1/"), "text/plain"),
    ] {
        let key = format!("Bearer {}", s.personal_api_key);
        let headers = [("content-type", content_type), ("authorization", &*key)];
        let (status, text) = raw(&s, method, path, &headers, garbage.clone()).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path} ({content_type}) answered {status}: {text}"
        );
    }
}

#[tokio::test]
async fn overlong_identifiers_are_401_or_400_on_every_route_that_keys_dynamodb() {
    let s = Server::from_env();
    let token = "phc_".to_string() + &"x".repeat(3000);
    let body = json!({"token": token, "api_key": token, "distinct_id": "d",
        "batch": [{"event": "e", "distinct_id": "d"}]})
    .to_string();
    for (method, path) in [
        ("POST", "/flags/?v=2"),
        ("POST", "/decide/?v=3"),
        ("POST", "/batch/"),
        ("POST", "/e/"),
        ("POST", "/capture/"),
    ] {
        let headers = [("content-type", "application/json")];
        let (status, text) = raw(&s, method, path, &headers, body.clone().into_bytes()).await;
        assert_eq!(status, 401, "{method} {path}: {text}");
    }
    for path in [
        format!("/flags/definitions?token={token}"),
        format!("/api/early_access_features/?token={token}"),
    ] {
        let secret = format!("Bearer {}", s.project_secret_key);
        let (status, text) = raw(&s, "GET", &path, &[("authorization", &secret)], vec![]).await;
        assert!(matches!(status, 401 | 403), "{path}: {status} {text}");
    }

    let long_key = "k".repeat(1500);
    let reply = s
        .call(
            "GET",
            &s.flags_path(&format!("{long_key}/remote_config/")),
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["attr"], "key");
    assert_eq!(reply.json()["code"], "max_length");

    let long_id = "d".repeat(3000);
    let reply = s
        .call(
            "GET",
            &format!(
                "/api/projects/{}/persons/?distinct_id={long_id}",
                s.project_id
            ),
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["attr"], "distinct_id");
    assert!(
        reply.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("400")),
        "{}",
        reply.text
    );

    let flags = json!({"token": s.project_api_token, "distinct_id": long_id}).to_string();
    let headers = [("content-type", "application/json")];
    let (status, text) = raw(&s, "POST", "/flags/?v=2", &headers, flags.into_bytes()).await;
    assert!(status < 500, "{status}: {text}");
}

/// Large answers of two functions at once, many at a time: the local emulator used to lose
/// some of them (a 500 of its own); every one must now arrive whole.
#[tokio::test]
async fn concurrent_large_answers_from_different_functions_all_arrive() {
    let s = Server::from_env();
    let tag = unique_key("bulk");
    for i in 0..60 {
        let body = json!({"key": format!("{tag}-{i}"), "name": "x".repeat(600),
            "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}});
        let reply = s.call("POST", &s.flags_path(""), Some(&body)).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let list = s.flags_path("?limit=100");
    let definitions = format!("/flags/definitions?token={}", s.project_api_token);
    let requests = (0..64).map(|i| {
        let s = &s;
        let (path, key) = if i % 2 == 0 {
            (list.clone(), s.personal_api_key.clone())
        } else {
            (definitions.clone(), s.project_secret_key.clone())
        };
        async move {
            let reply = s.send("GET", &path, Some(&key), None).await;
            (
                reply.status,
                reply.text.len(),
                serde_json::from_str::<Value>(&reply.text).is_ok(),
            )
        }
    });
    let results = futures::future::join_all(requests).await;
    for (status, len, parsed) in results {
        assert_eq!(status, 200, "length {len}");
        assert!(
            parsed && len > 30_000,
            "a whole JSON answer, got {len} bytes"
        );
    }
}
