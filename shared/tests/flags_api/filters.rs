//! §4.1 / §4.2 filter validation through the API: E6–E13, E15–E26, E28 (§12), in create and
//! update, each with its exact envelope.

use serde_json::{Value, json};

use crate::common::{Response, World, assert_error};
use crate::support::*;

async fn create_with(w: &World, filters: Value) -> Response {
    w.call(
        "POST",
        "",
        Some(json!({"key": "checked", "filters": filters})),
    )
    .await
}

fn filters_error(r: &Response, code: &str, detail: &str) {
    assert_error(r, 400, code, detail, Some("filters"));
}

fn invalid(r: &Response, detail: &str) {
    filters_error(r, "invalid_input", detail);
}

fn person(key: &str, operator: &str, value: Value) -> Value {
    json!({"key": key, "type": "person", "operator": operator, "value": value})
}

#[tokio::test]
async fn e6_create_needs_a_group_but_update_may_clear_them() {
    let w = World::new().await;
    const E6: &str = "Feature flags must have at least one condition set (group).";
    invalid(&create_with(&w, json!({})).await, E6);
    invalid(&create_with(&w, json!({"groups": []})).await, E6);
    invalid(&create_with(&w, json!({"payloads": {}})).await, E6);
    let id = create_id(&w, json!({"key": "k", "filters": everyone(100)})).await;
    let f = patch_ok(&w, id, json!({"filters": {"groups": []}})).await;
    assert_eq!(f["filters"]["groups"], json!([]));
    let r = w
        .call(
            "PUT",
            &id.to_string(),
            Some(json!({"key": "k", "filters": {"groups": []}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn filters_must_be_an_object() {
    let w = World::new().await;
    let r = create_with(&w, json!([{"properties": []}])).await;
    assert_error(
        &r,
        400,
        "not_a_dict",
        "Expected a dictionary of items but got type \"list\".",
        Some("filters"),
    );
    let r = create_with(&w, json!("groups")).await;
    assert_error(
        &r,
        400,
        "not_a_dict",
        "Expected a dictionary of items but got type \"str\".",
        Some("filters"),
    );
}

#[tokio::test]
async fn filters_may_not_be_null() {
    let w = World::new().await;
    filters_error(
        &create_with(&w, Value::Null).await,
        "null",
        "This field may not be null.",
    );
    let id = create_id(&w, json!({"key": "k", "filters": everyone(100)})).await;
    filters_error(
        &patch(&w, id, json!({"filters": null})).await,
        "null",
        "This field may not be null.",
    );
    assert_eq!(retrieve(&w, id).await["filters"], everyone(100));
}

#[tokio::test]
async fn e7_person_flags_only_take_person_cohort_and_flag_properties() {
    let w = World::new().await;
    const E7: &str = "Filters are not valid (can only use person, cohort, and flag properties)";
    for kind in ["event", "group", "element", "session"] {
        let prop = json!({"key": "x", "type": kind, "value": "y", "operator": "exact", "group_type_index": 0});
        invalid(&create_with(&w, with_property(prop)).await, E7);
    }
    let id = create_id(&w, json!({"key": "k", "filters": everyone(100)})).await;
    let r = patch(
        &w,
        id,
        json!({"filters": with_property(json!({"key": "x", "type": "event", "value": "y"}))}),
    )
    .await;
    invalid(&r, E7);
    let ok = create_with(
        &w,
        with_property(person("email", "icontains", json!("@example.com"))),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn e8_group_flags_only_take_properties_of_their_group_type() {
    let w = World::new().await;
    const E8: &str = "Filters are not valid (can only use group properties)";
    let group = |index: u32| json!({"key": "name", "type": "group", "group_type_index": index, "value": "acme", "operator": "exact"});
    let filters = |prop: Value| json!({"aggregation_group_type_index": 0, "groups": [{"properties": [prop], "rollout_percentage": 100}]});
    invalid(
        &create_with(&w, filters(person("email", "exact", json!("a@b.c")))).await,
        E8,
    );
    invalid(&create_with(&w, filters(group(1))).await, E8);
    let r = create_with(&w, filters(group(0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["filters"]["aggregation_group_type_index"], 0);
}

#[tokio::test]
async fn e9_flag_properties_need_flag_evaluates_to() {
    let w = World::new().await;
    let dep = create_id(&w, json!({"key": "dep"})).await;
    let prop = json!({"key": dep.to_string(), "type": "flag", "value": true, "operator": "exact"});
    invalid(
        &create_with(&w, with_property(prop)).await,
        "Flag properties must use the 'flag_evaluates_to' operator",
    );
    let ok = create_with(&w, filters_depending_on(&[dep])).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn e10_variants_must_sum_to_100() {
    let w = World::new().await;
    const E10: &str = "Invalid variant definitions: Variant rollout percentages must sum to 100.";
    let mv = |variants: Value| json!({"groups": [{"properties": [], "rollout_percentage": 100}], "multivariate": {"variants": variants}});
    invalid(&create_with(&w, mv(json!([{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 40}]))).await, E10);
    invalid(&create_with(&w, mv(json!([{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 60}]))).await, E10);
    // A missing percentage counts as 0.
    invalid(
        &create_with(
            &w,
            mv(json!([{"key": "a", "rollout_percentage": 50}, {"key": "b"}])),
        )
        .await,
        E10,
    );
    let ok = create_with(
        &w,
        mv(json!([{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}])),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = id_of(&ok.body);
    let r = patch(
        &w,
        id,
        json!({"filters": mv(json!([{"key": "a", "rollout_percentage": 99}]))}),
    )
    .await;
    invalid(&r, E10);
}

#[tokio::test]
async fn e11_variant_override_must_exist() {
    let w = World::new().await;
    let filters = |variant: &str| {
        json!({
            "groups": [{"properties": [], "rollout_percentage": 100, "variant": variant}],
            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}
        })
    };
    invalid(
        &create_with(&w, filters("c")).await,
        "Filters are not valid (variant override does not exist)",
    );
    // An override on a flag without variants does not exist either.
    let no_variants =
        json!({"groups": [{"properties": [], "rollout_percentage": 100, "variant": "a"}]});
    invalid(
        &create_with(&w, no_variants).await,
        "Filters are not valid (variant override does not exist)",
    );
    let ok = create_with(&w, filters("b")).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn e12_at_most_1000_values_per_property() {
    let w = World::new().await;
    let values = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!(format!("user{i}@example.com")))
                .collect(),
        )
    };
    let r = create_with(&w, with_property(person("email", "exact", values(1001)))).await;
    invalid(
        &r,
        "Property group expressions of type email cannot contain more than 1000 values.",
    );
    let ok = create_with(&w, with_property(person("email", "exact", values(1000)))).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn at_most_50_flag_dependencies() {
    let w = World::new().await;
    let ids: Vec<i64> = (1_000_000..1_000_051).collect();
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "many", "filters": filters_depending_on(&ids)})),
        )
        .await;
    invalid(
        &r,
        "A feature flag can depend on at most 50 other flags; these filters reference 51.",
    );
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "many", "filters": filters_depending_on(&ids[..50])})),
        )
        .await;
    invalid(
        &r,
        "Flag dependency references non-existent flag with ID 1000000",
    );
}

#[tokio::test]
async fn e13_cohort_must_exist() {
    let w = World::new().await;
    let prop = json!({"key": "id", "type": "cohort", "value": 5});
    filters_error(
        &create_with(&w, with_property(prop)).await,
        "cohort_does_not_exist",
        "Cohort with id 5 does not exist",
    );
    let prop = json!({"key": "id", "type": "cohort", "value": 5, "operator": "in"});
    filters_error(
        &create_with(&w, with_property(prop)).await,
        "cohort_does_not_exist",
        "Cohort with id 5 does not exist",
    );
}

#[tokio::test]
async fn e15_dates_must_parse() {
    let w = World::new().await;
    for op in ["is_date_before", "is_date_after"] {
        let r = create_with(&w, with_property(person("signup", op, json!("not a date")))).await;
        filters_error(&r, "invalid_date", "Invalid date value: not a date");
    }
    for (i, good) in ["2024-01-01", "-30d", "-10m", "2024-01-01T10:00:00Z"]
        .iter()
        .enumerate()
    {
        let r = w
            .call("POST", "", Some(json!({"key": format!("d{i}"), "filters": with_property(person("signup", "is_date_after", json!(good)))})))
            .await;
        assert_eq!(r.status, 201, "{good}: {}", r.body);
    }
}

#[tokio::test]
async fn e16_string_operators_need_string_values() {
    let w = World::new().await;
    let r = create_with(
        &w,
        with_property(person("email", "icontains", json!(["@posthog.com"]))),
    )
    .await;
    filters_error(
        &r,
        "invalid_value",
        "Invalid value for operator icontains: ['@posthog.com']",
    );
    let r = create_with(&w, with_property(person("age", "gt", json!(5)))).await;
    filters_error(&r, "invalid_value", "Invalid value for operator gt: 5");
    let r = create_with(&w, with_property(person("email", "regex", json!(true)))).await;
    filters_error(
        &r,
        "invalid_value",
        "Invalid value for operator regex: True",
    );
    // The value is shown the way Python prints it.
    for (op, value, shown) in [
        ("not_icontains", json!(null), "None"),
        ("lt", json!(1.5), "1.5"),
        ("gte", json!({"a": 1}), "{'a': 1}"),
        (
            "not_regex",
            json!(["a", 1, true, null, "it's"]),
            "['a', 1, True, None, \"it's\"]",
        ),
    ] {
        let r = create_with(&w, with_property(person("p", op, value))).await;
        filters_error(
            &r,
            "invalid_value",
            &format!("Invalid value for operator {op}: {shown}"),
        );
    }
    for (i, op) in [
        "regex",
        "not_regex",
        "icontains",
        "not_icontains",
        "gt",
        "gte",
        "lt",
        "lte",
    ]
    .iter()
    .enumerate()
    {
        let r = w
            .call("POST", "", Some(json!({"key": format!("s{i}"), "filters": with_property(person("p", op, json!("5")))})))
            .await;
        assert_eq!(r.status, 201, "{op}: {}", r.body);
    }
}

#[tokio::test]
async fn e17_in_and_not_in_only_for_cohorts() {
    let w = World::new().await;
    let r = create_with(&w, with_property(person("email", "in", json!(["a"])))).await;
    filters_error(
        &r,
        "invalid_operator",
        "The 'in' operator is only valid for cohort properties, not 'person' properties.",
    );
    let r = create_with(&w, with_property(person("email", "not_in", json!(["a"])))).await;
    filters_error(
        &r,
        "invalid_operator",
        "The 'not_in' operator is only valid for cohort properties, not 'person' properties.",
    );
    let group = json!({"key": "name", "type": "group", "group_type_index": 1, "value": ["acme"], "operator": "in"});
    let filters = json!({"aggregation_group_type_index": 1, "groups": [{"properties": [group], "rollout_percentage": 100}]});
    filters_error(
        &create_with(&w, filters).await,
        "invalid_operator",
        "The 'in' operator is only valid for cohort properties, not 'group' properties.",
    );
}

#[tokio::test]
async fn e18_to_e21_payload_rules() {
    let w = World::new().await;
    let boolean = |payloads: Value| json!({"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": payloads});
    invalid(
        &create_with(&w, boolean(json!(["x"]))).await,
        "Payloads must be passed as a dictionary",
    );
    invalid(
        &create_with(&w, boolean(json!("{}"))).await,
        "Payloads must be passed as a dictionary",
    );
    invalid(
        &create_with(&w, boolean(json!({"true": "{invalid}"}))).await,
        "Payload value is not valid JSON",
    );
    invalid(
        &create_with(&w, boolean(json!({"true": "not json"}))).await,
        "Payload value is not valid JSON",
    );
    invalid(
        &create_with(&w, boolean(json!({"false": "1"}))).await,
        "Payload keys must be 'true' for boolean flags",
    );
    invalid(
        &create_with(&w, boolean(json!({"true": "1", "other": "2"}))).await,
        "Payload keys must be 'true' for boolean flags",
    );
    let multivariate = |payloads: Value| {
        json!({
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]},
            "payloads": payloads
        })
    };
    invalid(
        &create_with(&w, multivariate(json!({"a": "1", "c": "2"}))).await,
        "Payload keys must match a variant key for multivariate flags",
    );
    invalid(
        &create_with(&w, multivariate(json!({"true": "1"}))).await,
        "Payload keys must match a variant key for multivariate flags",
    );
    let ok = create_with(&w, multivariate(json!({"a": "{\"x\": 1}", "b": "[2]"}))).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = id_of(&ok.body);
    let r = patch(&w, id, json!({"filters": multivariate(json!({"z": "1"}))})).await;
    invalid(
        &r,
        "Payload keys must match a variant key for multivariate flags",
    );
    // No payloads at all is fine.
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "nopayload", "filters": boolean(json!({}))})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn e22_to_e24_dependencies_reference_existing_active_flags_by_id() {
    let w = World::new().await;
    let prop =
        json!({"key": "some-key", "type": "flag", "value": true, "operator": "flag_evaluates_to"});
    invalid(
        &create_with(&w, with_property(prop)).await,
        "Flag dependencies must reference flag IDs (integers), not flag keys. Invalid reference: 'some-key'",
    );
    let prop =
        json!({"key": "1.5", "type": "flag", "value": true, "operator": "flag_evaluates_to"});
    invalid(
        &create_with(&w, with_property(prop)).await,
        "Flag dependencies must reference flag IDs (integers), not flag keys. Invalid reference: '1.5'",
    );
    invalid(
        &create_with(&w, filters_depending_on(&[999_999_999])).await,
        "Flag dependency references non-existent flag with ID 999999999",
    );
    let deleted = create_id(&w, json!({"key": "deleted-dep"})).await;
    patch_ok(&w, deleted, json!({"deleted": true})).await;
    invalid(
        &create_with(&w, filters_depending_on(&[deleted])).await,
        &format!("Flag dependency references non-existent flag with ID {deleted}"),
    );
    // A flag of another project does not exist here.
    let other = w.add_project(&w.org.id).await;
    let req = bearer(
        shared::http::ApiRequest::new(
            "POST",
            &format!("/api/projects/{}/feature_flags/", other.id),
        ),
        &w.key,
    )
    .with_json(&json!({"key": "elsewhere"}));
    let elsewhere = id_of(&w.send(req).await.body);
    invalid(
        &create_with(&w, filters_depending_on(&[elsewhere])).await,
        &format!("Flag dependency references non-existent flag with ID {elsewhere}"),
    );
    let disabled = create_id(&w, json!({"key": "off-dep", "active": false})).await;
    invalid(
        &create_with(&w, filters_depending_on(&[disabled])).await,
        &format!(
            "Cannot create dependency on disabled flag 'off-dep' (ID: {disabled}). Flag dependencies must reference active flags only."
        ),
    );
    // The id may be a number too.
    let on = create_id(&w, json!({"key": "on-dep"})).await;
    let numeric =
        json!({"key": on, "type": "flag", "value": true, "operator": "flag_evaluates_to"});
    let r = create_with(&w, with_property(numeric)).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn e25_a_flag_cannot_depend_on_itself() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "selfish"})).await;
    invalid(
        &patch(&w, id, json!({"filters": filters_depending_on(&[id])})).await,
        "Feature flag 'selfish' cannot depend on itself",
    );
    // On update the instance's key is "the flag", even when the same request renames it.
    let r = patch(
        &w,
        id,
        json!({"key": "renamed", "filters": filters_depending_on(&[id])}),
    )
    .await;
    invalid(&r, "Feature flag 'selfish' cannot depend on itself");
}

