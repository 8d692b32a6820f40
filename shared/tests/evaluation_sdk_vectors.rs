//! The engine against an independent implementation: posthog-python 7.91.1's local evaluation
//! of 60 randomized flags (operators, type coercion, variants, overrides, holdouts, several
//! conditions) for 200 users. The expected values were produced by the SDK itself
//! (scripts/gen-sdk-vectors.py); where the SDK evaluates locally it must agree with PostHog's
//! server, so the engine must reproduce every one.
//!
//! Its semver table pins every semver operator to the SDK's reading of versions: where it
//! answers, the engine answers the same; where it cannot read a version (leading zeros, junk)
//! it asks `/flags`, and there the filter must not match.

mod evaluation_support;

use evaluation_support::*;
use serde_json::{Value, json};
use shared::evaluation::{EvaluationInput, FlagSet};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/posthog_python_vectors.json")).expect("JSON")
}

#[test]
fn engine_agrees_with_posthog_python_on_every_locally_resolved_value() {
    let data = vectors();
    let flags: Vec<_> = data["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            flag(
                f["id"].as_i64().unwrap(),
                f["key"].as_str().unwrap(),
                f["filters"].clone(),
            )
        })
        .collect();
    let set = FlagSet::new(&flags, &[]);
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for user in data["users"].as_array().unwrap() {
        let id = user["distinct_id"].as_str().unwrap();
        let props = user["properties"].as_object().unwrap();
        let mut input = EvaluationInput::new(id, now());
        input.person_properties = props;
        let answer = set.evaluate(&input);
        for (key, want) in data["expected"][id].as_object().unwrap() {
            compared += 1;
            let got = get(&answer, key).value();
            if &got != want {
                mismatches.push(format!("{id} {key}: SDK {want}, engine {got}"));
            }
        }
    }
    assert_eq!(compared, 12_000, "the vector file lost values");
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}

#[test]
fn semver_filters_agree_with_posthog_python_and_miss_where_it_defers() {
    let data = vectors();
    let rows = data["semver"].as_array().expect("semver table");
    assert_eq!(rows.len(), 4500, "the vector file lost semver rows");
    let mut deferred = 0;
    let mismatches: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let (operator, value, found, sdk) = (&row[0], &row[1], &row[2], &row[3]);
            deferred += usize::from(sdk.is_null());
            let filter = json!({"key": "app_version", "type": "person", "operator": operator, "value": value});
            let flags = [flag(1, "f", condition(json!([filter]), None))];
            let props = map(json!({"app_version": found}));
            let mut input = EvaluationInput::new("someone", now());
            input.person_properties = &props;
            let got = get(&evaluate(&flags, &input), "f").enabled;
            let want = sdk.as_bool().unwrap_or(false);
            (got != want).then(|| format!("{operator} {value} on {found}: SDK {sdk}, engine {got}"))
        })
        .collect();
    assert!(deferred > 0, "no row where the SDK defers");
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
}
