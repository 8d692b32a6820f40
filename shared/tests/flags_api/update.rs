//! §5.3 retrieve, §5.4 PATCH/PUT: versions, optimistic concurrency (E35), last_modified_by,
//! key renames, performed_rollback; §5.5 DELETE → 405.

use serde_json::{Value, json};
use shared::http::ApiRequest;
use shared::store::{FlagStore, FlagWrite};

use crate::common::{World, add_user, assert_error};
use crate::support::*;

fn conflict(email: &str) -> String {
    format!(
        "The feature flag was updated by {email} since you started editing it. Please refresh and try again."
    )
}

#[tokio::test]
async fn retrieve_shows_soft_deleted_flags() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    patch_ok(&w, id, json!({"deleted": true})).await;
    let f = retrieve(&w, id).await;
    assert_eq!(
        (f["deleted"].clone(), f["status"].clone()),
        (json!(true), json!("DELETED"))
    );
}

#[tokio::test]
async fn unknown_foreign_and_malformed_ids_are_404() {
    let w = World::new().await;
    let other = w.add_project(&w.org.id).await;
    let req = bearer(
        ApiRequest::new(
            "POST",
            &format!("/api/projects/{}/feature_flags/", other.id),
        ),
        &w.key,
    )
    .with_json(&json!({"key": "elsewhere"}));
    let foreign = id_of(&w.send(req).await.body);
    for id in [
        foreign.to_string(),
        "999999999".into(),
        "abc".into(),
        "1.0".into(),
        "-1".into(),
    ] {
        assert_error(&get(&w, &id).await, 404, "not_found", "Not found.", None);
        assert_error(
            &w.call("PATCH", &id, Some(json!({"name": "x"}))).await,
            404,
            "not_found",
            "Not found.",
            None,
        );
        assert_error(
            &w.call("PUT", &id, Some(json!({"key": "x"}))).await,
            404,
            "not_found",
            "Not found.",
            None,
        );
        assert_error(
            &w.call("GET", &format!("{id}/dependent_flags"), None).await,
            404,
            "not_found",
            "Not found.",
            None,
        );
    }
    // The foreign flag is untouched.
    let req = bearer(
        ApiRequest::new(
            "GET",
            &format!("/api/projects/{}/feature_flags/{foreign}/", other.id),
        ),
        &w.key,
    );
    let f = w.send(req).await;
    assert_eq!((f.status, f.body["version"].clone()), (200, json!(1)));
}

#[tokio::test]
async fn ids_are_global_across_projects() {
    let w = World::new().await;
    let other = w.add_project(&w.org.id).await;
    let here = create_id(&w, json!({"key": "same"})).await;
    let req = bearer(
        ApiRequest::new(
            "POST",
            &format!("/api/projects/{}/feature_flags/", other.id),
        ),
        &w.key,
    )
    .with_json(&json!({"key": "same"}));
    let there = id_of(&w.send(req).await.body);
    assert!(there > here);
}

#[tokio::test]
async fn version_increments_by_one_per_update_even_without_changes() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    assert_eq!(patch_ok(&w, id, json!({"name": "a"})).await["version"], 2);
    assert_eq!(patch_ok(&w, id, json!({})).await["version"], 3);
    assert_eq!(patch_ok(&w, id, json!({"name": "a"})).await["version"], 4);
    assert_eq!(
        patch_ok(&w, id, json!({"version": 100})).await["version"],
        5,
        "a client version is only a token"
    );
    let r = w
        .call("PUT", &id.to_string(), Some(json!({"key": "k"})))
        .await;
    assert_eq!(r.body["version"], 6);
    assert_eq!(retrieve(&w, id).await["version"], 6);
    // A rejected update does not count.
    assert_eq!(patch(&w, id, json!({"key": ""})).await.status, 400);
    assert_eq!(retrieve(&w, id).await["version"], 6);
}