#[tokio::test]
async fn e26_cycles_are_reported_with_their_path() {
    let w = World::new().await;
    let a = create_id(&w, json!({"key": "flag_a"})).await;
    let b = create_id(
        &w,
        json!({"key": "flag_b", "filters": filters_depending_on(&[a])}),
    )
    .await;
    let c = create_id(
        &w,
        json!({"key": "flag_c", "filters": filters_depending_on(&[b])}),
    )
    .await;
    let r = patch(&w, a, json!({"filters": filters_depending_on(&[c])})).await;
    invalid(
        &r,
        "Circular dependency detected: flag_a → flag_c → flag_b → flag_a",
    );
    let r = patch(&w, a, json!({"filters": filters_depending_on(&[b])})).await;
    invalid(&r, "Circular dependency detected: flag_a → flag_b → flag_a");
    // Depending on the same chain without closing it is fine.
    let d = create_id(
        &w,
        json!({"key": "flag_d", "filters": filters_depending_on(&[c, b])}),
    )
    .await;
    assert!(d > c);
}

#[tokio::test]
async fn e26_deleted_flags_are_ignored_in_the_cycle_search() {
    use shared::store::{FlagStore, FlagWrite};
    let w = World::new().await;
    let a = create_id(&w, json!({"key": "flag_a"})).await;
    let d = create_id(
        &w,
        json!({"key": "flag_d", "filters": filters_depending_on(&[a])}),
    )
    .await;
    patch_ok(&w, d, json!({"deleted": true})).await;
    // flag_c depends on the deleted flag_d: only possible for rows older than the rule, so
    // written straight to the store.
    let mut c = shared::flag::Flag::new(
        w.store.next_flag_id().await.unwrap(),
        w.project.id,
        "flag_c".into(),
        shared::identity::UserSummary::from(&w.user),
        chrono::Utc::now(),
    );
    c.filters = filters_depending_on(&[d]);
    let c_id = c.id;
    w.store
        .write_flag(FlagWrite {
            before: None,
            after: c,
            purge: vec![],
            feature: None,
            dashboard: None,
            schedule: None,
            activity: None,
        })
        .await
        .unwrap();
    // flag_a → flag_c → (deleted flag_d → flag_a) is not a cycle.
    let f = patch_ok(&w, a, json!({"filters": filters_depending_on(&[c_id])})).await;
    assert_eq!(f["filters"], filters_depending_on(&[c_id]));
}

