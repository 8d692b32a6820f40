//! Issue 13's bulk operations: `bulk_keys`, `bulk_update_tags`, `bulk_delete` and
//! `user_blast_radius`. Each bulk write leaves one activity entry per changed flag and moves
//! the project's definitions version exactly once per request.

use serde_json::{Value, json};
use shared::person::{ClaimedDistinctId, Person, PersonWrite};
use shared::store::{CohortStore, DefinitionsStore, PersonStore};

use crate::common::{Response, World, assert_error};
use crate::support::*;

async fn version(w: &World) -> i64 {
    w.store.definitions_version(w.project.id).await.unwrap()
}

async fn post(w: &World, action: &str, body: Value) -> Response {
    w.call("POST", &format!("{action}/"), Some(body)).await
}

async fn flag(w: &World, key: &str, tags: &[&str]) -> i64 {
    create_id(
        w,
        json!({"key": key, "tags": tags, "filters": everyone(100), "_should_create_usage_dashboard": false}),
    )
    .await
}

#[tokio::test]
async fn bulk_keys_maps_ids_to_keys_and_warns_about_the_rest() {
    let w = World::new().await;
    let a = flag(&w, "alpha", &[]).await;
    let b = flag(&w, "beta", &[]).await;
    let r = post(
        &w,
        "bulk_keys",
        json!({"ids": [a, b.to_string(), "x1", 999_999_999]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "keys": {a.to_string(): "alpha", b.to_string(): "beta"},
            "warning": "Invalid flag IDs ignored: ['x1']"
        })
    );
    let r = post(&w, "bulk_keys", json!({"ids": []})).await;
    assert_eq!(r.body, json!({"keys": {}}));
    let r = post(&w, "bulk_keys", json!({"ids": ["nope", null]})).await;
    assert_eq!(
        (r.status, r.body),
        (400, json!({"error": "Invalid flag IDs provided"}))
    );
    // A read scope is enough; a key without the flag scopes is refused.
    let reader = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let r = call_as(&w, &reader, "POST", "bulk_keys/", Some(json!({"ids": [a]}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let other = w.add_key(w.user.id, &["cohort:read"], None).await;
    let r = call_as(&w, &other, "POST", "bulk_keys/", Some(json!({"ids": [a]}))).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:read'",
        None,
    );
}

#[tokio::test]
async fn bulk_update_tags_writes_each_changed_flag_once_and_bumps_definitions_once() {
    let w = World::new().await;
    let a = flag(&w, "a", &["old"]).await;
    let b = flag(&w, "b", &["keep", "new"]).await;
    let c = flag(&w, "c", &[]).await;
    let before = version(&w).await;
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": [a, b, c, 424_242], "action": "add", "tags": ["New", " beta "]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "updated": [
                {"id": a, "tags": ["beta", "new", "old"]},
                {"id": b, "tags": ["beta", "keep", "new"]},
                {"id": c, "tags": ["beta", "new"]}
            ],
            "skipped": [{"id": 424_242, "reason": "Not found or no edit access"}]
        })
    );
    assert_eq!(
        version(&w).await,
        before + 1,
        "one bump for the whole request"
    );
    for id in [a, b, c] {
        let log = w.flag_activity(id).await;
        assert_eq!(log.len(), 2, "created + one update for {id}: {log:?}");
        assert_eq!(log[1].activity, "updated");
        let changes = log[1].detail["changes"].as_array().unwrap();
        assert!(changes.iter().any(|c| c["field"] == "tags"), "{changes:?}");
        assert_eq!(retrieve(&w, id).await["version"], 2);
    }
    // `remove`, then `set`; a flag whose tags do not change is reported but not written.
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": [a, c], "action": "remove", "tags": ["old"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["updated"][0],
        json!({"id": a, "tags": ["beta", "new"]})
    );
    assert_eq!(
        r.body["updated"][1],
        json!({"id": c, "tags": ["beta", "new"]})
    );
    assert_eq!(
        w.flag_activity(c).await.len(),
        2,
        "c had no `old` tag: nothing written"
    );
    assert_eq!(retrieve(&w, c).await["version"], 2);
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": [b], "action": "set", "tags": []}),
    )
    .await;
    assert_eq!(r.body["updated"], json!([{"id": b, "tags": []}]));
    assert_eq!(retrieve(&w, b).await["tags"], json!([]));
}

