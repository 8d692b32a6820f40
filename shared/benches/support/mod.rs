//! Flags and a person for the evaluation benchmarks: deterministic, and a mix of every kind of
//! rule a real project has (rollouts, property operators, variants, groups, dependencies,
//! holdouts, dates, versions, regexes).
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use shared::evaluation::GroupTypeMapping;
use shared::flag::Flag;
use shared::identity::UserSummary;

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

pub fn flag(id: i64, key: &str, filters: Value) -> Flag {
    let creator = UserSummary {
        id: 1,
        uuid: "u".into(),
        distinct_id: "d".into(),
        first_name: "Bench".into(),
        last_name: String::new(),
        email: "bench@example.com".into(),
    };
    let mut flag = Flag::new(id, 1, key.into(), creator, now());
    flag.filters = filters;
    flag
}

fn person(key: &str, operator: &str, value: Value) -> Value {
    json!({"key": key, "type": "person", "operator": operator, "value": value})
}

/// One flag rolled out to 50 % of everyone.
pub fn rollout_flag() -> Flag {
    flag(
        1,
        "half",
        json!({"groups": [{"properties": [], "rollout_percentage": 50}]}),
    )
}

/// One flag whose condition has three property filters (all match the bench person).
pub fn three_property_flag() -> Flag {
    flag(
        1,
        "targeted",
        json!({"groups": [{"properties": [
            person("email", "icontains", json!("@example.com")),
            person("country", "exact", json!(["US", "CA", "GB"])),
            person("age", "gt", json!(18))], "rollout_percentage": 100}]}),
    )
}

/// 100 flags cycling through ten shapes.
pub fn mixed_flags() -> Vec<Flag> {
    (0..100).map(mixed_flag).collect()
}

fn mixed_flag(i: i64) -> Flag {
    let id = i + 1;
    let key = format!("flag-{i:03}");
    let pct = 10 + (i * 37) % 90;
    let variants = json!({"variants": [
        {"key": "control", "rollout_percentage": 34},
        {"key": "test", "rollout_percentage": 33},
        {"key": "other", "rollout_percentage": 33}]});
    let filters = match i % 10 {
        0 => json!({"groups": [{"properties": [], "rollout_percentage": pct}]}),
        1 => {
            json!({"groups": [{"properties": [person("country", "exact", json!(["US", "CA", "DE"]))],
                                "rollout_percentage": pct}]})
        }
        2 => json!({"groups": [{"properties": [person("email", "icontains", json!("example")),
                                               person("age", "gte", json!(21))]}]}),
        3 => {
            json!({"groups": [{"properties": [], "rollout_percentage": 60}], "multivariate": variants,
                    "payloads": {"control": "{\"color\": \"blue\"}", "test": "{\"color\": \"red\"}"}})
        }
        4 => {
            json!({"groups": [{"properties": [person("email", "regex", json!(r"^[a-z.]+@example\.(com|org)$"))]}]})
        }
        5 => json!({"groups": [{"properties": [person("app_version", "semver_gte", json!("2.3.0")),
                                               person("signup", "is_date_after", json!("-90d"))]}]}),
        6 => json!({"aggregation_group_type_index": 0, "groups": [{"properties": [
                      {"key": "employees", "type": "group", "group_type_index": 0, "operator": "gt", "value": 100}],
                    "rollout_percentage": pct}]}),
        7 => json!({"groups": [{"properties": [
                      {"key": (id - 1).to_string(), "type": "flag", "operator": "flag_evaluates_to", "value": true}]}]}),
        8 => json!({"groups": [{"properties": []}], "multivariate": variants,
                    "holdout": {"id": 3, "exclusion_percentage": 10}}),
        _ => json!({"groups": [
                      {"properties": [person("plan", "is_not", json!("free"))], "rollout_percentage": 100, "variant": "test"},
                      {"properties": [], "rollout_percentage": pct}],
                    "multivariate": variants}),
    };
    flag(id, &key, filters)
}

/// The bench person: matches most of the property filters above.
pub struct Person {
    pub properties: Map<String, Value>,
    pub groups: Map<String, Value>,
    pub group_properties: Map<String, Value>,
    pub mapping: GroupTypeMapping,
}

pub fn bench_person() -> Person {
    let as_map = |v: Value| v.as_object().cloned().unwrap();
    Person {
        properties: as_map(json!({
            "email": "jane.doe@example.com", "country": "US", "age": 34, "plan": "pro",
            "app_version": "2.4.1", "signup": "2024-05-01T10:00:00Z", "$browser": "Firefox"})),
        groups: as_map(json!({"company": "acme"})),
        group_properties: as_map(json!({"company": {"name": "Acme", "employees": 300}})),
        mapping: GroupTypeMapping::new([(0, "company".to_string())]),
    }
}
