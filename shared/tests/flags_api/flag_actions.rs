//! §5.9: the single-purpose flag actions (enable, disable, archive, unarchive, roll out to
//! everyone, one condition's rollout). Each writes through the flag service: one activity
//! entry, a version bump and a definitions version bump per change, nothing at all for a
//! call that changes nothing, 409 on a stale `version`.

use serde_json::{Value, json};
use shared::activity::ActivityEntry;
use shared::store::{ActivityStore, CohortStore, DefinitionsStore};

use crate::common::{World, assert_error};
use crate::flag_evaluation::pro_cohort;
use crate::support::*;

/// `POST /feature_flags/{id}/<action>/` with the world's `*` key.
async fn act(w: &World, id: i64, action: &str, body: Value) -> crate::common::Response {
    w.call("POST", &format!("{id}/{action}/"), Some(body)).await
}

async fn act_ok(w: &World, id: i64, action: &str, body: Value) -> Value {
    let r = act(w, id, action, body.clone()).await;
    assert_eq!(r.status, 200, "{action} {body} → {}", r.body);
    r.body
}

/// The flag's activity entries, newest first.
async fn entries(w: &World, id: i64) -> Vec<ActivityEntry> {
    let item = id.to_string();
    let count = w
        .store
        .activity_count(w.project.id, "FeatureFlag", Some(&item))
        .await
        .unwrap();
    w.store
        .activity_page(w.project.id, "FeatureFlag", Some(&item), count, count)
        .await
        .unwrap()
}

/// The fields the newest entry changed.
async fn changed_fields(w: &World, id: i64) -> Vec<String> {
    let newest = entries(w, id).await.remove(0);
    newest.detail["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_string())
        .collect()
}

async fn definitions_version(w: &World) -> i64 {
    w.store.definitions_version(w.project.id).await.unwrap()
}

fn targeting() -> Value {
    json!({
        "groups": [
            {"properties": [{"key": "email", "type": "person", "value": "@example.com", "operator": "icontains"}],
             "rollout_percentage": 37, "variant": "control"},
            {"properties": [], "rollout_percentage": 5}
        ],
        "multivariate": {"variants": [
            {"key": "control", "rollout_percentage": 60},
            {"key": "test", "rollout_percentage": 40}
        ]},
        "payloads": {"control": "{\"copy\": \"a\"}"}
    })
}

#[tokio::test]
async fn each_state_action_changes_only_its_fields_once() {
    // (action, active before, archived before, active after, archived after)
    let cases = [
        ("enable", false, false, true, false),
        ("disable", true, false, false, false),
        ("archive", true, false, false, true),
        ("archive", false, false, false, true),
        ("unarchive", false, true, false, false),
    ];
    let w = World::new().await;
    for (n, (action, active, archived, active_after, archived_after)) in
        cases.into_iter().enumerate()
    {
        let key = format!("{action}-{n}");
        let id = create_id(
            &w,
            json!({"key": key, "name": "kept", "filters": targeting(), "active": active, "archived": archived}),
        )
        .await;
        let before = retrieve(&w, id).await;
        let defs = definitions_version(&w).await;

        // A body trying to smuggle other changes is ignored: only the action's fields move.
        let shown = act_ok(
            &w,
            id,
            action,
            json!({"key": "hijacked", "filters": everyone(100), "active": !active_after, "archived": !archived_after}),
        )
        .await;
        assert_eq!(
            shown,
            retrieve(&w, id).await,
            "{action}: the GET representation"
        );
        assert_eq!(
            (&shown["active"], &shown["archived"]),
            (&json!(active_after), &json!(archived_after)),
            "{action}"
        );
        assert_eq!(shown["version"], before["version"].as_i64().unwrap() + 1);
        assert_eq!(
            (&shown["key"], &shown["name"], &shown["filters"]),
            (&before["key"], &before["name"], &before["filters"])
        );
        assert_eq!(shown["last_modified_by"]["email"], w.user.email);
        assert_eq!(definitions_version(&w).await, defs + 1, "{action}");
        // The state fields and the version, nothing of the targeting (enabling also resets
        // `performed_rollback`, as every write that turns a flag on does).
        let fields = changed_fields(&w, id).await;
        let moved = [
            ("active", active != active_after),
            ("archived", archived != archived_after),
        ];
        for (field, changed) in moved {
            let logged = fields.iter().any(|f| f == field);
            assert_eq!(logged, changed, "{action}: {fields:?}");
        }
        let allowed = ["active", "archived", "performed_rollback", "version"];
        let others: Vec<&String> = fields
            .iter()
            .filter(|f| !allowed.contains(&f.as_str()))
            .collect();
        assert!(others.is_empty(), "{action}: {fields:?}");
        let logged = entries(&w, id).await.len();

        // Again: nothing to change, nothing written.
        let again = act_ok(&w, id, action, json!({})).await;
        assert_eq!(again, shown, "{action} repeated");
        assert_eq!(entries(&w, id).await.len(), logged);
        assert_eq!(definitions_version(&w).await, defs + 1);
    }
}

#[tokio::test]
async fn a_stale_version_refuses_only_a_call_that_would_change_the_flag() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "v", "active": false})).await;
    patch_ok(&w, id, json!({"name": "someone else"})).await;
    let r = act(&w, id, "enable", json!({"version": 1})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["type"], "server_error");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("changed since version 1"),
        "{}",
        r.body
    );
    assert_eq!(retrieve(&w, id).await["active"], false);

    // Already disabled: a no-op succeeds without the check and carries the current version.
    let same = act_ok(&w, id, "disable", json!({"version": 1})).await;
    assert_eq!(same["version"], 2);
    // The current version, or null (= not sent), lets the change through.
    assert_eq!(
        act_ok(&w, id, "enable", json!({"version": 2})).await["active"],
        true
    );
    assert_eq!(
        act_ok(&w, id, "disable", json!({"version": null})).await["active"],
        false
    );
    assert_error(
        &act(&w, id, "enable", json!({"version": "x"})).await,
        400,
        "invalid_input",
        "A valid integer is required.",
        Some("version"),
    );
    assert_error(
        &act(&w, id, "enable", json!({"version": -1})).await,
        400,
        "min_value",
        "Ensure this value is greater than or equal to 0.",
        Some("version"),
    );
}

