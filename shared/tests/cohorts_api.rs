//! Cohorts against DynamoDB Local: the cohorts endpoints, flags targeting cohorts (validation,
//! `cohort_name`, definitions, `/flags`), and the static-cohort fill worker driven in-process.

mod common;

use serde_json::{Value, json};
use shared::api::Group;
use shared::http::{ApiRequest, ApiResponse};
use shared::person::{ClaimedDistinctId, Person, PersonWrite};
use shared::store::dynamo::cohort_stream_event;
use shared::store::{CohortStore, DefinitionsStore, PersonStore};
use shared::workers::cohort_fill::{self, FillOptions, Step};

use common::{Response, World, assert_error};

fn parsed(r: ApiResponse) -> Response {
    Response {
        status: r.status,
        body: r.body.unwrap_or(Value::Null),
    }
}

async fn cohorts(w: &World, method: &str, rest: &str, body: Option<Value>) -> Response {
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = format!("/api/projects/{}/cohorts/{rest}", w.project.id);
    let mut req =
        ApiRequest::new(method, &path).with_header("authorization", &format!("Bearer {}", w.key));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = url::form_urlencoded::parse(format!("x={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        req = req.with_query(k, &v);
    }
    if let Some(body) = body {
        req = req.with_json(&body);
    }
    parsed(w.send_to(Group::Cohorts, req).await)
}

async fn create_cohort(w: &World, body: Value) -> Value {
    let r = cohorts(w, "POST", "", Some(body.clone())).await;
    assert_eq!(r.status, 201, "create {body} → {}", r.body);
    r.body
}

/// `/flags` for `distinct_id` with no request properties: the flags' values.
async fn flags_for(w: &World, distinct_id: &str) -> Value {
    let body = json!({"api_key": w.project.api_token, "distinct_id": distinct_id});
    let req = ApiRequest::new("POST", "/flags/")
        .with_query("v", "4")
        .with_json(&body);
    let r = parsed(w.send_to(Group::Flags, req).await);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["flags"].clone()
}

fn enabled(flags: &Value, key: &str) -> bool {
    flags[key]["enabled"].as_bool().unwrap_or(false)
}

async fn definitions(w: &World) -> Value {
    let req = ApiRequest::new("GET", "/flags/definitions")
        .with_query("token", &w.project.api_token)
        .with_header("authorization", &format!("Bearer {}", w.key));
    let r = parsed(w.send_to(Group::Flags, req).await);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Stores persons directly (capture's write path), one distinct id each.
async fn seed_persons(w: &World, people: &[(&str, Value)]) -> Vec<Person> {
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for chunk in people.chunks(25) {
        let writes: Vec<PersonWrite> = chunk
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
        out.extend(writes.into_iter().map(|w| w.person));
    }
    out
}

fn cohort_filter(id: i64, operator: &str) -> Value {
    json!({"groups": [{"properties": [{"key": "id", "type": "cohort", "value": id, "operator": operator}], "rollout_percentage": 100}]})
}

fn plan_filters(plan: &str) -> Value {
    json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [
        {"key": "plan", "type": "person", "operator": "exact", "value": [plan]}]}]}})
}

