//! The activity function in-process against DynamoDB Local (`DYNAMODB_ENDPOINT`):
//! flag-management-rules.md §6 through its endpoints — entries (§6.2), every §6.3 rule, page-number
//! pagination, scope, 404s — and the revert endpoint. Every test builds its own `World` on
//! fresh tables.

mod common;

use serde_json::{Value, json};
use shared::activity::{self, ActivityEntry, FLAG_SCOPE};
use shared::http::{ApiRequest, ApiResponse};
use shared::identity::UserSummary;
use shared::store::{ActivityStore, FlagStore, FlagWrite};

use common::{Response, World, add_user, assert_error};

// ---------------------------------------------------------------------------------------------
// Helpers

fn change(action: &str, field: &str, before: Value, after: Value) -> Value {
    json!({"type": "FeatureFlag", "action": action, "field": field, "before": before, "after": after})
}

fn version_change(from: i64) -> Value {
    change("changed", "version", json!(from), json!(from + 1))
}

/// `GET /feature_flags/<rest>?<params>` on the activity handler with `key`.
async fn get_as(w: &World, key: &str, rest: &str, params: &[(&str, &str)]) -> ApiResponse {
    let req = params.iter().fold(
        ApiRequest::new("GET", &w.path(rest))
            .with_header("authorization", &format!("Bearer {key}")),
        |req, (k, v)| req.with_query(k, v),
    );
    w.send_activity(req).await
}

async fn get(w: &World, rest: &str, params: &[(&str, &str)]) -> ApiResponse {
    get_as(w, &w.key, rest, params).await
}

/// A 200 page.
async fn page(w: &World, rest: &str, params: &[(&str, &str)]) -> Value {
    let r = get(w, rest, params).await;
    assert_eq!(r.status, 200, "GET {rest} {params:?}: {:?}", r.body);
    r.body.unwrap_or_else(|| panic!("GET {rest}: empty body"))
}

/// Every entry of flag `id`, newest first.
async fn log_of(w: &World, id: i64) -> Vec<Value> {
    entries(&page(w, &format!("{id}/activity/"), &[("limit", "1000")]).await)
}

fn entries(page: &Value) -> Vec<Value> {
    page["results"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a page: {page}"))
}

fn changes(entry: &Value) -> Vec<Value> {
    entry["detail"]["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn fields(entry: &Value) -> Vec<String> {
    changes(entry)
        .iter()
        .map(|c| c["field"].as_str().unwrap_or("").to_string())
        .collect()
}

/// An answer of the activity handler as the fixture's `Response` (for `assert_error`).
fn response(r: ApiResponse) -> Response {
    Response {
        status: r.status,
        body: r.body.unwrap_or(Value::Null),
    }
}

async fn create_id(w: &World, body: Value) -> i64 {
    let flag = w.create(body).await;
    flag["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {flag}"))
}

async fn patch_ok(w: &World, id: i64, body: Value) -> Value {
    let r = w.call("PATCH", &id.to_string(), Some(body.clone())).await;
    assert_eq!(r.status, 200, "PATCH {id} {body} → {}", r.body);
    r.body
}

async fn revert_as(w: &World, key: &str, id: i64, entry_id: &str) -> ApiResponse {
    let req = ApiRequest::new(
        "POST",
        &w.path(&format!("{id}/activity/{entry_id}/revert/")),
    )
    .with_header("authorization", &format!("Bearer {key}"));
    w.send_activity(req).await
}

async fn revert(w: &World, id: i64, entry_id: &str) -> ApiResponse {
    revert_as(w, &w.key, id, entry_id).await
}

fn id_of(entry: &Value) -> String {
    entry["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {entry}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// §6.2 entry shape and §6.3 rules

#[tokio::test]
async fn create_is_one_created_entry_with_no_changes_in_posthogs_shape() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "original name"})).await;
    let body = page(&w, &format!("{id}/activity/"), &[]).await;
    assert_eq!(body["total_count"], 1);
    assert_eq!(
        (body["next"].clone(), body["previous"].clone()),
        (Value::Null, Value::Null)
    );
    let entry = &entries(&body)[0];
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "user",
            "activity",
            "scope",
            "item_id",
            "detail",
            "created_at"
        ]
    );
    assert_eq!(
        entry["user"],
        json!({"first_name": w.user.first_name, "email": w.user.email})
    );
    assert_eq!(entry["activity"], "created");
    assert_eq!(entry["scope"], "FeatureFlag");
    assert_eq!(entry["item_id"], id.to_string());
    assert_eq!(
        entry["detail"],
        json!({"changes": [], "trigger": null, "type": null, "name": "k", "short_id": null})
    );
    let created_at = entry["created_at"].as_str().unwrap();
    assert!(
        shared::time::parse(created_at).is_some() && created_at.ends_with('Z'),
        "{created_at}"
    );
    let uuid = uuid::Uuid::parse_str(entry["id"].as_str().unwrap()).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
}

