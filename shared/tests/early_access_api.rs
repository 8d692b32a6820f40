//! Early access features (flag-management-rules.md §11, §5.4 delete guard, §4.1 rule 3, §12 E27/E29)
//! in-process against DynamoDB Local (`DYNAMODB_ENDPOINT`): the management endpoint, the flag
//! side of the link, the public SDK endpoint, the transactional guarantee and parallel writers.
//!
//! Stage model (docs/reference/decisions.md §2): v2 semantics written as classic `super_groups`: `alpha`,
//! `beta` and `general-availability` carry the enrollment gate; `concept`, `draft` and
//! `archived` don't.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{Response, World, assert_error};
use futures::future::join_all;
use serde_json::{Value, json};
use shared::flag::Flag;
use shared::http::{ApiRequest, ApiResponse};
use shared::identity::Project;
use shared::store::{FlagStore, FlagWrite};

const NOT_EXIST: &str = "Feature Flag with this ID does not exist";
const GROUP_BASED: &str = "Group-based feature flags are not supported for Early Access Features.";
const MULTIVARIATE: &str =
    "Multivariate feature flags are not supported for Early Access Features.";
const E27: &str =
    "Cannot change this flag to a group-based when linked to an Early Access Feature.";
const E29: &str = "Cannot delete a feature flag that is in use with early access features. Please delete the early access feature before deleting the flag.";
const TAKEN: &str = "There is already a feature flag with this key.";
const ENROLLING: [&str; 3] = ["alpha", "beta", "general-availability"];
const NOT_ENROLLING: [&str; 3] = ["concept", "draft", "archived"];

// ---------------------------------------------------------------------------------------------
// Helpers

/// PostHog's enrollment condition for `key` (§4, §11.2), written out rather than computed.
fn gate(key: &str) -> Value {
    json!([{
        "properties": [{"key": format!("$feature_enrollment/{key}"), "type": "person", "operator": "exact", "value": ["true"]}],
        "rollout_percentage": 100,
    }])
}

/// The groups of a flag made for a feature (§11.3).
fn default_groups() -> Value {
    json!([{"properties": [], "rollout_percentage": 0, "variant": null}])
}

async fn eaf(w: &World, method: &str, rest: &str, body: Option<Value>) -> Response {
    w.call_early_access(method, rest, body).await
}

/// `POST /early_access_feature/` that must answer 201; the representation.
async fn create_feature(w: &World, body: Value) -> Value {
    let r = eaf(w, "POST", "", Some(body.clone())).await;
    assert_eq!(r.status, 201, "create {body} → {}", r.body);
    r.body
}

fn feature_id(feature: &Value) -> String {
    feature["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {feature}"))
        .to_string()
}

fn flag_id_of(feature: &Value) -> i64 {
    feature["feature_flag"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no linked flag in {feature}"))
}

async fn patch_feature(w: &World, id: &str, body: Value) -> Value {
    let r = eaf(w, "PATCH", &format!("{id}/"), Some(body.clone())).await;
    assert_eq!(r.status, 200, "PATCH {id} {body} → {}", r.body);
    r.body
}

/// A flag made through the flags endpoint; its id.
async fn flag(w: &World, body: Value) -> i64 {
    w.create(body).await["id"].as_i64().unwrap()
}

/// The flag through `GET /feature_flags/{id}/`.
async fn get_flag(w: &World, id: i64) -> Value {
    let r = w.call("GET", &format!("{id}/"), None).await;
    assert_eq!(r.status, 200, "flag {id}: {}", r.body);
    r.body
}

async fn patch_flag(w: &World, id: i64, body: Value) -> Response {
    w.call("PATCH", &format!("{id}/"), Some(body)).await
}

/// The flag as stored (hidden `revision` and write-only fields included).
async fn stored(w: &World, id: i64) -> Option<Flag> {
    w.store.get_flag(w.project.id, id).await.unwrap()
}

/// Overwrites a stored flag without any validation: states the API would refuse to create.
async fn force_filters(w: &World, id: i64, filters: Value) {
    let before = stored(w, id).await.unwrap();
    let mut after = before.clone();
    after.filters = filters;
    w.store
        .write_flag(FlagWrite {
            before: Some(before),
            after,
            purge: vec![],
            activity: None,
            feature: None,
            dashboard: None,
            schedule: None,
        })
        .await
        .unwrap();
}

/// The `FLAGLINK#<flag id>` item of the early access table, if any.
async fn link_item(w: &World, flag_id: i64) -> Option<HashMap<String, AttributeValue>> {
    w.store
        .client
        .get_item()
        .table_name(&w.store.tables.early_access)
        .key("pk", AttributeValue::S(format!("PROJECT#{}", w.project.id)))
        .key("sk", AttributeValue::S(format!("FLAGLINK#{flag_id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn list_features(w: &World) -> Value {
    let r = eaf(w, "GET", "", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn eaf_path(project: i64, rest: &str) -> String {
    format!("/api/projects/{project}/early_access_feature/{rest}")
}

/// A management call with another credential (`None`: none at all).
async fn eaf_as(
    w: &World,
    key: Option<&str>,
    method: &str,
    rest: &str,
    body: Option<Value>,
) -> Response {
    let mut req = ApiRequest::new(method, &eaf_path(w.project.id, rest));
    if let Some(key) = key {
        req = req.with_header("authorization", &format!("Bearer {key}"));
    }
    if let Some(body) = body {
        req = req.with_json(&body);
    }
    let ApiResponse { status, body, .. } = w.send_early_access(req).await;
    Response {
        status,
        body: body.unwrap_or(Value::Null),
    }
}

/// `GET /api/early_access_features/` with these query pairs, no credentials.
async fn public(w: &World, query: &[(&str, &str)], origin: Option<&str>) -> ApiResponse {
    let mut req = ApiRequest::new("GET", "/api/early_access_features/");
    for (k, v) in query {
        req = req.with_query(k, v);
    }
    if let Some(origin) = origin {
        req = req.with_header("origin", origin);
    }
    w.send_early_access(req).await
}

fn as_response(r: &ApiResponse) -> Response {
    Response {
        status: r.status,
        body: r.body.clone().unwrap_or(Value::Null),
    }
}

fn header<'a>(r: &'a ApiResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The short form in flag `features` and on the public endpoint.
fn summary(feature: &Value, flag_key: &str) -> Value {
    json!({
        "id": feature["id"],
        "name": feature["name"],
        "description": feature["description"],
        "stage": feature["stage"],
        "documentationUrl": feature["documentation_url"],
        "flagKey": flag_key,
        "payload": feature["payload"],
    })
}

/// A group-based flag body (valid on its own).
fn group_based_filters() -> Value {
    json!({
        "aggregation_group_type_index": 0,
        "groups": [{"properties": [{"key": "industry", "type": "group", "group_type_index": 0, "value": "tech", "operator": "exact"}], "rollout_percentage": 100}],
    })
}

fn multivariate_filters() -> Value {
    json!({
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "multivariate": {"variants": [
            {"key": "control", "name": "", "rollout_percentage": 50},
            {"key": "test", "name": "", "rollout_percentage": 50},
        ]},
    })
}

// ---------------------------------------------------------------------------------------------
// §11.1 list, retrieve, representation

#[tokio::test]
async fn representation_has_every_field_and_the_minimal_flag() {
    let w = World::new().await;
    let created = create_feature(
        &w,
        json!({"name": "Click counter", "description": "Counts clicks", "stage": "concept", "documentation_url": "https://docs.example.com/clicks", "payload": {"cta": "Join"}}),
    )
    .await;
    let id = feature_id(&created);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "id is a UUID: {id}");
    let flag_id = flag_id_of(&created);
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "created_by",
            "description",
            "documentation_url",
            "feature_flag",
            "id",
            "name",
            "payload",
            "stage"
        ]
    );
    assert_eq!(created["name"], "Click counter");
    assert_eq!(created["description"], "Counts clicks");
    assert_eq!(created["stage"], "concept");
    assert_eq!(
        created["documentation_url"],
        "https://docs.example.com/clicks"
    );
    assert_eq!(created["payload"], json!({"cta": "Join"}));
    assert_eq!(
        created["created_by"],
        json!({
            "id": w.user.id, "uuid": w.user.uuid, "distinct_id": w.user.distinct_id,
            "first_name": w.user.first_name, "last_name": w.user.last_name, "email": w.user.email,
            "is_email_verified": null, "hedgehog_config": null, "role_at_organization": null,
        })
    );
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "{created_at}"
    );
    // §10 minimal flag shape, exactly.
    assert_eq!(
        created["feature_flag"],
        json!({
            "id": flag_id,
            "team_id": w.project.id,
            "name": "Feature Flag for Feature Click counter",
            "key": "click-counter",
            "filters": {"groups": default_groups()},
            "deleted": false,
            "active": true,
            "ensure_experience_continuity": false,
            "has_encrypted_payloads": false,
            "version": 1,
            "evaluation_runtime": "all",
            "bucketing_identifier": "distinct_id",
            "evaluation_tags": [],
        })
    );
    let retrieved = eaf(&w, "GET", &format!("{id}/"), None).await;
    assert_eq!(retrieved.status, 200);
    assert_eq!(
        retrieved.body, created,
        "retrieve shows what create answered"
    );
    // Without the trailing slash too.
    assert_eq!(eaf(&w, "GET", &id, None).await.body, created);
    let page = list_features(&w).await;
    assert_eq!(
        page,
        json!({"count": 1, "next": null, "previous": null, "results": [created]})
    );
}

#[tokio::test]
async fn defaults_when_optional_fields_are_absent() {
    let w = World::new().await;
    let created = create_feature(&w, json!({"name": "Bare", "stage": "draft"})).await;
    assert_eq!(created["description"], "");
    assert_eq!(created["documentation_url"], "");
    assert_eq!(created["payload"], json!({}));
}

#[tokio::test]
async fn list_paginates_with_limit_and_offset_in_creation_order() {
    let w = World::new().await;
    let mut ids = Vec::new();
    for name in ["First", "Second", "Third"] {
        ids.push(feature_id(
            &create_feature(&w, json!({"name": name, "stage": "concept"})).await,
        ));
    }
    let base = format!("http://testserver{}", eaf_path(w.project.id, ""));
    let page = |query: &'static str| {
        let w = &w;
        async move {
            let mut req = ApiRequest::new("GET", &eaf_path(w.project.id, ""))
                .with_header("authorization", &format!("Bearer {}", w.key));
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap();
                req = req.with_query(k, v);
            }
            let r = w.send_early_access(req).await;
            assert_eq!(r.status, 200);
            r.body.unwrap()
        }
    };
    let names = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };

    let first = page("limit=2").await;
    assert_eq!(first["count"], 3);
    assert_eq!(names(&first), ids[..2]);
    assert_eq!(first["next"], format!("{base}?limit=2&offset=2"));
    assert_eq!(first["previous"], Value::Null);

    let second = page("limit=2&offset=2").await;
    assert_eq!(names(&second), ids[2..]);
    assert_eq!(second["next"], Value::Null);
    assert_eq!(
        second["previous"],
        format!("{base}?limit=2"),
        "offset dropped when the previous page starts at 0"
    );

    let middle = page("limit=1&offset=1").await;
    assert_eq!(names(&middle), ids[1..2]);
    assert_eq!(middle["next"], format!("{base}?limit=1&offset=2"));
    assert_eq!(middle["previous"], format!("{base}?limit=1"));

    let past = page("offset=10").await;
    assert_eq!(past["count"], 3);
    assert_eq!(past["results"], json!([]));

    // Bad values fall back to the defaults (100, 0).
    let fallback = page("limit=0&offset=-3").await;
    assert_eq!(names(&fallback), ids);
    assert_eq!(fallback["next"], Value::Null);
}

