//! `POST /flags/` and `/decide/` (evaluation-rules.md §3): request forms, shapes, reasons, payloads,
//! caching and continuity.

use serde_json::{Map, Value, json};
use shared::evaluation::{EvaluationInput, GroupTypeMapping, Runtime, evaluate_all};
use shared::http::ApiRequest;
use shared::store::{FlagStore, HashKeyOverrideStore};

use crate::support::{Sdk, body, everyone, gzip, text, with_property};

fn plan_is(plan: &str) -> Value {
    json!({"key": "plan", "type": "person", "operator": "exact", "value": [plan]})
}

#[tokio::test]
async fn python_request_gets_records_with_reasons_values_and_payloads() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "beta", "filters": {"groups": [{"properties": [plan_is("pro")], "rollout_percentage": 100}],
        "payloads": {"true": "{\"a\": 1}"}}}))
        .await;
    let mv = sdk
        .create(json!({"key": "mv", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]},
            "payloads": {"test": "[1, 2]", "control": "\"c\""}}}))
        .await;
    sdk.create(json!({"key": "half", "filters": everyone(0.0)}))
        .await;
    let flags = sdk
        .evaluate(
            "user-1",
            json!({"person_properties": {"plan": "pro"}, "groups": {}, "group_properties": {},
            "geoip_disable": true, "device_id": null, "sent_at": "2026-01-01T00:00:00+00:00"}),
        )
        .await;
    assert_eq!(
        flags["beta"],
        json!({"key": "beta", "enabled": true, "variant": null,
            "reason": {"code": "condition_match", "condition_index": 0, "description": "Matched condition set 1"},
            "metadata": {"id": flags["beta"]["metadata"]["id"], "version": 1, "description": null,
                "payload": "{\"a\": 1}", "has_experiment": false, "config_version": 1},
            "value": true})
    );
    let variant = flags["mv"]["variant"].as_str().unwrap();
    assert_eq!(flags["mv"]["value"], variant);
    assert_eq!(flags["mv"]["metadata"]["id"], mv);
    assert_eq!(flags["mv"]["metadata"]["variant_key"], variant);
    let expected_payload = if variant == "test" { "[1, 2]" } else { "\"c\"" };
    assert_eq!(flags["mv"]["metadata"]["payload"], expected_payload);
    assert_eq!(flags["half"]["reason"]["code"], "out_of_rollout_bound");
    assert_eq!(flags["half"]["value"], false);
    assert_eq!(flags["half"]["metadata"]["payload"], Value::Null);

    let without = sdk.evaluate("user-1", json!({})).await;
    assert_eq!(without["beta"]["reason"]["code"], "no_condition_match");
    assert_eq!(
        without["beta"]["reason"]["description"],
        "No matching condition set"
    );
}

#[tokio::test]
async fn node_request_with_token_numbers_and_device_id() {
    let sdk = Sdk::new().await;
    sdk.create(
        json!({"key": "by-device", "bucketing_identifier": "device_id", "filters": everyone(50.0)}),
    )
    .await;
    sdk.create(json!({"key": "numeric", "filters": with_property(
        json!({"key": "age", "type": "person", "operator": "gt", "value": "30"}))}))
        .await;
    let body = json!({"token": sdk.token(), "distinct_id": 12345, "groups": {}, "person_properties": {"age": 31},
        "group_properties": {}, "geoip_disable": true, "$device_id": "device-9", "evaluation_runtime": "server"});
    let req = ApiRequest::new("POST", "/flags/")
        .with_query("v", "2")
        .with_header("user-agent", "posthog-node/5.70.0")
        .with_json(&body);
    let r = sdk.send(req).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let flags = body_flags(&r);
    assert_eq!(flags["numeric"]["value"], true);
    let expected = shared::evaluation::hash("by-device.", "device-9", "") <= 0.5;
    assert_eq!(flags["by-device"]["enabled"], expected);
}

fn body_flags(r: &shared::http::ApiResponse) -> Value {
    body(r)["flags"].clone()
}

