//! `archived` (newer PostHog): stored and shown, never enabled, hidden from the default list,
//! logged like any field, and served to SDKs as the disabled flag it is. Plus `?key=`.

use serde_json::{Value, json};
use shared::api::flags::DefinitionsCache;
use shared::api::{Context, Group};
use shared::http::ApiRequest;

use crate::common::{World, assert_error};
use crate::support::*;

const ARCHIVE_ENABLED: &str = "Cannot archive an enabled feature flag. Disable it first, or send active: false in the same request.";
const ENABLE_ARCHIVED: &str = "Cannot enable an archived feature flag. Unarchive it first.";

/// Through the `flags` function's handler, as an SDK calls it.
async fn sdk(w: &World, req: ApiRequest) -> Value {
    let cache = DefinitionsCache::default();
    let ctx = Context {
        store: &w.store,
        cipher: &w.cipher,
        now: chrono::Utc::now(),
        cache: &cache,
    };
    let r = Group::Flags
        .handle(&ctx, &req.with_header("host", "testserver"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body.unwrap()
}

#[tokio::test]
async fn archiving_needs_the_flag_disabled_and_shows_everywhere() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "done", "filters": everyone(100)})).await;
    let flag = retrieve(&w, id).await;
    assert_eq!(flag["archived"], false, "the default");

    // An enabled flag is not archived on its own, and the failed write changes nothing.
    assert_error(
        &patch(&w, id, json!({"archived": true})).await,
        400,
        "invalid_input",
        ARCHIVE_ENABLED,
        None,
    );
    assert_eq!(retrieve(&w, id).await, flag);

    let archived = patch_ok(&w, id, json!({"archived": true, "active": false})).await;
    assert_eq!(
        (&archived["archived"], &archived["active"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(archived["status"], "ARCHIVED");
    assert_eq!(archived["version"], 2);
    assert_eq!(retrieve(&w, id).await, archived);
    let status = get(&w, &format!("{id}/status")).await;
    assert_eq!(
        status.body,
        json!({"status": "archived", "reason": "Flag has been archived"})
    );

    // It stays disabled until it is unarchived, which may happen in the same request.
    assert_error(
        &patch(&w, id, json!({"active": true})).await,
        400,
        "invalid_input",
        ENABLE_ARCHIVED,
        None,
    );
    assert_error(
        &patch(&w, id, json!({"active": "true", "archived": true})).await,
        400,
        "invalid_input",
        ARCHIVE_ENABLED,
        None,
    );
    patch_ok(&w, id, json!({"name": "edits keep it archived"})).await;
    let back = patch_ok(&w, id, json!({"archived": false, "active": true})).await;
    assert_eq!(
        (&back["archived"], &back["active"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(back["status"], "ACTIVE");

    // Created archived: only together with `active: false`.
    assert_error(
        &w.call(
            "POST",
            "",
            Some(json!({"key": "born-done", "archived": true})),
        )
        .await,
        400,
        "invalid_input",
        ARCHIVE_ENABLED,
        None,
    );
    let created = w
        .create(json!({"key": "born-done", "archived": true, "active": false}))
        .await;
    assert_eq!(created["archived"], true);
    assert_error(
        &patch(&w, id, json!({"archived": null})).await,
        400,
        "null",
        "This field may not be null.",
        Some("archived"),
    );
}

#[tokio::test]
async fn archiving_with_active_dependents_is_the_disable_guard() {
    let w = World::new().await;
    let base = create_id(&w, json!({"key": "base"})).await;
    create_id(
        &w,
        json!({"key": "child", "filters": filters_depending_on(&[base])}),
    )
    .await;
    let r = patch(&w, base, json!({"archived": true, "active": false})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().starts_with(
            "Cannot disable this feature flag because other flags depend on it: child"
        ),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_list_leaves_archived_flags_out_unless_asked() {
    let w = World::new().await;
    let old = create_id(&w, json!({"key": "old"})).await;
    patch_ok(&w, old, json!({"archived": true, "active": false})).await;
    create_id(&w, json!({"key": "live"})).await;
    let page = list(&w, &[]).await;
    assert_eq!(
        (keys(&page), &page["count"]),
        (vec!["live".to_string()], &json!(1))
    );
    assert_eq!(listed(&w, &[("archived", "true")]).await, ["old"]);
    assert_eq!(listed(&w, &[("archived", "1")]).await, ["old"]);
    assert_eq!(listed(&w, &[("archived", "false")]).await, ["live"]);
    assert_eq!(listed(&w, &[("archived", "")]).await, ["live"]);
    assert_eq!(
        listed(&w, &[("archived", "true"), ("active", "false")]).await,
        ["old"]
    );
}

#[tokio::test]
async fn key_finds_one_flag_anywhere_in_the_project() {
    let w = World::new().await;
    for i in 0..25 {
        create_id(&w, json!({"key": format!("flag-{i:02}")})).await;
    }
    // The oldest flag is far past the first page of 20, as a CLI asking by key would see it.
    let newest = list(&w, &[("limit", "20")]).await;
    assert!(!keys(&newest).contains(&"flag-00".to_string()));
    let found = list(&w, &[("key", "flag-00"), ("limit", "20")]).await;
    assert_eq!(
        (keys(&found), &found["count"], &found["next"]),
        (vec!["flag-00".to_string()], &json!(1), &Value::Null)
    );
    assert_eq!(keys(&list(&w, &[("key", " FLAG-01 ")]).await), ["flag-01"]);
    assert_eq!(
        list(&w, &[("key", "flag-0")]).await["count"],
        0,
        "exact, not a prefix"
    );
    assert_eq!(
        list(&w, &[("key", "")]).await["count"],
        25,
        "blank does not filter"
    );
    let archived = id_of(&found["results"][0]);
    patch_ok(&w, archived, json!({"archived": true, "active": false})).await;
    assert_eq!(list(&w, &[("key", "flag-00")]).await["count"], 0);
    assert_eq!(
        keys(&list(&w, &[("key", "flag-00"), ("archived", "true")]).await),
        ["flag-00"]
    );
}

#[tokio::test]
async fn archiving_is_logged_and_sdks_see_a_disabled_flag() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "done", "filters": everyone(100)})).await;
    create_id(&w, json!({"key": "live", "filters": everyone(100)})).await;
    patch_ok(&w, id, json!({"archived": true, "active": false})).await;

    let req = ApiRequest::new("GET", &w.path(&format!("{id}/activity/")))
        .with_header("authorization", &format!("Bearer {}", w.key));
    let log = w.send_activity(req).await.body.unwrap();
    let changes = log["results"][0]["detail"]["changes"].clone();
    let fields: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["active", "archived", "version"]);
    assert_eq!(
        changes[1],
        json!({"type": "FeatureFlag", "action": "changed", "field": "archived", "before": false, "after": true})
    );

    let token = w.project.api_token.clone();
    let flags = sdk(
        &w,
        ApiRequest::new("POST", "/flags/")
            .with_query("v", "4")
            .with_json(&json!({"api_key": token, "distinct_id": "someone"})),
    )
    .await;
    // Like every disabled flag, it is left out of the answer.
    assert!(flags["flags"].get("done").is_none(), "{flags}");
    assert_eq!(flags["flags"]["live"]["enabled"], true);

    let definitions = sdk(
        &w,
        ApiRequest::new("GET", "/api/feature_flag/local_evaluation")
            .with_query("token", &token)
            .with_header("authorization", &format!("Bearer {}", w.key)),
    )
    .await;
    let served = definitions["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "done")
        .unwrap();
    assert_eq!(
        (&served["key"], &served["active"]),
        (&json!("done"), &json!(false))
    );
    assert!(served.get("archived").is_none(), "PostHog's minimal shape");
}
