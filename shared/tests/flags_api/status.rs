//! §5.6 `GET /{id}/status/` and §7 `GET /{id}/dependent_flags/`.

use serde_json::{Value, json};
use shared::http::ApiRequest;

use crate::common::{World, assert_error};
use crate::support::*;

async fn status_of(w: &World, id: impl std::fmt::Display) -> (u16, Value) {
    let r = get(w, &format!("{id}/status")).await;
    (r.status, r.body)
}

fn ok(status: &str, reason: &str) -> (u16, Value) {
    (200, json!({"status": status, "reason": reason}))
}

#[tokio::test]
async fn status_of_new_deleted_and_disabled_flags() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "filters": everyone(100)})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("active", "Flag has no usage data yet")
    );
    patch_ok(&w, id, json!({"active": false})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("active", "Flag is disabled (not evaluated for staleness)")
    );
    patch_ok(&w, id, json!({"deleted": true})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("deleted", "Flag has been deleted")
    );
}

#[tokio::test]
async fn status_from_usage() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "filters": everyone(50)})).await;
    patch_ok(&w, id, json!({"last_called_at": ago(0, 1)})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("active", "Flag was called today")
    );
    patch_ok(&w, id, json!({"last_called_at": ago(1, 2)})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("active", "Flag was last called 1 day ago")
    );
    patch_ok(&w, id, json!({"last_called_at": ago(12, 2)})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("active", "Flag was last called 12 days ago")
    );
    patch_ok(&w, id, json!({"last_called_at": ago(45, 2)})).await;
    assert_eq!(
        status_of(&w, id).await,
        ok("stale", "Flag has not been called in 45 days")
    );
    assert_eq!(retrieve(&w, id).await["status"], "STALE");
}

#[tokio::test]
async fn status_from_configuration_of_old_uncalled_flags() {
    let w = World::new().await;
    let boolean = create_id(&w, json!({"key": "boolean", "filters": everyone(100)})).await;
    patch_ok(&w, boolean, json!({"created_at": ago(31, 0)})).await;
    assert_eq!(
        status_of(&w, boolean).await,
        ok(
            "stale",
            "This boolean flag will always evaluate to \"true\""
        )
    );
    let variant = create_id(
        &w,
        json!({"key": "variant", "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 0}, {"key": "test", "rollout_percentage": 100}]}
        }}),
    )
    .await;
    patch_ok(&w, variant, json!({"created_at": ago(31, 0)})).await;
    assert_eq!(
        status_of(&w, variant).await,
        ok("stale", "This flag will always use the variant \"test\"")
    );
    let overridden = create_id(
        &w,
        json!({"key": "overridden", "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100, "variant": "control"}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]}
        }}),
    )
    .await;
    patch_ok(&w, overridden, json!({"created_at": ago(31, 0)})).await;
    assert_eq!(
        status_of(&w, overridden).await,
        ok("stale", "This flag will always use the variant \"control\"")
    );
    // Partial rollouts and young flags are active.
    let partial = create_id(&w, json!({"key": "partial", "filters": everyone(99)})).await;
    patch_ok(&w, partial, json!({"created_at": ago(31, 0)})).await;
    assert_eq!(
        status_of(&w, partial).await,
        ok("active", "Flag has no usage data yet")
    );
    let young = create_id(&w, json!({"key": "young", "filters": everyone(100)})).await;
    patch_ok(&w, young, json!({"created_at": ago(29, 0)})).await;
    assert_eq!(
        status_of(&w, young).await,
        ok("active", "Flag has no usage data yet")
    );
}

#[tokio::test]
async fn status_of_missing_foreign_and_malformed_ids_is_404_with_its_own_body() {
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
    let unknown = (
        404,
        json!({"status": "unknown", "reason": "Flag could not be found"}),
    );
    assert_eq!(status_of(&w, 999_999_999).await, unknown);
    assert_eq!(
        status_of(&w, foreign).await,
        unknown,
        "scoped to the project"
    );
    assert_eq!(status_of(&w, "abc").await, unknown);
}

#[tokio::test]
async fn dependent_flags_sorted_by_key_with_name_fallback() {
    let w = World::new().await;
    let target = create_id(&w, json!({"key": "target"})).await;
    let unrelated = create_id(&w, json!({"key": "unrelated"})).await;
    let zeta = create_id(
        &w,
        json!({"key": "zeta", "name": "Zeta flag", "filters": filters_depending_on(&[target])}),
    )
    .await;
    let alpha = create_id(
        &w,
        json!({"key": "alpha", "filters": filters_depending_on(&[unrelated, target])}),
    )
    .await;
    // A dependency in a later group counts too.
    let later = create_id(
        &w,
        json!({"key": "later-group", "name": "Later", "filters": {"groups": [
            {"properties": [], "rollout_percentage": 10},
            {"properties": [depends_on(target)], "rollout_percentage": 100}
        ]}}),
    )
    .await;
    let inactive = create_id(
        &w,
        json!({"key": "inactive", "filters": filters_depending_on(&[target])}),
    )
    .await;
    patch_ok(&w, inactive, json!({"active": false})).await;
    let deleted = create_id(
        &w,
        json!({"key": "deleted", "filters": filters_depending_on(&[target])}),
    )
    .await;
    patch_ok(&w, deleted, json!({"deleted": true})).await;
    create_id(
        &w,
        json!({"key": "on-unrelated", "filters": filters_depending_on(&[unrelated])}),
    )
    .await;

    let r = get(&w, &format!("{target}/dependent_flags")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!([
            {"id": alpha, "key": "alpha", "name": "alpha"},
            {"id": later, "key": "later-group", "name": "Later"},
            {"id": zeta, "key": "zeta", "name": "Zeta flag"},
        ])
    );
    let r = get(&w, &format!("{zeta}/dependent_flags/")).await;
    assert_eq!((r.status, r.body), (200, json!([])));
}

#[tokio::test]
async fn dependent_flags_of_a_soft_deleted_target_and_missing_ones() {
    let w = World::new().await;
    let target = create_id(&w, json!({"key": "target"})).await;
    patch_ok(&w, target, json!({"deleted": true})).await;
    let r = get(&w, &format!("{target}/dependent_flags")).await;
    assert_eq!((r.status, r.body), (200, json!([])));
    assert_error(
        &get(&w, "999999999/dependent_flags").await,
        404,
        "not_found",
        "Not found.",
        None,
    );
    assert_error(
        &get(&w, "abc/dependent_flags").await,
        404,
        "not_found",
        "Not found.",
        None,
    );
}
