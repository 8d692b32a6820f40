//! §5.4/§5.5: soft delete and restore, the delete/disable/enable guards (E31–E33), restoring
//! onto a reused key.

use serde_json::json;

use crate::common::{World, assert_error};
use crate::support::*;

const TAKEN: &str = "There is already a feature flag with this key.";

#[tokio::test]
async fn soft_delete_hides_from_list_frees_the_key_and_restore_brings_it_back() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "is_remote_configuration": true})).await;
    let f = patch_ok(&w, id, json!({"deleted": true})).await;
    assert_eq!(
        (
            f["deleted"].clone(),
            f["status"].clone(),
            f["version"].clone()
        ),
        (json!(true), json!("DELETED"), json!(2))
    );
    assert_eq!(list(&w, &[]).await["count"], 0);
    assert_eq!(retrieve(&w, id).await["deleted"], true);
    // Deleting again is harmless.
    assert_eq!(
        patch_ok(&w, id, json!({"deleted": true})).await["version"],
        3
    );
    let f = patch_ok(&w, id, json!({"deleted": false})).await;
    assert_eq!(
        (f["deleted"].clone(), f["status"].clone()),
        (json!(false), json!("ACTIVE"))
    );
    assert_eq!(keys(&list(&w, &[]).await), ["k"]);
    // Restored flags hold their key again.
    assert_error(
        &w.call("POST", "", Some(json!({"key": "k"}))).await,
        400,
        "unique",
        TAKEN,
        Some("key"),
    );
    assert_eq!(raw(&w, w.req("GET", "k/remote_config")).await.status, 200);
}

#[tokio::test]
async fn form_encoded_soft_delete() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let mut req = w
        .req("PATCH", &id.to_string())
        .with_header("content-type", "application/x-www-form-urlencoded");
    req.body = b"deleted=True&name=replaced".to_vec();
    let r = w.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["deleted"].clone(), r.body["name"].clone()),
        (json!(true), json!("replaced"))
    );
}

#[tokio::test]
async fn restore_onto_a_reused_key_is_400_not_500() {
    let w = World::new().await;
    let old = create_id(&w, json!({"key": "k"})).await;
    patch_ok(&w, old, json!({"deleted": true})).await;
    // Renaming another flag to the soft-deleted flag's key is allowed …
    let other = create_id(&w, json!({"key": "other"})).await;
    assert_eq!(patch_ok(&w, other, json!({"key": "k"})).await["key"], "k");
    // … and then the old flag can't come back under that key.
    let r = patch(&w, old, json!({"deleted": false})).await;
    assert_error(&r, 400, "unique", TAKEN, Some("key"));
    assert_eq!(retrieve(&w, old).await["deleted"], true);
    // Restoring together with a new key works.
    let f = patch_ok(&w, old, json!({"deleted": false, "key": "k-restored"})).await;
    assert_eq!(
        (f["deleted"].clone(), f["key"].clone()),
        (json!(false), json!("k-restored"))
    );
    let mut listed = keys(&list(&w, &[]).await);
    listed.sort();
    assert_eq!(listed, ["k", "k-restored"]);
}

#[tokio::test]
async fn restore_after_the_key_was_recreated_is_400() {
    let w = World::new().await;
    let old = create_id(&w, json!({"key": "k"})).await;
    patch_ok(&w, old, json!({"deleted": true})).await;
    // A create purges the soft-deleted row, so to test the restore guard the new holder must
    // come from a rename.
    let holder = create_id(&w, json!({"key": "holder"})).await;
    patch_ok(&w, holder, json!({"key": "k"})).await;
    assert_error(
        &patch(&w, old, json!({"deleted": false})).await,
        400,
        "unique",
        TAKEN,
        Some("key"),
    );
}