#[tokio::test]
async fn bulk_update_tags_validates_like_posthog() {
    let w = World::new().await;
    let a = flag(&w, "a", &[]).await;
    let too_many: Vec<i64> = (1..=501).collect();
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": too_many, "action": "add", "tags": ["x"]}),
    )
    .await;
    assert_error(
        &r,
        400,
        "max_length",
        "Ensure this field has no more than 500 elements.",
        Some("ids"),
    );
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": [a], "action": "add", "tags": []}),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "tags must not be empty for action 'add'.",
        Some("tags"),
    );
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": [a], "action": "tag", "tags": ["x"]}),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_choice",
        "\"tag\" is not a valid choice.",
        Some("action"),
    );
    let long = "x".repeat(256);
    let r = post(
        &w,
        "bulk_update_tags",
        json!({"ids": [a], "action": "add", "tags": ["ok", long]}),
    )
    .await;
    assert_error(
        &r,
        400,
        "max_length",
        "Ensure this field has no more than 255 characters.",
        Some("tags__1"),
    );
    let reader = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let body = json!({"ids": [a], "action": "add", "tags": ["x"]});
    let r = call_as(&w, &reader, "POST", "bulk_update_tags/", Some(body)).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:write'",
        None,
    );
    assert_eq!(retrieve(&w, a).await["tags"], json!([]), "nothing written");
}

#[tokio::test]
async fn bulk_delete_by_ids_reports_each_refusal_and_bumps_definitions_once() {
    let w = World::new().await;
    let base = flag(&w, "base", &[]).await;
    let dependent = create_id(
        &w,
        json!({"key": "dependent", "filters": filters_depending_on(&[base])}),
    )
    .await;
    let plain = flag(&w, "plain", &[]).await;
    let partial = create_id(&w, json!({"key": "partial", "filters": everyone(30)})).await;
    let before = version(&w).await;
    let r = post(
        &w,
        "bulk_delete",
        json!({"ids": [base, plain, partial, "abc", 777_777]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "deleted": [
                {"id": plain, "key": "plain", "rollout_state": "fully_rolled_out", "active_variant": null},
                {"id": partial, "key": "partial", "rollout_state": "partial", "active_variant": null}
            ],
            "errors": [
                {"id": "abc", "reason": "Invalid flag ID format"},
                {"id": 777_777, "reason": "Flag not found"},
                {"id": base, "key": "base", "reason": format!("Cannot delete because other flags depend on it: dependent (ID: {dependent})")}
            ]
        })
    );
    assert_eq!(version(&w).await, before + 1, "one bump for two deletions");
    for id in [plain, partial] {
        assert_eq!(stored(&w, id).await.map(|f| f.deleted), Some(true));
        let log = w.flag_activity(id).await;
        assert_eq!(
            log.last().map(|e| e.activity.as_str()),
            Some("deleted"),
            "{log:?}"
        );
    }
    assert_eq!(stored(&w, base).await.map(|f| f.deleted), Some(false));
    assert_eq!(
        w.flag_activity(base).await.len(),
        1,
        "a refused flag gets no entry"
    );
    // Nothing deleted: no bump.
    let r = post(&w, "bulk_delete", json!({"ids": [777_777]})).await;
    assert_eq!(r.body["deleted"], json!([]));
    assert_eq!(version(&w).await, before + 1);
}