#[tokio::test]
async fn spec_example_name_changed_filters_created_version_changed() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "original name"})).await;
    let filters = json!({"groups": [{"properties": [], "rollout_percentage": 74}]});
    patch_ok(&w, id, json!({"name": "Updated name", "filters": filters})).await;
    let log = log_of(&w, id).await;
    assert_eq!(log.len(), 2);
    let updated = &log[0];
    assert_eq!(updated["activity"], "updated");
    let c = changes(updated);
    assert_eq!(c.len(), 3, "{c:?}");
    assert_eq!(
        c[0],
        change(
            "changed",
            "name",
            json!("original name"),
            json!("Updated name")
        )
    );
    assert_eq!(
        (&c[1]["action"], &c[1]["field"], &c[1]["before"]),
        (&json!("created"), &json!("filters"), &Value::Null)
    );
    assert_eq!(c[1]["after"]["groups"], filters["groups"]);
    assert_eq!(c[2], version_change(1));
    assert_eq!(updated["detail"]["name"], "k");
}

#[tokio::test]
async fn changes_follow_model_field_order_not_body_order() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "name": "n", "filters": {"groups": [{"properties": [], "rollout_percentage": 10}]}})).await;
    // Body order deliberately reversed against the model's.
    patch_ok(
        &w,
        id,
        json!({
            "evaluation_tags": ["b"],
            "tags": ["b", "a"],
            "bucketing_identifier": "device_id",
            "evaluation_runtime": "server",
            "is_remote_configuration": true,
            "has_enriched_analytics": true,
            "ensure_experience_continuity": true,
            "rollback_conditions": [{"threshold": 1}],
            "active": false,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 20}]},
            "name": "n2",
            "key": "k2",
        }),
    )
    .await;
    let entry = &log_of(&w, id).await[0];
    assert_eq!(
        fields(entry),
        [
            "key",
            "name",
            "filters",
            "active",
            "version",
            "rollback_conditions",
            "ensure_experience_continuity",
            "has_enriched_analytics",
            "is_remote_configuration",
            "evaluation_runtime",
            "bucketing_identifier",
            "tags",
            "evaluation_tags",
        ]
    );
    assert_eq!(
        entry["detail"]["name"], "k2",
        "named after the key the flag has now"
    );
    let tags = changes(entry)
        .into_iter()
        .find(|c| c["field"] == "tags")
        .unwrap();
    assert_eq!(
        tags,
        change("created", "tags", Value::Null, json!(["a", "b"]))
    );
}

#[tokio::test]
async fn excluded_fields_never_appear_and_every_update_changes_version() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    // created_at is writable but excluded; updated_at, last_modified_by move too.
    patch_ok(&w, id, json!({"created_at": "2020-01-01T00:00:00Z"})).await;
    // An update that changes nothing still bumps the version, as in PostHog.
    patch_ok(&w, id, json!({})).await;
    let log = log_of(&w, id).await;
    assert_eq!(log.len(), 3);
    assert_eq!(changes(&log[1]), [version_change(1)]);
    assert_eq!(changes(&log[0]), [version_change(2)]);
    for entry in &log {
        for excluded in [
            "id",
            "created_at",
            "created_by",
            "updated_at",
            "last_modified_by",
            "team",
            "team_id",
            "usage_dashboard",
            "analytics_dashboards",
            "is_simple_flag",
            "experiment",
        ] {
            assert!(
                !fields(entry).iter().any(|f| f == excluded),
                "{excluded} in {entry}"
            );
        }
    }
}