#[tokio::test]
async fn create_list_and_retrieve_static_and_property_cohorts() {
    let w = World::new().await;
    let people = seed_persons(
        &w,
        &[
            ("alice", json!({"plan": "pro"})),
            ("bob", json!({"plan": "free"})),
        ],
    )
    .await;
    let fixed = create_cohort(
        &w,
        json!({"name": "Fixed", "is_static": true, "distinct_ids": ["alice", "ghost"],
               "_create_static_person_ids": [people[1].uuid]}),
    )
    .await;
    assert_eq!(fixed["is_static"], true);
    assert_eq!(fixed["count"], 2, "ghost has no person and is skipped");
    assert_eq!(fixed["is_calculating"], false);
    assert_eq!(fixed["filters"], json!({"properties": {}}));
    assert_eq!(fixed["created_by"]["email"], "owner@example.com");
    for field in [
        "id",
        "name",
        "description",
        "groups",
        "deleted",
        "filters",
        "query",
        "is_calculating",
        "created_by",
        "created_at",
        "last_calculation",
        "errors_calculating",
        "count",
        "is_static",
        "experiment_set",
    ] {
        assert!(fixed.get(field).is_some(), "missing {field}");
    }
    let pro = create_cohort(&w, json!({"name": "Pro", "filters": plan_filters("pro")})).await;
    assert_eq!(pro["is_static"], false);
    assert_eq!(pro["filters"], plan_filters("pro"));
    assert_eq!(pro["count"], Value::Null);

    let list = cohorts(&w, "GET", "", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["count"], 2);
    assert_eq!(list.body["results"][0]["id"], pro["id"], "newest first");
    let page = cohorts(&w, "GET", "?limit=1", None).await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 1);
    assert!(page.body["next"].as_str().unwrap().contains("offset=1"));

    let got = cohorts(&w, "GET", &format!("{}/", fixed["id"]), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, fixed);
    assert_eq!(cohorts(&w, "GET", "999999/", None).await.status, 404);

    let members = cohorts(&w, "GET", &format!("{}/persons/", fixed["id"]), None).await;
    let mut ids: Vec<&str> = members.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["distinct_ids"][0].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    let matching = cohorts(&w, "GET", &format!("{}/persons/", pro["id"]), None).await;
    assert_eq!(matching.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(matching.body["results"][0]["distinct_ids"][0], "alice");
    assert_eq!(matching.body["next"], Value::Null);
}

#[tokio::test]
async fn persons_of_a_static_cohort_page_with_a_cursor() {
    let w = World::new().await;
    let names: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
    let people: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), json!({}))).collect();
    seed_persons(&w, &people).await;
    let fixed = create_cohort(&w, json!({"is_static": true, "distinct_ids": names})).await;
    let mut seen = Vec::new();
    let mut rest = format!("{}/persons/?limit=2", fixed["id"]);
    loop {
        let r = cohorts(&w, "GET", &rest, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let results = r.body["results"].as_array().unwrap();
        assert!(results.len() <= 2);
        seen.extend(
            results
                .iter()
                .map(|p| p["uuid"].as_str().unwrap().to_string()),
        );
        let Some(next) = r.body["next"].as_str() else {
            break;
        };
        let query = next.split_once('?').unwrap().1;
        rest = format!("{}/persons/?{query}", fixed["id"]);
    }
    assert_eq!(seen.len(), 5);
}

