//! The one structured log line every request ends with (docs/operations.md "Logs"): its
//! fields, DynamoDB's capacity units, and no key, token or payload. A binary of its own: the
//! test installs a `tracing` subscriber, which other tests in one process would disturb.

mod common;
mod operations_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::World;
use operations_support::{definitions_poll, event, instance};
use serde_json::{Value, json};
use shared::api::Group;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_request_logs_one_json_line_without_secrets() {
    let world = World::new().await;
    let captured = Captured::default();
    let writer = captured.clone();
    // The subscriber Lambda runs with the template's JSON log format.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let management = instance(&world, Group::FeatureFlags);
    let sdk = instance(&world, Group::Flags);
    let distinct_id = "user-with-a-secret-name@example.com";
    let created = management
        .call(&event(
            "POST",
            &format!("/api/projects/{}/feature_flags/", world.project.id),
            "POST /api/projects/{project_id}/feature_flags/",
            &[
                ("authorization", &format!("Bearer {}", world.key)),
                ("content-type", "application/json"),
                ("host", "testserver"),
            ],
            Some(
                json!({"key": "logged-flag", "filters": {"groups": [{"rollout_percentage": 100}]}}),
            ),
        ))
        .await;
    assert_eq!(created.status(), 201);
    let flags = sdk
        .call(&event(
            "POST",
            "/flags/?v=2",
            "POST /flags",
            &[("content-type", "application/json"), ("host", "testserver")],
            Some(json!({"api_key": world.project.api_token, "distinct_id": distinct_id})),
        ))
        .await;
    assert_eq!(flags.status(), 200);
    let denied = sdk
        .call(&definitions_poll("phs_not-a-real-secret-key-0123456789"))
        .await;
    assert_eq!(denied.status(), 401);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|l: &Value| l["target"] == "request")
        .collect();
    assert_eq!(lines.len(), 3, "one line per request: {text}");
    let expected = [
        (
            "POST /api/projects/{project_id}/feature_flags/",
            201,
            Some(world.project.id),
        ),
        ("POST /flags", 200, Some(world.project.id)),
        ("GET /flags/definitions", 401, None),
    ];
    for (line, (route, status, project)) in lines.iter().zip(expected) {
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["project_id"].as_i64(), project, "{line}");
        assert!(
            line["request_id"].as_str().unwrap().starts_with("req-"),
            "{line}"
        );
        assert!(line["latency_ms"].is_u64(), "{line}");
        let units = line["dynamodb_capacity_units"].as_f64().unwrap();
        assert!(
            units > 0.0,
            "DynamoDB reported capacity for every request's reads: {line}"
        );
    }
    // The flag write (a transaction) costs more than reading a key.
    assert!(
        lines[0]["dynamodb_capacity_units"].as_f64() > lines[2]["dynamodb_capacity_units"].as_f64()
    );
    for secret in [
        world.key.as_str(),
        world.secret_key.as_str(),
        world.project.api_token.as_str(),
        "phs_not-a-real-secret-key-0123456789",
        distinct_id,
        "logged-flag",
    ] {
        assert!(!text.contains(secret), "the log holds {secret}: {text}");
    }
}