#[tokio::test]
async fn answers_equal_the_engine_on_the_stored_flags() {
    let sdk = Sdk::new().await;
    sdk.group_type(0, "company").await;
    let base = sdk
        .create(json!({"key": "base", "filters": everyone(60.0)}))
        .await;
    sdk.create(json!({"key": "dependent", "filters": with_property(
        json!({"key": base.to_string(), "type": "flag", "operator": "flag_evaluates_to", "value": true}))}))
        .await;
    sdk.create(json!({"key": "company-flag", "filters": {"aggregation_group_type_index": 0,
        "groups": [{"properties": [{"key": "size", "type": "group", "group_type_index": 0, "operator": "gte", "value": "10"}], "rollout_percentage": 70}]}}))
        .await;
    sdk.create(json!({"key": "email", "filters": {"groups": [
        {"properties": [{"key": "email", "type": "person", "operator": "icontains", "value": "@acme"}], "rollout_percentage": 30},
        {"properties": [{"key": "email", "type": "person", "operator": "regex", "value": "^z"}], "rollout_percentage": 100}],
        "multivariate": {"variants": [{"key": "a", "rollout_percentage": 34}, {"key": "b", "rollout_percentage": 66}]}}}))
        .await;
    let flags = sdk
        .world
        .store
        .project_flags(sdk.world.project.id)
        .await
        .unwrap();
    let mapping = GroupTypeMapping::new([(0, "company".to_string())]);
    for i in 0..40 {
        let id = format!("person-{i}");
        let person = json!({"email": format!("{}@acme.com", if i % 3 == 0 { "z" } else { "a" })});
        let groups = json!({"company": format!("co-{}", i % 7)});
        let group_properties = json!({"company": {"size": i % 20}});
        let answer = sdk
            .evaluate(&id, json!({"person_properties": person, "groups": groups, "group_properties": group_properties}))
            .await;
        let mut input = EvaluationInput::new(&id, chrono::Utc::now());
        let (p, g, gp) = (map(&person), map(&groups), map(&group_properties));
        input.person_properties = &p;
        input.groups = &g;
        input.group_properties = &gp;
        input.group_type_mapping = &mapping;
        input.runtime = Some(Runtime::Server);
        for expected in evaluate_all(&flags, &[], &input).flags {
            let got = &answer[&*expected.key];
            assert_eq!(got["value"], expected.value(), "{} for {id}", expected.key);
            assert_eq!(got["reason"]["code"], &*expected.reason.code);
        }
    }
}

fn map(v: &Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn versions_pick_the_shape() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "on", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": "7"}}}))
        .await;
    sdk.create(json!({"key": "off", "filters": everyone(0.0)}))
        .await;
    let ask = |path: &str, query: &[(&str, &str)]| {
        let mut req = ApiRequest::new("POST", path)
            .with_json(&json!({"api_key": sdk.token(), "distinct_id": "u"}));
        for (k, v) in query {
            req = req.with_query(k, v);
        }
        sdk.send(req)
    };
    let legacy = body(&ask("/flags/", &[("v", "1")]).await);
    assert_eq!(legacy["featureFlags"], json!({"on": true, "off": false}));
    assert_eq!(legacy["featureFlagPayloads"], json!({"on": "7"}));
    assert!(legacy["requestId"].is_string() && legacy["evaluatedAt"].is_i64());
    let unversioned = body(&ask("/flags", &[]).await);
    assert_eq!(unversioned["flags"]["on"]["enabled"], true);
    assert_eq!(
        unversioned["supportedCompression"],
        json!(["gzip", "gzip-js"])
    );
    assert_eq!(
        body(&ask("/decide/", &[]).await)["featureFlags"],
        json!(["on"])
    );
    assert_eq!(
        body(&ask("/decide/", &[("v", "2")]).await)["featureFlags"],
        json!({"on": true})
    );
    assert_eq!(
        body(&ask("/decide/", &[("v", "3")]).await)["featureFlagPayloads"],
        json!({"on": "7"})
    );
    assert_eq!(
        body(&ask("/decide", &[("v", "4")]).await)["flags"]["off"]["enabled"],
        false
    );
}

