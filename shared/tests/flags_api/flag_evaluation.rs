//! §5.10: evaluations explained (`evaluation_reasons`, `my_flags`, `test_evaluation`), answered
//! by the engine from persons and cohorts stored in DynamoDB, in agreement with `/flags`.

use serde_json::{Value, json};
use shared::api::Group;
use shared::api::flags::DefinitionsCache;
use shared::cohort::Cohort;
use shared::http::ApiRequest;
use shared::person::{ClaimedDistinctId, Person, PersonWrite};
use shared::store::{CohortStore, DefinitionsStore, GroupType, PersonStore};

use crate::common::{Response, World, assert_error};
use crate::support::*;

/// Stores one person holding `distinct_ids` (the first one first) with `properties`.
async fn store_person(w: &World, distinct_ids: &[&str], properties: Value) -> Person {
    let mut person = Person::new(w.project.id, distinct_ids[0], chrono::Utc::now());
    person.distinct_ids = distinct_ids.iter().map(|d| d.to_string()).collect();
    person.properties = properties.as_object().cloned().unwrap();
    let write = PersonWrite {
        person: person.clone(),
        claimed_distinct_ids: distinct_ids
            .iter()
            .map(|d| ClaimedDistinctId {
                distinct_id: d.to_string(),
                previous: None,
            })
            .collect(),
        merged: Vec::new(),
    };
    assert!(w.store.write_persons(&[write]).await.unwrap().is_empty());
    let stored = w
        .store
        .person_by_distinct_id(w.project.id, distinct_ids[0])
        .await
        .unwrap();
    stored.expect("the person was stored")
}

async fn get_with(w: &World, rest: &str, query: &[(&str, &str)]) -> Response {
    let mut req = w.req("GET", rest);
    for (k, v) in query {
        req = req.with_query(k, v);
    }
    w.send(req).await
}

async fn reasons(w: &World, query: &[(&str, &str)]) -> Value {
    let r = get_with(w, "evaluation_reasons/", query).await;
    assert_eq!(r.status, 200, "{query:?}: {}", r.body);
    r.body
}

