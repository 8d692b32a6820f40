//! A few flags and persons for checking that what an SDK captures reaches the persons API and
//! then decides its flags (`sdk.rs` for posthog-python and posthog-node, `sdk_rust.rs` for
//! posthog-rs): a boolean rollout, a property-targeted flag, a multivariate flag with a payload
//! per variant and a flag whose payload is nested JSON.

use std::time::{Duration, Instant};

use e2e::Server;
use serde_json::{Value, json};

/// Creates the flags under keys starting with `stem`; returns (id, key) in creation order.
pub async fn create_flags(s: &Server, stem: &str) -> Vec<(i64, String)> {
    let plan = |values: Value| json!({"key": "plan", "type": "person", "operator": "exact", "value": values});
    let bodies = [
        json!({"key": format!("{stem}-rollout"), "filters": {
            "groups": [{"properties": [], "rollout_percentage": 50}],
            "payloads": {"true": "{\"banner\": \"half\"}"}}}),
        json!({"key": format!("{stem}-paid"), "filters": {
            "groups": [{"properties": [plan(json!(["pro", "enterprise"]))], "rollout_percentage": 100}],
            "payloads": {"true": "[\"invoices\", \"exports\"]"}}}),
        json!({"key": format!("{stem}-variant"), "filters": {
            // The override first: posthog-rs 0.30.0 evaluates override conditions before the
            // others, PostHog in stored order (evaluation-rules.md §1.4); here both orders agree.
            "groups": [
                {"properties": [plan(json!(["enterprise"]))], "rollout_percentage": 100, "variant": "gold"},
                {"properties": [{"key": "seats", "type": "person", "operator": "gt", "value": "5"}], "rollout_percentage": 100},
            ],
            "multivariate": {"variants": [
                {"key": "control", "rollout_percentage": 34},
                {"key": "gold", "rollout_percentage": 33},
                {"key": "silver", "rollout_percentage": 33},
            ]},
            "payloads": {"control": "1", "gold": "{\"discount\": 0.25, \"tiers\": [1, 2, 3]}", "silver": "\"silver\""}}}),
        json!({"key": format!("{stem}-json"), "filters": {
            "groups": [{"properties": [{"key": "email", "type": "person", "operator": "icontains", "value": "@acme"}], "rollout_percentage": 100}],
            "payloads": {"true": json!({
                "nested": {"list": [1, 2.5, "three", null, true, {"deep": []}]},
                "unicode": "café ✓ 日本",
                "quote": "say \"hi\"\n",
                "big": 1_234_567_890_123_i64,
                "negative": -0.5,
            }).to_string()}}}),
    ];
    let mut created = Vec::new();
    for body in bodies {
        let r = s.call("POST", &s.flags_path(""), Some(&body)).await;
        assert_eq!(r.status, 201, "creating {body}: {}", r.text);
        let key = body["key"].as_str().expect("key").to_string();
        created.push((r.json()["id"].as_i64().expect("id"), key));
    }
    created
}

/// Soft-deletes flags, so reruns against a long-lived dev server don't grow the project.
/// Dependents go first (a flag others depend on can't be deleted).
pub async fn delete_flags(s: &Server, created: &[(i64, String)]) {
    for (id, key) in created.iter().rev() {
        let path = s.flags_path(&format!("{id}/"));
        let r = s
            .call("PATCH", &path, Some(&json!({"deleted": true})))
            .await;
        assert_eq!(r.status, 200, "deleting {key}: {}", r.text);
    }
}

/// Persons in the shape of `generate::user`, with ids no other run uses: every plan, seats on
/// both sides of the variant flag's condition, and both sides of the email condition.
pub fn people(stem: &str) -> Vec<Value> {
    let plans = ["free", "pro", "enterprise"];
    (0..8)
        .map(|i| {
            let domain = if i % 3 == 0 { "acme.io" } else { "example.com" };
            json!({
                "id": format!("{stem}-person-{i}"),
                "person": {"plan": plans[i % 3], "seats": i * 2, "email": format!("p{i}@{domain}")},
                "groups": {},
                "group_properties": {},
            })
        })
        .collect()
}

/// Each person's captured `$set` properties are in the persons API (polled: a client may still be
/// sending when its flush returns).
pub async fn assert_stored(s: &Server, sdk: &str, people: &[Value]) {
    let started = Instant::now();
    for person in people {
        let id = person["id"].as_str().expect("id");
        let path = format!("/api/projects/{}/persons/?distinct_id={id}", s.project_id);
        loop {
            let found = s.call("GET", &path, None).await;
            assert_eq!(found.status, 200, "{}", found.text);
            let stored = found.json()["results"][0]["properties"].clone();
            let want = person["person"].as_object().expect("person properties");
            if want.iter().all(|(k, v)| stored.get(k) == Some(v)) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{sdk}: the persons API lacks {id}'s captured $set {want:?}: {}",
                found.text
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