#[tokio::test]
async fn writes_that_change_nothing_leave_no_entry() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    // Only the API bumps versions; a store write of an identical flag (as a background job
    // touching excluded fields would make) is not logged and does not move the counters.
    let current = w.store.get_flag(w.project.id, id).await.unwrap().unwrap();
    let mut after = current.clone();
    after.updated_at = chrono::Utc::now();
    let entry = activity::flag_entry(Some(&current), &after, None, chrono::Utc::now());
    assert!(entry.is_none());
    w.store
        .write_flag(FlagWrite {
            before: Some(current),
            after,
            purge: Vec::new(),
            feature: None,
            dashboard: None,
            schedule: None,
            activity: entry,
        })
        .await
        .unwrap();
    assert_eq!(log_of(&w, id).await.len(), 1);
    assert_eq!(page(&w, "activity/", &[]).await["total_count"], 1);
}

#[tokio::test]
async fn deleted_and_restored_activities() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    patch_ok(&w, id, json!({"deleted": true})).await;
    patch_ok(&w, id, json!({"deleted": false})).await;
    let log = log_of(&w, id).await;
    let activities: Vec<&str> = log
        .iter()
        .map(|e| e["activity"].as_str().unwrap())
        .collect();
    assert_eq!(
        activities,
        ["restored", "deleted", "created"],
        "newest first"
    );
    assert_eq!(
        changes(&log[1]),
        [
            change("changed", "deleted", json!(false), json!(true)),
            version_change(1)
        ]
    );
    assert_eq!(
        changes(&log[0]),
        [
            change("changed", "deleted", json!(true), json!(false)),
            version_change(2)
        ]
    );
}

#[tokio::test]
async fn emptying_is_deleted_filling_is_created_otherwise_changed() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    patch_ok(&w, id, json!({"name": "first"})).await;
    patch_ok(&w, id, json!({"name": "second"})).await;
    patch_ok(&w, id, json!({"name": ""})).await;
    patch_ok(&w, id, json!({"rollback_conditions": [{"threshold": 5}]})).await;
    patch_ok(&w, id, json!({"rollback_conditions": []})).await;
    let log = log_of(&w, id).await;
    let first = |entry: &Value| changes(entry)[0].clone();
    assert_eq!(
        first(&log[4]),
        change("created", "name", Value::Null, json!("first"))
    );
    assert_eq!(
        first(&log[3]),
        change("changed", "name", json!("first"), json!("second"))
    );
    assert_eq!(
        first(&log[2]),
        change("deleted", "name", json!("second"), Value::Null)
    );
    // `version` comes before `rollback_conditions` in model order.
    assert_eq!(
        changes(&log[1])[1],
        change(
            "created",
            "rollback_conditions",
            Value::Null,
            json!([{"threshold": 5}])
        )
    );
    assert_eq!(
        changes(&log[0])[1],
        change(
            "deleted",
            "rollback_conditions",
            json!([{"threshold": 5}]),
            Value::Null
        )
    );
}

#[tokio::test]
async fn entries_name_the_acting_user_and_the_project_log_holds_every_flag() {
    let w = World::new().await;
    let a = create_id(&w, json!({"key": "a"})).await;
    let b = create_id(&w, json!({"key": "b"})).await;
    let second = add_user(&w.store, &w.org.id, "second@example.com").await;
    let key = w.add_key(second.id, &["*"], None).await;
    let req = ApiRequest::new("PATCH", &w.path(&format!("{a}/")))
        .with_header("authorization", &format!("Bearer {key}"))
        .with_json(&json!({"active": false}));
    assert_eq!(w.send(req).await.status, 200);
    // Another project of the same organization: its entries stay out of this project's log.
    let other = w.add_project(&w.org.id).await;
    let req = ApiRequest::new(
        "POST",
        &format!("/api/projects/{}/feature_flags/", other.id),
    )
    .with_header("authorization", &format!("Bearer {}", w.key))
    .with_json(&json!({"key": "elsewhere"}));
    assert_eq!(w.send(req).await.status, 201);

    let all = page(&w, "activity/", &[]).await;
    assert_eq!(all["total_count"], 3);
    let shown: Vec<(String, String, Value)> = entries(&all)
        .iter()
        .map(|e| {
            (
                e["item_id"].as_str().unwrap().into(),
                e["activity"].as_str().unwrap().into(),
                e["user"].clone(),
            )
        })
        .collect();
    let owner = json!({"first_name": w.user.first_name, "email": w.user.email});
    let by_second = json!({"first_name": second.first_name, "email": second.email});
    assert_eq!(
        shown,
        [
            (a.to_string(), "updated".to_string(), by_second),
            (b.to_string(), "created".to_string(), owner.clone()),
            (a.to_string(), "created".to_string(), owner),
        ]
    );
    // Without the trailing slash too.
    assert_eq!(page(&w, "activity", &[]).await["total_count"], 3);
    assert_eq!(log_of(&w, b).await.len(), 1);
}