/// What `/flags?v=2` serves `distinct_id`, key → value.
async fn served(w: &World, distinct_id: &str) -> Value {
    let ctx = shared::api::Context {
        store: &w.store,
        cipher: &w.cipher,
        now: chrono::Utc::now(),
        cache: &DefinitionsCache::default(),
    };
    let body = json!({"api_key": w.project.api_token, "distinct_id": distinct_id});
    let req = ApiRequest::new("POST", "/flags")
        .with_query("v", "2")
        .with_json(&body)
        .with_header("host", "testserver");
    let r = Group::Flags.handle(&ctx, &req).await;
    let body = r.body.unwrap();
    let flags = body["flags"].as_object().unwrap();
    flags
        .iter()
        .map(|(k, f)| {
            let value = match &f["variant"] {
                Value::String(v) => json!(v),
                _ => f["enabled"].clone(),
            };
            (k.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn plan_is(plan: &str) -> Value {
    json!({"groups": [{"properties": [
        {"key": "plan", "type": "person", "value": plan, "operator": "exact"}], "rollout_percentage": 100}]})
}

/// A stored property cohort of the `plan: pro` persons.
pub async fn pro_cohort(w: &World) -> Cohort {
    let mut pros = Cohort::new(
        w.store.next_cohort_id().await.unwrap(),
        w.project.id,
        None,
        chrono::Utc::now(),
    );
    pros.filters = json!({"properties": {"type": "AND", "values": [
        {"key": "plan", "type": "person", "value": "pro", "operator": "exact"}]}});
    w.store.write_cohort(&pros, true).await.unwrap().unwrap()
}

#[tokio::test]
async fn evaluation_reasons_explain_what_flags_serves_a_stored_person() {
    let w = World::new().await;
    store_person(
        &w,
        &["alice", "alice-phone"],
        json!({"plan": "pro", "email": "a@x.com"}),
    )
    .await;
    let cohort = pro_cohort(&w).await.id;
    create_id(&w, json!({"key": "pro-only", "filters": plan_is("pro")})).await;
    create_id(&w, json!({"key": "free-only", "filters": plan_is("free")})).await;
    create_id(&w, json!({"key": "nobody", "filters": everyone(0)})).await;
    create_id(
        &w,
        json!({"key": "in-cohort", "filters": {"groups": [
            {"properties": [{"key": "email", "type": "person", "value": "zzz", "operator": "icontains"}], "rollout_percentage": 100},
            {"properties": [{"key": "id", "type": "cohort", "value": cohort, "operator": "in"}], "rollout_percentage": 100}]}}),
    )
    .await;
    create_id(
        &w,
        json!({"key": "split", "filters": {"groups": [{"properties": [], "rollout_percentage": 100, "variant": "b"}],
            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}}}),
    )
    .await;
    create_id(
        &w,
        json!({"key": "off", "active": false, "filters": everyone(100)}),
    )
    .await;

    // Found by any of the person's distinct ids.
    let body = reasons(&w, &[("distinct_id", "alice-phone")]).await;
    let reason = |key: &str| {
        (
            body[key]["value"].clone(),
            body[key]["evaluation"]["reason"].clone(),
        )
    };
    assert_eq!(reason("pro-only"), (json!(true), json!("condition_match")));
    assert_eq!(
        reason("free-only"),
        (json!(false), json!("no_condition_match"))
    );
    assert_eq!(
        reason("nobody"),
        (json!(false), json!("out_of_rollout_bound"))
    );
    assert_eq!(reason("split"), (json!("b"), json!("condition_match")));
    assert_eq!(
        body["in-cohort"],
        json!({"value": true, "evaluation": {"reason": "condition_match", "condition_index": 1, "description": "Matched condition set 2"}})
    );
    assert_eq!(
        body["off"],
        json!({"value": false, "evaluation": {"reason": "disabled", "condition_index": null}})
    );
    // The same values /flags serves that person.
    let flags = served(&w, "alice-phone").await;
    for (key, value) in flags.as_object().unwrap() {
        assert_eq!(&body[key]["value"], value, "{key}");
    }
    // Someone without a stored person.
    let stranger = reasons(&w, &[("distinct_id", "stranger")]).await;
    assert_eq!(stranger["pro-only"]["value"], false);
}

#[tokio::test]
async fn evaluation_reasons_take_flag_keys_and_check_their_query() {
    let w = World::new().await;
    create_id(&w, json!({"key": "pro-only", "filters": plan_is("pro")})).await;
    create_id(&w, json!({"key": "other", "filters": everyone(100)})).await;
    create_id(&w, json!({"key": "off", "active": false})).await;
    // flag_keys: repeated or one JSON array, either way only those keys.
    for query in [
        vec![
            ("distinct_id", "alice"),
            ("flag_keys", "pro-only"),
            ("flag_keys", "off"),
        ],
        vec![
            ("distinct_id", "alice"),
            ("flag_keys", "[\"pro-only\",\"off\"]"),
        ],
    ] {
        let body = reasons(&w, &query).await;
        let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["off", "pro-only"], "{query:?}");
    }

    let bad = [
        (vec![], "required", "This field is required.", "distinct_id"),
        (
            vec![("distinct_id", "a"), ("groups", "{nope")],
            "invalid_input",
            "Invalid JSON in groups parameter",
            "groups",
        ),
        (
            vec![("distinct_id", "a"), ("groups", "[1]")],
            "invalid_input",
            "groups must be a JSON object",
            "groups",
        ),
        (
            vec![("distinct_id", "a"), ("flag_keys", "[1")],
            "invalid_input",
            "Invalid JSON in flag_keys parameter",
            "flag_keys",
        ),
    ];
    for (query, code, detail, attr) in bad {
        let r = get_with(&w, "evaluation_reasons/", &query).await;
        assert_error(&r, 400, code, detail, Some(attr));
    }
}

#[tokio::test]
async fn group_flags_are_evaluated_with_the_groups_given() {
    let w = World::new().await;
    let company = GroupType {
        project_id: w.project.id,
        index: 0,
        name: "company".into(),
    };
    w.store.create_group_type(&company).await.unwrap();
    create_id(
        &w,
        json!({"key": "companies", "filters": {"aggregation_group_type_index": 0,
            "groups": [{"properties": [], "rollout_percentage": 100}]}}),
    )
    .await;
    let without = reasons(&w, &[("distinct_id", "u")]).await;
    assert_eq!(without["companies"]["value"], false);
    let with = reasons(
        &w,
        &[("distinct_id", "u"), ("groups", "{\"company\": \"acme\"}")],
    )
    .await;
    assert_eq!(
        (
            &with["companies"]["value"],
            &with["companies"]["evaluation"]["reason"]
        ),
        (&json!(true), &json!("condition_match"))
    );
}

#[tokio::test]
async fn my_flags_evaluates_every_flag_for_the_calling_user() {
    let w = World::new().await;
    store_person(&w, &[&w.user.distinct_id], json!({"email": w.user.email})).await;
    let mine = create_id(
        &w,
        json!({"key": "staff", "filters": {"groups": [{"properties": [
            {"key": "email", "type": "person", "value": w.user.email, "operator": "exact"}], "rollout_percentage": 100}]}}),
    )
    .await;
    create_id(&w, json!({"key": "others", "filters": plan_is("pro")})).await;
    let off = create_id(&w, json!({"key": "off", "active": false})).await;
    let gone = create_id(&w, json!({"key": "gone"})).await;
    patch_ok(&w, gone, json!({"deleted": true})).await;

    let r = get_with(&w, "my_flags/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed: Vec<(Value, Value)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["feature_flag"]["key"].clone(), item["value"].clone()))
        .collect();
    // Newest first, deleted flags left out, disabled ones false.
    assert_eq!(
        listed,
        [
            (json!("off"), json!(false)),
            (json!("others"), json!(false)),
            (json!("staff"), json!(true)),
        ]
    );
    let staff = &r.body[2]["feature_flag"];
    let flag = retrieve(&w, mine).await;
    assert_eq!(
        staff,
        &json!({
            "id": mine, "team_id": w.project.id, "name": "", "key": "staff",
            "filters": flag["filters"], "deleted": false, "active": true,
            "ensure_experience_continuity": flag["ensure_experience_continuity"],
            "has_encrypted_payloads": flag["has_encrypted_payloads"],
            "version": 1, "evaluation_runtime": flag["evaluation_runtime"],
            "bucketing_identifier": flag["bucketing_identifier"], "evaluation_tags": [],
            "evaluation_contexts": [],
        })
    );
    let only = get_with(&w, "my_flags/", &[("flag_keys", "[\"off\"]")]).await;
    assert_eq!(only.body.as_array().unwrap().len(), 1);
    assert_eq!(only.body[0]["feature_flag"]["id"], off);
    let none = get_with(&w, "my_flags/", &[("flag_keys", "missing")]).await;
    assert_eq!((none.status, none.body), (200, json!([])));
}

#[tokio::test]
async fn test_evaluation_explains_one_flag_condition_by_condition() {
    let w = World::new().await;
    let alice = store_person(
        &w,
        &["alice", "a-2"],
        json!({"plan": "pro", "country": "DE"}),
    )
    .await;
    let id = create_id(
        &w,
        json!({"key": "explained", "filters": {
            "groups": [
                {"properties": [{"key": "plan", "type": "person", "value": "pro", "operator": "exact"}], "rollout_percentage": 0},
                {"properties": [
                    {"key": "plan", "type": "person", "value": "pro", "operator": "exact"},
                    {"key": "country", "type": "person", "value": "US", "operator": "exact"}], "rollout_percentage": 100},
                {"properties": [{"key": "country", "type": "person", "value": "DE", "operator": "exact"}], "rollout_percentage": 100}
            ],
            "payloads": {"true": "{\"k\": 1}"}}}),
    )
    .await;
    let r = w
        .call(
            "POST",
            &format!("{id}/test_evaluation/"),
            Some(json!({"distinct_id": "alice"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert_eq!(
        (
            &b["flag_key"],
            &b["result"],
            &b["reason"],
            &b["condition_index"]
        ),
        (
            &json!("explained"),
            &json!(true),
            &json!("condition_match"),
            &json!(2)
        )
    );
    assert_eq!(b["reason_description"], "Matched condition set 3");
    assert_eq!(b["payload"], "{\"k\": 1}");
    assert_eq!(
        b["person_properties"],
        json!({"plan": "pro", "country": "DE"})
    );
    assert_eq!(b["evaluation_distinct_id"], "alice");
    let summary: Vec<(Value, Value, Value, Value)> = b["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["index"].clone(),
                c["matched"].clone(),
                c["properties_matched"].clone(),
                c["rollout_excluded"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!(0), json!(false), json!(true), json!(true)),
            (json!(1), json!(false), json!(false), json!(false)),
            (json!(2), json!(true), json!(true), json!(false)),
        ]
    );
    let country = &b["conditions"][1]["properties"][1];
    assert_eq!(
        (
            &country["key"],
            &country["actual_value"],
            &country["matched"]
        ),
        (&json!("country"), &json!("DE"), &json!(false))
    );
    assert_eq!(b["conditions"][1]["properties"][0]["matched"], true);

    // By person: their first distinct id in sorted order buckets, and is not echoed.
    let r = w
        .call(
            "POST",
            &format!("{id}/test_evaluation/"),
            Some(json!({"person_id": alice.uuid})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["result"], &r.body["evaluation_distinct_id"]),
        (&json!(true), &Value::Null)
    );
    let r = w
        .call(
            "POST",
            &format!("{id}/test_evaluation/"),
            Some(json!({"person_id": "0190-nobody"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body),
        (
            404,
            json!({"detail": "Person not found for person_id: 0190-nobody"})
        )
    );

    // Without a stored person the distinct id still buckets, with no properties.
    let r = w
        .call(
            "POST",
            &format!("{id}/test_evaluation/"),
            Some(json!({"distinct_id": "stranger"})),
        )
        .await;
    assert_eq!(
        (&r.body["result"], &r.body["reason"]),
        (&json!(false), &json!("no_condition_match"))
    );
    assert_eq!(r.body["person_properties"], json!({}));

    // A disabled flag.
    patch_ok(&w, id, json!({"active": false})).await;
    let r = w
        .call(
            "POST",
            &format!("{id}/test_evaluation/"),
            Some(json!({"distinct_id": "alice"})),
        )
        .await;
    assert_eq!(
        (&r.body["result"], &r.body["reason"]),
        (&json!(false), &json!("flag_disabled"))
    );

    for (body, detail) in [
        (
            json!({}),
            "Either distinct_id or person_id must be provided",
        ),
        (
            json!({"distinct_id": "a", "person_id": "b"}),
            "Cannot provide both distinct_id and person_id",
        ),
    ] {
        assert_error(
            &w.call("POST", &format!("{id}/test_evaluation/"), Some(body))
                .await,
            400,
            "invalid_input",
            detail,
            None,
        );
    }
    let r = w
        .call(
            "POST",
            &format!("{id}/test_evaluation/"),
            Some(json!({"distinct_id": "a", "timestamp": "2026-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("past timestamp"));
    let r = w
        .call(
            "POST",
            "999999/test_evaluation/",
            Some(json!({"distinct_id": "a"})),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn explaining_needs_feature_flag_read() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let read = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let other = w.add_key(w.user.id, &["person:read"], None).await;
    let calls = [
        ("GET", "evaluation_reasons/?distinct_id=a".to_string(), None),
        ("GET", "my_flags/".to_string(), None),
        (
            "POST",
            format!("{id}/test_evaluation/"),
            Some(json!({"distinct_id": "a"})),
        ),
    ];
    for (method, rest, body) in calls {
        let (path, query) = rest.split_once('?').unwrap_or((&rest, ""));
        let mut req = req_as(&w, &read, method, path);
        let mut denied = req_as(&w, &other, method, path);
        if let Some((k, v)) = query.split_once('=') {
            req = req.with_query(k, v);
            denied = denied.with_query(k, v);
        }
        if let Some(body) = &body {
            req = req.with_json(body);
            denied = denied.with_json(body);
        }
        assert_eq!(w.send(req).await.status, 200, "{method} {rest}");
        let r = w.send(denied).await;
        assert_eq!(r.status, 403, "{method} {rest}: {}", r.body);
        assert_eq!(
            r.body["detail"],
            "API key missing required scope 'feature_flag:read'"
        );
    }
}

#[tokio::test]
async fn a_soft_deleted_flag_is_not_found_by_test_evaluation() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "gone", "filters": everyone(100)})).await;
    patch_ok(&w, id, json!({"deleted": true})).await;
    let body = json!({"distinct_id": "a"});
    let r = w
        .call("POST", &format!("{id}/test_evaluation/"), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert_eq!(
        (&b["result"], &b["reason"], &b["reason_description"]),
        (&json!(false), &json!("flag_not_found"), &Value::Null)
    );
    // The analysis still says what the conditions would do.
    assert_eq!(b["conditions"][0]["properties_matched"], true);
}
