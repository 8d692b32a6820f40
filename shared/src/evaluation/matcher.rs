//! The per-flag algorithm, PostHog's server `get_match` (evaluation-rules.md §2.2): enrollment, then
//! holdout, then the conditions in stored order with the server's reason bookkeeping.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::cohorts::CohortEvaluator;
use super::hash::{bucket, hash};
use super::input::EvaluationInput;
use super::model::{Aggregation, CompiledFlag, Condition};
use super::properties::{FilterKind, MatchContext, Operator, PropertyFilter, PropertySource};
use super::result::ReasonCode;

/// The outcome of one flag: PostHog's `FeatureFlagMatch` without the payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Match {
    pub enabled: bool,
    pub variant: Option<String>,
    pub code: ReasonCode,
    pub condition_index: Option<usize>,
}

impl Match {
    pub(crate) fn off(code: ReasonCode, condition_index: Option<usize>) -> Match {
        Match {
            enabled: false,
            variant: None,
            code,
            condition_index,
        }
    }
}

/// Person properties as the server sees them: the request's, plus `distinct_id` and the
/// `$initial_*` twins of current values when the request lacks them.
pub(crate) struct PersonProperties<'a> {
    properties: &'a Map<String, Value>,
    distinct_id: Value,
}

impl<'a> PersonProperties<'a> {
    pub(crate) fn new(properties: &'a Map<String, Value>, distinct_id: &str) -> Self {
        PersonProperties {
            properties,
            distinct_id: Value::String(distinct_id.to_string()),
        }
    }
}

impl PropertySource for PersonProperties<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        if let Some(value) = self.properties.get(key) {
            return Some(value);
        }
        if key == "distinct_id" {
            return Some(&self.distinct_id);
        }
        initial_source(key).and_then(|source| self.properties.get(source))
    }
}

/// The server fills a missing `$initial_X` from `X` for these properties (PostHog's taxonomy:
/// person properties adapted from events, and campaign parameters), covering ingestion lag.
fn initial_source(key: &str) -> Option<&str> {
    const FROM_EVENTS: [&str; 18] = [
        "$app_build",
        "$app_name",
        "$app_namespace",
        "$app_version",
        "$browser",
        "$browser_version",
        "$device_type",
        "$current_url",
        "$pathname",
        "$os",
        "$os_version",
        "$referring_domain",
        "$referrer",
        "$screen_height",
        "$screen_width",
        "$viewport_height",
        "$viewport_width",
        "$raw_user_agent",
    ];
    const CAMPAIGN: [&str; 24] = [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "gclid",
        "gad_source",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "fbclid",
        "msclkid",
        "twclid",
        "li_fat_id",
        "mc_cid",
        "igshid",
        "ttclid",
        "rdt_cid",
        "epik",
        "qclid",
        "sccid",
        "irclid",
        "_kx",
    ];
    let rest = key.strip_prefix("$initial_")?;
    let from_event = FROM_EVENTS
        .iter()
        .find(|s| s.strip_prefix('$') == Some(rest));
    from_event
        .or_else(|| CAMPAIGN.iter().find(|s| **s == rest))
        .copied()
}

/// Everything a flag evaluation reads besides the flag itself.
pub(crate) struct Env<'a> {
    pub input: &'a EvaluationInput<'a>,
    pub person: &'a PersonProperties<'a>,
    pub ctx: &'a MatchContext,
    pub cohorts: &'a CohortEvaluator<'a>,
    /// Results of flags evaluated so far, by flag index (`None`: not evaluated).
    pub results: &'a [Option<Match>],
}

/// PostHog's `get_match`.
pub(crate) fn evaluate(flag: &CompiledFlag, env: &Env) -> Match {
    if let Some(enrolled) = enrollment(flag, env) {
        return enrolled;
    }
    if let Some(held_out) = holdout(flag, env) {
        return held_out;
    }
    conditions(flag, env)
}