#[tokio::test]
async fn e31_delete_guard_lists_five_dependents_sorted_by_key_then_the_rest() {
    let w = World::new().await;
    let base = create_id(&w, json!({"key": "base"})).await;
    let mut ids = std::collections::BTreeMap::new();
    for key in [
        "dep-g", "dep-c", "dep-a", "dep-f", "dep-b", "dep-e", "dep-d",
    ] {
        ids.insert(
            key,
            create_id(
                &w,
                json!({"key": key, "filters": filters_depending_on(&[base])}),
            )
            .await,
        );
    }
    let listed: Vec<String> = ["dep-a", "dep-b", "dep-c", "dep-d", "dep-e"]
        .iter()
        .map(|k| format!("{k} (ID: {})", ids[k]))
        .collect();
    let detail = format!(
        "Cannot delete this feature flag because other flags depend on it: {}, and 2 more. Please update or delete the dependent flags first.",
        listed.join(", ")
    );
    assert_error(
        &patch(&w, base, json!({"deleted": true})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    assert_eq!(retrieve(&w, base).await["deleted"], false);
}

#[tokio::test]
async fn e31_only_active_non_deleted_dependents_block_a_delete() {
    let w = World::new().await;
    let base = create_id(&w, json!({"key": "base"})).await;
    let blocker = create_id(
        &w,
        json!({"key": "blocker", "filters": filters_depending_on(&[base])}),
    )
    .await;
    let disabled = create_id(
        &w,
        json!({"key": "disabled", "filters": filters_depending_on(&[base])}),
    )
    .await;
    patch_ok(&w, disabled, json!({"active": false})).await;
    let deleted = create_id(
        &w,
        json!({"key": "deleted", "filters": filters_depending_on(&[base])}),
    )
    .await;
    patch_ok(&w, deleted, json!({"deleted": true})).await;
    let detail = format!(
        "Cannot delete this feature flag because other flags depend on it: blocker (ID: {blocker}). Please update or delete the dependent flags first."
    );
    assert_error(
        &patch(&w, base, json!({"deleted": true})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    patch_ok(&w, blocker, json!({"filters": everyone(100)})).await;
    assert_eq!(
        patch_ok(&w, base, json!({"deleted": true})).await["deleted"],
        true
    );
}

#[tokio::test]
async fn e32_disable_guard() {
    let w = World::new().await;
    let base = create_id(&w, json!({"key": "base"})).await;
    let child = create_id(
        &w,
        json!({"key": "child", "filters": filters_depending_on(&[base])}),
    )
    .await;
    let detail = format!(
        "Cannot disable this feature flag because other flags depend on it: child (ID: {child}). Please update or disable the dependent flags first."
    );
    assert_error(
        &patch(&w, base, json!({"active": false})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    assert_error(
        &patch(&w, base, json!({"active": "false"})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    assert_eq!(retrieve(&w, base).await["active"], true);
    // Other edits of the flag are not blocked, nor is an already-disabled dependent.
    assert_eq!(
        patch_ok(&w, base, json!({"name": "renamed"})).await["active"],
        true
    );
    patch_ok(&w, child, json!({"active": false})).await;
    assert_eq!(
        patch_ok(&w, base, json!({"active": false})).await["active"],
        false
    );
}

#[tokio::test]
async fn e33_enable_guard() {
    let w = World::new().await;
    let parent = create_id(&w, json!({"key": "parent"})).await;
    let other = create_id(&w, json!({"key": "another-parent"})).await;
    let child = create_id(
        &w,
        json!({"key": "child", "filters": filters_depending_on(&[parent, other])}),
    )
    .await;
    patch_ok(&w, child, json!({"active": false})).await;
    patch_ok(&w, parent, json!({"active": false})).await;
    patch_ok(&w, other, json!({"active": false})).await;
    let detail = format!(
        "Cannot enable this feature flag because it depends on disabled flags: another-parent (ID: {other}), parent (ID: {parent}). Please enable the dependency flags first."
    );
    assert_error(
        &patch(&w, child, json!({"active": true})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    assert_eq!(retrieve(&w, child).await["active"], false);
    patch_ok(&w, parent, json!({"active": true})).await;
    patch_ok(&w, other, json!({"active": true})).await;
    assert_eq!(
        patch_ok(&w, child, json!({"active": true})).await["active"],
        true
    );
}

#[tokio::test]
async fn guards_apply_to_put_too() {
    let w = World::new().await;
    let base = create_id(&w, json!({"key": "base"})).await;
    let child = create_id(
        &w,
        json!({"key": "child", "filters": filters_depending_on(&[base])}),
    )
    .await;
    let r = w
        .call(
            "PUT",
            &base.to_string(),
            Some(json!({"key": "base", "active": false})),
        )
        .await;
    let detail = format!(
        "Cannot disable this feature flag because other flags depend on it: child (ID: {child}). Please update or disable the dependent flags first."
    );
    assert_error(&r, 400, "invalid_input", &detail, None);
}

/// Writes read only the flags their checks reach (issue 16): the dependency index follows a
/// dependent that moves to another flag, and a reused key still purges every soft-deleted
/// holder, found through the deleted-key index rather than a read of the project.
#[tokio::test]
async fn guards_follow_moved_dependencies_and_reused_keys_purge_every_deleted_holder() {
    let w = World::new().await;
    let first = create_id(&w, json!({"key": "first"})).await;
    let second = create_id(&w, json!({"key": "second"})).await;
    let dependent = create_id(
        &w,
        json!({"key": "dependent", "filters": filters_depending_on(&[first])}),
    )
    .await;
    patch_ok(
        &w,
        dependent,
        json!({"filters": filters_depending_on(&[second])}),
    )
    .await;
    assert_eq!(
        patch_ok(&w, first, json!({"deleted": true})).await["deleted"],
        true
    );
    let detail = format!(
        "Cannot disable this feature flag because other flags depend on it: dependent (ID: {dependent}). Please update or disable the dependent flags first."
    );
    assert_error(
        &patch(&w, second, json!({"active": false})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    // Two soft-deleted holders of one key (the second made after the first was deleted).
    let old = create_id(&w, json!({"key": "reused"})).await;
    patch_ok(&w, old, json!({"deleted": true})).await;
    let older = create_id(&w, json!({"key": "reused"})).await;
    assert_eq!(raw(&w, w.req("GET", &format!("{old}/"))).await.status, 404);
    patch_ok(&w, older, json!({"deleted": true})).await;
    let new = create_id(&w, json!({"key": "reused"})).await;
    assert_eq!(
        raw(&w, w.req("GET", &format!("{older}/"))).await.status,
        404
    );
    assert_eq!(retrieve(&w, new).await["key"], "reused");
    // A cycle four flags deep is found by walking only the flags reachable from the new filters.
    let a = create_id(&w, json!({"key": "chain_a"})).await;
    let b = create_id(
        &w,
        json!({"key": "chain_b", "filters": filters_depending_on(&[a])}),
    )
    .await;
    let c = create_id(
        &w,
        json!({"key": "chain_c", "filters": filters_depending_on(&[b])}),
    )
    .await;
    let d = create_id(
        &w,
        json!({"key": "chain_d", "filters": filters_depending_on(&[c])}),
    )
    .await;
    let r = patch(&w, a, json!({"filters": filters_depending_on(&[d])})).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Circular dependency detected: chain_a → chain_d → chain_c → chain_b → chain_a",
        Some("filters"),
    );
}

/// Flags stored before the dependency and deleted-key indexes existed have no index items: the
/// project's first index read builds them, so the guards and the purge still see those flags.
#[tokio::test]
async fn flags_stored_before_the_indexes_are_indexed_on_first_use() {
    use shared::flag::Flag;
    use shared::identity::UserSummary;
    use shared::store::FlagStore;

    let w = World::new().await;
    let creator = UserSummary::from(&w.user);
    let now = chrono::Utc::now();
    let store = &w.store;
    let base = store.next_flag_id().await.unwrap();
    let dependent = store.next_flag_id().await.unwrap();
    let old = store.next_flag_id().await.unwrap();
    let mut flags = vec![
        Flag::new(base, w.project.id, "base".into(), creator.clone(), now),
        Flag::new(
            dependent,
            w.project.id,
            "dependent".into(),
            creator.clone(),
            now,
        ),
        Flag::new(old, w.project.id, "reused".into(), creator, now),
    ];
    flags[1].filters = filters_depending_on(&[base]);
    flags[2].deleted = true;
    store_as_before_indexes(&w, &flags).await;
    let detail = format!(
        "Cannot delete this feature flag because other flags depend on it: dependent (ID: {dependent}). Please update or delete the dependent flags first."
    );
    assert_error(
        &patch(&w, base, json!({"deleted": true})).await,
        400,
        "invalid_input",
        &detail,
        None,
    );
    create_id(&w, json!({"key": "reused"})).await;
    assert_eq!(raw(&w, w.req("GET", &format!("{old}/"))).await.status, 404);
}