#[tokio::test]
async fn invalid_cohorts_are_400s_in_posthogs_envelope() {
    let w = World::new().await;
    let bad_operator = json!({"filters": {"properties": {"type": "AND", "values": [
        {"key": "plan", "type": "person", "operator": "bogus", "value": "x"}]}}});
    assert_error(
        &cohorts(&w, "POST", "", Some(bad_operator)).await,
        400,
        "invalid_input",
        "Unknown operator \"bogus\" on property \"plan\".",
        Some("filters"),
    );
    let behavioral = json!({"filters": {"properties": {"type": "OR", "values": [
        {"key": "$pageview", "type": "behavioral", "value": "performed_event"}]}}});
    let r = cohorts(&w, "POST", "", Some(behavioral)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["code"], "behavioral_cohort_found");
    let nested = json!({"filters": {"properties": {"type": "OR", "values": [
        {"key": "id", "type": "cohort", "value": 424242}]}}});
    assert_error(
        &cohorts(&w, "POST", "", Some(nested)).await,
        400,
        "cohort_does_not_exist",
        "Cohort with id 424242 does not exist",
        Some("filters"),
    );
    let r = cohorts(&w, "POST", "", Some(json!({"name": "nothing"}))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["attr"], "filters");
    let r = cohorts(
        &w,
        "POST",
        "",
        Some(json!({"is_static": true, "distinct_ids": "a"})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["attr"], "distinct_ids");
}

#[tokio::test]
async fn scopes_guard_cohorts() {
    let w = World::new().await;
    let reader = w.add_key(w.user.id, &["cohort:read"], None).await;
    let path = format!("/api/projects/{}/cohorts/", w.project.id);
    let post = ApiRequest::new("POST", &path)
        .with_header("authorization", &format!("Bearer {reader}"))
        .with_json(&json!({"is_static": true}));
    assert_error(
        &parsed(w.send_to(Group::Cohorts, post).await),
        403,
        "permission_denied",
        "API key missing required scope 'cohort:write'",
        None,
    );
    let get =
        ApiRequest::new("GET", &path).with_header("authorization", &format!("Bearer {reader}"));
    assert_eq!(w.send_to(Group::Cohorts, get).await.status, 200);
    let writer = w.add_key(w.user.id, &["cohort:write"], None).await;
    let get =
        ApiRequest::new("GET", &path).with_header("authorization", &format!("Bearer {writer}"));
    assert_eq!(
        w.send_to(Group::Cohorts, get).await.status,
        200,
        ":write implies :read"
    );
    let flags_only = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let get =
        ApiRequest::new("GET", &path).with_header("authorization", &format!("Bearer {flags_only}"));
    assert_eq!(w.send_to(Group::Cohorts, get).await.status, 403);
}

#[tokio::test]
async fn flags_validate_cohort_references_and_show_cohort_names() {
    let w = World::new().await;
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "f", "filters": cohort_filter(987654, "in")})),
        )
        .await;
    assert_error(
        &r,
        400,
        "cohort_does_not_exist",
        "Cohort with id 987654 does not exist",
        Some("filters"),
    );
    let pro = create_cohort(&w, json!({"name": "Pro", "filters": plan_filters("pro")})).await;
    let id = pro["id"].as_i64().unwrap();
    let flag = w
        .create(json!({"key": "f", "filters": cohort_filter(id, "in")}))
        .await;
    assert_eq!(
        flag["filters"]["groups"][0]["properties"][0]["cohort_name"],
        "Pro"
    );
    let got = w.call("GET", &format!("{}/", flag["id"]), None).await;
    assert_eq!(
        got.body["filters"]["groups"][0]["properties"][0]["cohort_name"],
        "Pro"
    );
    let list = w.call("GET", "", None).await;
    assert_eq!(
        list.body["results"][0]["filters"]["groups"][0]["properties"][0]["cohort_name"],
        "Pro"
    );
    // PATCH re-validates against the real cohorts too.
    let r = w
        .call(
            "PATCH",
            &format!("{}/", flag["id"]),
            Some(json!({"filters": cohort_filter(id + 1000, "not_in")})),
        )
        .await;
    assert_eq!(r.body["code"], "cohort_does_not_exist");
}

#[tokio::test]
async fn definitions_carry_property_cohorts_but_not_static_ones() {
    let w = World::new().await;
    let pro = create_cohort(&w, json!({"name": "Pro", "filters": plan_filters("pro")})).await;
    let outer = create_cohort(
        &w,
        json!({"name": "Outer", "filters": {"properties": {"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": pro["id"], "operator": "in"}]}}}),
    )
    .await;
    let fixed = create_cohort(&w, json!({"name": "Fixed", "is_static": true})).await;
    let unused = create_cohort(&w, json!({"name": "Unused", "filters": plan_filters("x")})).await;
    w.create(json!({"key": "a", "filters": cohort_filter(outer["id"].as_i64().unwrap(), "in")}))
        .await;
    w.create(json!({"key": "b", "filters": cohort_filter(fixed["id"].as_i64().unwrap(), "in")}))
        .await;
    let defs = definitions(&w).await;
    let cohorts = defs["cohorts"].as_object().unwrap();
    let mut keys: Vec<&String> = cohorts.keys().collect();
    keys.sort();
    let mut want = [pro["id"].to_string(), outer["id"].to_string()];
    want.sort();
    assert_eq!(keys, want.iter().collect::<Vec<_>>());
    assert_eq!(
        cohorts[&pro["id"].to_string()],
        plan_filters("pro")["properties"]
    );
    assert!(!cohorts.contains_key(&fixed["id"].to_string()));
    assert!(!cohorts.contains_key(&unused["id"].to_string()));
}