#[tokio::test]
async fn list_and_retrieve_are_per_project() {
    let w = World::new().await;
    let other = w.add_project(&w.org.id).await;
    let req = ApiRequest::new("POST", &eaf_path(other.id, ""))
        .with_header("authorization", &format!("Bearer {}", w.key))
        .with_json(&json!({"name": "Elsewhere", "stage": "beta"}));
    let theirs = w.send_early_access(req).await;
    assert_eq!(theirs.status, 201, "{:?}", theirs.body);
    let theirs_id = feature_id(theirs.body.as_ref().unwrap());
    create_feature(&w, json!({"name": "Here", "stage": "beta"})).await;
    let page = list_features(&w).await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["name"], "Here");
    for method in ["GET", "PATCH", "PUT", "DELETE"] {
        let r = eaf(
            &w,
            method,
            &format!("{theirs_id}/"),
            Some(json!({"name": "x", "stage": "beta"})),
        )
        .await;
        assert_error(&r, 404, "not_found", "Not found.", None);
    }
}

// ---------------------------------------------------------------------------------------------
// §11.3 create with `feature_flag_id`

#[tokio::test]
async fn linking_validates_the_flag_in_posthogs_order() {
    let w = World::new().await;
    let body =
        |flag_id: Value| json!({"name": "Linked", "stage": "beta", "feature_flag_id": flag_id});
    let expect = |r: &Response, detail: &str| assert_error(r, 400, "invalid_input", detail, None);

    // 1. Missing, in another project, soft-deleted: all "does not exist".
    expect(
        &eaf(&w, "POST", "", Some(body(json!(999_999_999)))).await,
        NOT_EXIST,
    );
    let other = w.add_project(&w.org.id).await;
    let req = ApiRequest::new(
        "POST",
        &format!("/api/projects/{}/feature_flags/", other.id),
    )
    .with_header("authorization", &format!("Bearer {}", w.key))
    .with_json(&json!({"key": "theirs"}));
    let theirs = w.send(req).await;
    assert_eq!(theirs.status, 201);
    expect(
        &eaf(&w, "POST", "", Some(body(theirs.body["id"].clone()))).await,
        NOT_EXIST,
    );
    let deleted = flag(&w, json!({"key": "gone"})).await;
    assert_eq!(
        patch_flag(&w, deleted, json!({"deleted": true}))
            .await
            .status,
        200
    );
    expect(
        &eaf(&w, "POST", "", Some(body(json!(deleted)))).await,
        NOT_EXIST,
    );
    // A deleted multivariate flag: existence is checked first.
    let deleted_mv = flag(
        &w,
        json!({"key": "gone-mv", "filters": multivariate_filters()}),
    )
    .await;
    patch_flag(&w, deleted_mv, json!({"deleted": true})).await;
    expect(
        &eaf(&w, "POST", "", Some(body(json!(deleted_mv)))).await,
        NOT_EXIST,
    );

    // 2. Already linked.
    let taken = flag(&w, json!({"key": "hick-bondoogling"})).await;
    create_feature(
        &w,
        json!({"name": "First", "stage": "concept", "feature_flag_id": taken}),
    )
    .await;
    expect(
        &eaf(&w, "POST", "", Some(body(json!(taken)))).await,
        "Linked feature flag hick-bondoogling already has a feature attached to it.",
    );

    // 3. Group-based (before multivariate when both).
    let group = flag(
        &w,
        json!({"key": "by-company", "filters": group_based_filters()}),
    )
    .await;
    expect(
        &eaf(&w, "POST", "", Some(body(json!(group)))).await,
        GROUP_BASED,
    );
    let mut both = group_based_filters();
    both["multivariate"] = multivariate_filters()["multivariate"].clone();
    let group_mv = flag(&w, json!({"key": "by-company-mv", "filters": both})).await;
    expect(
        &eaf(&w, "POST", "", Some(body(json!(group_mv)))).await,
        GROUP_BASED,
    );

    // 4. Multivariate.
    let mv = flag(
        &w,
        json!({"key": "variants", "filters": multivariate_filters()}),
    )
    .await;
    expect(
        &eaf(&w, "POST", "", Some(body(json!(mv)))).await,
        MULTIVARIATE,
    );

    // A string id is read as the integer it holds.
    expect(
        &eaf(&w, "POST", "", Some(body(json!(mv.to_string())))).await,
        MULTIVARIATE,
    );

    // None of the refused requests made a feature or touched a flag.
    assert_eq!(list_features(&w).await["count"], 1);
    for (id, version) in [
        (group, 1),
        (group_mv, 1),
        (mv, 1),
        (deleted, 2),
        (deleted_mv, 2),
    ] {
        assert_eq!(
            get_flag(&w, id).await["version"],
            version,
            "flag {id} untouched"
        );
        assert_eq!(w.flag_activity(id).await.len(), version as usize);
        assert!(link_item(&w, id).await.is_none());
    }
}