#[tokio::test]
async fn inactive_deleted_client_only_and_unrequested_flags_are_left_out() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "inactive", "active": false, "filters": everyone(100.0)}))
        .await;
    let gone = sdk
        .create(json!({"key": "gone", "filters": everyone(100.0)}))
        .await;
    sdk.world
        .call("PATCH", &format!("{gone}/"), Some(json!({"deleted": true})))
        .await;
    sdk.create(
        json!({"key": "browser", "evaluation_runtime": "client", "filters": everyone(100.0)}),
    )
    .await;
    sdk.create(json!({"key": "a", "filters": everyone(100.0)}))
        .await;
    sdk.create(json!({"key": "b", "filters": everyone(100.0)}))
        .await;
    let all = sdk.evaluate("u", json!({})).await;
    let mut keys: Vec<&String> = all.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"], "posthog-python is a server runtime");
    let some = sdk
        .evaluate("u", json!({"flag_keys_to_evaluate": ["b"]}))
        .await;
    assert_eq!(some.as_object().unwrap().len(), 1);
    let disabled = sdk.evaluate("u", json!({"disable_flags": true})).await;
    assert_eq!(disabled, json!({}));
}

#[tokio::test]
async fn group_flags_need_the_group_type_and_the_group() {
    let sdk = Sdk::new().await;
    sdk.create(
        json!({"key": "org", "filters": {"aggregation_group_type_index": 1,
        "groups": [{"properties": [], "rollout_percentage": 100}]}}),
    )
    .await;
    let unmapped = sdk
        .evaluate("u", json!({"groups": {"company": "acme"}}))
        .await;
    assert_eq!(unmapped["org"]["reason"]["code"], "no_group_type");
    sdk.group_type(1, "company").await;
    let mapped = sdk
        .evaluate("u", json!({"groups": {"company": "acme"}}))
        .await;
    assert_eq!(
        mapped["org"]["value"], true,
        "a group type is visible at once"
    );
    let no_group = sdk.evaluate("u", json!({})).await;
    assert_eq!(no_group["org"]["reason"]["code"], "no_group_type");
}

#[tokio::test]
async fn a_warm_instance_rereads_only_after_a_change() {
    let sdk = Sdk::new().await;
    let id = sdk
        .create(json!({"key": "switch", "filters": everyone(100.0)}))
        .await;
    assert_eq!(sdk.evaluate("u", json!({})).await["switch"]["value"], true);

    // A write that bypasses the definitions version is invisible to the warm instance: it
    // answers from its cache without reading the flags.
    let mut sneaky = sdk.stored(id).await;
    sneaky.active = false;
    let item = serde_dynamo::to_item(&sneaky).unwrap();
    put_raw(&sdk, item, id).await;
    assert_eq!(sdk.evaluate("u", json!({})).await["switch"]["value"], true);

    // A real flag change moves the version; the very next request sees it.
    sdk.world
        .call(
            "PATCH",
            &format!("{id}/"),
            Some(json!({"filters": everyone(0.0)})),
        )
        .await;
    let after = sdk.evaluate("u", json!({})).await;
    assert_eq!(
        after,
        json!({}),
        "the flag is inactive now (the sneaky write landed too)"
    );
}

async fn put_raw(
    sdk: &Sdk,
    mut item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    id: i64,
) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    item.insert("pk".into(), S(format!("PROJECT#{}", sdk.world.project.id)));
    item.insert("sk".into(), S(format!("FLAG#{id}")));
    sdk.world
        .store
        .client
        .put_item()
        .table_name(&sdk.world.store.tables.flags)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn experience_continuity_keeps_the_anonymous_bucket() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "sticky", "ensure_experience_continuity": true, "filters": {
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}}}))
        .await;
    let anon = (0..100)
        .map(|i| format!("anon-{i}"))
        .find(|a| variant_of("sticky", a) != variant_of("sticky", "known-user"))
        .unwrap();
    let first = sdk
        .evaluate("known-user", json!({"$anon_distinct_id": anon}))
        .await;
    assert_eq!(first["sticky"]["value"], variant_of("sticky", &anon));
    let later = sdk.evaluate("known-user", json!({})).await;
    assert_eq!(later["sticky"]["value"], variant_of("sticky", &anon));
    let stored = sdk
        .world
        .store
        .hash_key_overrides(sdk.world.project.id, &anon)
        .await
        .unwrap();
    assert_eq!(
        stored["sticky"], anon,
        "the anonymous id keeps its own bucket too"
    );
    let other = sdk.evaluate("someone-else", json!({})).await;
    assert_eq!(
        other["sticky"]["value"],
        variant_of("sticky", "someone-else")
    );
}