#[tokio::test]
async fn last_modified_by_and_updated_at_follow_the_latest_writer() {
    let w = World::new().await;
    let second = add_user(&w.store, &w.org.id, "second@example.com").await;
    let second_key = w.add_key(second.id, &["*"], None).await;
    let created = w.create(json!({"key": "k"})).await;
    let id = id_of(&created);
    let r = call_as(
        &w,
        &second_key,
        "PATCH",
        &id.to_string(),
        Some(json!({"name": "by second"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["last_modified_by"], user_json(&second));
    assert_eq!(r.body["created_by"], user_json(&w.user));
    assert!(r.body["updated_at"].as_str().unwrap() > created["updated_at"].as_str().unwrap());
    assert_eq!(r.body["created_at"], created["created_at"]);
    assert_eq!(
        patch_ok(&w, id, json!({})).await["last_modified_by"],
        user_json(&w.user)
    );
}

#[tokio::test]
async fn put_requires_key_and_replaces_given_fields() {
    let w = World::new().await;
    let id = create_id(
        &w,
        json!({"key": "k", "name": "old", "filters": everyone(10)}),
    )
    .await;
    let r = w
        .call("PUT", &id.to_string(), Some(json!({"name": "no key"})))
        .await;
    assert_error(&r, 400, "required", "This field is required.", Some("key"));
    let r = w
        .call(
            "PUT",
            &id.to_string(),
            Some(json!({"key": "k2", "name": "new", "filters": everyone(20)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["key"].clone(),
            r.body["name"].clone(),
            r.body["filters"].clone()
        ),
        (json!("k2"), json!("new"), everyone(20))
    );
}

#[tokio::test]
async fn key_rules_on_update() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "mine"})).await;
    create_id(&w, json!({"key": "theirs"})).await;
    let r = patch(&w, id, json!({"key": "theirs"})).await;
    assert_error(
        &r,
        400,
        "unique",
        "There is already a feature flag with this key.",
        Some("key"),
    );
    let r = patch(&w, id, json!({"key": "not valid"})).await;
    assert_error(
        &r,
        400,
        "invalid_key",
        "Only letters, numbers, hyphens (-) & underscores (_) are allowed.",
        Some("key"),
    );
    let r = patch(&w, id, json!({"key": ""})).await;
    assert_error(
        &r,
        400,
        "blank",
        "This field may not be blank.",
        Some("key"),
    );
    assert_eq!(
        patch_ok(&w, id, json!({"key": "mine"})).await["key"],
        "mine",
        "keeping its own key is fine"
    );
    assert_eq!(
        patch_ok(&w, id, json!({"key": "renamed"})).await["key"],
        "renamed"
    );
    // The old key is free again; the new one is taken.
    assert_eq!(
        w.call("POST", "", Some(json!({"key": "mine"})))
            .await
            .status,
        201
    );
    let r = w.call("POST", "", Some(json!({"key": "renamed"}))).await;
    assert_error(
        &r,
        400,
        "unique",
        "There is already a feature flag with this key.",
        Some("key"),
    );
}

#[tokio::test]
async fn stale_version_with_conflicting_original_flag_is_409() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "start"})).await;
    patch_ok(&w, id, json!({"name": "theirs"})).await; // version 2, by owner@example.com
    let r = patch(
        &w,
        id,
        json!({"name": "mine", "version": 1, "original_flag": {"name": "start"}}),
    )
    .await;
    assert_error(&r, 409, "conflict", &conflict("owner@example.com"), None);
    let f = retrieve(&w, id).await;
    assert_eq!(
        (f["name"].clone(), f["version"].clone()),
        (json!("theirs"), json!(2)),
        "nothing written"
    );

    // The message names whoever modified the flag last.
    let second = add_user(&w.store, &w.org.id, "second@example.com").await;
    let second_key = w.add_key(second.id, &["*"], None).await;
    let r = call_as(
        &w,
        &second_key,
        "PATCH",
        &id.to_string(),
        Some(json!({"name": "second's"})),
    )
    .await;
    assert_eq!(r.status, 200); // version 3
    let r = patch(
        &w,
        id,
        json!({"name": "mine again", "version": 2, "original_flag": {"name": "theirs"}}),
    )
    .await;
    assert_error(&r, 409, "conflict", &conflict("second@example.com"), None);
    // Conflicts on filters are detected too.
    patch_ok(&w, id, json!({"filters": everyone(30)})).await;
    let r = patch(
        &w,
        id,
        json!({"filters": everyone(70), "version": 3, "original_flag": {"filters": everyone(10)}}),
    )
    .await;
    assert_error(&r, 409, "conflict", &conflict("owner@example.com"), None);
}

