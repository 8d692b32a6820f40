//! A stored [`Flag`] read into the typed shape evaluation needs (evaluation-rules.md §2.1). Reading is
//! forgiving: a malformed part is treated the way PostHog's evaluator would end up treating it
//! (a condition that cannot match, a variant that does not exist), never as a panic.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::input::Runtime;
use super::properties::PropertyFilter;
use crate::flag::Flag;
use crate::flag::filters::{ConditionSet, Filters};

/// Which identifier a condition buckets on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregation {
    Person,
    Group(i32),
}

#[derive(Debug)]
pub(crate) struct Condition {
    /// Empty when `properties` is absent, null or `[]`: the condition holds everyone.
    pub filters: Vec<PropertyFilter>,
    /// 100 when absent or null.
    pub rollout: f64,
    pub variant: Option<String>,
    pub aggregation: Aggregation,
}

#[derive(Debug)]
pub(crate) struct Variant {
    pub key: String,
    pub rollout: f64,
}

#[derive(Debug)]
pub(crate) struct Holdout {
    pub id: i64,
    pub exclusion: f64,
}

/// One flag ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub key: Arc<str>,
    pub id: i64,
    pub version: i64,
    pub active: bool,
    pub deleted: bool,
    pub experience_continuity: bool,
    pub device_id_bucketing: bool,
    pub runtime: Runtime,
    pub evaluation_tags: Vec<String>,
    pub payload_encrypted: bool,
    /// Flag-level aggregation: the holdout and legacy conditions bucket on it.
    pub aggregation: Aggregation,
    pub conditions: Vec<Condition>,
    pub variants: Vec<Variant>,
    pub payloads: Map<String, Value>,
    pub holdout: Option<Holdout>,
    pub feature_enrollment: bool,
    /// The first legacy super group, when it has properties (the only one PostHog reads).
    pub super_condition: Option<Condition>,
    /// `"<key>."`, the rollout and variant hash prefix.
    pub hash_prefix: String,
    /// `$feature_enrollment/<key>`.
    pub enrollment_key: String,
}

impl CompiledFlag {
    pub(crate) fn new(flag: &Flag) -> CompiledFlag {
        let filters = Filters::of(&flag.filters);
        let aggregation = group_index(filters.get("aggregation_group_type_index"))
            .map_or(Aggregation::Person, Aggregation::Group);
        CompiledFlag {
            key: Arc::from(flag.key.as_str()),
            id: flag.id,
            version: flag.version,
            active: flag.active,
            deleted: flag.deleted,
            experience_continuity: flag.ensure_experience_continuity.unwrap_or(false),
            device_id_bucketing: flag.bucketing_identifier == "device_id",
            runtime: Runtime::parse(&flag.evaluation_runtime),
            evaluation_tags: flag.evaluation_tags.clone(),
            payload_encrypted: flag.has_encrypted_payloads.unwrap_or(false),
            aggregation,
            conditions: conditions(filters, aggregation),
            variants: variants(filters),
            payloads: filters.payloads().cloned().unwrap_or_default(),
            holdout: holdout(filters.holdout()),
            feature_enrollment: filters.get("feature_enrollment") == Some(&Value::Bool(true)),
            super_condition: super_condition(filters),
            hash_prefix: format!("{}.", flag.key),
            enrollment_key: format!("$feature_enrollment/{}", flag.key),
        }
    }

    pub(crate) fn is_variant(&self, key: &str) -> bool {
        self.variants.iter().any(|v| v.key == key)
    }
}

/// An index that is an integer (PostHog stores numbers; a numeric string is tolerated).
fn group_index(value: Option<&Value>) -> Option<i32> {
    match value? {
        Value::Number(n) => n.as_i64().and_then(|i| i32::try_from(i).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `groups`, or for legacy rows without it one condition of `properties` holding everyone
/// (PostHog's `get_filters`, as [`Flag::effective_filters`] shows it).
fn conditions(filters: Filters, flag_level: Aggregation) -> Vec<Condition> {
    if filters.has_groups() {
        return filters.groups().map(|g| condition(g, flag_level)).collect();
    }
    let legacy = serde_json::json!({"properties": filters.get("properties")});
    vec![condition(ConditionSet::of(&legacy), flag_level)]
}

/// A condition's `aggregation_group_type_index`: absent → the flag's; explicit null → person.
fn condition(raw: ConditionSet, flag_level: Aggregation) -> Condition {
    let aggregation = match raw.get("aggregation_group_type_index") {
        None => flag_level,
        Some(v) => group_index(Some(v)).map_or(Aggregation::Person, Aggregation::Group),
    };
    Condition {
        filters: raw.properties().map(PropertyFilter::parse).collect(),
        rollout: raw
            .rollout_percentage()
            .and_then(Value::as_f64)
            .unwrap_or(100.0),
        variant: raw.variant().and_then(Value::as_str).map(str::to_string),
        aggregation,
    }
}

/// Variants in stored order; one without a numeric percentage takes no share of the range.
fn variants(filters: Filters) -> Vec<Variant> {
    filters
        .variants()
        .filter_map(|v| {
            Some(Variant {
                key: v.key()?.to_string(),
                rollout: v
                    .rollout_percentage()
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
            })
        })
        .collect()
}

fn holdout(raw: Option<&Value>) -> Option<Holdout> {
    let raw = raw?.as_object()?;
    Some(Holdout {
        id: raw.get("id")?.as_i64()?,
        exclusion: raw.get("exclusion_percentage")?.as_f64()?,
    })
}

/// PostHog reads only the first super group, and only when it has properties; the new
/// `feature_enrollment: true` form takes precedence and is handled by the matcher.
fn super_condition(filters: Filters) -> Option<Condition> {
    let first = filters.super_groups().next()?;
    let condition = condition(first, Aggregation::Person);
    // Super conditions are person-level whatever the flag aggregates on.
    let condition = Condition {
        aggregation: Aggregation::Person,
        ..condition
    };
    (!condition.filters.is_empty()).then_some(condition)
}