#[tokio::test]
async fn e28_invalid_regex_cannot_be_evaluated() {
    let w = World::new().await;
    let r = create_with(
        &w,
        with_property(person("email", "regex", json!("(unclosed"))),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Can't evaluate flag - please check release conditions",
        None,
    );
    let r = create_with(
        &w,
        with_property(person("email", "not_regex", json!("[z-a]"))),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Can't evaluate flag - please check release conditions",
        None,
    );
    let ok = create_with(
        &w,
        with_property(person("email", "regex", json!("^.+@example\\.com$"))),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn rules_apply_in_order_first_error_wins() {
    let w = World::new().await;
    // Property type (rule 3) before variant sums (rule 4) before payloads (rule 7).
    let filters = json!({
        "groups": [{"properties": [{"key": "x", "type": "event", "value": "y"}], "rollout_percentage": 100}],
        "multivariate": {"variants": [{"key": "a", "rollout_percentage": 10}]},
        "payloads": "nope"
    });
    invalid(
        &create_with(&w, filters).await,
        "Filters are not valid (can only use person, cohort, and flag properties)",
    );
    let filters = json!({
        "groups": [{"properties": [], "rollout_percentage": 100, "variant": "zzz"}],
        "multivariate": {"variants": [{"key": "a", "rollout_percentage": 10}]},
    });
    invalid(
        &create_with(&w, filters).await,
        "Invalid variant definitions: Variant rollout percentages must sum to 100.",
    );
}

#[tokio::test]
async fn malformed_filters_are_400_never_500() {
    let w = World::new().await;
    for filters in [
        json!({"groups": "everyone"}),
        json!({"groups": ["not an object"]}),
        json!({"groups": [{"properties": "nope"}]}),
        json!({"groups": [{"properties": ["nope"]}]}),
        json!({"groups": [{"properties": [{"type": "person"}]}]}),
        json!({"groups": [{"properties": []}], "multivariate": {"variants": "a"}}),
        json!({"groups": [{"properties": []}], "multivariate": {"variants": ["a"]}}),
    ] {
        let r = create_with(&w, filters.clone()).await;
        assert_eq!(r.status, 400, "{filters} → {}", r.body);
        assert_eq!(r.body["type"], "validation_error", "{filters} → {}", r.body);
    }
    assert_eq!(list(&w, &[]).await["count"], 0);
}

#[tokio::test]
async fn patch_without_groups_ignores_filters_but_put_applies_them() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "filters": everyone(50)})).await;
    // Not even validated: these payloads would be invalid.
    let f = patch_ok(
        &w,
        id,
        json!({"filters": {"payloads": {"false": "{bad"}}, "name": "renamed"}),
    )
    .await;
    assert_eq!(f["filters"], everyone(50));
    assert_eq!(f["name"], "renamed");
    assert_eq!(f["version"], 2);
    // PUT does not ignore them: they are validated (PostHog 500s on the missing groups; a 400 here).
    let r = w
        .call(
            "PUT",
            &id.to_string(),
            Some(json!({"key": "k", "filters": {"payloads": {"true": "1"}}})),
        )
        .await;
    invalid(
        &r,
        "Filters must have \"groups\": a list of condition sets.",
    );
    let filters = json!({"groups": [{"properties": [], "rollout_percentage": 5}], "payloads": {"false": "1"}});
    let r = w
        .call(
            "PUT",
            &id.to_string(),
            Some(json!({"key": "k", "filters": filters})),
        )
        .await;
    invalid(&r, "Payload keys must be 'true' for boolean flags");
    let r = w
        .call(
            "PUT",
            &id.to_string(),
            Some(json!({"key": "k", "filters": everyone(5)})),
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["filters"].clone(),
            r.body["version"].clone()
        ),
        (200, everyone(5), json!(3))
    );
}

/// PostHog only logs semver values it cannot parse (its `cross_field.semver_value_invalid` rule
/// is not enforced by default), so versions the SDKs refuse to read, such as leading zeros, are
/// stored as sent; they simply never match.
#[tokio::test]
async fn semver_values_are_not_validated() {
    let w = World::new().await;
    for (op, value) in [
        ("semver_eq", "01.2.3"),
        ("semver_gt", "1.02"),
        ("semver_caret", "not a version"),
        ("semver_wildcard", "01.*"),
    ] {
        let filters = json!({"groups": [{"properties": [person("app_version", op, json!(value))], "rollout_percentage": 100}]});
        let r = create_with(&w, filters).await;
        assert_eq!(r.status, 201, "{op} {value}: {}", r.body);
        assert_eq!(
            r.body["filters"]["groups"][0]["properties"][0]["value"],
            value
        );
        patch_ok(&w, id_of(&r.body), json!({"deleted": true})).await;
    }
}