#[tokio::test]
async fn flags_honour_static_membership_and_property_cohorts() {
    let w = World::new().await;
    seed_persons(
        &w,
        &[
            ("in-static", json!({"plan": "free"})),
            ("pro-user", json!({"plan": "pro"})),
            ("nobody", json!({"plan": "free"})),
        ],
    )
    .await;
    let fixed = create_cohort(
        &w,
        json!({"is_static": true, "distinct_ids": ["in-static"]}),
    )
    .await;
    let pro = create_cohort(&w, json!({"filters": plan_filters("pro")})).await;
    w.create(json!({"key": "static-flag", "filters": cohort_filter(fixed["id"].as_i64().unwrap(), "in")}))
        .await;
    w.create(
        json!({"key": "pro-flag", "filters": cohort_filter(pro["id"].as_i64().unwrap(), "in")}),
    )
    .await;
    w.create(json!({"key": "not-static", "filters": cohort_filter(fixed["id"].as_i64().unwrap(), "not_in")}))
        .await;
    let member = flags_for(&w, "in-static").await;
    assert!(enabled(&member, "static-flag"));
    assert!(!enabled(&member, "pro-flag"));
    assert!(!enabled(&member, "not-static"));
    let pro_user = flags_for(&w, "pro-user").await;
    assert!(!enabled(&pro_user, "static-flag"));
    assert!(enabled(&pro_user, "pro-flag"), "stored properties decide");
    assert!(enabled(&pro_user, "not-static"));
    let nobody = flags_for(&w, "nobody").await;
    assert!(!enabled(&nobody, "static-flag") && !enabled(&nobody, "pro-flag"));
}

async fn fill_event(w: &World, cohort_id: i64, options: FillOptions) -> Vec<Step> {
    let event = cohort_stream_event(&[(w.project.id, cohort_id)]);
    cohort_fill::handle_event(&w.store, &event, options)
        .await
        .unwrap()
}

