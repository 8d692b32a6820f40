//! The engine against an independent implementation: posthog-python 7.91.1's local evaluation
//! of 60 randomized flags (operators, type coercion, variants, overrides, holdouts, several
//! conditions) for 200 users. The expected values were produced by the SDK itself
//! (scripts/gen-sdk-vectors.py); where the SDK evaluates locally it must agree with PostHog's
//! server, so the engine must reproduce every one.

mod evaluation_support;

use evaluation_support::*;
use serde_json::Value;
use shared::evaluation::{EvaluationInput, FlagSet};

#[test]
fn engine_agrees_with_posthog_python_on_every_locally_resolved_value() {
    let data: Value =
        serde_json::from_str(include_str!("data/posthog_python_vectors.json")).expect("JSON");
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