fn variant_of(key: &str, id: &str) -> &'static str {
    if shared::evaluation::hash(&format!("{key}."), id, "variant") < 0.5 {
        "a"
    } else {
        "b"
    }
}

#[tokio::test]
async fn encrypted_payloads_are_not_revealed() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "secret", "is_remote_configuration": true, "has_encrypted_payloads": true,
        "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": "{\"k\": 1}"}}}))
        .await;
    let flags = sdk.evaluate("u", json!({})).await;
    assert_eq!(
        flags["secret"]["metadata"]["payload"],
        "\"********* (encrypted)\""
    );
}

#[tokio::test]
async fn bad_requests_get_posthogs_status_and_a_clear_body() {
    let sdk = Sdk::new().await;
    let post = |raw: Vec<u8>| {
        let mut req = ApiRequest::new("POST", "/flags/")
            .with_query("v", "4")
            .with_header("content-type", "application/json");
        req.body = raw;
        sdk.send(req)
    };
    let r = post(b"{not json".to_vec()).await;
    assert_eq!(r.status, 400);
    assert!(
        text(&r).starts_with("Failed to parse request: key must be a string"),
        "{}",
        text(&r)
    );

    let r = post(br#"{"distinct_id": "u"}"#.to_vec()).await;
    assert_eq!(r.status, 401);
    assert_eq!(body(&r)["code"], "not_authenticated");

    let r = post(br#"{"distinct_id": "u", "api_key": "phc_nope"}"#.to_vec()).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        body(&r),
        json!({"type": "authentication_error", "code": "authentication_failed",
            "detail": "The provided API key is invalid or has expired. Please check your API key and try again.", "attr": null})
    );

    let no_id = json!({"api_key": sdk.token()}).to_string().into_bytes();
    let r = post(no_id).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        text(&r),
        "The distinct_id field is missing from the request. Please include a valid identifier."
    );

    let bad_props = json!({"api_key": sdk.token(), "distinct_id": "u", "person_properties": ["x"]});
    let r = post(bad_props.to_string().into_bytes()).await;
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("person_properties must be a map, got a list"));

    let huge = json!({"api_key": sdk.token(), "distinct_id": "u", "person_properties": {"blob": "x".repeat(1_100_000)}});
    let r = post(huge.to_string().into_bytes()).await;
    assert_eq!(r.status, 413);
    assert!(text(&r).contains("exceeded 1048576 bytes"));

    let list = post(b"[1]".to_vec()).await;
    assert_eq!(list.status, 400);

    let put = sdk.send(ApiRequest::new("PUT", "/flags/")).await;
    assert_eq!(put.status, 405);
}

#[tokio::test]
async fn gzip_and_get_requests() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "on", "filters": everyone(100.0)}))
        .await;
    let json_body = json!({"api_key": sdk.token(), "distinct_id": "u"}).to_string();
    let mut req = ApiRequest::new("POST", "/flags/")
        .with_query("v", "2")
        .with_header("content-encoding", "gzip");
    req.body = gzip(json_body.as_bytes());
    let r = sdk.send(req).await;
    assert_eq!(body_flags(&r)["on"]["enabled"], true);
    let get = sdk.send(ApiRequest::new("GET", "/flags/")).await;
    assert_eq!(get.status, 200);
    assert_eq!(body(&get)["flags"], json!({}));
}