#[tokio::test]
async fn an_archived_flag_is_unarchived_before_it_is_enabled() {
    let w = World::new().await;
    // An archived flag is not enabled: it is unarchived first, and stays disabled.
    let done = create_id(
        &w,
        json!({"key": "done", "active": false, "archived": true}),
    )
    .await;
    assert_error(
        &act(&w, done, "enable", json!({})).await,
        400,
        "invalid_input",
        "Cannot enable an archived feature flag. Unarchive it first.",
        None,
    );
    let back = act_ok(&w, done, "unarchive", json!({})).await;
    assert_eq!(
        (&back["archived"], &back["active"]),
        (&json!(false), &json!(false))
    );
}

#[tokio::test]
async fn the_dependency_guards_apply_to_the_actions() {
    let w = World::new().await;
    // Disabling or archiving a flag others depend on is refused; so is enabling on a
    // disabled dependency.
    let base = create_id(&w, json!({"key": "base"})).await;
    create_id(
        &w,
        json!({"key": "child", "filters": filters_depending_on(&[base])}),
    )
    .await;
    for action in ["disable", "archive"] {
        let r = act(&w, base, action, json!({})).await;
        assert_eq!(r.status, 400, "{action}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().starts_with(
                "Cannot disable this feature flag because other flags depend on it: child"
            ),
            "{}",
            r.body
        );
    }
    assert_eq!(retrieve(&w, base).await["active"], true);
    let off = create_id(&w, json!({"key": "off"})).await;
    let needs_off = create_id(
        &w,
        json!({"key": "needs-off", "active": false, "filters": filters_depending_on(&[off])}),
    )
    .await;
    act_ok(&w, off, "disable", json!({})).await;
    let r = act(&w, needs_off, "enable", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("depends on disabled flags")
    );
}

