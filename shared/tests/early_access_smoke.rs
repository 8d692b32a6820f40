//! Early access features end to end in-process: create with a new flag, stage changes, delete.

mod common;

use common::World;
use serde_json::json;

#[tokio::test]
async fn feature_lifecycle_moves_the_enrollment_gate_with_the_stage() {
    let w = World::new().await;
    let created = w
        .call_early_access(
            "POST",
            "",
            Some(json!({"name": "Hick bondoogling", "stage": "concept"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let flag = &created.body["feature_flag"];
    assert_eq!(flag["key"], "hick-bondoogling");
    assert_eq!(
        flag["filters"]["super_groups"],
        serde_json::Value::Null,
        "concept does not enrol"
    );
    let id = created.body["id"].as_str().unwrap().to_string();
    let flag_id = flag["id"].as_i64().unwrap();

    let beta = w
        .call_early_access("PATCH", &format!("{id}/"), Some(json!({"stage": "beta"})))
        .await;
    assert_eq!(beta.status, 200, "{}", beta.body);
    let stored = w.call("GET", &format!("{flag_id}/"), None).await.body;
    assert_eq!(stored["version"], 2);
    assert_eq!(
        stored["filters"]["super_groups"][0]["properties"][0]["key"],
        "$feature_enrollment/hick-bondoogling"
    );
    assert_eq!(stored["features"][0]["id"], id.as_str());

    let delete_flag = w
        .call(
            "PATCH",
            &format!("{flag_id}/"),
            Some(json!({"deleted": true})),
        )
        .await;
    assert_eq!(delete_flag.status, 400);
    assert_eq!(
        delete_flag.body["detail"],
        "Cannot delete a feature flag that is in use with early access features. Please delete the early access feature before deleting the flag."
    );

    let archived = w
        .call_early_access(
            "PATCH",
            &format!("{id}/"),
            Some(json!({"stage": "archived"})),
        )
        .await;
    assert_eq!(archived.status, 200, "{}", archived.body);
    let stored = w.call("GET", &format!("{flag_id}/"), None).await.body;
    assert_eq!(stored["filters"]["super_groups"], serde_json::Value::Null);
    assert_eq!(
        stored["version"], 2,
        "removing the gate is a direct save: no version bump"
    );

    let gone = w.call_early_access("DELETE", &format!("{id}/"), None).await;
    assert_eq!(gone.status, 204);
    assert_eq!(
        w.call_early_access("GET", &format!("{id}/"), None)
            .await
            .status,
        404
    );
    let deleted = w
        .call(
            "PATCH",
            &format!("{flag_id}/"),
            Some(json!({"deleted": true})),
        )
        .await;
    assert_eq!(
        deleted.status, 200,
        "the flag can go once its feature is gone"
    );
}