#[tokio::test]
async fn system_entries_show_posthogs_system_user() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let current = w.store.get_flag(w.project.id, id).await.unwrap().unwrap();
    let mut after = current.clone();
    after.active = false;
    after.version += 1;
    let entry = activity::flag_entry(Some(&current), &after, None, chrono::Utc::now());
    w.store
        .write_flag(FlagWrite {
            before: Some(current),
            after,
            purge: Vec::new(),
            feature: None,
            dashboard: None,
            schedule: None,
            activity: entry,
        })
        .await
        .unwrap();
    let newest = &log_of(&w, id).await[0];
    assert_eq!(
        newest["user"],
        json!({"first_name": "System", "email": null, "is_system": true})
    );
}

// ---------------------------------------------------------------------------------------------
// Pagination

/// A flag with `n` entries (created + n-1 renames), entry k naming `v<k>`.
async fn flag_with_entries(w: &World, n: usize) -> i64 {
    let id = create_id(w, json!({"key": "paged", "name": "v1"})).await;
    for k in 2..=n {
        patch_ok(w, id, json!({"name": format!("v{k}")})).await;
    }
    id
}

fn names(page: &Value) -> Vec<String> {
    entries(page)
        .iter()
        .map(|e| match changes(e).first() {
            Some(c) => c["after"].as_str().unwrap_or("").to_string(),
            None => "v1".to_string(),
        })
        .collect()
}

#[tokio::test]
async fn pages_are_newest_first_with_absolute_links_and_the_total() {
    let w = World::new().await;
    let id = flag_with_entries(&w, 23).await;
    let rest = format!("{id}/activity/");
    let url = |q: &str| format!("http://testserver{}?{q}", w.path(&rest));

    let first = page(&w, &rest, &[]).await;
    assert_eq!(first["total_count"], 23);
    assert_eq!(
        names(&first),
        (14..=23).rev().map(|k| format!("v{k}")).collect::<Vec<_>>()
    );
    assert_eq!(first["next"], url("page=2&limit=10"));
    assert_eq!(first["previous"], Value::Null);

    let second = page(&w, &rest, &[("page", "2")]).await;
    assert_eq!(
        names(&second),
        (4..=13).rev().map(|k| format!("v{k}")).collect::<Vec<_>>()
    );
    assert_eq!(second["next"], url("page=3&limit=10"));
    assert_eq!(second["previous"], url("page=1&limit=10"));

    let last = page(&w, &rest, &[("page", "3")]).await;
    assert_eq!(names(&last), ["v3", "v2", "v1"]);
    assert_eq!(last["next"], Value::Null);
    assert_eq!(last["previous"], url("page=2&limit=10"));

    // Other params stay where they are; page and limit are replaced in place.
    let custom = page(&w, &rest, &[("limit", "5"), ("foo", "bar"), ("page", "2")]).await;
    assert_eq!(names(&custom), ["v18", "v17", "v16", "v15", "v14"]);
    assert_eq!(custom["next"], url("limit=5&foo=bar&page=3"));
    assert_eq!(custom["previous"], url("limit=5&foo=bar&page=1"));
    assert_eq!(custom["total_count"], 23);

    // The project log pages the same way.
    let project = page(&w, "activity", &[("limit", "20"), ("page", "2")]).await;
    assert_eq!(names(&project), ["v3", "v2", "v1"]);
    assert_eq!(
        project["previous"],
        format!("http://testserver{}?limit=20&page=1", w.path("activity"))
    );
}