#[tokio::test]
async fn deleted_and_unknown_flags_are_refused() {
    let w = World::new().await;
    // A soft-deleted flag: PostHog's `{"success": false}` body, nothing written.
    let gone = create_id(&w, json!({"key": "gone", "active": false})).await;
    patch_ok(&w, gone, json!({"deleted": true})).await;
    let r = act(&w, gone, "enable", json!({})).await;
    assert_eq!(
        (r.status, r.body),
        (
            400,
            json!({"success": false, "error": "This feature flag has been deleted. Restore it before enabling it."})
        )
    );
    // Unknown and malformed ids are 404s, as for GET.
    for id in ["999999", "abc"] {
        let r = w
            .call("POST", &format!("{id}/enable/"), Some(json!({})))
            .await;
        assert_eq!(r.status, 404, "{id}: {}", r.body);
    }
}

#[tokio::test]
async fn enabling_or_unarchiving_a_flag_on_a_deleted_cohort_is_refused() {
    let w = World::new().await;
    let mut pros = pro_cohort(&w).await;
    let cohort = pros.id;
    let filters = json!({"groups": [{"properties": [
        {"key": "id", "type": "cohort", "value": cohort, "operator": "in"}], "rollout_percentage": 100}]});
    let off = create_id(
        &w,
        json!({"key": "off", "active": false, "filters": filters}),
    )
    .await;
    let shelved = create_id(
        &w,
        json!({"key": "shelved", "active": false, "archived": true, "filters": filters}),
    )
    .await;
    pros.deleted = true;
    w.store.write_cohort(&pros, true).await.unwrap().unwrap();
    for (id, action) in [(off, "enable"), (shelved, "unarchive")] {
        assert_error(
            &act(&w, id, action, json!({})).await,
            400,
            "cohort_does_not_exist",
            &format!("Cohort with id {cohort} does not exist"),
            Some("filters"),
        );
    }
    // Disabling and archiving still work: they take the flag out of use.
    act_ok(&w, off, "archive", json!({})).await;
}

#[tokio::test]
async fn actions_need_feature_flag_write() {
    let w = World::new().await;
    let id = create_id(
        &w,
        json!({"key": "scoped", "active": false, "filters": everyone(10)}),
    )
    .await;
    let read = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let write = w.add_key(w.user.id, &["feature_flag:write"], None).await;
    let bodies = [
        ("enable", json!({})),
        ("disable", json!({})),
        ("archive", json!({})),
        ("unarchive", json!({})),
        ("roll_out_to_everyone", json!({"version": 1})),
        (
            "set_release_condition_rollout",
            json!({"condition_index": 0, "rollout_percentage": 20, "version": 1}),
        ),
    ];
    for (action, body) in &bodies {
        let r = call_as(
            &w,
            &read,
            "POST",
            &format!("{id}/{action}/"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, 403, "{action}: {}", r.body);
        assert_eq!(
            r.body["detail"],
            "API key missing required scope 'feature_flag:write'"
        );
    }
    assert_eq!(retrieve(&w, id).await["version"], 1);
    let r = call_as(
        &w,
        &write,
        "POST",
        &format!("{id}/enable/"),
        Some(json!({})),
    )
    .await;
    assert_eq!((r.status, &r.body["active"]), (200, &json!(true)));
}

#[tokio::test]
async fn roll_out_to_everyone_leads_with_a_catch_all_once() {
    let w = World::new().await;
    let boolean = create_id(
        &w,
        json!({"key": "bool", "filters": {"groups": [{"properties": [
            {"key": "email", "type": "person", "value": "@x.com", "operator": "icontains"}], "rollout_percentage": 10}],
            "payloads": {"true": "\"on\""}}}),
    )
    .await;
    let before = retrieve(&w, boolean).await;
    let shown = act_ok(&w, boolean, "roll_out_to_everyone", json!({"version": 1})).await;
    let groups = shown["filters"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["properties"], json!([]));
    assert_eq!(groups[0]["rollout_percentage"], 100);
    assert_eq!(groups[1], before["filters"]["groups"][0]);
    assert_eq!(shown["filters"]["payloads"], before["filters"]["payloads"]);
    assert_eq!(shown["version"], 2);
    assert_eq!(changed_fields(&w, boolean).await, ["filters", "version"]);
    // Already rolled out: no second condition, nothing written, the version unchanged.
    let logged = entries(&w, boolean).await.len();
    let again = act_ok(&w, boolean, "roll_out_to_everyone", json!({"version": 2})).await;
    assert_eq!(again, shown);
    assert_eq!(entries(&w, boolean).await.len(), logged);
    // …but a stale version is refused even then, and a variant on a flag without any.
    let stale = act(&w, boolean, "roll_out_to_everyone", json!({"version": 1})).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_detail_has(&stale, "changed since version 1");
    let variant = json!({"version": 2, "variant_key": "test"});
    let r = act(&w, boolean, "roll_out_to_everyone", variant).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_detail_has(&r, "has no variants");
}

fn assert_detail_has(r: &crate::common::Response, needle: &str) {
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(needle), "{needle:?} not in {}", r.body);
}