#[tokio::test]
async fn feature_flag_id_must_be_an_integer_and_zero_means_none() {
    let w = World::new().await;
    let r = eaf(
        &w,
        "POST",
        "",
        Some(json!({"name": "Bad id", "stage": "beta", "feature_flag_id": "abc"})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "A valid integer is required.",
        Some("feature_flag_id"),
    );
    // Field errors come before the flag checks: a missing name wins over an unknown flag.
    let r = eaf(
        &w,
        "POST",
        "",
        Some(json!({"stage": "beta", "feature_flag_id": 999_999_999})),
    )
    .await;
    assert_error(&r, 400, "required", "This field is required.", Some("name"));
    for none in [json!(0), Value::Null] {
        let created = create_feature(
            &w,
            json!({"name": format!("Zero {none}"), "stage": "concept", "feature_flag_id": none}),
        )
        .await;
        assert_eq!(
            created["feature_flag"]["name"],
            format!("Feature Flag for Feature Zero {none}"),
            "a new flag was made"
        );
    }
}

#[tokio::test]
async fn linking_with_an_enrolling_stage_adds_the_gate_through_the_flag_update_path() {
    let w = World::new().await;
    for stage in ENROLLING {
        let key = format!("existing-{stage}");
        let filters = json!({
            "groups": [{"properties": [{"key": "email", "type": "person", "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 30}],
            "payloads": {"true": "{\"a\": 1}"},
        });
        let id = flag(&w, json!({"key": key, "filters": filters})).await;
        let before = get_flag(&w, id).await;
        let created = create_feature(
            &w,
            json!({"name": format!("Linked {stage}"), "stage": stage, "feature_flag_id": id}),
        )
        .await;
        let after = get_flag(&w, id).await;
        assert_eq!(after["version"], 2, "{stage}: version bumped");
        let mut expected = before["filters"].clone();
        expected["super_groups"] = gate(&key);
        assert_eq!(
            after["filters"], expected,
            "{stage}: gate added, groups and payloads kept"
        );
        assert_eq!(
            after["last_modified_by"]["email"], "owner@example.com",
            "an API update: last_modified_by is the caller"
        );
        assert_eq!(created["feature_flag"]["id"], id);
        assert_eq!(created["feature_flag"]["version"], 2);
        assert_eq!(created["feature_flag"]["filters"], expected);

        let log = w.flag_activity(id).await;
        assert_eq!(log.len(), 2, "{stage}: created + updated: {log:?}");
        assert_eq!(log[1].activity, "updated");
        assert_eq!(
            log[1].detail["changes"],
            json!([
                {"type": "FeatureFlag", "action": "changed", "field": "filters", "before": before["filters"], "after": expected},
                {"type": "FeatureFlag", "action": "changed", "field": "version", "before": 1, "after": 2},
            ])
        );
        assert_eq!(log[1].detail["name"], key.as_str());
        assert_eq!(
            link_item(&w, id).await.unwrap()["feature_id"],
            AttributeValue::S(feature_id(&created))
        );
    }
}

#[tokio::test]
async fn linking_with_a_non_enrolling_stage_leaves_the_flag_alone() {
    let w = World::new().await;
    for stage in NOT_ENROLLING {
        let id = flag(&w, json!({"key": format!("plain-{stage}"), "filters": {"groups": [{"properties": [], "rollout_percentage": 40}]}})).await;
        let before = get_flag(&w, id).await;
        let created = create_feature(
            &w,
            json!({"name": format!("Linked {stage}"), "stage": stage, "feature_flag_id": id}),
        )
        .await;
        assert_eq!(created["feature_flag"]["id"], id);
        assert_eq!(created["feature_flag"]["version"], 1);
        let mut after = get_flag(&w, id).await;
        assert_eq!(
            after["features"],
            json!([summary(&created, &format!("plain-{stage}"))])
        );
        after["features"] = json!([]);
        assert_eq!(after, before, "{stage}: the flag is exactly as it was");
        assert_eq!(
            w.flag_activity(id).await.len(),
            1,
            "{stage}: only `created`"
        );
    }
}

#[tokio::test]
async fn linking_keeps_encrypted_payloads_readable() {
    let w = World::new().await;
    let id = flag(
        &w,
        json!({"key": "secret", "has_encrypted_payloads": true, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": "{\"token\": \"s3cr3t\"}"}}}),
    )
    .await;
    let ciphertext = stored(&w, id).await.unwrap().filters["payloads"]["true"].clone();
    create_feature(
        &w,
        json!({"name": "Secret beta", "stage": "beta", "feature_flag_id": id}),
    )
    .await;
    let shown = get_flag(&w, id).await;
    assert_eq!(
        shown["filters"]["payloads"]["true"], "{\"token\": \"s3cr3t\"}",
        "decrypts to the original for a personal API key"
    );
    assert_eq!(shown["filters"]["super_groups"], gate("secret"));
    let now = stored(&w, id).await.unwrap().filters["payloads"]["true"].clone();
    assert!(
        now.as_str().is_some_and(|t| !t.contains("s3cr3t")),
        "still encrypted at rest: {now}"
    );
    assert!(ciphertext.as_str().is_some_and(|t| !t.contains("s3cr3t")));
}

// ---------------------------------------------------------------------------------------------
// §11.3 create without `feature_flag_id`

#[tokio::test]
async fn creating_makes_a_flag_with_the_slugified_key() {
    let w = World::new().await;
    let created = create_feature(
        &w,
        json!({"name": "  Crème brûlée -- v2!! ", "stage": "concept"}),
    )
    .await;
    assert_eq!(created["name"], "Crème brûlée -- v2!!", "name trimmed");
    let flag_id = flag_id_of(&created);
    let shown = get_flag(&w, flag_id).await;
    assert_eq!(shown["key"], "creme-brulee-v2");
    assert_eq!(
        shown["name"],
        "Feature Flag for Feature Crème brûlée -- v2!!"
    );
    assert_eq!(shown["filters"], json!({"groups": default_groups()}));
    assert_eq!(shown["active"], true);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["deleted"], false);
    assert_eq!(shown["created_by"]["email"], "owner@example.com");
    assert_eq!(
        shown["features"],
        json!([summary(&created, "creme-brulee-v2")])
    );
    let row = stored(&w, flag_id).await.unwrap();
    assert_eq!(row.creation_context, "early_access_features");
    let log = w.flag_activity(flag_id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].activity, "created");
    assert_eq!(
        link_item(&w, flag_id).await.unwrap()["feature_id"],
        AttributeValue::S(feature_id(&created))
    );
}

#[tokio::test]
async fn creating_in_an_enrolling_stage_gates_the_new_flag() {
    let w = World::new().await;
    for stage in ENROLLING {
        let created = create_feature(
            &w,
            json!({"name": format!("Hick bondoogling {stage}"), "stage": stage}),
        )
        .await;
        let key = format!("hick-bondoogling-{stage}");
        let shown = get_flag(&w, flag_id_of(&created)).await;
        assert_eq!(shown["key"], key.as_str());
        assert_eq!(
            shown["filters"],
            json!({"groups": default_groups(), "super_groups": gate(&key)})
        );
        assert_eq!(shown["version"], 1);
    }
    for stage in NOT_ENROLLING {
        let created = create_feature(
            &w,
            json!({"name": format!("Plain {stage}"), "stage": stage}),
        )
        .await;
        assert_eq!(
            created["feature_flag"]["filters"],
            json!({"groups": default_groups()}),
            "{stage}"
        );
    }
}

#[tokio::test]
async fn a_taken_key_is_the_flags_unique_error_and_no_feature_is_made() {
    let w = World::new().await;
    let existing = flag(&w, json!({"key": "hick-bondoogling", "name": "mine"})).await;
    let before = get_flag(&w, existing).await;
    for stage in ["beta", "concept"] {
        let r = eaf(
            &w,
            "POST",
            "",
            Some(json!({"name": "Hick bondoogling", "stage": stage})),
        )
        .await;
        assert_error(&r, 400, "unique", TAKEN, Some("key"));
    }
    assert_eq!(
        list_features(&w).await["count"],
        0,
        "no feature without its flag"
    );
    assert_eq!(get_flag(&w, existing).await, before);
    assert_eq!(
        w.store.project_flags(w.project.id).await.unwrap().len(),
        1,
        "no second flag either"
    );
    assert!(link_item(&w, existing).await.is_none());
}

#[tokio::test]
async fn a_soft_deleted_flag_holding_the_key_is_purged() {
    let w = World::new().await;
    let old = flag(&w, json!({"key": "hick-bondoogling"})).await;
    assert_eq!(
        patch_flag(&w, old, json!({"deleted": true})).await.status,
        200
    );
    let created = create_feature(&w, json!({"name": "Hick bondoogling", "stage": "beta"})).await;
    let new = flag_id_of(&created);
    assert_ne!(new, old);
    assert_eq!(created["feature_flag"]["key"], "hick-bondoogling");
    assert!(stored(&w, old).await.is_none(), "the deleted row is gone");
    assert_eq!(w.store.project_flags(w.project.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_name_without_slug_characters_is_the_keys_blank_error() {
    let w = World::new().await;
    for name in ["日本語", "!!!", "-_-"] {
        let r = eaf(&w, "POST", "", Some(json!({"name": name, "stage": "beta"}))).await;
        assert_error(
            &r,
            400,
            "blank",
            "This field may not be blank.",
            Some("key"),
        );
    }
    assert_eq!(list_features(&w).await["count"], 0);
    assert!(
        w.store
            .project_flags(w.project.id)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// §11.4 update

#[tokio::test]
async fn other_fields_never_touch_the_flag() {
    let w = World::new().await;
    let created = create_feature(&w, json!({"name": "Stable", "stage": "beta"})).await;
    let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
    let before = get_flag(&w, flag_id).await;
    let patched = patch_feature(
        &w,
        &id,
        json!({"name": "Renamed", "description": "New words", "documentation_url": "https://docs.example.com/x", "payload": {"k": [1, 2]}}),
    )
    .await;
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["description"], "New words");
    assert_eq!(patched["documentation_url"], "https://docs.example.com/x");
    assert_eq!(patched["payload"], json!({"k": [1, 2]}));
    assert_eq!(patched["stage"], "beta");
    assert_eq!(patched["id"], id.as_str());
    assert_eq!(patched["created_at"], created["created_at"]);
    assert_eq!(
        eaf(&w, "GET", &format!("{id}/"), None).await.body,
        patched,
        "stored"
    );
    let mut after = get_flag(&w, flag_id).await;
    assert_eq!(after["features"][0]["name"], "Renamed");
    after["features"] = before["features"].clone();
    assert_eq!(after, before, "flag unchanged");
    assert_eq!(w.flag_activity(flag_id).await.len(), 1);
    // `feature_flag` and `feature_flag_id` can't be changed.
    let other = flag(&w, json!({"key": "other"})).await;
    let r = patch_feature(
        &w,
        &id,
        json!({"feature_flag_id": other, "feature_flag": {"id": other}}),
    )
    .await;
    assert_eq!(r["feature_flag"]["id"], flag_id);
}

#[tokio::test]
async fn falsy_payloads_are_stored_as_an_empty_object() {
    let w = World::new().await;
    let id = feature_id(
        &create_feature(
            &w,
            json!({"name": "Payload", "stage": "draft", "payload": {"a": 1}}),
        )
        .await,
    );
    for falsy in [
        Value::Null,
        json!(false),
        json!(0),
        json!(""),
        json!([]),
        json!({}),
    ] {
        patch_feature(&w, &id, json!({"payload": {"a": 1}})).await;
        let r = patch_feature(&w, &id, json!({"payload": falsy})).await;
        assert_eq!(r["payload"], json!({}), "{falsy}");
    }
    for kept in [json!([1]), json!("text"), json!(3), json!(true)] {
        assert_eq!(
            patch_feature(&w, &id, json!({"payload": kept})).await["payload"],
            kept
        );
    }
    // Absent: unchanged.
    assert_eq!(
        patch_feature(&w, &id, json!({"name": "Other"})).await["payload"],
        json!(true)
    );
}

#[tokio::test]
async fn moving_into_an_enrolling_stage_adds_the_gate_with_a_version_bump() {
    let w = World::new().await;
    for (from, to) in [
        ("concept", "beta"),
        ("draft", "alpha"),
        ("archived", "general-availability"),
    ] {
        let created = create_feature(
            &w,
            json!({"name": format!("Move {from} {to}"), "stage": from}),
        )
        .await;
        let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
        let key = created["feature_flag"]["key"].as_str().unwrap().to_string();
        let patched = patch_feature(&w, &id, json!({"stage": to})).await;
        assert_eq!(patched["stage"], to);
        assert_eq!(patched["feature_flag"]["version"], 2);
        let expected = json!({"groups": default_groups(), "super_groups": gate(&key)});
        assert_eq!(patched["feature_flag"]["filters"], expected);
        let shown = get_flag(&w, flag_id).await;
        assert_eq!(shown["filters"], expected);
        assert_eq!(shown["version"], 2);
        let log = w.flag_activity(flag_id).await;
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[1].activity, "updated");
        assert_eq!(
            log[1].detail["changes"],
            json!([
                {"type": "FeatureFlag", "action": "changed", "field": "filters", "before": {"groups": default_groups()}, "after": expected},
                {"type": "FeatureFlag", "action": "changed", "field": "version", "before": 1, "after": 2},
            ])
        );
    }
}

#[tokio::test]
async fn moving_out_of_an_enrolling_stage_removes_the_gate_without_a_version_bump() {
    let w = World::new().await;
    for (from, to) in [
        ("beta", "archived"),
        ("alpha", "concept"),
        ("general-availability", "draft"),
    ] {
        let created = create_feature(
            &w,
            json!({"name": format!("Out {from} {to}"), "stage": from}),
        )
        .await;
        let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
        let key = created["feature_flag"]["key"].as_str().unwrap().to_string();
        let before = get_flag(&w, flag_id).await;
        let patched = patch_feature(&w, &id, json!({"stage": to})).await;
        assert_eq!(patched["stage"], to);
        let shown = get_flag(&w, flag_id).await;
        assert_eq!(
            shown["filters"],
            json!({"groups": default_groups(), "super_groups": null}),
            "super_groups kept as null"
        );
        assert_eq!(shown["version"], 1, "a direct save: no version bump");
        assert_eq!(patched["feature_flag"]["filters"], shown["filters"]);
        let log = w.flag_activity(flag_id).await;
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[1].activity, "updated");
        assert_eq!(
            log[1].detail["changes"],
            json!([{"type": "FeatureFlag", "action": "changed", "field": "filters", "before": before["filters"], "after": {"groups": default_groups(), "super_groups": null}}])
        );
        assert_eq!(log[1].detail["name"], key.as_str());
        // Back in: the gate returns, now with a bump.
        let back = patch_feature(&w, &id, json!({"stage": from})).await;
        assert_eq!(back["feature_flag"]["filters"]["super_groups"], gate(&key));
        assert_eq!(back["feature_flag"]["version"], 2);
    }
}

#[tokio::test]
async fn moving_between_enrolling_stages_or_between_others_leaves_the_flag_alone() {
    let w = World::new().await;
    for (from, to) in [
        ("alpha", "beta"),
        ("beta", "general-availability"),
        ("general-availability", "alpha"),
        ("beta", "beta"),
        ("draft", "concept"),
        ("concept", "archived"),
        ("archived", "draft"),
    ] {
        let created = create_feature(
            &w,
            json!({"name": format!("Stay {from} {to}"), "stage": from}),
        )
        .await;
        let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
        let mut before = get_flag(&w, flag_id).await;
        let patched = patch_feature(&w, &id, json!({"stage": to})).await;
        assert_eq!(patched["stage"], to);
        let mut after = get_flag(&w, flag_id).await;
        before["features"] = json!([]);
        after["features"] = json!([]);
        assert_eq!(after, before, "{from} → {to}");
        assert_eq!(w.flag_activity(flag_id).await.len(), 1, "{from} → {to}");
    }
}

#[tokio::test]
async fn put_is_a_full_update_and_moves_the_gate_too() {
    let w = World::new().await;
    let created = create_feature(
        &w,
        json!({"name": "Put me", "description": "kept", "stage": "concept"}),
    )
    .await;
    let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
    let r = eaf(
        &w,
        "PUT",
        &format!("{id}/"),
        Some(json!({"name": "Put me"})),
    )
    .await;
    assert_error(
        &r,
        400,
        "required",
        "This field is required.",
        Some("stage"),
    );
    let r = eaf(&w, "PUT", &format!("{id}/"), Some(json!({"stage": "beta"}))).await;
    assert_error(&r, 400, "required", "This field is required.", Some("name"));
    assert_eq!(
        get_flag(&w, flag_id).await["version"],
        1,
        "refused PUTs change nothing"
    );
    let r = eaf(
        &w,
        "PUT",
        &format!("{id}/"),
        Some(json!({"name": "Put again", "stage": "beta"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Put again");
    assert_eq!(
        r.body["description"], "kept",
        "fields not sent keep their value"
    );
    assert_eq!(r.body["feature_flag"]["version"], 2);
    assert_eq!(
        get_flag(&w, flag_id).await["filters"]["super_groups"],
        gate("put-me")
    );
}

// ---------------------------------------------------------------------------------------------
// §11.5 delete

#[tokio::test]
async fn delete_removes_the_gate_keeps_the_flag_and_answers_204() {
    let w = World::new().await;
    let created = create_feature(&w, json!({"name": "Doomed", "stage": "beta"})).await;
    let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
    let req = ApiRequest::new("DELETE", &eaf_path(w.project.id, &format!("{id}/")))
        .with_header("authorization", &format!("Bearer {}", w.key));
    let r = w.send_early_access(req).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, None, "empty body");
    assert_error(
        &eaf(&w, "GET", &format!("{id}/"), None).await,
        404,
        "not_found",
        "Not found.",
        None,
    );
    assert_error(
        &eaf(&w, "DELETE", &format!("{id}/"), None).await,
        404,
        "not_found",
        "Not found.",
        None,
    );
    assert_eq!(list_features(&w).await["count"], 0);
    let shown = get_flag(&w, flag_id).await;
    assert_eq!(shown["deleted"], false, "the flag is kept");
    assert_eq!(
        shown["filters"],
        json!({"groups": default_groups(), "super_groups": null})
    );
    assert_eq!(shown["version"], 1, "direct save");
    assert_eq!(shown["features"], json!([]));
    let log = w.flag_activity(flag_id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].activity, "updated");
    assert!(link_item(&w, flag_id).await.is_none(), "link released");
    // Now the flag can be soft-deleted, and linked again before that.
    let again = create_feature(
        &w,
        json!({"name": "Again", "stage": "concept", "feature_flag_id": flag_id}),
    )
    .await;
    assert_eq!(
        eaf(&w, "DELETE", &format!("{}/", feature_id(&again)), None)
            .await
            .status,
        204
    );
    let r = patch_flag(&w, flag_id, json!({"deleted": true})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deleted"], true);
}

#[tokio::test]
async fn deleting_a_feature_without_a_gate_writes_no_flag_change() {
    let w = World::new().await;
    let created = create_feature(&w, json!({"name": "Never released", "stage": "draft"})).await;
    let flag_id = flag_id_of(&created);
    let before = get_flag(&w, flag_id).await;
    assert_eq!(
        eaf(&w, "DELETE", &format!("{}/", feature_id(&created)), None)
            .await
            .status,
        204
    );
    let mut after = get_flag(&w, flag_id).await;
    assert_eq!(after["features"], json!([]));
    after["features"] = before["features"].clone();
    assert_eq!(after, before);
    assert_eq!(
        w.flag_activity(flag_id).await.len(),
        1,
        "no empty `updated` entry"
    );
}

// ---------------------------------------------------------------------------------------------
// §11.7 errors

#[tokio::test]
async fn field_validation_errors() {
    let w = World::new().await;
    let post = |body: Value| eaf(&w, "POST", "", Some(body));
    assert_error(
        &post(json!({})).await,
        400,
        "required",
        "This field is required.",
        Some("name"),
    );
    assert_error(
        &post(json!({"name": "No stage"})).await,
        400,
        "required",
        "This field is required.",
        Some("stage"),
    );
    assert_error(
        &post(json!({"name": "x", "stage": "foo"})).await,
        400,
        "invalid_choice",
        "\"foo\" is not a valid choice.",
        Some("stage"),
    );
    assert_error(
        &post(json!({"name": "x", "stage": "Beta"})).await,
        400,
        "invalid_choice",
        "\"Beta\" is not a valid choice.",
        Some("stage"),
    );
    assert_error(
        &post(json!({"name": "x", "stage": null})).await,
        400,
        "null",
        "This field may not be null.",
        Some("stage"),
    );
    assert_error(
        &post(json!({"name": "a".repeat(201), "stage": "beta"})).await,
        400,
        "max_length",
        "Ensure this field has no more than 200 characters.",
        Some("name"),
    );
    assert_error(
        &post(json!({"name": "   ", "stage": "beta"})).await,
        400,
        "blank",
        "This field may not be blank.",
        Some("name"),
    );
    for url in [
        "not a url",
        "example.com/docs",
        "javascript:alert(1)",
        "https://nodot",
    ] {
        assert_error(
            &post(json!({"name": "x", "stage": "beta", "documentation_url": url})).await,
            400,
            "invalid_input",
            "Enter a valid URL.",
            Some("documentation_url"),
        );
    }
    assert_error(
        &post(json!({"name": "x", "stage": "beta", "documentation_url": format!("https://example.com/{}", "a".repeat(800))})).await,
        400,
        "max_length",
        "Ensure this field has no more than 800 characters.",
        Some("documentation_url"),
    );
    // Field order: name before stage before documentation_url.
    assert_error(
        &post(json!({"name": "", "stage": "foo", "documentation_url": "bad"})).await,
        400,
        "blank",
        "This field may not be blank.",
        Some("name"),
    );
    assert_error(
        &post(json!({"name": "x", "stage": "foo", "documentation_url": "bad"})).await,
        400,
        "invalid_choice",
        "\"foo\" is not a valid choice.",
        Some("stage"),
    );
    assert_eq!(list_features(&w).await["count"], 0, "nothing was made");
    assert!(
        w.store
            .project_flags(w.project.id)
            .await
            .unwrap()
            .is_empty()
    );

    // The limits themselves are fine.
    let ok = create_feature(
        &w,
        json!({"name": "a".repeat(200), "stage": "beta", "documentation_url": "http://localhost:8000/docs"}),
    )
    .await;
    let id = feature_id(&ok);
    // PATCH validates what it is sent.
    let one = format!("{id}/");
    let patch = |body: Value| eaf(&w, "PATCH", &one, Some(body));
    assert_error(
        &patch(json!({"stage": "foo"})).await,
        400,
        "invalid_choice",
        "\"foo\" is not a valid choice.",
        Some("stage"),
    );
    assert_error(
        &patch(json!({"documentation_url": "nope"})).await,
        400,
        "invalid_input",
        "Enter a valid URL.",
        Some("documentation_url"),
    );
    assert_error(
        &patch(json!({"name": "b".repeat(201)})).await,
        400,
        "max_length",
        "Ensure this field has no more than 200 characters.",
        Some("name"),
    );
    assert_eq!(
        eaf(&w, "GET", &format!("{id}/"), None).await.body,
        ok,
        "refused PATCHes change nothing"
    );
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_404() {
    let w = World::new().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [unknown.as_str(), "abc", "123", "not-a-uuid-at-all"] {
        for method in ["GET", "PATCH", "PUT", "DELETE"] {
            let r = eaf(
                &w,
                method,
                &format!("{id}/"),
                Some(json!({"name": "x", "stage": "beta"})),
            )
            .await;
            assert_error(&r, 404, "not_found", "Not found.", None);
        }
    }
    let r = eaf(&w, "GET", &format!("{unknown}/extra/"), None).await;
    assert_eq!(r.status, 404);
    let created = create_feature(&w, json!({"name": "Here", "stage": "draft"})).await;
    let r = eaf(
        &w,
        "POST",
        &format!("{}/", feature_id(&created)),
        Some(json!({})),
    )
    .await;
    assert_error(
        &r,
        405,
        "method_not_allowed",
        "Method \"POST\" not allowed.",
        None,
    );
}

#[tokio::test]
async fn scopes_and_credentials() {
    let w = World::new().await;
    let created = create_feature(&w, json!({"name": "Scoped", "stage": "draft"})).await;
    let one = format!("{}/", feature_id(&created));
    let body = Some(json!({"name": "Scoped 2", "stage": "draft"}));

    let read = w
        .add_key(w.user.id, &["early_access_feature:read"], None)
        .await;
    assert_eq!(eaf_as(&w, Some(&read), "GET", "", None).await.status, 200);
    assert_eq!(eaf_as(&w, Some(&read), "GET", &one, None).await.status, 200);
    for (method, rest) in [
        ("POST", ""),
        ("PATCH", one.as_str()),
        ("PUT", &one),
        ("DELETE", &one),
    ] {
        assert_error(
            &eaf_as(&w, Some(&read), method, rest, body.clone()).await,
            403,
            "permission_denied",
            "API key missing required scope 'early_access_feature:write'",
            None,
        );
    }

    let flags_only = w
        .add_key(
            w.user.id,
            &["feature_flag:write", "activity_log:read"],
            None,
        )
        .await;
    for (method, rest) in [("GET", ""), ("GET", one.as_str())] {
        assert_error(
            &eaf_as(&w, Some(&flags_only), method, rest, None).await,
            403,
            "permission_denied",
            "API key missing required scope 'early_access_feature:read'",
            None,
        );
    }
    assert_error(
        &eaf_as(&w, Some(&flags_only), "POST", "", body.clone()).await,
        403,
        "permission_denied",
        "API key missing required scope 'early_access_feature:write'",
        None,
    );

    // `:write` satisfies `:read`.
    let write = w
        .add_key(w.user.id, &["early_access_feature:write"], None)
        .await;
    assert_eq!(
        eaf_as(&w, Some(&write), "GET", &one, None).await.status,
        200
    );
    let made = eaf_as(&w, Some(&write), "POST", "", body.clone()).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        eaf_as(&w, Some(&write), "DELETE", &one, None).await.status,
        204
    );

    for (method, rest) in [("GET", ""), ("POST", ""), ("GET", one.as_str())] {
        assert_error(
            &eaf_as(&w, None, method, rest, body.clone()).await,
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            None,
        );
    }
    assert_error(
        &eaf_as(&w, Some("phx_not_a_key"), "GET", "", None).await,
        401,
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
        None,
    );
    // The project token is no management credential.
    assert_eq!(
        eaf_as(&w, Some(&w.project.api_token), "GET", "", None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn projects_the_caller_cannot_reach_are_refused() {
    let w = World::new().await;
    let foreign: Project = w.foreign_project().await;
    let req = ApiRequest::new("GET", &eaf_path(foreign.id, ""))
        .with_header("authorization", &format!("Bearer {}", w.key));
    assert_error(
        &as_response(&w.send_early_access(req).await),
        403,
        "permission_denied",
        "You don't have access to the project.",
        None,
    );
    let req = ApiRequest::new("GET", "/api/projects/abc/early_access_feature/")
        .with_header("authorization", &format!("Bearer {}", w.key));
    assert_error(
        &as_response(&w.send_early_access(req).await),
        404,
        "not_found",
        "Project not found.",
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// §11.6 the flag side

#[tokio::test]
async fn a_linked_flag_cannot_be_soft_deleted() {
    let w = World::new().await;
    for stage in ["beta", "concept"] {
        let created = create_feature(
            &w,
            json!({"name": format!("Guarded {stage}"), "stage": stage}),
        )
        .await;
        let flag_id = flag_id_of(&created);
        let before = get_flag(&w, flag_id).await;
        let r = patch_flag(&w, flag_id, json!({"deleted": true})).await;
        assert_error(&r, 400, "invalid_input", E29, None);
        let r = w
            .call(
                "PUT",
                &format!("{flag_id}/"),
                Some(json!({"key": before["key"], "deleted": true})),
            )
            .await;
        assert_error(&r, 400, "invalid_input", E29, None);
        assert_eq!(get_flag(&w, flag_id).await, before, "{stage}: unchanged");
    }
    // Unlinked flags are deleted as usual.
    let free = flag(&w, json!({"key": "free"})).await;
    assert_eq!(
        patch_flag(&w, free, json!({"deleted": true})).await.status,
        200
    );
}

#[tokio::test]
async fn a_linked_flag_cannot_be_made_group_based() {
    let w = World::new().await;
    for stage in ["beta", "draft"] {
        let created = create_feature(
            &w,
            json!({"name": format!("People {stage}"), "stage": stage}),
        )
        .await;
        let flag_id = flag_id_of(&created);
        let before = get_flag(&w, flag_id).await;
        let r = patch_flag(&w, flag_id, json!({"filters": group_based_filters()})).await;
        assert_error(&r, 400, "invalid_input", E27, Some("filters"));
        assert_eq!(get_flag(&w, flag_id).await, before);
        // Other filter changes are fine.
        let r = patch_flag(
            &w,
            flag_id,
            json!({"filters": {"groups": [{"properties": [], "rollout_percentage": 20}], "super_groups": before["filters"]["super_groups"]}}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The same change on an unlinked flag is accepted: the link is what refuses it.
    let free = flag(&w, json!({"key": "free"})).await;
    let r = patch_flag(&w, free, json!({"filters": group_based_filters()})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn renaming_a_linked_flag_rewrites_its_enrollment_key() {
    let w = World::new().await;
    let created = create_feature(
        &w,
        json!({"name": "Old name", "stage": "beta", "documentation_url": "https://docs.example.com/a"}),
    )
    .await;
    let flag_id = flag_id_of(&created);
    let r = patch_flag(&w, flag_id, json!({"key": "new-name"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["filters"]["super_groups"], gate("new-name"));
    assert_eq!(r.body["features"], json!([summary(&created, "new-name")]));
    assert_eq!(
        get_flag(&w, flag_id).await["filters"]["super_groups"],
        gate("new-name")
    );
    let feature = eaf(&w, "GET", &format!("{}/", feature_id(&created)), None).await;
    assert_eq!(feature.body["feature_flag"]["key"], "new-name");
    let sdk = public(&w, &[("token", &w.project.api_token)], None).await;
    assert_eq!(
        sdk.body.unwrap()["earlyAccessFeatures"][0]["flagKey"],
        "new-name"
    );
    // Moving out and back in writes the gate with the new key.
    patch_feature(&w, &feature_id(&created), json!({"stage": "concept"})).await;
    let back = patch_feature(&w, &feature_id(&created), json!({"stage": "alpha"})).await;
    assert_eq!(
        back["feature_flag"]["filters"]["super_groups"],
        gate("new-name")
    );
}

#[tokio::test]
async fn flag_representations_list_linked_features() {
    let w = World::new().await;
    let created = create_feature(
        &w,
        json!({"name": "Shown", "description": "d", "stage": "alpha", "documentation_url": "https://docs.example.com/s", "payload": {"x": 1}}),
    )
    .await;
    let flag_id = flag_id_of(&created);
    let free = flag(&w, json!({"key": "free"})).await;
    let expected = json!([{
        "id": created["id"],
        "name": "Shown",
        "description": "d",
        "stage": "alpha",
        "documentationUrl": "https://docs.example.com/s",
        "flagKey": "shown",
        "payload": {"x": 1},
    }]);
    assert_eq!(get_flag(&w, flag_id).await["features"], expected);
    assert_eq!(get_flag(&w, free).await["features"], json!([]));
    let page = w.call("GET", "", None).await;
    assert_eq!(page.status, 200);
    let results = page.body["results"].as_array().unwrap();
    let listed = |id: i64| {
        results
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))["features"]
            .clone()
    };
    assert_eq!(listed(flag_id), expected);
    assert_eq!(listed(free), json!([]));
    // The flag's own update answer shows them too.
    let r = patch_flag(&w, flag_id, json!({"name": "renamed flag"})).await;
    assert_eq!(r.body["features"], expected);
    // And they follow the feature.
    patch_feature(
        &w,
        &feature_id(&created),
        json!({"stage": "general-availability"}),
    )
    .await;
    assert_eq!(
        get_flag(&w, flag_id).await["features"][0]["stage"],
        "general-availability"
    );
}

// ---------------------------------------------------------------------------------------------
// The transactional guarantee: never a feature without its flag change or the reverse

#[tokio::test]
async fn a_failing_flag_validation_on_link_leaves_feature_and_flag_unchanged() {
    let w = World::new().await;
    let id = flag(&w, json!({"key": "legacy"})).await;
    // An event property: refused by today's rules (E7), but stored before them.
    force_filters(
        &w,
        id,
        json!({"groups": [{"properties": [{"key": "$pageview", "type": "event", "value": "x"}], "rollout_percentage": 100}]}),
    )
    .await;
    let before = stored(&w, id).await.unwrap();
    let r = eaf(
        &w,
        "POST",
        "",
        Some(json!({"name": "On legacy", "stage": "beta", "feature_flag_id": id})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Filters are not valid (can only use person, cohort, and flag properties)",
        Some("filters"),
    );
    assert_eq!(list_features(&w).await["count"], 0, "no feature");
    assert!(link_item(&w, id).await.is_none(), "no link item");
    assert_eq!(stored(&w, id).await.unwrap(), before, "flag unchanged");
    assert_eq!(w.flag_activity(id).await.len(), 1);
    // Not enrolling: the flag isn't updated, so the link is made.
    create_feature(
        &w,
        json!({"name": "On legacy", "stage": "concept", "feature_flag_id": id}),
    )
    .await;
}

#[tokio::test]
async fn a_failing_flag_validation_on_a_stage_change_leaves_feature_and_flag_unchanged() {
    let w = World::new().await;
    let created = create_feature(&w, json!({"name": "Waiting", "stage": "concept"})).await;
    let (id, flag_id) = (feature_id(&created), flag_id_of(&created));
    force_filters(
        &w,
        flag_id,
        json!({"groups": [{"properties": [{"key": "email", "type": "person", "value": ["a"], "operator": "icontains"}], "rollout_percentage": 0}]}),
    )
    .await;
    let flag_before = stored(&w, flag_id).await.unwrap();
    let feature_before = eaf(&w, "GET", &format!("{id}/"), None).await.body;
    let r = eaf(
        &w,
        "PATCH",
        &format!("{id}/"),
        Some(json!({"stage": "beta", "name": "Renamed too"})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_value",
        "Invalid value for operator icontains: ['a']",
        Some("filters"),
    );
    assert_eq!(
        eaf(&w, "GET", &format!("{id}/"), None).await.body,
        feature_before,
        "feature unchanged (stage and name)"
    );
    assert_eq!(
        stored(&w, flag_id).await.unwrap(),
        flag_before,
        "flag unchanged"
    );
}

#[tokio::test]
async fn a_refused_feature_write_takes_the_flag_change_back_with_it() {
    let w = World::new().await;
    let id = flag(&w, json!({"key": "claimed"})).await;
    // A link item no feature owns: the feature's part of the transaction must fail.
    w.store
        .client
        .put_item()
        .table_name(&w.store.tables.early_access)
        .item("pk", AttributeValue::S(format!("PROJECT#{}", w.project.id)))
        .item("sk", AttributeValue::S(format!("FLAGLINK#{id}")))
        .item("feature_id", AttributeValue::S("elsewhere".into()))
        .send()
        .await
        .unwrap();
    let before = stored(&w, id).await.unwrap();
    let r = eaf(
        &w,
        "POST",
        "",
        Some(json!({"name": "Blocked", "stage": "beta", "feature_flag_id": id})),
    )
    .await;
    assert_eq!(r.body["type"], "server_error", "{}", r.body);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(list_features(&w).await["count"], 0);
    assert_eq!(
        stored(&w, id).await.unwrap(),
        before,
        "the flag update was in the failed transaction"
    );
    assert_eq!(
        w.flag_activity(id).await.len(),
        1,
        "and so was its activity entry"
    );
}

// ---------------------------------------------------------------------------------------------
// Parallel writers

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_links_of_one_flag_make_exactly_one_feature() {
    let w = World::new().await;
    for stage in ["beta", "concept"] {
        let key = format!("contested-{stage}");
        let id = flag(&w, json!({"key": key})).await;
        let calls = (0..8).map(|i| {
            eaf(
                &w,
                "POST",
                "",
                Some(json!({"name": format!("Writer {i}"), "stage": stage, "feature_flag_id": id})),
            )
        });
        let results = join_all(calls).await;
        let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
        let won: Vec<&Response> = results.iter().filter(|r| r.status == 201).collect();
        assert_eq!(won.len(), 1, "{stage}: {statuses:?}");
        for r in results.iter().filter(|r| r.status != 201) {
            assert_error(
                r,
                400,
                "invalid_input",
                &format!("Linked feature flag {key} already has a feature attached to it."),
                None,
            );
        }
        let linked: Vec<Value> = list_features(&w).await["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["feature_flag"]["id"] == id)
            .cloned()
            .collect();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0]["id"], won[0].body["id"]);
        assert_eq!(
            link_item(&w, id).await.unwrap()["feature_id"],
            AttributeValue::S(feature_id(&won[0].body))
        );
        let shown = get_flag(&w, id).await;
        let expected_version = if stage == "beta" { 2 } else { 1 };
        assert_eq!(
            shown["version"], expected_version,
            "{stage}: one flag update"
        );
        assert_eq!(w.flag_activity(id).await.len(), expected_version as usize);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linking_races_deleting_and_regrouping_without_breaking_the_link_rules() {
    let w = World::new().await;
    for round in 0..6 {
        for stage in ["concept", "beta"] {
            let id = flag(&w, json!({"key": format!("race-{round}-{stage}")})).await;
            let link = eaf(
                &w,
                "POST",
                "",
                Some(
                    json!({"name": format!("Race {round} {stage}"), "stage": stage, "feature_flag_id": id}),
                ),
            );
            let change = if round % 2 == 0 {
                json!({"deleted": true})
            } else {
                json!({"filters": group_based_filters()})
            };
            let (linked, changed) = tokio::join!(link, patch_flag(&w, id, change));
            let shown = get_flag(&w, id).await;
            let is_linked = !shown["features"].as_array().unwrap().is_empty();
            // Whatever the order, a linked flag is neither deleted nor group-based.
            assert_eq!(linked.status == 201, is_linked, "{}", linked.body);
            assert_ne!(
                linked.status == 201,
                changed.status == 200,
                "exactly one wins: link {} / flag {}",
                linked.body,
                changed.body
            );
            if is_linked {
                assert_eq!(shown["deleted"], false);
                assert!(shown["filters"]["aggregation_group_type_index"].is_null());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §11.8 public SDK endpoint

#[tokio::test]
async fn public_endpoint_answers_posthog_js() {
    let w = World::new().await;
    let mut made = HashMap::new();
    for stage in ["concept", "alpha", "beta", "general-availability", "draft"] {
        let created = create_feature(
            &w,
            json!({"name": format!("Public {stage}"), "description": format!("about {stage}"), "stage": stage, "documentation_url": "https://docs.example.com/p", "payload": {"stage": stage}}),
        )
        .await;
        made.insert(stage, created);
    }
    let second_beta = create_feature(&w, json!({"name": "Second beta", "stage": "beta"})).await;
    // Another project's beta must not show.
    let other = w.add_project(&w.org.id).await;
    let req = ApiRequest::new("POST", &eaf_path(other.id, ""))
        .with_header("authorization", &format!("Bearer {}", w.key))
        .with_json(&json!({"name": "Theirs", "stage": "beta"}));
    assert_eq!(w.send_early_access(req).await.status, 201);

    let token = w.project.api_token.clone();
    let r = public(&w, &[("token", &token)], None).await;
    assert_eq!(r.status, 200);
    let shown = |stage: &str| {
        summary(
            &made[stage],
            made[stage]["feature_flag"]["key"].as_str().unwrap(),
        )
    };
    assert_eq!(
        r.body.unwrap(),
        json!({"earlyAccessFeatures": [
            shown("beta"),
            summary(&second_beta, "second-beta"),
        ]}),
        "beta only by default, oldest first"
    );
    let r = public(
        &w,
        &[
            ("token", &token),
            ("stage", "alpha"),
            ("stage", "general-availability"),
        ],
        None,
    )
    .await;
    assert_eq!(
        r.body.unwrap(),
        json!({"earlyAccessFeatures": [shown("alpha"), shown("general-availability")]}),
        "repeated stage params"
    );
    let r = public(&w, &[("token", &token), ("stage", "concept")], None).await;
    assert_eq!(
        r.body.unwrap(),
        json!({"earlyAccessFeatures": [shown("concept")]})
    );
    let r = public(&w, &[("token", &token), ("stage", "nonsense")], None).await;
    assert_eq!(r.body.unwrap(), json!({"earlyAccessFeatures": []}));
    // Shape for posthog-js: exactly these keys.
    let one = shown("beta");
    let mut keys: Vec<&str> = one
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "description",
            "documentationUrl",
            "flagKey",
            "id",
            "name",
            "payload",
            "stage"
        ]
    );
}

#[tokio::test]
async fn public_endpoint_401s_and_cors() {
    let w = World::new().await;
    let missing = json!({"type": "authentication_error", "code": "missing_api_key", "detail": "API key not provided. You can find your project API key in PostHog project settings.", "attr": null});
    let invalid = json!({"type": "authentication_error", "code": "invalid_api_key", "detail": "Project API key invalid. You can find your project API key in PostHog project settings.", "attr": null});
    let r = public(&w, &[], None).await;
    assert_eq!((r.status, r.body.unwrap()), (401, missing.clone()));
    let r = public(&w, &[("token", "")], None).await;
    assert_eq!((r.status, r.body.unwrap()), (401, missing.clone()));
    let r = public(&w, &[("token", "phc_unknown")], None).await;
    assert_eq!((r.status, r.body.unwrap()), (401, invalid.clone()));
    // A personal API key is not a project token.
    let r = public(&w, &[("token", &w.key)], None).await;
    assert_eq!((r.status, r.body.unwrap()), (401, invalid.clone()));

    let origin = "https://app.example.com";
    let ok = public(&w, &[("token", &w.project.api_token)], Some(origin)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(header(&ok, "access-control-allow-origin"), Some(origin));
    let plain = public(&w, &[("token", &w.project.api_token)], None).await;
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
    // The 401s are readable by the browser too (PostHog wraps them in its CORS response).
    for query in [vec![], vec![("token", "phc_unknown")]] {
        let r = public(&w, &query, Some(origin)).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some(origin),
            "{query:?}"
        );
    }
}