async fn static_cohort_for_flag(w: &World, flag_id: &Value) -> Value {
    let r = w
        .call(
            "POST",
            &format!("{flag_id}/create_static_cohort_for_flag/"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["cohort"].clone()
}

#[tokio::test]
async fn fill_worker_pages_through_persons_and_resumes() {
    let w = World::new().await;
    let people: Vec<(String, Value)> = (0..23)
        .map(|i| {
            let plan = if i % 3 == 0 { "pro" } else { "free" };
            (format!("u{i:02}"), json!({"plan": plan}))
        })
        .collect();
    let refs: Vec<(&str, Value)> = people
        .iter()
        .map(|(d, p)| (d.as_str(), p.clone()))
        .collect();
    seed_persons(&w, &refs).await;
    let flag = w
        .create(json!({"key": "pro-only", "filters": {"groups": [{"properties": [
            {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}], "rollout_percentage": 100}]}}))
        .await;
    let cohort = static_cohort_for_flag(&w, &flag["id"]).await;
    assert_eq!(cohort["is_static"], true);
    assert_eq!(cohort["is_calculating"], true);
    assert_eq!(cohort["count"], Value::Null);
    assert!(
        cohort["name"]
            .as_str()
            .unwrap()
            .starts_with("Users with feature flag pro-only enabled at ")
    );
    let id = cohort["id"].as_i64().unwrap();
    let tiny = FillOptions {
        page_size: 4,
        max_pages: 2,
        budget: std::time::Duration::from_secs(20),
    };
    // A worker that dies mid-step: members of the first page written, cursor not advanced.
    let (page, _) = w.store.persons_page(w.project.id, None, 4).await.unwrap();
    let early: Vec<String> = page
        .iter()
        .filter(|p| p.properties["plan"] == "pro")
        .map(|p| p.uuid.clone())
        .collect();
    w.store
        .add_cohort_members(w.project.id, id, &early)
        .await
        .unwrap();
    // The stream retries; each step takes 8 persons: 23 persons → 3 steps.
    let mut steps = Vec::new();
    for _ in 0..10 {
        let step = fill_event(&w, id, tiny).await.remove(0);
        steps.push(step.clone());
        if matches!(step, Step::Done { .. }) {
            break;
        }
    }
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(steps[2], Step::Done { count: Some(8) });
    // A duplicate delivery after the end changes nothing.
    assert_eq!(fill_event(&w, id, tiny).await, vec![Step::Idle]);
    let got = cohorts(&w, "GET", &format!("{id}/"), None).await;
    assert_eq!(got.body["is_calculating"], false);
    assert_eq!(got.body["count"], 8);
    assert!(got.body["last_calculation"].is_string());
    let members = cohorts(&w, "GET", &format!("{id}/persons/?limit=100"), None).await;
    assert_eq!(members.body["results"].as_array().unwrap().len(), 8);

    // A flag targeting the new cohort is on for exactly its members.
    w.create(json!({"key": "by-cohort", "filters": cohort_filter(id, "in")}))
        .await;
    for (distinct_id, props) in &people {
        let flags = flags_for(&w, distinct_id).await;
        assert_eq!(
            enabled(&flags, "by-cohort"),
            props["plan"] == "pro",
            "{distinct_id}"
        );
    }
}

#[tokio::test]
async fn concurrent_steps_of_one_fill_count_once() {
    let w = World::new().await;
    let people: Vec<(String, Value)> = (0..10).map(|i| (format!("c{i}"), json!({}))).collect();
    let refs: Vec<(&str, Value)> = people
        .iter()
        .map(|(d, p)| (d.as_str(), p.clone()))
        .collect();
    seed_persons(&w, &refs).await;
    let flag = w
        .create(json!({"key": "all", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}))
        .await;
    let id = static_cohort_for_flag(&w, &flag["id"]).await["id"]
        .as_i64()
        .unwrap();
    let small = FillOptions {
        page_size: 3,
        max_pages: 1,
        budget: std::time::Duration::from_secs(20),
    };
    // Two deliveries of one record race: one advances, the other loses and records nothing.
    let (a, b) = tokio::join!(fill_event(&w, id, small), fill_event(&w, id, small));
    let outcomes = [a[0].clone(), b[0].clone()];
    assert!(
        outcomes.contains(&Step::LostRace)
            || outcomes.iter().all(|s| matches!(s, Step::Advanced { .. })),
        "{outcomes:?}"
    );
    for _ in 0..10 {
        if matches!(
            fill_event(&w, id, small).await[0],
            Step::Done { .. } | Step::Idle
        ) {
            break;
        }
    }
    let stored = w.store.cohort(w.project.id, id).await.unwrap().unwrap();
    assert!(!stored.is_calculating);
    assert_eq!(stored.count, Some(10));
}

#[tokio::test]
async fn flags_that_cannot_be_filled_from_give_an_empty_cohort() {
    let w = World::new().await;
    let flag = w
        .create(json!({"key": "off", "active": false, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}))
        .await;
    let cohort = static_cohort_for_flag(&w, &flag["id"]).await;
    assert_eq!(cohort["is_calculating"], false);
    assert_eq!(cohort["count"], Value::Null);
    let r = w
        .call(
            "POST",
            "999999/create_static_cohort_for_flag/",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 404);
    let reader = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let req = ApiRequest::new(
        "POST",
        &w.path(&format!("{}/create_static_cohort_for_flag/", flag["id"])),
    )
    .with_header("authorization", &format!("Bearer {reader}"))
    .with_json(&json!({}));
    assert_eq!(w.send(req).await.status, 403);
}

// ---------------------------------------------------------------------------------------------
// Update and soft delete

async fn patch(w: &World, id: &Value, body: Value) -> Response {
    cohorts(w, "PATCH", &format!("{id}/"), Some(body)).await
}

async fn version(w: &World) -> i64 {
    w.store.definitions_version(w.project.id).await.unwrap()
}

fn listed_ids(list: &Response) -> Vec<i64> {
    list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn patch_and_put_update_what_they_name_and_keep_the_rest() {
    let w = World::new().await;
    let pro = create_cohort(
        &w,
        json!({"name": "Pro", "description": "d", "filters": plan_filters("pro")}),
    )
    .await;
    let before = version(&w).await;
    let r = patch(&w, &pro["id"], json!({"name": "Pro users"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Pro users");
    assert_eq!(r.body["description"], "d");
    assert_eq!(r.body["filters"], plan_filters("pro"));
    assert_eq!(r.body["created_at"], pro["created_at"]);
    assert_eq!(
        version(&w).await,
        before,
        "a rename changes no evaluation, so SDK caches stay"
    );
    let got = cohorts(&w, "GET", &format!("{}/", pro["id"]), None).await;
    assert_eq!(got.body, r.body);

    // PUT echoing the retrieved cohort (with `groups: []`, `is_static: false`) is fine, and
    // keeps the filters; without the trailing slash too.
    let mut echoed = got.body.clone();
    echoed["description"] = json!("longer");
    let r = cohorts(&w, "PUT", &pro["id"].to_string(), Some(echoed)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["description"], "longer");
    assert_eq!(r.body["name"], "Pro users");
    assert_eq!(r.body["filters"], plan_filters("pro"));
    let r = cohorts(
        &w,
        "PUT",
        &format!("{}/", pro["id"]),
        Some(json!({"name": null})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], Value::Null);
    assert_eq!(r.body["description"], "longer");

    assert_error(
        &patch(&w, &pro["id"], json!({"is_static": true})).await,
        400,
        "invalid_input",
        "A cohort cannot be switched between static and property (dynamic): create a new cohort instead.",
        Some("is_static"),
    );
    assert_eq!(
        patch(&w, &json!(999_999), json!({"name": "x"}))
            .await
            .status,
        404
    );
    assert_eq!(
        cohorts(&w, "PATCH", "abc/", Some(json!({}))).await.status,
        404
    );
}

#[tokio::test]
async fn changing_filters_moves_flags_and_definitions() {
    let w = World::new().await;
    seed_persons(
        &w,
        &[
            ("alice", json!({"plan": "pro"})),
            ("bob", json!({"plan": "free"})),
        ],
    )
    .await;
    let cohort = create_cohort(&w, json!({"name": "Plan", "filters": plan_filters("pro")})).await;
    let id = cohort["id"].as_i64().unwrap();
    w.create(json!({"key": "by-plan", "filters": cohort_filter(id, "in")}))
        .await;
    assert!(enabled(&flags_for(&w, "alice").await, "by-plan"));
    assert!(!enabled(&flags_for(&w, "bob").await, "by-plan"));

    let before = version(&w).await;
    let r = patch(&w, &cohort["id"], json!({"filters": plan_filters("free")})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["filters"], plan_filters("free"));
    assert!(
        version(&w).await > before,
        "new filters bump the definitions"
    );
    let defs = definitions(&w).await;
    assert_eq!(
        defs["cohorts"][id.to_string()],
        plan_filters("free")["properties"]
    );
    assert!(!enabled(&flags_for(&w, "alice").await, "by-plan"));
    assert!(enabled(&flags_for(&w, "bob").await, "by-plan"));

    // Legacy `groups` alone rebuild the filters, as on create.
    let r = patch(
        &w,
        &cohort["id"],
        json!({"groups": [{"properties": [{"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}]}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["filters"], plan_filters("pro"));
    assert!(enabled(&flags_for(&w, "alice").await, "by-plan"));
    // An empty `groups` list alone keeps them.
    let r = patch(&w, &cohort["id"], json!({"groups": []})).await;
    assert_eq!(r.body["filters"], plan_filters("pro"));
}

#[tokio::test]
async fn soft_delete_is_refused_while_active_flags_use_the_cohort_and_restore_undoes_it() {
    let w = World::new().await;
    seed_persons(&w, &[("alice", json!({"plan": "pro"}))]).await;
    let inner = create_cohort(&w, json!({"name": "Inner", "filters": plan_filters("pro")})).await;
    let outer = create_cohort(
        &w,
        json!({"name": "Outer", "filters": {"properties": {"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": inner["id"], "operator": "in"}]}}}),
    )
    .await;
    let flag = w
        .create(json!({"key": "gate", "name": "Gate", "filters": cohort_filter(outer["id"].as_i64().unwrap(), "in")}))
        .await;
    assert!(enabled(&flags_for(&w, "alice").await, "gate"));
    // PostHog's guard follows the flag's cohorts into their dependencies.
    for id in [&inner["id"], &outer["id"]] {
        assert_error(
            &patch(&w, id, json!({"deleted": true})).await,
            400,
            "invalid_input",
            "This cohort is used in 1 active feature flag(s): Gate. Please remove the cohort from these feature flags before deleting it.",
            None,
        );
    }
    // Inactive flags don't hold a cohort back.
    let r = w
        .call(
            "PATCH",
            &format!("{}/", flag["id"]),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let before = version(&w).await;
    let r = patch(&w, &outer["id"], json!({"deleted": true})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deleted"], true);
    assert!(version(&w).await > before, "a delete bumps the definitions");
    let list = cohorts(&w, "GET", "", None).await;
    assert_eq!(list.body["count"], 1, "the list hides deleted cohorts");
    assert_eq!(listed_ids(&list), vec![inner["id"].as_i64().unwrap()]);
    let got = cohorts(&w, "GET", &format!("{}/", outer["id"]), None).await;
    assert_eq!(
        got.status, 200,
        "retrieve still finds it, as PostHog's does"
    );
    assert_eq!(got.body["deleted"], true);

    // A flag turned back on over a deleted cohort: never a 500, it just doesn't match, and
    // the definitions leave the cohort out.
    let r = w
        .call(
            "PATCH",
            &format!("{}/", flag["id"]),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!enabled(&flags_for(&w, "alice").await, "gate"));
    let defs = definitions(&w).await;
    assert!(
        defs["cohorts"].get(outer["id"].to_string()).is_none(),
        "{defs}"
    );

    let r = patch(&w, &outer["id"], json!({"deleted": false})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deleted"], false);
    assert_eq!(cohorts(&w, "GET", "", None).await.body["count"], 2);
    assert!(enabled(&flags_for(&w, "alice").await, "gate"));
    assert!(
        definitions(&w).await["cohorts"]
            .get(outer["id"].to_string())
            .is_some()
    );
}

#[tokio::test]
async fn delete_is_405_with_an_empty_body_and_patch_needs_cohort_write() {
    let w = World::new().await;
    let fixed = create_cohort(&w, json!({"name": "Fixed", "is_static": true})).await;
    for rest in [
        format!("{}/", fixed["id"]),
        fixed["id"].to_string(),
        "999999/".into(),
    ] {
        let r = cohorts(&w, "DELETE", &rest, None).await;
        assert_eq!(r.status, 405);
        assert_eq!(
            r.body,
            Value::Null,
            "PostHog's ForbidDestroyModel has no body"
        );
    }
    let got = cohorts(&w, "GET", &format!("{}/", fixed["id"]), None).await;
    assert_eq!(got.body["deleted"], false);

    let reader = w.add_key(w.user.id, &["cohort:read"], None).await;
    let path = format!("/api/projects/{}/cohorts/{}/", w.project.id, fixed["id"]);
    for method in ["PATCH", "PUT", "DELETE"] {
        let req = ApiRequest::new(method, &path)
            .with_header("authorization", &format!("Bearer {reader}"))
            .with_json(&json!({"name": "no"}));
        assert_error(
            &parsed(w.send_to(Group::Cohorts, req).await),
            403,
            "permission_denied",
            "API key missing required scope 'cohort:write'",
            None,
        );
    }
    let writer = w.add_key(w.user.id, &["cohort:write"], None).await;
    let req = ApiRequest::new("PATCH", &path)
        .with_header("authorization", &format!("Bearer {writer}"))
        .with_json(&json!({"name": "yes"}));
    let r = parsed(w.send_to(Group::Cohorts, req).await);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "yes");
}

#[tokio::test]
async fn invalid_updates_are_400s_and_change_nothing() {
    let w = World::new().await;
    let a = create_cohort(&w, json!({"name": "A", "filters": plan_filters("pro")})).await;
    let refs = |id: &Value| {
        json!({"filters": {"properties": {"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": id, "operator": "in"}]}}})
    };
    let b = create_cohort(&w, refs(&a["id"])).await;
    assert_error(
        &patch(
            &w,
            &a["id"],
            json!({"filters": {"properties": {"type": "AND", "values": [
                {"key": "plan", "type": "person", "operator": "bogus", "value": "x"}]}}}),
        )
        .await,
        400,
        "invalid_input",
        "Unknown operator \"bogus\" on property \"plan\".",
        Some("filters"),
    );
    let r = patch(
        &w,
        &a["id"],
        json!({"filters": {"properties": {"type": "OR", "values": [
            {"key": "$pageview", "type": "behavioral", "value": "performed_event"}]}}}),
    )
    .await;
    assert_eq!(r.body["code"], "behavioral_cohort_found");
    assert_eq!(
        patch(&w, &a["id"], refs(&json!(424242))).await.body["code"],
        "cohort_does_not_exist"
    );
    for (id, target) in [(&a["id"], &b["id"]), (&a["id"], &a["id"])] {
        assert_error(
            &patch(&w, id, refs(target)).await,
            400,
            "invalid_input",
            "Cohorts cannot reference other cohorts in a loop.",
            None,
        );
    }
    assert_eq!(
        patch(&w, &a["id"], json!({"name": "x".repeat(401)}))
            .await
            .body["code"],
        "max_length"
    );
    assert_eq!(
        patch(&w, &a["id"], json!({"deleted": "maybe"})).await.body["attr"],
        "deleted"
    );
    assert_eq!(
        patch(&w, &a["id"], json!({"filters": {"nope": 1}}))
            .await
            .body["attr"],
        "filters"
    );
    let r = patch(&w, &a["id"], json!({"distinct_ids": ["x"]})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["detail"].as_str().unwrap().contains("is_static"));
    let got = cohorts(&w, "GET", &format!("{}/", a["id"]), None).await;
    assert_eq!(got.body, a, "nothing was written");
    // A deleted cohort can't be referenced, as on create.
    let c = create_cohort(&w, json!({"name": "C", "filters": plan_filters("x")})).await;
    assert_eq!(
        patch(&w, &c["id"], json!({"deleted": true})).await.status,
        200
    );
    assert_eq!(
        patch(&w, &a["id"], refs(&c["id"])).await.body["code"],
        "cohort_does_not_exist"
    );
}

#[tokio::test]
async fn static_cohorts_take_more_members_and_ignore_filters() {
    let w = World::new().await;
    seed_persons(
        &w,
        &[
            ("alice", json!({})),
            ("bob", json!({})),
            ("carol", json!({})),
        ],
    )
    .await;
    let fixed = create_cohort(&w, json!({"is_static": true, "distinct_ids": ["alice"]})).await;
    assert_eq!(fixed["count"], 1);
    let r = patch(
        &w,
        &fixed["id"],
        json!({"distinct_ids": ["alice", "bob", "ghost"], "filters": plan_filters("pro"), "is_static": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["count"], 2,
        "alice was a member already, ghost has no person"
    );
    assert_eq!(r.body["filters"], json!({"properties": {}}));
    let members = cohorts(&w, "GET", &format!("{}/persons/", fixed["id"]), None).await;
    assert_eq!(members.body["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_updates_lose_nothing() {
    let w = World::new().await;
    let names: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    let people: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), json!({}))).collect();
    seed_persons(&w, &people).await;
    let fixed = create_cohort(&w, json!({"is_static": true})).await;
    let mut calls = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // Each request changes a field of its own, so a lost update shows.
        let body = match i {
            0 => json!({"name": "named", "distinct_ids": [name]}),
            1 => json!({"description": "described", "distinct_ids": [name]}),
            _ => json!({"distinct_ids": [name]}),
        };
        calls.push(patch(&w, &fixed["id"], body));
    }
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let got = cohorts(&w, "GET", &format!("{}/", fixed["id"]), None).await;
    assert_eq!(got.body["name"], "named");
    assert_eq!(got.body["description"], "described");
    assert_eq!(got.body["count"], 8, "every request's members are counted");
}

#[tokio::test]
async fn list_search_is_a_case_insensitive_substring_of_the_name() {
    let w = World::new().await;
    let paying = create_cohort(&w, json!({"name": "Paying Users", "is_static": true})).await;
    let pro = create_cohort(&w, json!({"name": "pro users", "is_static": true})).await;
    create_cohort(&w, json!({"name": "Churned", "is_static": true})).await;
    let unnamed = create_cohort(&w, json!({"is_static": true})).await;
    assert_eq!(unnamed["name"], Value::Null);
    let ids = |list: &Response| listed_ids(list);
    let found = cohorts(&w, "GET", "?search=USERS", None).await;
    assert_eq!(found.body["count"], 2);
    assert_eq!(
        ids(&found),
        [pro["id"].as_i64().unwrap(), paying["id"].as_i64().unwrap()],
        "newest first"
    );
    let found = cohorts(&w, "GET", "?search=ing%20us", None).await;
    assert_eq!(ids(&found), [paying["id"].as_i64().unwrap()]);
    assert_eq!(
        cohorts(&w, "GET", "?search=nobody", None).await.body["count"],
        0
    );
    // A blank search keeps every named cohort; one without a name never matches.
    assert_eq!(cohorts(&w, "GET", "?search=", None).await.body["count"], 3);
    assert_eq!(cohorts(&w, "GET", "", None).await.body["count"], 4);
    // Paging counts what the search kept.
    let page = cohorts(&w, "GET", "?search=users&limit=1", None).await;
    assert_eq!(
        (page.body["count"].clone(), ids(&page)),
        (json!(2), vec![pro["id"].as_i64().unwrap()])
    );
}