/// Early access: `$feature_enrollment/<key>` decides alone when the person has it (true or
/// `"true"` enables). Legacy `super_groups`: the first one decides when the person has any of
/// its properties. Either way the reason is `super_condition_value` for condition 0.
fn enrollment(flag: &CompiledFlag, env: &Env) -> Option<Match> {
    let decided = |enabled| Match {
        enabled,
        variant: None,
        code: ReasonCode::SuperConditionValue,
        condition_index: Some(0),
    };
    if flag.feature_enrollment {
        let value = env.person.get(&flag.enrollment_key)?;
        let enabled = value == &Value::Bool(true) || value.as_str() == Some("true");
        return Some(decided(enabled));
    }
    let condition = flag.super_condition.as_ref()?;
    let relevant = condition
        .filters
        .iter()
        .any(|f| env.person.get(&f.key).is_some());
    relevant.then(|| decided(condition_matches(flag, condition, Aggregation::Person, env).0))
}

/// A held-out person gets the `holdout-<id>` variant before any condition is looked at. The
/// hash ignores the flag key, so one holdout excludes the same people from every flag.
fn holdout(flag: &CompiledFlag, env: &Env) -> Option<Match> {
    let holdout = flag.holdout.as_ref()?;
    let percentage = holdout.exclusion.clamp(0.0, 100.0);
    if percentage < 100.0 {
        let id = identifier(flag, flag.aggregation, env, false);
        if hash("holdout-", &id, "") > percentage / 100.0 {
            return None;
        }
    }
    Some(Match {
        enabled: true,
        variant: Some(format!("holdout-{}", holdout.id)),
        code: ReasonCode::HoldoutConditionValue,
        condition_index: None,
    })
}

/// Conditions in stored order, first match wins. Non-matching conditions still compete for
/// the reported reason: the best score wins, a tie goes to the later condition.
fn conditions(flag: &CompiledFlag, env: &Env) -> Match {
    let mut best = (ReasonCode::NoGroupType, None);
    let mut skipped_group_condition = false;
    for (index, condition) in flag.conditions.iter().enumerate() {
        let (matched, code) = match condition.aggregation {
            // Device bucketing without a device id cannot place the person.
            Aggregation::Person if flag.device_id_bucketing && device_id(env).is_none() => {
                (false, ReasonCode::OutOfRolloutBound)
            }
            Aggregation::Group(group) if group_key(group, env).is_none() => {
                skipped_group_condition = true;
                (false, ReasonCode::NoGroupType)
            }
            aggregation => condition_matches(flag, condition, aggregation, env),
        };
        if code.score() >= best.0.score() {
            best = (code, Some(index));
        }
        if matched {
            return Match {
                enabled: true,
                variant: variant(flag, condition, env),
                code: best.0,
                condition_index: best.1,
            };
        }
    }
    if best.0 == ReasonCode::NoConditionMatch && skipped_group_condition {
        best.0 = ReasonCode::NoConditionMatchGroupsNotEvaluated;
    }
    Match::off(best.0, best.1)
}

/// Properties (AND, in list order; cohorts last, being the costliest), then the rollout.
fn condition_matches(
    flag: &CompiledFlag,
    condition: &Condition,
    aggregation: Aggregation,
    env: &Env,
) -> (bool, ReasonCode) {
    let non_cohort_ok = condition
        .filters
        .iter()
        .filter(|f| f.kind != FilterKind::Cohort)
        .all(|f| filter_matches(f, aggregation, env));
    let cohorts_ok = non_cohort_ok
        && condition
            .filters
            .iter()
            .filter(|f| f.kind == FilterKind::Cohort)
            .all(|f| env.cohorts.filter_matches(f));
    if !cohorts_ok {
        return (false, ReasonCode::NoConditionMatch);
    }
    if condition.rollout == 100.0 {
        return (true, ReasonCode::ConditionMatch);
    }
    let id = identifier(flag, aggregation, env, true);
    if bucket(&flag.hash_prefix, &id, "") <= condition.rollout / 100.0 {
        (true, ReasonCode::ConditionMatch)
    } else {
        (false, ReasonCode::OutOfRolloutBound)
    }
}

