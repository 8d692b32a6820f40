//! Capture (evaluation-rules.md §5): every path and body form answers `200 {"status": 1}`;
//! `$feature_flag_called` sets `last_called_at`, `$groupidentify` learns group types.

use base64::Engine;
use serde_json::{Value, json};
use shared::http::{ApiRequest, ApiResponse};
use shared::store::{ActivityStore, DefinitionsStore};

use crate::support::{Sdk, body, everyone, gzip, text};

fn called(key: &str) -> Value {
    json!({"event": "$feature_flag_called", "distinct_id": "u",
        "properties": {"$feature_flag": key, "$feature_flag_response": true, "locally_evaluated": false}})
}

fn group_identify(kind: &str, key: &str) -> Value {
    json!({"event": "$groupidentify", "distinct_id": "u",
        "properties": {"$group_type": kind, "$group_key": key, "$group_set": {"name": key}}})
}

async fn batch(sdk: &Sdk, events: Vec<Value>) -> ApiResponse {
    let body = json!({"api_key": sdk.token(), "batch": events, "sent_at": "2026-01-01T00:00:00Z", "historical_migration": false});
    sdk.send(ApiRequest::new("POST", "/batch/").with_json(&body))
        .await
}

fn ok(r: &ApiResponse) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(body(r), json!({"status": 1}));
}

#[tokio::test]
async fn flag_called_sets_last_called_at_once_a_minute_without_a_definition_change() {
    let sdk = Sdk::new().await;
    let id = sdk
        .create(json!({"key": "used", "filters": everyone(100.0)}))
        .await;
    let before = sdk.stored(id).await;
    let version = sdk
        .world
        .store
        .definitions_version(sdk.world.project.id)
        .await
        .unwrap();
    let activity = activity_count(&sdk).await;

    ok(&batch(
        &sdk,
        vec![called("used"), called("used"), called("unknown-flag")],
    )
    .await);
    let after = sdk.stored(id).await;
    let first = after.last_called_at.expect("last_called_at set");
    assert_eq!(after.revision, before.revision, "not a flag edit");
    assert_eq!(after.version, before.version);
    assert_eq!(
        sdk.world
            .store
            .definitions_version(sdk.world.project.id)
            .await
            .unwrap(),
        version,
        "not a definition change"
    );
    assert_eq!(activity_count(&sdk).await, activity, "no activity entry");

    ok(&batch(&sdk, vec![called("used")]).await);
    assert_eq!(
        sdk.stored(id).await.last_called_at,
        Some(first),
        "one write a minute"
    );

    let shown = sdk.world.call("GET", &format!("{id}/"), None).await;
    assert_eq!(shown.body["last_called_at"], shared::time::format(&first));

    // A flag edit afterwards keeps it (the edit reads the flag first).
    sdk.world
        .call("PATCH", &format!("{id}/"), Some(json!({"name": "renamed"})))
        .await;
    assert_eq!(sdk.stored(id).await.last_called_at, Some(first));
}

async fn activity_count(sdk: &Sdk) -> i64 {
    sdk.world
        .store
        .activity_count(sdk.world.project.id, "FeatureFlag", None)
        .await
        .unwrap()
}

#[tokio::test]
async fn group_identify_learns_the_next_free_index() {
    let sdk = Sdk::new().await;
    sdk.group_type(0, "organization").await;
    ok(&batch(
        &sdk,
        vec![
            group_identify("company", "acme"),
            group_identify("company", "globex"),
            group_identify("team", "t1"),
        ],
    )
    .await);
    ok(&batch(&sdk, vec![group_identify("company", "initech")]).await);
    let mapping: Vec<(i32, String)> = sdk
        .world
        .store
        .group_types(sdk.world.project.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.index, g.name))
        .collect();
    assert_eq!(
        mapping,
        [
            (0, "organization".to_string()),
            (1, "company".to_string()),
            (2, "team".to_string())
        ]
    );
    let more: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|k| group_identify(k, "x"))
        .collect();
    ok(&batch(&sdk, more).await);
    let names: Vec<String> = sdk
        .world
        .store
        .group_types(sdk.world.project.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(
        names,
        ["organization", "company", "team", "a", "b"],
        "five at most"
    );
}

#[tokio::test]
async fn racing_captures_give_each_group_type_its_own_index() {
    let sdk = Sdk::new().await;
    let names = ["a", "b", "c", "d", "e", "f"];
    let captures = names
        .iter()
        .map(|name| batch(&sdk, vec![group_identify(name, "k")]));
    for r in futures::future::join_all(captures).await {
        ok(&r);
    }
    let stored = sdk
        .world
        .store
        .group_types(sdk.world.project.id)
        .await
        .unwrap();
    let indexes: Vec<i32> = stored.iter().map(|g| g.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4], "five types, each index once");
    let mut learned: Vec<&str> = stored.iter().map(|g| g.name.as_str()).collect();
    learned.sort();
    learned.dedup();
    assert_eq!(learned.len(), 5, "no name twice: {stored:?}");
}

#[tokio::test]
async fn every_path_and_body_form() {
    let sdk = Sdk::new().await;
    let event =
        json!({"event": "pageview", "distinct_id": "u", "properties": {"token": sdk.token()}});
    for path in ["/e/", "/i/v0/e/", "/capture", "/batch"] {
        ok(&sdk
            .send(ApiRequest::new("POST", path).with_json(&event))
            .await);
    }
    let list = json!([event]);
    ok(&sdk
        .send(ApiRequest::new("POST", "/e/").with_json(&list))
        .await);

    let node = json!({"api_key": sdk.token(), "batch": [event]}).to_string();
    let mut zipped = ApiRequest::new("POST", "/batch/")
        .with_header("content-type", "application/json")
        .with_header("content-encoding", "gzip");
    zipped.body = gzip(node.as_bytes());
    ok(&sdk.send(zipped).await);

    let mut js = ApiRequest::new("POST", "/e/").with_query("compression", "gzip-js");
    js.body = gzip(node.as_bytes());
    ok(&sdk.send(js).await);

    let encoded = base64::engine::general_purpose::STANDARD.encode(node.as_bytes());
    let mut form = ApiRequest::new("POST", "/e/")
        .with_header("content-type", "application/x-www-form-urlencoded");
    form.body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("data", &encoded)
        .finish()
        .into_bytes();
    ok(&sdk.send(form).await);
}

#[tokio::test]
async fn capture_errors() {
    let sdk = Sdk::new().await;
    let no_token = sdk
        .send(ApiRequest::new("POST", "/batch/").with_json(&json!({"batch": [{"event": "x"}]})))
        .await;
    assert_eq!(no_token.status, 401);
    let unknown = sdk
        .send(
            ApiRequest::new("POST", "/batch/")
                .with_json(&json!({"api_key": "phc_nope", "batch": []})),
        )
        .await;
    assert_eq!(unknown.status, 401);
    let bad = sdk
        .send(
            ApiRequest::new("POST", "/batch/")
                .with_json(&json!({"api_key": sdk.token(), "batch": [{"event": 1}]})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(text(&bad).contains("event 0 is not an object with a string `event`"));
    let mut huge = ApiRequest::new("POST", "/batch/");
    huge.body = vec![b' '; 5 * 1024 * 1024 + 1];
    assert_eq!(sdk.send(huge).await.status, 413);
    let get = sdk.send(ApiRequest::new("GET", "/batch/")).await;
    assert_eq!(get.status, 405);
}