#[tokio::test]
async fn past_the_last_page_is_an_empty_page_and_an_empty_log_is_fine() {
    let w = World::new().await;
    let empty = page(&w, "activity/", &[]).await;
    assert_eq!(
        empty,
        json!({"results": [], "next": null, "previous": null, "total_count": 0})
    );
    let id = flag_with_entries(&w, 3).await;
    let rest = format!("{id}/activity/");
    let past = page(&w, &rest, &[("page", "2")]).await;
    assert_eq!(past["results"], json!([]));
    assert_eq!(past["total_count"], 3);
    assert_eq!(past["next"], Value::Null);
    assert_eq!(
        past["previous"],
        format!("http://testserver{}?page=1&limit=10", w.path(&rest))
    );
    let far = page(
        &w,
        &rest,
        &[("page", "99999999999999999999"), ("limit", "99999999999")],
    )
    .await;
    assert_eq!(
        (far["results"].clone(), far["total_count"].clone()),
        (json!([]), json!(3))
    );
}

/// Query params and the expected error's code, detail and attr.
type BadQuery = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_limit_or_page_is_a_400_envelope() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let min = "Ensure this value is greater than or equal to 1.";
    let not_int = "A valid integer is required.";
    let cases: [BadQuery; 7] = [
        (&[("limit", "0")], "min_value", min, "limit"),
        (&[("limit", "-3")], "min_value", min, "limit"),
        (&[("limit", "ten")], "invalid_input", not_int, "limit"),
        (&[("limit", "2.5")], "invalid_input", not_int, "limit"),
        (&[("page", "0")], "min_value", min, "page"),
        (&[("page", "")], "invalid_input", not_int, "page"),
        (&[("page", "x"), ("limit", "0")], "min_value", min, "limit"),
    ];
    for rest in ["activity/".to_string(), format!("{id}/activity/")] {
        for (params, code, detail, attr) in cases {
            assert_error(
                &response(get(&w, &rest, params).await),
                400,
                code,
                detail,
                Some(attr),
            );
        }
    }
    // DRF's integer spellings are accepted.
    assert_eq!(
        page(&w, "activity/", &[("limit", " 2 "), ("page", "1.0")]).await["total_count"],
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Access and 404s

#[tokio::test]
async fn reading_needs_activity_log_read_not_feature_flag_scopes() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let flag_write = w.add_key(w.user.id, &["feature_flag:write"], None).await;
    let activity_read = w.add_key(w.user.id, &["activity_log:read"], None).await;
    for rest in ["activity/".to_string(), format!("{id}/activity/")] {
        assert_error(
            &response(get_as(&w, &flag_write, &rest, &[]).await),
            403,
            "permission_denied",
            "API key missing required scope 'activity_log:read'",
            None,
        );
        assert_eq!(get_as(&w, &activity_read, &rest, &[]).await.status, 200);
    }
    let anonymous = w
        .send_activity(ApiRequest::new("GET", &w.path("activity/")))
        .await;
    assert_error(
        &response(anonymous),
        401,
        "not_authenticated",
        "Authentication credentials were not provided.",
        None,
    );
    let foreign = w.foreign_project().await;
    let req = ApiRequest::new(
        "GET",
        &format!("/api/projects/{}/feature_flags/activity/", foreign.id),
    )
    .with_header("authorization", &format!("Bearer {}", w.key));
    assert_error(
        &response(w.send_activity(req).await),
        403,
        "permission_denied",
        "You don't have access to the project.",
        None,
    );
}

#[tokio::test]
async fn unknown_flags_are_404_with_an_empty_body_and_deleted_ones_keep_their_log() {
    let w = World::new().await;
    let other = w.add_project(&w.org.id).await;
    let req = ApiRequest::new(
        "POST",
        &format!("/api/projects/{}/feature_flags/", other.id),
    )
    .with_header("authorization", &format!("Bearer {}", w.key))
    .with_json(&json!({"key": "elsewhere"}));
    let foreign = w.send(req).await.body["id"].as_i64().unwrap();
    for id in [
        "999999999".to_string(),
        foreign.to_string(),
        "abc".to_string(),
    ] {
        let r = get(&w, &format!("{id}/activity/"), &[]).await;
        assert_eq!((r.status, r.body), (404, None), "flag {id}");
    }
    let id = create_id(&w, json!({"key": "k"})).await;
    patch_ok(&w, id, json!({"deleted": true})).await;
    assert_eq!(
        page(&w, &format!("{id}/activity"), &[]).await["total_count"],
        2
    );
}