#[tokio::test]
async fn stale_version_without_a_real_conflict_proceeds() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "start"})).await;
    patch_ok(&w, id, json!({"name": "theirs"})).await; // version 2
    // No original_flag: last write wins.
    let f = patch_ok(&w, id, json!({"name": "mine", "version": 1})).await;
    assert_eq!(
        (f["name"].clone(), f["version"].clone()),
        (json!("mine"), json!(3))
    );
    // Empty original_flag: the same.
    assert_eq!(
        patch_ok(
            &w,
            id,
            json!({"name": "again", "version": 1, "original_flag": {}})
        )
        .await["version"],
        4
    );
    // Equal version: no check at all.
    let f = patch_ok(
        &w,
        id,
        json!({"name": "current", "version": 4, "original_flag": {"name": "something else"}}),
    )
    .await;
    assert_eq!(f["version"], 5);
    // Fields that don't overlap: the other writer changed the name, this one changes active.
    let f = patch_ok(
        &w,
        id,
        json!({"active": false, "version": 1, "original_flag": {"name": "start", "active": true}}),
    )
    .await;
    assert_eq!(
        (f["active"].clone(), f["name"].clone(), f["version"].clone()),
        (json!(false), json!("current"), json!(6))
    );
    // Same change as the other writer: not a conflict.
    let f = patch_ok(
        &w,
        id,
        json!({"name": "current", "version": 1, "original_flag": {"name": "start"}}),
    )
    .await;
    assert_eq!(f["version"], 7);
    // The client's field equals what it loaded (it isn't changing it): not a conflict.
    let f = patch_ok(
        &w,
        id,
        json!({"name": "start", "version": 1, "original_flag": {"name": "start"}}),
    )
    .await;
    assert_eq!(f["name"], "start");
}

#[tokio::test]
async fn rename_rewrites_enrollment_super_groups() {
    let w = World::new().await;
    let enrollment = |key: &str| json!([{"properties": [{"key": format!("$feature_enrollment/{key}"), "type": "person", "operator": "exact", "value": ["true"]}], "rollout_percentage": 100}]);
    let filters = json!({"groups": [{"properties": [], "rollout_percentage": 0}], "super_groups": enrollment("beta-feature")});
    let id = create_id(&w, json!({"key": "beta-feature", "filters": filters})).await;
    let f = patch_ok(&w, id, json!({"key": "beta-feature-v2"})).await;
    assert_eq!(f["filters"]["super_groups"], enrollment("beta-feature-v2"));
    assert_eq!(
        f["filters"]["groups"],
        json!([{"properties": [], "rollout_percentage": 0}])
    );
    // Also when filters are sent in the same request (with the old enrollment key).
    let f = patch_ok(&w, id, json!({"key": "v3", "filters": {"groups": [{"properties": [], "rollout_percentage": 5}], "super_groups": enrollment("beta-feature-v2")}})).await;
    assert_eq!(f["filters"]["super_groups"], enrollment("v3"));
    assert_eq!(
        retrieve(&w, id).await["filters"]["super_groups"],
        enrollment("v3")
    );
}