#[tokio::test]
async fn bulk_delete_by_filters_and_its_limits() {
    let w = World::new().await;
    let gone = [
        flag(&w, "cleanup-one", &[]).await,
        flag(&w, "cleanup-two", &["old"]).await,
    ];
    let kept_by_tag = flag(&w, "cleanup-three", &["keep"]).await;
    let other = flag(&w, "unrelated", &[]).await;
    let r = post(
        &w,
        "bulk_delete",
        json!({"filters": {"search": "cleanup", "excluded_tags": ["keep"]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut deleted: Vec<i64> = r.body["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    deleted.sort();
    assert_eq!(deleted, gone.to_vec());
    for id in [kept_by_tag, other] {
        assert_eq!(stored(&w, id).await.map(|f| f.deleted), Some(false));
    }
    let cases = [
        (
            json!({"filters": {"search": "x"}, "ids": [other]}),
            "Provide either filters or ids, not both",
        ),
        (json!({}), "Must provide either filters or ids"),
        (
            json!({"filters": {"color": "red", "active": "true"}}),
            "Unknown filter keys: color",
        ),
    ];
    for (body, error) in cases {
        let r = post(&w, "bulk_delete", body).await;
        assert_eq!((r.status, r.body), (400, json!({"error": error})));
    }
    let too_many: Vec<i64> = (1..=501).collect();
    let r = post(&w, "bulk_delete", json!({"ids": too_many})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"],
        "Too many flags to delete in one request: 501 selected, at most 500. Delete them in smaller batches."
    );
    assert_eq!(stored(&w, other).await.map(|f| f.deleted), Some(false));
}

/// Stores persons directly (capture's write path), one distinct id each.
async fn seed_persons(w: &World, people: &[(&str, Value)]) -> Vec<Person> {
    let now = chrono::Utc::now();
    let writes: Vec<PersonWrite> = people
        .iter()
        .map(|(distinct_id, props)| {
            let mut person = Person::new(w.project.id, distinct_id, now);
            person.properties = props.as_object().cloned().unwrap_or_default();
            PersonWrite {
                person,
                claimed_distinct_ids: vec![ClaimedDistinctId {
                    distinct_id: distinct_id.to_string(),
                    previous: None,
                }],
                merged: Vec::new(),
            }
        })
        .collect();
    let lost = w.store.write_persons(&writes).await.unwrap();
    assert!(lost.is_empty(), "seeding lost races: {lost:?}");
    writes.into_iter().map(|w| w.person).collect()
}

async fn blast(w: &World, body: Value) -> Response {
    post(w, "user_blast_radius", body).await
}

#[tokio::test]
async fn user_blast_radius_counts_stored_persons_through_the_engine() {
    let w = World::new().await;
    let people: Vec<(String, Value)> = (0..10)
        .map(|i| {
            (
                format!("person{i}"),
                json!({"group": i.to_string(), "plan": if i < 3 { "pro" } else { "free" }}),
            )
        })
        .collect();
    let refs: Vec<(&str, Value)> = people
        .iter()
        .map(|(d, p)| (d.as_str(), p.clone()))
        .collect();
    let seeded = seed_persons(&w, &refs).await;
    // PostHog's own test: four of ten persons, whatever the rollout percentage says.
    let condition = json!({
        "properties": [{"key": "group", "type": "person", "value": [0, 1, 2, 3], "operator": "exact"}],
        "rollout_percentage": 25
    });
    let r = blast(&w, json!({"condition": condition})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"affected": 4, "total": 10, "users_affected": 4, "total_users": 10})
    );
    // No properties: everyone.
    let r = blast(&w, json!({"condition": {"properties": []}})).await;
    assert_eq!(
        (r.body["affected"].clone(), r.body["total"].clone()),
        (json!(10), json!(10))
    );
    // A property cohort and a static cohort, matched as /flags matches them.
    let pro = w
        .send_to(
            shared::api::Group::Cohorts,
            shared::http::ApiRequest::new("POST", &format!("/api/projects/{}/cohorts/", w.project.id))
                .with_header("authorization", &format!("Bearer {}", w.key))
                .with_header("host", "testserver")
                .with_json(&json!({"name": "Pro", "filters": {"properties": {"type": "OR", "values": [{"type": "AND", "values": [
                    {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}]}]}}})),
        )
        .await;
    assert_eq!(pro.status, 201, "{:?}", pro.body);
    let pro_id = pro.body.as_ref().unwrap()["id"].as_i64().unwrap();
    let in_cohort = |id: i64| json!({"condition": {"properties": [{"key": "id", "type": "cohort", "value": id, "operator": "in"}]}});
    let r = blast(&w, in_cohort(pro_id)).await;
    assert_eq!(
        (r.status, r.body["affected"].clone()),
        (200, json!(3)),
        "{}",
        r.body
    );
    let fixed = w
        .send_to(
            shared::api::Group::Cohorts,
            shared::http::ApiRequest::new(
                "POST",
                &format!("/api/projects/{}/cohorts/", w.project.id),
            )
            .with_header("authorization", &format!("Bearer {}", w.key))
            .with_header("host", "testserver")
            .with_json(&json!({"name": "Fixed", "is_static": true})),
        )
        .await;
    assert_eq!(fixed.status, 201, "{:?}", fixed.body);
    let fixed_id = fixed.body.as_ref().unwrap()["id"].as_i64().unwrap();
    let members: Vec<String> = seeded.iter().take(2).map(|p| p.uuid.clone()).collect();
    w.store
        .add_cohort_members(w.project.id, fixed_id, &members)
        .await
        .unwrap();
    let r = blast(&w, in_cohort(fixed_id)).await;
    assert_eq!(r.body["affected"], 2, "{}", r.body);
    // Groups are not stored: none affected, none counted.
    let r = blast(
        &w,
        json!({"condition": {"properties": []}, "group_type_index": 0}),
    )
    .await;
    assert_eq!(
        (r.body["affected"].clone(), r.body["total"].clone()),
        (json!(0), json!(0))
    );
}

#[tokio::test]
async fn user_blast_radius_errors() {
    let w = World::new().await;
    let r = blast(&w, json!({"group_type_index": null})).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Missing condition for which to get blast radius",
        None,
    );
    let r = blast(&w, json!({"condition": {"properties": [{"key": "e", "type": "person", "operator": "regex", "value": "(("}]}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = blast(&w, json!({"condition": {}, "group_type_index": 9})).await;
    assert_eq!(
        (r.status, r.body["attr"].clone()),
        (400, json!("group_type_index"))
    );
    // Read scope suffices, as in PostHog.
    let reader = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let r = call_as(
        &w,
        &reader,
        "POST",
        "user_blast_radius/",
        Some(json!({"condition": {}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