#[tokio::test]
async fn other_methods_are_405_and_other_paths_404() {
    let w = World::new().await;
    let req = ApiRequest::new("POST", &w.path("activity/"))
        .with_header("authorization", &format!("Bearer {}", w.key));
    assert_error(
        &response(w.send_activity(req).await),
        405,
        "method_not_allowed",
        "Method \"POST\" not allowed.",
        None,
    );
    let req = ApiRequest::new("GET", &w.path("1/activity/x/revert/"))
        .with_header("authorization", &format!("Bearer {}", w.key));
    assert_error(
        &response(w.send_activity(req).await),
        405,
        "method_not_allowed",
        "Method \"GET\" not allowed.",
        None,
    );
    assert_error(
        &response(get(&w, "1/", &[]).await),
        404,
        "not_found",
        "Not found.",
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Revert

#[tokio::test]
async fn revert_restores_the_fields_after_that_entry_as_a_logged_update() {
    let w = World::new().await;
    let id = create_id(
        &w,
        json!({"key": "k", "name": "original", "filters": {"groups": [{"properties": [], "rollout_percentage": 30}]}, "tags": ["x"]}),
    )
    .await;
    patch_ok(&w, id, json!({"name": "second", "filters": {"groups": [{"properties": [], "rollout_percentage": 60}]}})).await;
    patch_ok(
        &w,
        id,
        json!({"key": "k2", "active": false, "tags": [], "ensure_experience_continuity": true}),
    )
    .await;
    let log = log_of(&w, id).await;
    let created = id_of(&log[2]);
    let second = id_of(&log[1]);

    let r = revert(&w, id, &created).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let flag = r.body.unwrap();
    assert_eq!(
        (
            flag["key"].clone(),
            flag["name"].clone(),
            flag["active"].clone()
        ),
        (json!("k"), json!("original"), json!(true))
    );
    assert_eq!(flag["filters"]["groups"][0]["rollout_percentage"], 30);
    assert_eq!(flag["tags"], json!(["x"]));
    assert_eq!(flag["ensure_experience_continuity"], false);
    assert_eq!(flag["version"], 4, "a revert is a versioned update");
    let retrieved = w.call("GET", &format!("{id}/"), None).await.body;
    assert_eq!(retrieved, flag);

    let log = log_of(&w, id).await;
    assert_eq!(log.len(), 4);
    let entry = &log[0];
    assert_eq!(entry["activity"], "updated");
    assert_eq!(
        entry["detail"]["trigger"],
        json!({"job_type": "revert", "job_id": created, "payload": {}})
    );
    assert_eq!(entry["detail"]["name"], "k");
    // Re-enabling resets `performed_rollback`, as every update setting `active: true` does.
    assert_eq!(
        fields(entry),
        [
            "key",
            "name",
            "filters",
            "active",
            "version",
            "performed_rollback",
            "ensure_experience_continuity",
            "tags"
        ]
    );
    assert_eq!(
        changes(entry)[0],
        change("changed", "key", json!("k2"), json!("k"))
    );

    // Reverting to a later entry, and to the revert itself, works the same way.
    let r = revert(&w, id, &second).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.unwrap()["name"], "second");
    let revert_entry = id_of(&log[0]);
    let r = revert(&w, id, &revert_entry).await;
    assert_eq!(r.body.unwrap()["name"], "original");
    assert_eq!(
        page(&w, &format!("{id}/activity/"), &[]).await["total_count"],
        6
    );
}

#[tokio::test]
async fn revert_across_a_delete_restores_the_flag() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let created = id_of(&log_of(&w, id).await[0]);
    patch_ok(&w, id, json!({"deleted": true})).await;
    let r = revert(&w, id, &created).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body.unwrap()["deleted"], false);
    let entry = &log_of(&w, id).await[0];
    assert_eq!(entry["activity"], "restored");
    assert_eq!(entry["detail"]["trigger"]["job_id"], created);
}

