//! §6.3: every flag write stores its activity entry (read here straight from the activity
//! table and its `by-item` index).

use serde_json::{Value, json};
use shared::identity::UserSummary;

use crate::common::World;
use crate::support::*;

fn change(action: &str, field: &str, before: Value, after: Value) -> Value {
    json!({"type": "FeatureFlag", "action": action, "field": field, "before": before, "after": after})
}

#[tokio::test]
async fn create_then_update_writes_created_then_updated_with_the_diff() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "original name"})).await;
    patch_ok(&w, id, json!({"name": "Updated name"})).await;
    let log = w.flag_activity(id).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let (created, updated) = (&log[0], &log[1]);
    assert_eq!(
        (created.activity.as_str(), updated.activity.as_str()),
        ("created", "updated")
    );
    for entry in &log {
        assert_eq!(entry.scope, "FeatureFlag");
        assert_eq!(entry.item_id, id.to_string());
        assert_eq!(entry.project_id, w.project.id);
        assert_eq!(entry.user, Some(UserSummary::from(&w.user)));
    }
    assert_eq!(
        created.detail,
        json!({"changes": [], "trigger": null, "type": null, "name": "k", "short_id": null})
    );
    assert_eq!(
        updated.detail,
        json!({
            "changes": [
                change("changed", "name", json!("original name"), json!("Updated name")),
                change("changed", "version", json!(1), json!(2)),
            ],
            "trigger": null, "type": null, "name": "k", "short_id": null,
        })
    );
    assert!(created.created_at <= updated.created_at);
    assert_eq!((created.item_seq, updated.item_seq), (1, 2));
}

#[tokio::test]
async fn first_filters_are_created_and_deletes_and_restores_are_named() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "original name"})).await;
    let groups = json!([{"properties": [], "rollout_percentage": 74}]);
    patch_ok(
        &w,
        id,
        json!({"name": "Updated name", "filters": {"groups": groups}}),
    )
    .await;
    patch_ok(&w, id, json!({"deleted": true})).await;
    patch_ok(&w, id, json!({"deleted": false, "key": "k2"})).await;
    let log = w.flag_activity(id).await;
    let activities: Vec<&str> = log.iter().map(|e| e.activity.as_str()).collect();
    assert_eq!(activities, ["created", "updated", "deleted", "restored"]);

    let changes = log[1].detail["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(
        changes[0],
        change(
            "changed",
            "name",
            json!("original name"),
            json!("Updated name")
        )
    );
    assert_eq!(
        (
            changes[1]["action"].clone(),
            changes[1]["field"].clone(),
            changes[1]["before"].clone()
        ),
        (json!("created"), json!("filters"), Value::Null)
    );
    assert_eq!(changes[1]["after"]["groups"], groups);
    assert_eq!(changes[2], change("changed", "version", json!(1), json!(2)));

    assert_eq!(
        log[2].detail["changes"],
        json!([
            change("changed", "deleted", json!(false), json!(true)),
            change("changed", "version", json!(2), json!(3))
        ])
    );
    assert_eq!(
        log[3].detail["name"], "k2",
        "entries name the key after the change"
    );
    assert_eq!(
        log[3].detail["changes"],
        json!([
            change("changed", "key", json!("k"), json!("k2")),
            change("changed", "deleted", json!(true), json!(false)),
            change("changed", "version", json!(3), json!(4)),
        ])
    );
}

#[tokio::test]
async fn rejected_writes_leave_no_entry_and_entries_follow_the_writer() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    assert_eq!(patch(&w, id, json!({"key": "bad key"})).await.status, 400);
    assert_eq!(raw(&w, w.req("DELETE", &id.to_string())).await.status, 405);
    assert_eq!(w.flag_activity(id).await.len(), 1);
    let second = crate::common::add_user(&w.store, &w.org.id, "second@example.com").await;
    let key = w.add_key(second.id, &["*"], None).await;
    assert_eq!(
        call_as(
            &w,
            &key,
            "PATCH",
            &id.to_string(),
            Some(json!({"active": false}))
        )
        .await
        .status,
        200
    );
    let log = w.flag_activity(id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].user, Some(UserSummary::from(&second)));
    assert_eq!(
        log[1].detail["changes"],
        json!([
            change("changed", "active", json!(true), json!(false)),
            change("changed", "version", json!(1), json!(2))
        ])
    );
}

#[tokio::test]
async fn every_parallel_update_has_its_entry() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let calls = (0..6).map(|i| patch(&w, id, json!({"name": format!("n{i}")})));
    let oks = futures::future::join_all(calls)
        .await
        .iter()
        .filter(|r| r.status == 200)
        .count();
    let log = w.flag_activity(id).await;
    assert_eq!(log.len(), 1 + oks);
    let seqs: Vec<i64> = log.iter().map(|e| e.item_seq).collect();
    assert_eq!(
        seqs,
        (1..=(1 + oks as i64)).collect::<Vec<_>>(),
        "positions without gaps or duplicates"
    );
    // Versions in the log chain up: each entry's `before` is the previous entry's `after`.
    for (n, entry) in log.iter().skip(1).enumerate() {
        let version = entry.detail["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field"] == "version")
            .unwrap();
        assert_eq!(
            (version["before"].clone(), version["after"].clone()),
            (json!(n + 1), json!(n + 2))
        );
    }
}