fn filter_matches(filter: &PropertyFilter, aggregation: Aggregation, env: &Env) -> bool {
    match filter.kind {
        FilterKind::Flag => dependency_matches(filter, env.results),
        FilterKind::Person => filter.matches(env.person, env.ctx),
        FilterKind::Group => {
            let index = filter.group_type_index.or(match aggregation {
                Aggregation::Group(g) => Some(g),
                Aggregation::Person => None,
            });
            filter.matches(group_properties(index, env), env.ctx)
        }
        FilterKind::Cohort | FilterKind::Other => false,
    }
}

/// `flag_evaluates_to`: `true` wants any enabled value, `false` exactly false, a string that
/// variant. A dependency that was not evaluated never matches.
fn dependency_matches(filter: &PropertyFilter, results: &[Option<Match>]) -> bool {
    if filter.operator != Operator::FlagEvaluatesTo {
        return false;
    }
    let Some(Some(actual)) = filter.dependency.map(|d| &results[d]) else {
        return false;
    };
    match filter.value.as_ref() {
        Some(Value::Bool(true)) => actual.enabled,
        Some(Value::Bool(false)) => !actual.enabled,
        Some(Value::String(expected)) => {
            actual.enabled && actual.variant.as_deref() == Some(expected.as_str())
        }
        _ => false,
    }
}

/// The condition's override when it names a variant of the flag, else the hashed variant.
fn variant(flag: &CompiledFlag, condition: &Condition, env: &Env) -> Option<String> {
    if let Some(chosen) = &condition.variant
        && flag.is_variant(chosen)
    {
        return Some(chosen.clone());
    }
    if flag.variants.is_empty() {
        return None;
    }
    let id = identifier(flag, condition.aggregation, env, true);
    let h = bucket(&flag.hash_prefix, &id, "variant");
    // Accumulate exactly like the server so the float bounds are identical.
    let mut cumulative = 0.0;
    for v in &flag.variants {
        cumulative += v.rollout / 100.0;
        if h < cumulative {
            return Some(v.key.clone());
        }
    }
    None
}

/// What gets hashed (evaluation-rules.md §1.6): the group key for group aggregation; for persons the
/// device id (device bucketing), else the stored continuity override, else for continuity
/// flags the request's anonymous id, else the distinct id. Holdouts never use stored overrides.
fn identifier<'a>(
    flag: &CompiledFlag,
    aggregation: Aggregation,
    env: &'a Env,
    with_overrides: bool,
) -> Cow<'a, str> {
    let input = env.input;
    if let Aggregation::Group(group) = aggregation {
        return match group_value(group, env) {
            Some(Value::String(key)) => Cow::Borrowed(key),
            Some(Value::Number(key)) => Cow::Owned(key.to_string()),
            _ => Cow::Borrowed(""),
        };
    }
    if flag.device_id_bucketing
        && let Some(device) = device_id(env)
    {
        return Cow::Borrowed(device);
    }
    if with_overrides && let Some(key) = input.hash_key_overrides.get(&*flag.key) {
        return Cow::Borrowed(key);
    }
    match input.anon_distinct_id {
        Some(anon) if flag.experience_continuity => Cow::Borrowed(anon),
        _ => Cow::Borrowed(input.distinct_id),
    }
}

/// The request's device id, else `person_properties.$device_id`; empty means none.
fn device_id<'a>(env: &Env<'a>) -> Option<&'a str> {
    let input = env.input;
    let from_properties = || input.person_properties.get("$device_id")?.as_str();
    input
        .device_id
        .or_else(from_properties)
        .filter(|d| !d.is_empty())
}

fn group_value<'a>(group: i32, env: &Env<'a>) -> Option<&'a Value> {
    let name = env.input.group_type_mapping.name(group)?;
    env.input.groups.get(name)
}

/// A usable group key: a non-empty string or a number.
fn group_key<'a>(group: i32, env: &Env<'a>) -> Option<&'a Value> {
    group_value(group, env).filter(|v| match v {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    })
}

fn group_properties<'a>(index: Option<i32>, env: &Env<'a>) -> &'a Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    index
        .and_then(|i| env.input.group_type_mapping.name(i))
        .and_then(|name| env.input.group_properties.get(name))
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}