#[tokio::test]
async fn revert_from_archived_unarchives_and_reenables_in_one_update() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let created = id_of(&log_of(&w, id).await[0]);
    patch_ok(&w, id, json!({"archived": true, "active": false})).await;
    let archived = id_of(&log_of(&w, id).await[0]);
    let r = revert(&w, id, &created).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let flag = r.body.unwrap();
    assert_eq!(
        (&flag["archived"], &flag["active"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(
        fields(&log_of(&w, id).await[0]),
        ["active", "archived", "version", "performed_rollback"]
    );
    let r = revert(&w, id, &archived).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let flag = r.body.unwrap();
    assert_eq!(
        (&flag["archived"], &flag["active"]),
        (&json!(true), &json!(false))
    );
}

#[tokio::test]
async fn revert_to_no_filters_restores_the_everyone_condition_readers_saw() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let before = w.call("GET", &format!("{id}/"), None).await.body;
    let created = id_of(&log_of(&w, id).await[0]);
    patch_ok(
        &w,
        id,
        json!({"filters": {"groups": [{"properties": [], "rollout_percentage": 5}]}}),
    )
    .await;
    let r = revert(&w, id, &created).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body.unwrap()["filters"], before["filters"]);
    // Nothing else differed, so only filters and version changed.
    assert_eq!(fields(&log_of(&w, id).await[0]), ["filters", "version"]);
}

#[tokio::test]
async fn revert_to_a_key_taken_since_is_the_usual_unique_error() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "a"})).await;
    let created = id_of(&log_of(&w, id).await[0]);
    patch_ok(&w, id, json!({"key": "b"})).await;
    create_id(&w, json!({"key": "a"})).await;
    let r = revert(&w, id, &created).await;
    assert_error(
        &response(r),
        400,
        "unique",
        "There is already a feature flag with this key.",
        Some("key"),
    );
    assert_eq!(
        log_of(&w, id).await.len(),
        2,
        "a rejected revert writes nothing"
    );
}

#[tokio::test]
async fn revert_is_validated_like_any_update() {
    let w = World::new().await;
    let parent = create_id(&w, json!({"key": "parent"})).await;
    let dependency = json!({"key": parent.to_string(), "type": "flag", "value": true, "operator": "flag_evaluates_to"});
    let child = create_id(&w, json!({"key": "child", "filters": {"groups": [{"properties": [dependency], "rollout_percentage": 100}]}})).await;
    let created = id_of(&log_of(&w, child).await[0]);
    patch_ok(
        &w,
        child,
        json!({"filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}),
    )
    .await;
    patch_ok(&w, parent, json!({"active": false})).await;
    let r = revert(&w, child, &created).await;
    assert_error(
        &response(r),
        400,
        "invalid_input",
        &format!(
            "Cannot create dependency on disabled flag 'parent' (ID: {parent}). Flag dependencies must reference active flags only."
        ),
        Some("filters"),
    );
}

#[tokio::test]
async fn revert_keeps_encrypted_payloads_encrypted() {
    let w = World::new().await;
    let filters = |payload: &str| json!({"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": payload}});
    let id = create_id(
        &w,
        json!({"key": "secret", "is_remote_configuration": true, "has_encrypted_payloads": true, "filters": filters("{\"v\": 1}")}),
    )
    .await;
    let created = id_of(&log_of(&w, id).await[0]);
    patch_ok(&w, id, json!({"filters": filters("{\"v\": 2}")})).await;
    let r = revert(&w, id, &created).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body.unwrap()["filters"]["payloads"]["true"],
        "{\"v\": 1}",
        "shown decrypted to the key's owner"
    );
    let stored = w.store.get_flag(w.project.id, id).await.unwrap().unwrap();
    let at_rest = stored.filters["payloads"]["true"].as_str().unwrap();
    assert!(!at_rest.contains("\"v\""), "stored encrypted: {at_rest}");
    assert_eq!(
        w.cipher.reveal(&stored.filters, true)["payloads"]["true"],
        "{\"v\": 1}"
    );
}