#[tokio::test]
async fn roll_out_to_everyone_gives_the_named_variant_the_whole_split() {
    let w = World::new().await;
    let multi = create_id(&w, json!({"key": "multi", "filters": targeting()})).await;
    let unknown = json!({"version": 1, "variant_key": "green"});
    for (body, needle) in [
        (json!({"version": 1}), "control, test"),
        (unknown, "has no variant 'green'"),
    ] {
        let r = act(&w, multi, "roll_out_to_everyone", body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_detail_has(&r, needle);
    }
    assert_eq!(retrieve(&w, multi).await["version"], 1);
    let body = json!({"version": 1, "variant_key": "test"});
    let shown = act_ok(&w, multi, "roll_out_to_everyone", body).await;
    let split: Vec<(Value, Value)> = shown["filters"]["multivariate"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].clone(), v["rollout_percentage"].clone()))
        .collect();
    assert_eq!(
        split,
        [(json!("control"), json!(0)), (json!("test"), json!(100))]
    );
    assert_eq!(shown["filters"]["groups"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn roll_out_to_everyone_needs_a_version_and_no_enrollment_gate() {
    let w = World::new().await;
    // Early access enrollment decides before conditions: refused.
    let gated = create_id(
        &w,
        json!({"key": "gated", "filters": {"groups": [{"properties": [], "rollout_percentage": 10}], "feature_enrollment": true}}),
    )
    .await;
    let r = act(&w, gated, "roll_out_to_everyone", json!({"version": 1})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_detail_has(&r, "early access enrollment");
    assert_eq!(retrieve(&w, gated).await["version"], 1);

    // `version` is required; null reads as 0, which no stored flag is at.
    let plain = create_id(&w, json!({"key": "plain", "filters": everyone(10)})).await;
    assert_error(
        &act(&w, plain, "roll_out_to_everyone", json!({})).await,
        400,
        "required",
        "This field is required.",
        Some("version"),
    );
    let null = act(&w, plain, "roll_out_to_everyone", json!({"version": null})).await;
    assert_eq!(null.status, 409, "{}", null.body);
}

#[tokio::test]
async fn set_release_condition_rollout_changes_one_percentage() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "pct", "filters": targeting()})).await;
    let before = retrieve(&w, id).await;
    let shown = act_ok(
        &w,
        id,
        "set_release_condition_rollout",
        json!({"condition_index": 1, "rollout_percentage": 0.5, "version": 1}),
    )
    .await;
    assert_eq!(shown["filters"]["groups"][1]["rollout_percentage"], 0.5);
    assert_eq!(
        shown["filters"]["groups"][0],
        before["filters"]["groups"][0]
    );
    assert_eq!(
        shown["filters"]["multivariate"],
        before["filters"]["multivariate"]
    );
    assert_eq!(shown["version"], 2);
    // The same percentage again writes nothing.
    let logged = entries(&w, id).await.len();
    let again = act_ok(
        &w,
        id,
        "set_release_condition_rollout",
        json!({"condition_index": 1, "rollout_percentage": 0.5, "version": 2}),
    )
    .await;
    assert_eq!(again["version"], 2);
    assert_eq!(entries(&w, id).await.len(), logged);
    // A stale version is refused, no-op or not.
    for pct in [0.5, 30.0] {
        let r = act(
            &w,
            id,
            "set_release_condition_rollout",
            json!({"condition_index": 1, "rollout_percentage": pct, "version": 1}),
        )
        .await;
        assert_eq!(r.status, 409, "{}", r.body);
    }

    let cases = [
        (
            json!({"condition_index": 2, "rollout_percentage": 25, "version": 2}),
            "invalid_input",
            "condition_index",
            "It has 2",
        ),
        (
            json!({"condition_index": -1, "rollout_percentage": 25, "version": 2}),
            "min_value",
            "condition_index",
            "greater than or equal to 0",
        ),
        (
            json!({"condition_index": 0, "rollout_percentage": 101, "version": 2}),
            "max_value",
            "rollout_percentage",
            "less than or equal to 100",
        ),
        (
            json!({"condition_index": 0, "rollout_percentage": "x", "version": 2}),
            "invalid_input",
            "rollout_percentage",
            "A valid number is required.",
        ),
        (
            json!({"rollout_percentage": 5, "version": 2}),
            "required",
            "condition_index",
            "This field is required.",
        ),
        (
            json!({"condition_index": 0, "rollout_percentage": 5}),
            "required",
            "version",
            "This field is required.",
        ),
    ];
    for (body, code, attr, needle) in cases {
        let r = act(&w, id, "set_release_condition_rollout", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(
            (&r.body["code"], &r.body["attr"]),
            (&json!(code), &json!(attr)),
            "{body}"
        );
        assert!(
            r.body["detail"].as_str().unwrap().contains(needle),
            "{}",
            r.body
        );
    }
    assert_eq!(retrieve(&w, id).await["version"], 2);
}

