//! Builders shared by the evaluation tests: flags with given filters, and inputs.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use shared::evaluation::{Cohort, EvaluationInput, Evaluations, FlagEvaluation, FlagSet};
use shared::flag::Flag;
use shared::identity::UserSummary;

/// A fixed "now" for every test: relative dates must not depend on the clock.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 31, 12, 0, 0).unwrap()
}

/// An active flag with PostHog's defaults and the given `filters`.
pub fn flag(id: i64, key: &str, filters: Value) -> Flag {
    let creator = UserSummary {
        id: 1,
        uuid: "u".into(),
        distinct_id: "d".into(),
        first_name: "F".into(),
        last_name: String::new(),
        email: "f@example.com".into(),
    };
    let mut flag = Flag::new(id, 1, key.into(), creator, now());
    flag.filters = filters;
    flag
}

/// One condition with these properties and rollout.
pub fn condition(properties: Value, rollout: Option<f64>) -> Value {
    json!({"groups": [{"properties": properties, "rollout_percentage": rollout}]})
}

pub fn map(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

pub fn evaluate(flags: &[Flag], input: &EvaluationInput) -> Evaluations {
    FlagSet::new(flags, &[]).evaluate(input)
}

pub fn evaluate_with_cohorts(
    flags: &[Flag],
    cohorts: &[Cohort],
    input: &EvaluationInput,
) -> Evaluations {
    FlagSet::new(flags, cohorts).evaluate(input)
}

/// The record for `key`, which must be present.
pub fn get<'a>(answer: &'a Evaluations, key: &str) -> &'a FlagEvaluation {
    answer
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from {:?}", keys(answer)))
}

pub fn keys(answer: &Evaluations) -> Vec<&str> {
    answer.flags.iter().map(|f| &*f.key).collect()
}

/// `(value, reason code, condition index)` of a record: the parts most tests assert.
pub fn outcome(record: &FlagEvaluation) -> (Value, String, Option<usize>) {
    (
        record.value(),
        record.reason.code.to_string(),
        record.reason.condition_index,
    )
}