#[tokio::test]
async fn unknown_entries_and_entries_of_other_flags_are_404() {
    let w = World::new().await;
    let a = create_id(&w, json!({"key": "a"})).await;
    let b = create_id(&w, json!({"key": "b"})).await;
    let of_b = id_of(&log_of(&w, b).await[0]);
    let of_a = id_of(&log_of(&w, a).await[0]);
    let random_v7 = uuid::Uuid::now_v7().to_string();
    for (flag, entry) in [
        (a, of_b.as_str()),
        (a, random_v7.as_str()),
        (a, "not-a-uuid"),
        (a, "00000000-0000-0000-0000-000000000000"),
        (999_999_999, of_a.as_str()),
    ] {
        assert_error(
            &response(revert(&w, flag, entry).await),
            404,
            "not_found",
            "Not found.",
            None,
        );
    }
    let r = revert(&w, a, &of_a.to_uppercase()).await;
    assert_eq!(r.status, 200, "ids are case-insensitive like UUIDs");
}

#[tokio::test]
async fn revert_needs_feature_flag_write() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let entry = id_of(&log_of(&w, id).await[0]);
    for scopes in [&["activity_log:read"][..], &["feature_flag:read"][..]] {
        let key = w.add_key(w.user.id, scopes, None).await;
        assert_error(
            &response(revert_as(&w, &key, id, &entry).await),
            403,
            "permission_denied",
            "API key missing required scope 'feature_flag:write'",
            None,
        );
    }
    let writer = w.add_key(w.user.id, &["feature_flag:write"], None).await;
    assert_eq!(revert_as(&w, &writer, id, &entry).await.status, 200);
}

#[tokio::test]
async fn changes_too_large_to_snapshot_are_logged_but_not_revertible() {
    let w = World::new().await;
    // Two 140 KB names in one entry (before and after) leave no room for a third copy.
    let big = |c: &str| c.repeat(140 * 1024);
    let id = create_id(&w, json!({"key": "big", "name": big("a")})).await;
    patch_ok(&w, id, json!({"name": big("b")})).await;
    let log = log_of(&w, id).await;
    assert_eq!(log.len(), 2);
    let r = revert(&w, id, &id_of(&log[0])).await;
    assert_error(
        &response(r),
        400,
        "invalid_input",
        "This activity entry has no saved copy of the flag to revert to (it was too large to keep one).",
        None,
    );
    // The smaller create entry kept its snapshot.
    let r = revert(&w, id, &id_of(&log[1])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.unwrap()["name"], big("a"));
}

// ---------------------------------------------------------------------------------------------
// Store

#[tokio::test]
async fn store_reads_counters_ranges_and_positioned_ids() {
    let w = World::new().await;
    let id = flag_with_entries(&w, 5).await;
    let item = id.to_string();
    let store = &w.store;
    let p = w.project.id;
    assert_eq!(store.activity_count(p, FLAG_SCOPE, None).await.unwrap(), 5);
    assert_eq!(
        store
            .activity_count(p, FLAG_SCOPE, Some(&item))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        store
            .activity_count(p, FLAG_SCOPE, Some("404"))
            .await
            .unwrap(),
        0
    );
    let middle: Vec<ActivityEntry> = store
        .activity_page(p, FLAG_SCOPE, Some(&item), 4, 2)
        .await
        .unwrap();
    assert_eq!(
        middle.iter().map(|e| e.item_seq).collect::<Vec<_>>(),
        [4, 3]
    );
    let clipped = store
        .activity_page(p, FLAG_SCOPE, None, 2, 10)
        .await
        .unwrap();
    assert_eq!(clipped.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 1]);
    assert!(
        store
            .activity_page(p, FLAG_SCOPE, None, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for entry in &middle {
        assert_eq!(activity::entry_position(&entry.id), Some(entry.seq));
        let found = store
            .activity_entry(p, FLAG_SCOPE, entry.seq)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&found, entry);
        assert_eq!(found.user, Some(UserSummary::from(&w.user)));
        assert!(found.snapshot.is_some());
    }
    assert_eq!(store.activity_entry(p, FLAG_SCOPE, 99).await.unwrap(), None);
}