#[tokio::test]
async fn setting_active_true_resets_performed_rollback() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    assert_eq!(
        patch_ok(&w, id, json!({"performed_rollback": true})).await["performed_rollback"],
        true
    );
    assert_eq!(
        patch_ok(&w, id, json!({"name": "x"})).await["performed_rollback"],
        true
    );
    assert_eq!(
        patch_ok(&w, id, json!({"active": false})).await["performed_rollback"],
        true
    );
    assert_eq!(
        patch_ok(&w, id, json!({"active": true})).await["performed_rollback"],
        false
    );
    // Even when the flag already was active, and even if the same body says otherwise.
    patch_ok(&w, id, json!({"performed_rollback": true})).await;
    assert_eq!(
        patch_ok(&w, id, json!({"active": true, "performed_rollback": true})).await["performed_rollback"],
        false
    );
}

#[tokio::test]
async fn delete_is_405_with_an_empty_body() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    for rest in [
        id.to_string(),
        format!("{id}/"),
        "999999999".to_string(),
        "abc".to_string(),
    ] {
        let r = raw(&w, w.req("DELETE", &rest)).await;
        assert_eq!((r.status, r.body.clone()), (405, None), "DELETE {rest}");
    }
    let f = retrieve(&w, id).await;
    assert_eq!(
        (f["deleted"].clone(), f["version"].clone()),
        (json!(false), json!(1)),
        "unchanged"
    );
    assert_eq!(list(&w, &[]).await["count"], 1);
}

#[tokio::test]
async fn patch_validates_fields_like_create() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let r = patch(&w, id, json!({"evaluation_runtime": "both"})).await;
    assert_error(
        &r,
        400,
        "invalid_choice",
        "\"both\" is not a valid choice.",
        Some("evaluation_runtime"),
    );
    let r = patch(&w, id, json!({"deleted": "perhaps"})).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Must be a valid boolean.",
        Some("deleted"),
    );
    let r = patch(&w, id, json!({"version": "abc"})).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "A valid integer is required.",
        Some("version"),
    );
    let r = patch(&w, id, json!({"created_at": "yesterday"})).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
        Some("created_at"),
    );
    assert_eq!(retrieve(&w, id).await["version"], 1);
    // Fields PATCH leaves alone stay as they were.
    let f = patch_ok(&w, id, json!({"name": "only the name"})).await;
    assert_eq!(f["key"], "k");
    assert_eq!(
        f["filters"],
        json!({"groups": [{"properties": [], "rollout_percentage": null}]})
    );
    let f = patch_ok(
        &w,
        id,
        json!({"last_called_at": null, "ensure_experience_continuity": true}),
    )
    .await;
    assert_eq!(
        (
            f["last_called_at"].clone(),
            f["ensure_experience_continuity"].clone()
        ),
        (Value::Null, json!(true))
    );
}

#[tokio::test]
async fn conflict_without_a_known_last_editor_names_another_user() {
    let w = World::new().await;
    // A flag last written by the system (no last_modified_by), straight through the store.
    let mut flag = shared::flag::Flag::new(
        w.store.next_flag_id().await.unwrap(),
        w.project.id,
        "system-flag".into(),
        shared::identity::UserSummary::from(&w.user),
        chrono::Utc::now(),
    );
    flag.name = "set by the system".into();
    flag.version = 3;
    flag.last_modified_by = None;
    let id = flag.id;
    w.store
        .write_flag(FlagWrite {
            before: None,
            after: flag,
            purge: vec![],
            feature: None,
            dashboard: None,
            schedule: None,
            activity: None,
        })
        .await
        .unwrap();
    assert_eq!(retrieve(&w, id).await["last_modified_by"], Value::Null);
    let r = patch(
        &w,
        id,
        json!({"name": "mine", "version": 2, "original_flag": {"name": "old"}}),
    )
    .await;
    assert_error(&r, 409, "conflict", &conflict("another user"), None);
}