#[tokio::test]
async fn a_rollout_keeps_encrypted_payloads_readable() {
    let w = World::new().await;
    let id = create_id(
        &w,
        json!({"key": "secret", "is_remote_configuration": true, "has_encrypted_payloads": true,
               "filters": {"groups": [{"properties": [], "rollout_percentage": 10}], "payloads": {"true": "{\"k\": 1}"}}}),
    )
    .await;
    let shown = act_ok(
        &w,
        id,
        "set_release_condition_rollout",
        json!({"condition_index": 0, "rollout_percentage": 50, "version": 1}),
    )
    .await;
    assert_eq!(shown["filters"]["payloads"]["true"], "{\"k\": 1}");
    assert_eq!(
        retrieve(&w, id).await["filters"]["payloads"]["true"],
        "{\"k\": 1}"
    );
    let stored = stored(&w, id).await.unwrap();
    assert_ne!(
        stored.filters["payloads"]["true"], "{\"k\": 1}",
        "stored encrypted"
    );
}

#[tokio::test]
async fn rolling_a_group_flag_out_serves_every_group_of_its_type() {
    let w = World::new().await;
    let company = shared::store::GroupType {
        project_id: w.project.id,
        index: 0,
        name: "company".into(),
    };
    w.store.create_group_type(&company).await.unwrap();
    let id = create_id(
        &w,
        json!({"key": "companies", "filters": {"aggregation_group_type_index": 0, "groups": [
            {"properties": [{"key": "name", "type": "group", "group_type_index": 0, "value": "acme", "operator": "exact"}],
             "rollout_percentage": 100}]}}),
    )
    .await;
    let shown = act_ok(&w, id, "roll_out_to_everyone", json!({"version": 1})).await;
    assert_eq!(shown["filters"]["aggregation_group_type_index"], 0);
    let reasons = |groups: &'static str| {
        let req = w
            .req("GET", "evaluation_reasons/")
            .with_query("distinct_id", "u")
            .with_query("groups", groups);
        w.send(req)
    };
    let with = reasons("{\"company\": \"globex\"}").await;
    assert_eq!(with.body["companies"]["value"], true, "{}", with.body);
    let without = reasons("{}").await;
    assert_eq!(
        without.body["companies"]["value"], false,
        "{}",
        without.body
    );
}
