//! Validation of a flag's `filters` object (flag-management-rules.md §4.1 rules 2–8, §4.2) and the
//! flag-dependency queries built on the same walk (§5.4 guards, §7 dependent flags).
//!
//! Checks run in PostHog's order so the first error reported is the one PostHog reports. Where
//! PostHog would crash on a malformed shape (a 500), the shape is checked at the point the crash
//! would happen and answered with a 400 instead. The stricter checks PostHog's baseline skips
//! (percent ranges, operators, variant keys) run last, so they never hide a PostHog error.

use crate::python;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::access::{ConditionSet, Filters, Section};
use super::dates::is_filter_date;
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;

/// The attr of every filters error but the evaluability one.
const ATTR: &str = "filters";

/// Longest list a property value may hold (PostHog's `MAX_PROPERTY_VALUES`).
pub const MAX_PROPERTY_VALUES: usize = 1000;

/// Group type indexes run from 0 to this, exclusive (PostHog's `GROUP_TYPES_LIMIT`).
const GROUP_TYPES_LIMIT: i64 = 5;

/// Variant keys may be longer than flag keys' charset allows, but not arbitrary.
const VARIANT_KEY_MAX_CHARS: usize = 400;

/// Operators some evaluator (ours, the SDKs) understands.
const KNOWN_OPERATORS: &[&str] = &[
    "exact",
    "is_not",
    "icontains",
    "not_icontains",
    "regex",
    "not_regex",
    "gt",
    "gte",
    "lt",
    "lte",
    "is_set",
    "is_not_set",
    "is_date_exact",
    "is_date_after",
    "is_date_before",
    "semver_eq",
    "semver_neq",
    "semver_gt",
    "semver_gte",
    "semver_lt",
    "semver_lte",
    "semver_tilde",
    "semver_caret",
    "semver_wildcard",
    "icontains_multi",
    "not_icontains_multi",
    "starts_with",
    "not_starts_with",
    "ends_with",
    "not_ends_with",
    "between",
    "not_between",
    "in",
    "not_in",
    "flag_evaluates_to",
];

/// Whether some evaluator understands `operator` (cohort filters are checked with it too).
pub(crate) fn is_known_operator(operator: &str) -> bool {
    KNOWN_OPERATORS.contains(&operator)
}

/// Operators whose filter value must be a string (E16).
const STRING_OPERATORS: &[&str] = &[
    "regex",
    "icontains",
    "not_regex",
    "not_icontains",
    "gte",
    "lte",
    "gt",
    "lt",
];

/// A cohort as flag validation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortRef {
    pub id: i64,
    pub name: String,
    /// True when this cohort, or any cohort it references, filters on events. The caller
    /// resolves nested cohorts, so the error names the cohort that was referenced.
    pub has_behavioral_filters: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct FilterContext<'a> {
    pub is_create: bool,
    /// Key for messages and self-dependency: the submitted key on create, the stored key on update.
    pub flag_key: &'a str,
    /// None on create.
    pub flag_id: Option<i64>,
    pub linked_to_early_access: bool,
    /// The project's flags the checks can reach (soft-deleted ones included; skip deleted ones
    /// where the spec says): all of them, or FlagService's related flags (the key's holder, the
    /// dependency closure, the dependents), on which every check decides the same.
    pub project_flags: &'a [Flag],
    /// Cohorts of the project (empty until cohorts exist: then every cohort reference fails with cohort_does_not_exist).
    pub cohorts: &'a [CohortRef],
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::invalid(ATTR, detail)
}

fn coded(code: &str, detail: impl Into<String>) -> ApiError {
    ApiError::field(ATTR, code, detail)
}

// ---------------------------------------------------------------------------------------------
// validate

/// Validates submitted filters and returns them normalised for storage: payload values stored as JSON text
/// (objects → Python-style JSON text `{"a": 1, "b": 2}`, strings must parse as JSON, other values → their JSON text).
pub fn validate(filters: &Value, ctx: &FilterContext) -> ApiResult<Value> {
    let map = as_dict(filters)?;
    let groups = condition_groups(map, ctx.is_create)?;
    check_property_kinds(filters, map, groups, ctx)?;
    let variants = variants(map)?;
    check_variant_sum(&variants)?;
    for group in groups {
        check_variant_override(group, &variants)?;
        for prop in properties(group)? {
            check_property_value(&parse_property(prop)?, ctx)?;
        }
    }
    let payloads = normalised_payloads(map)?;
    check_payload_keys(map, payloads.as_ref(), &variants)?;
    check_recommended(map, groups, &variants)?;

    let mut out = map.clone();
    if let Some(payloads) = payloads {
        out.insert("payloads".into(), Value::Object(payloads));
    }
    Ok(Value::Object(out))
}

/// DRF's DictField answers for anything that is not an object.
fn as_dict(filters: &Value) -> ApiResult<&Map<String, Value>> {
    match filters {
        Value::Object(map) => Ok(map),
        Value::Null => Err(ApiError::field(ATTR, "null", "This field may not be null.")),
        other => Err(ApiError::field(
            ATTR,
            "not_a_dict",
            format!(
                "Expected a dictionary of items but got type \"{}\".",
                python::type_name(other)
            ),
        )),
    }
}

/// Rule 2: a new flag needs at least one condition set; updates may clear them.
fn condition_groups(map: &Map<String, Value>, is_create: bool) -> ApiResult<&Vec<Value>> {
    let groups = map.get("groups");
    if is_create && !groups.is_some_and(python::truthy) {
        return Err(invalid(
            "Feature flags must have at least one condition set (group).",
        ));
    }
    match groups {
        Some(Value::Array(list)) => Ok(list),
        _ => Err(invalid(
            "Filters must have \"groups\": a list of condition sets.",
        )),
    }
}

/// The properties of one condition set; a missing list means "everyone".
fn properties(group: &Value) -> ApiResult<&[Value]> {
    let Value::Object(group) = group else {
        return Err(invalid("Every condition set (group) must be an object."));
    };
    match group.get("properties") {
        None => Ok(&[]),
        Some(Value::Array(props)) => Ok(props),
        Some(_) => Err(invalid(
            "The \"properties\" of a condition set must be a list.",
        )),
    }
}

/// Every property of every condition set, in order, stopping at the first malformed group.
fn each_property<'v>(
    groups: &'v [Value],
    mut visit: impl FnMut(&Property<'v>) -> ApiResult<()>,
) -> ApiResult<()> {
    for group in groups {
        for prop in properties(group)? {
            visit(&parse_property(prop)?)?;
        }
    }
    Ok(())
}

/// A property filter read the way PostHog's `Property(**data)` reads it.
struct Property<'v> {
    key: &'v Value,
    /// `event` when absent or falsy; empty for a non-string type (which matches nothing).
    kind: &'v str,
    operator: Option<&'v str>,
    raw_operator: &'v Value,
    /// `Null` when absent.
    value: &'v Value,
    group_type_index: Option<i64>,
}

fn parse_property(prop: &Value) -> ApiResult<Property<'_>> {
    let Value::Object(map) = prop else {
        return Err(invalid("Every property filter must be an object."));
    };
    let kind = match map.get("type") {
        None => "event",
        Some(t) if !python::truthy(t) => "event",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => "",
    };
    let key = map.get("key").unwrap_or(&Value::Null);
    // Flag dependencies may name the flag id as a number; their own check explains bad keys.
    let flag_id_key = kind == "flag" && !key.is_null();
    if !key.is_string() && !flag_id_key {
        return Err(invalid("Every property filter must have a string \"key\"."));
    }
    let raw_operator = map.get("operator").unwrap_or(&Value::Null);
    Ok(Property {
        key,
        kind,
        operator: raw_operator.as_str(),
        raw_operator,
        value: map.get("value").unwrap_or(&Value::Null),
        group_type_index: group_type_index(map.get("group_type_index"))?,
    })
}

/// PostHog's `validate_group_type_index`: `int(value)` within `0..GROUP_TYPES_LIMIT`.
fn group_type_index(value: Option<&Value>) -> ApiResult<Option<i64>> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Bool(b)) => Some(i64::from(*b)),
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match parsed {
        Some(i) if (0..GROUP_TYPES_LIMIT).contains(&i) => Ok(Some(i)),
        _ => Err(invalid(format!(
            "group_type_index is required to be at least 0 and less than {GROUP_TYPES_LIMIT}"
        ))),
    }
}

/// Rule 3: which property types a flag may use, then flag dependencies (§4.2).
fn check_property_kinds(
    filters: &Value,
    map: &Map<String, Value>,
    groups: &[Value],
    ctx: &FilterContext,
) -> ApiResult<()> {
    let aggregation = map
        .get("aggregation_group_type_index")
        .unwrap_or(&Value::Null);
    if aggregation.is_null() {
        each_property(groups, |p| {
            if matches!(p.kind, "person" | "cohort" | "flag") {
                Ok(())
            } else {
                Err(invalid(
                    "Filters are not valid (can only use person, cohort, and flag properties)",
                ))
            }
        })?;
        each_property(groups, |p| {
            if p.kind != "flag" || p.operator == Some("flag_evaluates_to") {
                Ok(())
            } else {
                Err(invalid(
                    "Flag properties must use the 'flag_evaluates_to' operator",
                ))
            }
        })?;
        return check_dependencies(filters, groups, ctx);
    }
    if !ctx.is_create && ctx.linked_to_early_access {
        return Err(invalid(
            "Cannot change this flag to a group-based when linked to an Early Access Feature.",
        ));
    }
    let wanted = py_number(aggregation);
    each_property(groups, |p| {
        let same_index = p.group_type_index.map(|i| i as f64) == wanted;
        if p.kind == "group" && wanted.is_some() && same_index {
            Ok(())
        } else {
            Err(invalid(
                "Filters are not valid (can only use group properties)",
            ))
        }
    })
}

/// Variant definitions; `multivariate` is optional but must be an object when truthy.
fn variants(map: &Map<String, Value>) -> ApiResult<Vec<Variant<'_>>> {
    let multivariate = match map.get("multivariate") {
        Some(mv) if python::truthy(mv) => mv,
        _ => return Ok(Vec::new()),
    };
    let Value::Object(multivariate) = multivariate else {
        return Err(invalid("\"multivariate\" must be an object or null."));
    };
    let list = match multivariate.get("variants") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("\"multivariate.variants\" must be a list.")),
    };
    list.iter().map(parse_variant).collect()
}

struct Variant<'v> {
    key: &'v str,
    /// Missing and null count as 0 in the sum.
    rollout: f64,
    raw_rollout: &'v Value,
}

fn parse_variant(variant: &Value) -> ApiResult<Variant<'_>> {
    let key = variant
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Every variant must be an object with a string \"key\"."))?;
    let raw_rollout = variant.get("rollout_percentage").unwrap_or(&Value::Null);
    let rollout = match raw_rollout {
        Value::Null => 0.0,
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        _ => {
            return Err(invalid(format!(
                "Invalid variant definitions: the rollout percentage of variant '{key}' must be a number."
            )));
        }
    };
    Ok(Variant {
        key,
        rollout,
        raw_rollout,
    })
}

/// Rule 4. Summed in order like Python's `sum`, so float spellings behave the same.
fn check_variant_sum(variants: &[Variant]) -> ApiResult<()> {
    let sum: f64 = variants.iter().map(|v| v.rollout).sum();
    if variants.is_empty() || sum == 100.0 {
        return Ok(());
    }
    Err(invalid(
        "Invalid variant definitions: Variant rollout percentages must sum to 100.",
    ))
}

/// Rule 5: a truthy override must name a defined variant.
fn check_variant_override(group: &Value, variants: &[Variant]) -> ApiResult<()> {
    match group.get("variant") {
        Some(v) if python::truthy(v) => {
            let known = v
                .as_str()
                .is_some_and(|name| variants.iter().any(|d| d.key == name));
            if known {
                Ok(())
            } else {
                Err(invalid(
                    "Filters are not valid (variant override does not exist)",
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Rule 6, per property.
fn check_property_value(p: &Property, ctx: &FilterContext) -> ApiResult<()> {
    if let Value::Array(items) = p.value
        && items.len() > MAX_PROPERTY_VALUES
    {
        return Err(invalid(format!(
            "Property group expressions of type {} cannot contain more than {MAX_PROPERTY_VALUES} values.",
            python::str(p.key)
        )));
    }
    if p.kind == "cohort" {
        check_cohort(p.value, ctx.cohorts)?;
    }
    if matches!(p.operator, Some("is_date_before" | "is_date_after")) && !is_filter_date(p.value) {
        return Err(coded(
            "invalid_date",
            format!("Invalid date value: {}", python::str(p.value)),
        ));
    }
    if let Some(op) = p.operator.filter(|op| STRING_OPERATORS.contains(op))
        && !p.value.is_string()
    {
        return Err(coded(
            "invalid_value",
            format!("Invalid value for operator {op}: {}", python::str(p.value)),
        ));
    }
    if let Some(op) = p.operator.filter(|op| matches!(*op, "in" | "not_in"))
        && p.kind != "cohort"
    {
        return Err(coded(
            "invalid_operator",
            format!(
                "The '{op}' operator is only valid for cohort properties, not '{}' properties.",
                p.kind
            ),
        ));
    }
    Ok(())
}

fn check_cohort(value: &Value, cohorts: &[CohortRef]) -> ApiResult<()> {
    let cohort = integer(value).and_then(|id| cohorts.iter().find(|c| c.id == id));
    match cohort {
        None => Err(coded(
            "cohort_does_not_exist",
            format!("Cohort with id {} does not exist", python::str(value)),
        )),
        Some(c) if c.has_behavioral_filters => Err(coded(
            "behavioral_cohort_found",
            format!(
                "Cohort '{}' with filters on events cannot be used in feature flags.",
                c.name
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Rule 7: payloads must be an object; each value is stored as JSON text.
fn normalised_payloads(map: &Map<String, Value>) -> ApiResult<Option<Map<String, Value>>> {
    let payloads = match map.get("payloads") {
        None => return Ok(None),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(invalid("Payloads must be passed as a dictionary")),
    };
    let mut out = Map::new();
    for (key, value) in payloads {
        let text = match value {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(_) => s.clone(),
                Err(_) => return Err(invalid("Payload value is not valid JSON")),
            },
            other => python::json_dumps(other),
        };
        out.insert(key.clone(), Value::String(text));
    }
    Ok(Some(out))
}

fn check_payload_keys(
    map: &Map<String, Value>,
    payloads: Option<&Map<String, Value>>,
    variants: &[Variant],
) -> ApiResult<()> {
    let Some(payloads) = payloads else {
        return Ok(());
    };
    if map.get("multivariate").is_some_and(python::truthy) {
        if payloads.keys().all(|k| variants.iter().any(|v| v.key == k)) {
            return Ok(());
        }
        return Err(invalid(
            "Payload keys must match a variant key for multivariate flags",
        ));
    }
    if payloads.len() > 1 || payloads.keys().any(|k| k != "true") {
        return Err(invalid("Payload keys must be 'true' for boolean flags"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Checks PostHog's baseline skips (newer strict schema has them).

fn check_recommended(
    map: &Map<String, Value>,
    groups: &[Value],
    variants: &[Variant],
) -> ApiResult<()> {
    check_aggregation_index(map.get("aggregation_group_type_index"))?;
    // PostHog tolerates falsy non-objects (`false`, `[]`); storing them only confuses readers.
    if !matches!(
        map.get("multivariate"),
        None | Some(Value::Null | Value::Object(_))
    ) {
        return Err(invalid("\"multivariate\" must be an object or null."));
    }
    check_conditions("groups", groups)?;
    for name in ["super_groups", "holdout_groups"] {
        match map.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => check_conditions(name, list)?,
            Some(_) => return Err(invalid(format!("\"{name}\" must be a list or null."))),
        }
    }
    variants.iter().try_for_each(check_variant)
}

fn check_aggregation_index(value: Option<&Value>) -> ApiResult<()> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v)
            if v.as_i64()
                .is_some_and(|i| (0..GROUP_TYPES_LIMIT).contains(&i)) =>
        {
            Ok(())
        }
        Some(_) => Err(invalid(format!(
            "aggregation_group_type_index must be null or an integer at least 0 and less than {GROUP_TYPES_LIMIT}."
        ))),
    }
}

/// Shape, rollout and operators of a list of condition sets (`groups`, `super_groups`, ...).
fn check_conditions(name: &str, conditions: &[Value]) -> ApiResult<()> {
    for (index, group) in conditions.iter().enumerate() {
        for prop in properties(group)? {
            check_property_shape(&parse_property(prop)?)?;
        }
        let rollout = group.get("rollout_percentage").unwrap_or(&Value::Null);
        if !is_percentage_or_null(rollout) {
            return Err(invalid(format!(
                "Invalid rollout percentage in {name}[{index}]: must be null or a number from 0 to 100, got {rollout}."
            )));
        }
        match group.get("variant") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid variant override in {name}[{index}]: must be a variant key or null, got {other}."
                )));
            }
        }
    }
    Ok(())
}

fn check_property_shape(p: &Property) -> ApiResult<()> {
    if !p.raw_operator.is_null() && !p.operator.is_some_and(|op| KNOWN_OPERATORS.contains(&op)) {
        return Err(invalid(format!(
            "Unknown property operator {} (property {}).",
            p.raw_operator, p.key
        )));
    }
    let unary = matches!(p.operator, Some("is_set" | "is_not_set"));
    if p.value.is_null() && !unary {
        return Err(invalid(format!(
            "Property {} needs a value: only is_set and is_not_set may leave it out.",
            p.key
        )));
    }
    Ok(())
}

fn check_variant(variant: &Variant) -> ApiResult<()> {
    let key = variant.key;
    let charset_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    if !charset_ok || key.chars().count() > VARIANT_KEY_MAX_CHARS {
        return Err(invalid(format!(
            "Invalid variant key '{key}': use 1 to {VARIANT_KEY_MAX_CHARS} letters, numbers, '_', '.', '/' or '-'."
        )));
    }
    if !is_percentage_or_null(variant.raw_rollout) {
        return Err(invalid(format!(
            "Invalid rollout percentage for variant '{key}': must be a number from 0 to 100."
        )));
    }
    Ok(())
}

fn is_percentage_or_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Number(n) => n.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Flag dependencies (§4.2)

/// The integer id a `type: flag` property references: a number or a string of digits.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ids referenced by `filters`, in order of first appearance; unreadable references are skipped.
/// A superset of what [`dependents`] matches, so an index of these ids finds every dependent.
pub fn reference_ids(filters: &Value) -> Vec<i64> {
    let mut ids = Vec::new();
    for id in Filters::of(filters)
        .flag_dependencies()
        .filter_map(|p| p.get("key").and_then(integer))
    {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Distinct flags one flag's filters may depend on.
pub const MAX_FLAG_DEPENDENCIES: usize = 50;

/// E22–E26. PostHog skips the whole check when the flag has no key yet.
fn check_dependencies(filters: &Value, groups: &[Value], ctx: &FilterContext) -> ApiResult<()> {
    if ctx.flag_key.is_empty() {
        return Ok(());
    }
    let referenced = reference_ids(filters).len();
    if referenced > MAX_FLAG_DEPENDENCIES {
        // Not PostHog's: each dependency is an index item in the flag's one transaction
        // (DynamoDB takes 100 items), and copy_flags carries at most 50 dependencies too.
        return Err(invalid(format!(
            "A feature flag can depend on at most {MAX_FLAG_DEPENDENCIES} other flags; these filters reference {referenced}."
        )));
    }
    let mut dependencies: Vec<&Flag> = Vec::new();
    each_property(groups, |p| {
        if p.kind == "flag" {
            let dependency = referenced_flag(p.key, ctx.project_flags)?;
            if !dependencies.iter().any(|d| d.id == dependency.id) {
                dependencies.push(dependency);
            }
        }
        Ok(())
    })?;
    if dependencies.iter().any(|d| is_self(d, ctx)) {
        return Err(invalid(format!(
            "Feature flag '{}' cannot depend on itself",
            ctx.flag_key
        )));
    }
    match find_cycle(ctx.flag_id, ctx.flag_key, filters, ctx.project_flags) {
        Some(path) => Err(invalid(format!(
            "Circular dependency detected: {}",
            path.join(" → ")
        ))),
        None => Ok(()),
    }
}

/// The live, active flag a dependency property points at (E22, E23, E24).
fn referenced_flag<'f>(key: &Value, flags: &'f [Flag]) -> ApiResult<&'f Flag> {
    let id = integer(key).ok_or_else(|| {
        invalid(format!(
            "Flag dependencies must reference flag IDs (integers), not flag keys. Invalid reference: '{}'",
            python::str(key)
        ))
    })?;
    let flag = flags
        .iter()
        .find(|f| f.id == id && !f.deleted)
        .ok_or_else(|| {
            invalid(format!(
                "Flag dependency references non-existent flag with ID {id}"
            ))
        })?;
    if !flag.active {
        return Err(invalid(format!(
            "Cannot create dependency on disabled flag '{}' (ID: {id}). Flag dependencies must reference active flags only.",
            flag.key
        )));
    }
    Ok(flag)
}

/// On update the flag is known by id; on create only its submitted key can match.
fn is_self(dependency: &Flag, ctx: &FilterContext) -> bool {
    match ctx.flag_id {
        Some(id) => dependency.id == id,
        None => dependency.key == ctx.flag_key,
    }
}

/// `Circular dependency detected: a → b → a` search, also usable by callers.
///
/// Walks dependencies depth-first from the flag being saved, which has `filters` in place of
/// whatever is stored for `flag_id`. Deleted flags and unreadable references are ignored.
/// Returns the key path of the first cycle found, from the first repeated flag back to itself
/// (it starts with `flag_key` whenever the cycle runs through the flag being saved).
pub fn find_cycle(
    flag_id: Option<i64>,
    flag_key: &str,
    filters: &Value,
    flags: &[Flag],
) -> Option<Vec<String>> {
    let graph = DependencyGraph::new(flag_id, flag_key, filters, flags);
    graph.first_cycle().map(|nodes| {
        nodes
            .into_iter()
            .map(|n| graph.keys[n].to_string())
            .collect()
    })
}

/// Node 0 is the flag being saved; the others are the project's live flags.
struct DependencyGraph<'a> {
    keys: Vec<&'a str>,
    edges: Vec<Vec<usize>>,
}

impl<'a> DependencyGraph<'a> {
    fn new(flag_id: Option<i64>, flag_key: &'a str, filters: &Value, flags: &'a [Flag]) -> Self {
        let live: Vec<&Flag> = flags
            .iter()
            .filter(|f| !f.deleted && Some(f.id) != flag_id)
            .collect();
        let mut node_of: HashMap<i64, usize> = HashMap::new();
        if let Some(id) = flag_id {
            node_of.insert(id, 0);
        }
        for (i, f) in live.iter().enumerate() {
            node_of.insert(f.id, i + 1);
        }
        let targets = |ids: Vec<i64>| -> Vec<usize> {
            ids.iter()
                .filter_map(|id| node_of.get(id).copied())
                .collect()
        };
        let mut keys = vec![flag_key];
        let mut edges = vec![targets(reference_ids(filters))];
        for f in &live {
            keys.push(f.key.as_str());
            edges.push(targets(reference_ids(&f.filters)));
        }
        DependencyGraph { keys, edges }
    }

    /// Iterative three-colour DFS from node 0; deep chains cannot overflow the stack.
    fn first_cycle(&self) -> Option<Vec<usize>> {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; self.keys.len()];
        let mut path: Vec<(usize, usize)> = vec![(0, 0)];
        state[0] = ON_PATH;
        while let Some(top) = path.last_mut() {
            let node = top.0;
            let Some(&target) = self.edges[node].get(top.1) else {
                state[node] = DONE;
                path.pop();
                continue;
            };
            top.1 += 1;
            match state[target] {
                ON_PATH => {
                    let start = path.iter().position(|&(n, _)| n == target).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[start..].iter().map(|&(n, _)| n).collect();
                    cycle.push(target);
                    return Some(cycle);
                }
                NEW => {
                    state[target] = ON_PATH;
                    path.push((target, 0));
                }
                _ => {}
            }
        }
        None
    }
}

/// Active, non-deleted flags other than `target_id` whose condition sets hold a `type: flag`
/// property with key `target_id`, sorted by key. Super groups are not inspected (§7).
pub fn dependents(target_id: i64, flags: &[Flag]) -> Vec<&Flag> {
    let mut found: Vec<&Flag> = flags
        .iter()
        .filter(|f| f.active && !f.deleted && f.id != target_id)
        .filter(|f| {
            Filters::of(&f.filters)
                .flag_dependencies()
                .any(|p| names_flag(p.get("key"), target_id))
        })
        .collect();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    found
}

/// PostHog compares the key's JSON text with the id's decimal text.
fn names_flag(key: Option<&Value>, id: i64) -> bool {
    match key {
        Some(Value::String(s)) => *s == id.to_string(),
        Some(Value::Number(n)) => n.as_i64() == Some(id),
        _ => false,
    }
}

/// Disabled, non-deleted flags that `filters` depends on, sorted by key (the E33 guard).
pub fn disabled_dependencies<'f>(filters: &Value, flags: &'f [Flag]) -> Vec<&'f Flag> {
    let ids = reference_ids(filters);
    let mut found: Vec<&Flag> = flags
        .iter()
        .filter(|f| !f.active && !f.deleted && ids.contains(&f.id))
        .collect();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    found
}

/// `key (ID: id), key2 (ID: id2)`, at most `max` of them, then `, and N more`.
pub fn describe_flags(flags: &[&Flag], max: usize) -> String {
    let mut parts: Vec<String> = flags
        .iter()
        .take(max)
        .map(|f| format!("{} (ID: {})", f.key, f.id))
        .collect();
    if flags.len() > max {
        parts.push(format!("and {} more", flags.len() - max));
    }
    parts.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Rule 8 without a person store

/// §4.1 rule 8 done without a person store: regex/not_regex values must compile (use the `regex` crate, RE2-like like ClickHouse);
/// skipped when the filters contain flag dependencies. Error: ApiError::object("Can't evaluate flag - please check release conditions").
pub fn check_evaluable(filters: &Value) -> ApiResult<()> {
    let filters = Filters::of(filters);
    if filters.flag_dependencies().next().is_some() {
        return Ok(());
    }
    let every_property = [
        Section::Groups,
        Section::SuperGroups,
        Section::HoldoutGroups,
    ]
    .into_iter()
    .flat_map(|section| filters.conditions(section))
    .flat_map(ConditionSet::properties);
    for prop in every_property {
        let op = prop.get("operator").and_then(Value::as_str);
        let pattern = prop.get("value").and_then(Value::as_str);
        if let (Some("regex" | "not_regex"), Some(pattern)) = (op, pattern)
            && regex::Regex::new(pattern).is_err()
        {
            return Err(ApiError::object(
                "Can't evaluate flag - please check release conditions",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Python semantics (messages quote values with `python::str`, as PostHog's f-strings do).

/// A number as Python compares it (`True == 1`); anything else never equals an index.
fn py_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserSummary;
    use serde_json::json;

    fn user() -> UserSummary {
        UserSummary {
            id: 1,
            uuid: "u".into(),
            distinct_id: "d".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            email: "a@b.com".into(),
        }
    }

    fn flag(id: i64, key: &str) -> Flag {
        let now = crate::time::parse("2025-01-01T00:00:00Z").unwrap();
        Flag::new(id, 1, key.into(), user(), now)
    }

    /// A flag whose conditions depend on the given flag ids.
    fn depending(id: i64, key: &str, on: &[i64]) -> Flag {
        let mut f = flag(id, key);
        f.filters = json!({"groups": [{"properties": on.iter().map(|d| dep(*d)).collect::<Vec<_>>(), "rollout_percentage": 100}]});
        f
    }

    fn dep(id: i64) -> Value {
        json!({"key": id.to_string(), "type": "flag", "value": true, "operator": "flag_evaluates_to"})
    }

    fn create_ctx<'a>(flags: &'a [Flag], cohorts: &'a [CohortRef]) -> FilterContext<'a> {
        FilterContext {
            is_create: true,
            flag_key: "new-flag",
            flag_id: None,
            linked_to_early_access: false,
            project_flags: flags,
            cohorts,
        }
    }

    fn update_ctx<'a>(id: i64, key: &'a str, flags: &'a [Flag]) -> FilterContext<'a> {
        FilterContext {
            is_create: false,
            flag_key: key,
            flag_id: Some(id),
            linked_to_early_access: false,
            project_flags: flags,
            cohorts: &[],
        }
    }

    fn ok(filters: Value) -> Value {
        validate(&filters, &create_ctx(&[], &[])).unwrap()
    }

    /// `(code, detail, attr)` of the error for a create with no other flags or cohorts.
    fn err(filters: Value) -> (String, String, Option<String>) {
        err_with(filters, &create_ctx(&[], &[]))
    }

    fn err_with(filters: Value, ctx: &FilterContext) -> (String, String, Option<String>) {
        match validate(&filters, ctx) {
            Err(ApiError::Validation { code, detail, attr }) => (code, detail, attr),
            other => panic!("expected a validation error for {filters}, got {other:?}"),
        }
    }

    fn detail(filters: Value) -> String {
        err(filters).1
    }

    fn invalid_input(detail: &str) -> (String, String, Option<String>) {
        (
            "invalid_input".into(),
            detail.into(),
            Some("filters".into()),
        )
    }

    fn group(props: Value) -> Value {
        json!({"groups": [{"properties": props, "rollout_percentage": 50}]})
    }

    fn person(key: &str, operator: &str, value: Value) -> Value {
        json!({"key": key, "type": "person", "operator": operator, "value": value})
    }

    // -- shape of `filters` itself ------------------------------------------------------------

    #[test]
    fn null_filters_is_drf_null_error() {
        assert_eq!(
            err(Value::Null),
            (
                "null".into(),
                "This field may not be null.".into(),
                Some("filters".into())
            )
        );
    }

    #[test]
    fn non_objects_are_not_a_dict_with_python_type_names() {
        for (value, name) in [
            (json!([]), "list"),
            (json!("x"), "str"),
            (json!(1), "int"),
            (json!(1.5), "float"),
            (json!(true), "bool"),
        ] {
            assert_eq!(
                err(value),
                (
                    "not_a_dict".into(),
                    format!("Expected a dictionary of items but got type \"{name}\"."),
                    Some("filters".into())
                )
            );
        }
    }

    // -- rule 2 ---------------------------------------------------------------------------------

    #[test]
    fn e6_create_needs_a_group() {
        for filters in [
            json!({}),
            json!({"groups": []}),
            json!({"groups": null}),
            json!({"groups": {}}),
            json!({"payloads": {}}),
        ] {
            assert_eq!(
                err(filters),
                invalid_input("Feature flags must have at least one condition set (group).")
            );
        }
    }

    #[test]
    fn update_may_clear_groups_but_must_send_a_list() {
        let ctx = update_ctx(1, "k", &[]);
        assert_eq!(
            validate(&json!({"groups": []}), &ctx).unwrap(),
            json!({"groups": []})
        );
        for filters in [json!({}), json!({"groups": null}), json!({"groups": "x"})] {
            let (code, detail, attr) = err_with(filters, &ctx);
            assert_eq!(
                (code.as_str(), attr.as_deref()),
                ("invalid_input", Some("filters"))
            );
            assert!(detail.contains("groups"), "{detail}");
        }
    }

    #[test]
    fn valid_filters_are_returned_unchanged() {
        let filters = json!({
            "groups": [
                {"properties": [person("email", "icontains", json!("@x.com"))], "rollout_percentage": 30, "variant": null},
                {"properties": [], "rollout_percentage": null, "description": "kept"}
            ],
            "multivariate": null,
            "aggregation_group_type_index": null,
            "super_groups": [{"properties": [{"key": "$feature_enrollment/k", "type": "person", "operator": "exact", "value": ["true"]}], "rollout_percentage": 100}],
            "unknown_extra": {"kept": true}
        });
        assert_eq!(ok(filters.clone()), filters);
    }

    // -- rule 3 ---------------------------------------------------------------------------------

    #[test]
    fn e7_person_flags_use_person_cohort_and_flag_properties() {
        let e7 = invalid_input(
            "Filters are not valid (can only use person, cohort, and flag properties)",
        );
        for prop in [
            json!({"key": "$browser", "type": "event", "value": "Chrome"}),
            json!({"key": "$browser", "value": "Chrome"}),
            json!({"key": "name", "type": "group", "group_type_index": 0, "value": "x"}),
            json!({"key": "x", "type": 5, "value": "x"}),
            json!({"key": "x", "type": "whatever", "value": "x"}),
        ] {
            assert_eq!(err(group(json!([prop]))), e7);
        }
    }

    #[test]
    fn e8_group_flags_use_group_properties_of_their_index() {
        let e8 = invalid_input("Filters are not valid (can only use group properties)");
        let filters = |prop: Value| json!({"aggregation_group_type_index": 0, "groups": [{"properties": [prop], "rollout_percentage": 50}]});
        for prop in [
            person("email", "exact", json!("a")),
            json!({"key": "name", "type": "group", "group_type_index": 1, "value": "x"}),
            json!({"key": "name", "type": "group", "value": "x"}),
            dep(3),
        ] {
            assert_eq!(err(filters(prop)), e8);
        }
        let same = json!({"key": "name", "type": "group", "group_type_index": "0", "value": "x", "operator": "exact"});
        ok(filters(same));
    }

    #[test]
    fn group_type_index_out_of_range_uses_posthog_message() {
        let prop = json!({"key": "name", "type": "group", "group_type_index": 9, "value": "x"});
        let filters =
            json!({"aggregation_group_type_index": 0, "groups": [{"properties": [prop]}]});
        assert_eq!(
            err(filters),
            invalid_input("group_type_index is required to be at least 0 and less than 5")
        );
    }

    #[test]
    fn e9_flag_properties_use_flag_evaluates_to() {
        let flags = [flag(3, "other")];
        let ctx = create_ctx(&flags, &[]);
        for op in [json!("exact"), Value::Null] {
            let prop = json!({"key": "3", "type": "flag", "value": true, "operator": op});
            assert_eq!(
                err_with(group(json!([prop])), &ctx),
                invalid_input("Flag properties must use the 'flag_evaluates_to' operator")
            );
        }
    }

    #[test]
    fn e7_is_reported_before_e9() {
        let props = json!([
            {"key": "3", "type": "flag", "value": true, "operator": "exact"},
            {"key": "x", "type": "event", "value": "y"}
        ]);
        assert!(detail(group(props)).starts_with("Filters are not valid (can only use person"));
    }

    #[test]
    fn e27_group_based_while_linked_to_early_access() {
        let flags = [flag(1, "k")];
        let mut ctx = update_ctx(1, "k", &flags);
        ctx.linked_to_early_access = true;
        let filters = json!({"aggregation_group_type_index": 0, "groups": [{"properties": [], "rollout_percentage": 100}]});
        assert_eq!(
            err_with(filters.clone(), &ctx),
            invalid_input(
                "Cannot change this flag to a group-based when linked to an Early Access Feature."
            )
        );
        // Person-based filters are fine for a linked flag, and a create is never linked yet.
        validate(&json!({"groups": []}), &ctx).unwrap();
        let mut create = create_ctx(&flags, &[]);
        create.linked_to_early_access = true;
        validate(&filters, &create).unwrap();
    }

    // -- rules 4 and 5 -------------------------------------------------------------------------

    fn multivariate(variants: Value) -> Value {
        json!({"groups": [{"properties": [], "rollout_percentage": 100}], "multivariate": {"variants": variants}})
    }

    #[test]
    fn e10_variants_must_sum_to_100() {
        let e10 = invalid_input(
            "Invalid variant definitions: Variant rollout percentages must sum to 100.",
        );
        assert_eq!(
            err(multivariate(
                json!([{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 49}])
            )),
            e10
        );
        // A missing percentage counts as 0.
        assert_eq!(
            err(multivariate(
                json!([{"key": "a", "rollout_percentage": 100}, {"key": "b"}, {"key": "c", "rollout_percentage": 1}])
            )),
            e10
        );
        ok(multivariate(
            json!([{"key": "a", "rollout_percentage": 100}, {"key": "b"}]),
        ));
        ok(multivariate(
            json!([{"key": "a", "rollout_percentage": 33.3}, {"key": "b", "rollout_percentage": 33.3}, {"key": "c", "rollout_percentage": 33.4}]),
        ));
        // No variants is a boolean flag.
        ok(multivariate(json!([])));
    }

    #[test]
    fn e11_override_must_be_a_defined_variant() {
        let e11 = invalid_input("Filters are not valid (variant override does not exist)");
        let mut filters = multivariate(json!([{"key": "a", "rollout_percentage": 100}]));
        filters["groups"][0]["variant"] = json!("b");
        assert_eq!(err(filters.clone()), e11);
        filters["groups"][0]["variant"] = json!("a");
        ok(filters.clone());
        filters["groups"][0]["variant"] = json!(5);
        assert_eq!(err(filters), e11);
        let boolean = json!({"groups": [{"properties": [], "variant": "a"}]});
        assert_eq!(err(boolean), e11);
    }

    #[test]
    fn e10_comes_before_e11_and_e11_before_later_groups() {
        let mut filters = multivariate(json!([{"key": "a", "rollout_percentage": 10}]));
        filters["groups"][0]["variant"] = json!("zzz");
        assert!(detail(filters).starts_with("Invalid variant definitions"));
        let filters = json!({"groups": [
            {"properties": [person("e", "icontains", json!(1))]},
            {"properties": [], "variant": "nope"}
        ]});
        assert!(detail(filters).starts_with("Invalid value for operator"));
    }

    // -- rule 6 ---------------------------------------------------------------------------------

    #[test]
    fn e12_too_many_values() {
        let many: Vec<Value> = (0..=MAX_PROPERTY_VALUES)
            .map(|i| json!(i.to_string()))
            .collect();
        assert_eq!(
            err(group(json!([person("email", "exact", json!(many))]))),
            invalid_input(
                "Property group expressions of type email cannot contain more than 1000 values."
            )
        );
        let enough: Vec<Value> = (0..MAX_PROPERTY_VALUES).map(|i| json!(i)).collect();
        ok(group(json!([person("email", "exact", json!(enough))])));
    }

    fn cohort_prop(value: Value) -> Value {
        json!([{"key": "id", "type": "cohort", "value": value}])
    }

    #[test]
    fn e13_cohort_must_exist() {
        let cohorts = [CohortRef {
            id: 5,
            name: "Fine".into(),
            has_behavioral_filters: false,
        }];
        let ctx = create_ctx(&[], &cohorts);
        validate(&group(cohort_prop(json!(5))), &ctx).unwrap();
        validate(&group(cohort_prop(json!("5"))), &ctx).unwrap();
        for (value, shown) in [(json!(6), "6"), (json!("abc"), "abc"), (json!([5]), "[5]")] {
            assert_eq!(
                err_with(group(cohort_prop(value)), &ctx),
                (
                    "cohort_does_not_exist".into(),
                    format!("Cohort with id {shown} does not exist"),
                    Some("filters".into())
                )
            );
        }
        // Without cohorts every reference fails.
        assert_eq!(err(group(cohort_prop(json!(5)))).0, "cohort_does_not_exist");
    }

    #[test]
    fn e14_behavioural_cohorts_are_rejected() {
        let cohorts = [CohortRef {
            id: 5,
            name: "Did things".into(),
            has_behavioral_filters: true,
        }];
        assert_eq!(
            err_with(group(cohort_prop(json!(5))), &create_ctx(&[], &cohorts)),
            (
                "behavioral_cohort_found".into(),
                "Cohort 'Did things' with filters on events cannot be used in feature flags."
                    .into(),
                Some("filters".into())
            )
        );
    }

    #[test]
    fn e15_dates_must_parse() {
        for good in [
            "-30d",
            "30d",
            "-10m",
            "12h",
            "2w",
            "1y",
            "9999d",
            "2024-01-01",
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00.123+02:00",
            "2024-01-01 10:00:00",
            "2024-01-01 10:00",
            "2024/01/31",
            "20240131",
            "January 5, 2024",
            "5 Jan 2024",
            "Fri, 05 Jan 2024 10:00:00 +0000",
        ] {
            for op in ["is_date_before", "is_date_after"] {
                ok(group(json!([person("signup", op, json!(good))])));
            }
        }
        for (bad, shown) in [
            (json!("not a date"), "not a date"),
            (json!("10000d"), "10000d"),
            (json!("5s"), "5s"),
            (json!("-d"), "-d"),
            (json!(""), ""),
            (json!(["2024-01-01"]), "['2024-01-01']"),
        ] {
            assert_eq!(
                err(group(json!([person("signup", "is_date_before", bad)]))),
                (
                    "invalid_date".into(),
                    format!("Invalid date value: {shown}"),
                    Some("filters".into())
                )
            );
        }
        // Only the before/after operators parse their value.
        ok(group(json!([person(
            "signup",
            "is_date_exact",
            json!("whenever")
        )])));
    }

    #[test]
    fn validation_accepts_exactly_the_dates_the_engine_reads() {
        use super::super::dates::parse_absolute;
        // One sample per shape of the list. The space-separated offsets (`… 10:00:00+0200`) were
        // refused on save while the lists were two, though both PostHog parsers read them.
        for sample in [
            "2024-01-01T10:00:00+02:00",
            "2024-01-01",
            "2024-01-01 10:00:00.5",
            "2024-01-01T10:00:00",
            "2024-01-01 10:00",
            "2024-01-01T10:00",
            "Fri, 05 Jan 2024 10:00:00 +0000",
            "2024-01-01T10:00:00.5+0200",
            "2024-01-01 10:00:00+0200",
            "2024-01-01 10:00:00.5 +0200",
            "2024/01/31 10:00:00",
            "2024/01/31 10:00",
            "2024/01/31",
            "20240131",
            "January 5, 2024",
            "Jan 5, 2024",
            "5 January 2024",
            "5 Jan 2024",
        ] {
            assert!(parse_absolute(sample).is_some(), "{sample}");
            ok(group(json!([person(
                "signup",
                "is_date_after",
                json!(sample)
            )])));
        }
        for unreadable in ["not a date", "2024-13-01", "01/31/2024", "10000d"] {
            assert!(parse_absolute(unreadable).is_none(), "{unreadable}");
            let bad = group(json!([person(
                "signup",
                "is_date_after",
                json!(unreadable)
            )]));
            assert_eq!(err(bad).0, "invalid_date", "{unreadable}");
        }
        // The real difference, kept: the serializer reads `str(value)`, the engine only strings.
        ok(group(json!([person(
            "signup",
            "is_date_before",
            json!(20240131)
        )])));
    }

    #[test]
    fn e16_string_operators_need_strings_shown_as_python_repr() {
        for (op, value, shown) in [
            ("icontains", json!(["@posthog.com"]), "['@posthog.com']"),
            ("gt", json!(1), "1"),
            ("regex", json!(true), "True"),
            ("lt", Value::Null, "None"),
            ("not_regex", json!({"a": 1}), "{'a': 1}"),
            ("gte", json!(1.5), "1.5"),
            ("lte", json!([1, "it's"]), "[1, \"it's\"]"),
            ("not_icontains", json!(false), "False"),
        ] {
            assert_eq!(
                err(group(json!([person("email", op, value)]))),
                (
                    "invalid_value".into(),
                    format!("Invalid value for operator {op}: {shown}"),
                    Some("filters".into())
                )
            );
        }
        ok(group(json!([person("age", "gt", json!("18"))])));
    }

    #[test]
    fn e17_in_operators_only_for_cohorts() {
        for op in ["in", "not_in"] {
            assert_eq!(
                err(group(json!([person("email", op, json!("x"))]))),
                (
                    "invalid_operator".into(),
                    format!(
                        "The '{op}' operator is only valid for cohort properties, not 'person' properties."
                    ),
                    Some("filters".into())
                )
            );
        }
        let cohorts = [CohortRef {
            id: 5,
            name: "c".into(),
            has_behavioral_filters: false,
        }];
        let prop = json!([{"key": "id", "type": "cohort", "value": 5, "operator": "not_in"}]);
        validate(&group(prop), &create_ctx(&[], &cohorts)).unwrap();
    }

    // -- rule 7 ---------------------------------------------------------------------------------

    fn with_payloads(payloads: Value) -> Value {
        json!({"groups": [{"properties": []}], "payloads": payloads})
    }

    #[test]
    fn e18_payloads_must_be_an_object() {
        for payloads in [json!([]), Value::Null, json!("{}"), json!(1)] {
            assert_eq!(
                err(with_payloads(payloads)),
                invalid_input("Payloads must be passed as a dictionary")
            );
        }
    }

    #[test]
    fn e19_payload_strings_must_be_json() {
        for bad in ["{invalid}", "", "NaN", "[1,", "plain text"] {
            assert_eq!(
                err(with_payloads(json!({"true": bad}))),
                invalid_input("Payload value is not valid JSON")
            );
        }
    }

    #[test]
    fn payload_values_are_stored_as_json_text() {
        let out = ok(with_payloads(
            json!({"true": {"a": 1, "b": [1, 2.0], "c": "é\"\n", "d": null, "e": "😀"}}),
        ));
        assert_eq!(
            out["payloads"]["true"],
            r#"{"a": 1, "b": [1, 2.0], "c": "\u00e9\"\n", "d": null, "e": "\ud83d\ude00"}"#
        );
        for (value, text) in [
            (json!("{\"x\": 1}"), "{\"x\": 1}"),
            (json!(" \"quoted\" "), " \"quoted\" "),
            (json!(5), "5"),
            (json!(1.5), "1.5"),
            (json!(true), "true"),
            (json!([1, "a"]), "[1, \"a\"]"),
            (Value::Null, "null"),
            (json!(1e16), "1e+16"),
        ] {
            let out = ok(with_payloads(json!({ "true": value })));
            assert_eq!(out["payloads"]["true"], text);
            let _: Value = serde_json::from_str(text).unwrap();
        }
        // No payloads in, none added.
        assert!(
            ok(json!({"groups": [{"properties": []}]}))
                .get("payloads")
                .is_none()
        );
        assert_eq!(ok(with_payloads(json!({})))["payloads"], json!({}));
    }

    #[test]
    fn e20_multivariate_payload_keys_are_variant_keys() {
        let mut filters = multivariate(
            json!([{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]),
        );
        filters["payloads"] = json!({"a": "1", "b": {"x": 1}});
        let out = ok(filters.clone());
        assert_eq!(out["payloads"], json!({"a": "1", "b": "{\"x\": 1}"}));
        filters["payloads"] = json!({"c": "1"});
        assert_eq!(
            err(filters.clone()),
            invalid_input("Payload keys must match a variant key for multivariate flags")
        );
        filters["payloads"] = json!({"true": "1"});
        assert_eq!(
            err(filters),
            invalid_input("Payload keys must match a variant key for multivariate flags")
        );
    }

    #[test]
    fn e21_boolean_payload_key_is_true() {
        ok(with_payloads(json!({"true": "1"})));
        for payloads in [json!({"false": "1"}), json!({"true": "1", "other": "2"})] {
            assert_eq!(
                err(with_payloads(payloads)),
                invalid_input("Payload keys must be 'true' for boolean flags")
            );
        }
        // An empty multivariate object is a boolean flag.
        let mut filters = with_payloads(json!({"a": "1"}));
        filters["multivariate"] = json!({});
        assert_eq!(
            err(filters),
            invalid_input("Payload keys must be 'true' for boolean flags")
        );
    }

    #[test]
    fn property_errors_come_before_payload_errors() {
        let mut filters = group(json!([person("e", "regex", json!(1))]));
        filters["payloads"] = json!([]);
        assert!(detail(filters).starts_with("Invalid value for operator"));
    }

    // -- §4.2 dependencies ----------------------------------------------------------------------

    #[test]
    fn e22_dependencies_reference_ids() {
        for (key, shown) in [
            (json!("some-flag"), "some-flag"),
            (json!("1.5"), "1.5"),
            (json!(""), ""),
            (json!(true), "True"),
            (json!([1]), "[1]"),
        ] {
            let prop =
                json!({"key": key, "type": "flag", "value": true, "operator": "flag_evaluates_to"});
            assert_eq!(
                err(group(json!([prop]))),
                invalid_input(&format!(
                    "Flag dependencies must reference flag IDs (integers), not flag keys. Invalid reference: '{shown}'"
                ))
            );
        }
    }

    #[test]
    fn dependencies_accept_numbers_and_digit_strings() {
        let flags = [flag(7, "seven")];
        let ctx = create_ctx(&flags, &[]);
        for key in [json!(7), json!("7"), json!(" 7 "), json!(7.0)] {
            let prop =
                json!({"key": key, "type": "flag", "value": true, "operator": "flag_evaluates_to"});
            validate(&group(json!([prop])), &ctx).unwrap();
        }
    }

    #[test]
    fn e23_dependency_must_exist_and_be_live() {
        let mut gone = flag(8, "gone");
        gone.deleted = true;
        let flags = [gone];
        let ctx = create_ctx(&flags, &[]);
        for id in [8, 999] {
            assert_eq!(
                err_with(group(json!([dep(id)])), &ctx),
                invalid_input(&format!(
                    "Flag dependency references non-existent flag with ID {id}"
                ))
            );
        }
    }

    #[test]
    fn e24_dependency_must_be_active() {
        let mut off = flag(9, "off-flag");
        off.active = false;
        let flags = [off];
        assert_eq!(
            err_with(group(json!([dep(9)])), &create_ctx(&flags, &[])),
            invalid_input(
                "Cannot create dependency on disabled flag 'off-flag' (ID: 9). Flag dependencies must reference active flags only."
            )
        );
    }

    #[test]
    fn e25_self_dependency_on_update_by_id() {
        let flags = [flag(1, "me"), flag(2, "other")];
        assert_eq!(
            err_with(group(json!([dep(2), dep(1)])), &update_ctx(1, "me", &flags)),
            invalid_input("Feature flag 'me' cannot depend on itself")
        );
    }

    #[test]
    fn e25_self_dependency_on_create_by_submitted_key() {
        let flags = [flag(4, "new-flag")];
        assert_eq!(
            err_with(group(json!([dep(4)])), &create_ctx(&flags, &[])),
            invalid_input("Feature flag 'new-flag' cannot depend on itself")
        );
    }

    #[test]
    fn e26_spec_example_cycle() {
        // flag_c → flag_b → flag_a; now flag_a wants flag_c.
        let flags = [
            flag(1, "flag_a"),
            depending(2, "flag_b", &[1]),
            depending(3, "flag_c", &[2]),
        ];
        assert_eq!(
            err_with(group(json!([dep(3)])), &update_ctx(1, "flag_a", &flags)),
            invalid_input("Circular dependency detected: flag_a → flag_c → flag_b → flag_a")
        );
    }

    #[test]
    fn cycle_search_uses_the_new_filters_and_skips_deleted_flags() {
        // Stored flag_a → flag_b → flag_a is replaced by flag_a → flag_c.
        let mut deleted = depending(4, "deleted", &[1]);
        deleted.deleted = true;
        let flags = [
            depending(1, "flag_a", &[2]),
            depending(2, "flag_b", &[1]),
            flag(3, "flag_c"),
            deleted,
        ];
        let ctx = update_ctx(1, "flag_a", &flags);
        validate(&group(json!([dep(3)])), &ctx).unwrap();
        // A path through a deleted flag is no cycle either.
        let mut via_deleted = depending(5, "flag_d", &[4]);
        via_deleted.active = true;
        let mut flags = flags.to_vec();
        flags.push(via_deleted);
        validate(&group(json!([dep(5)])), &update_ctx(1, "flag_a", &flags)).unwrap();
    }

    #[test]
    fn cycles_elsewhere_are_reported_from_their_first_repeated_flag() {
        let flags = [depending(2, "b", &[3]), depending(3, "c", &[2])];
        assert_eq!(
            err_with(group(json!([dep(2)])), &create_ctx(&flags, &[])),
            invalid_input("Circular dependency detected: b → c → b")
        );
    }

    #[test]
    fn diamonds_are_not_cycles() {
        let flags = [
            flag(1, "base"),
            depending(2, "left", &[1]),
            depending(3, "right", &[1]),
            depending(4, "top", &[2, 3]),
        ];
        validate(&group(json!([dep(4), dep(1)])), &create_ctx(&flags, &[])).unwrap();
    }

    #[test]
    fn long_dependency_chains_do_not_overflow() {
        let mut flags = vec![flag(1, "f1")];
        for id in 2..=5000 {
            flags.push(depending(id, &format!("f{id}"), &[id - 1]));
        }
        validate(&group(json!([dep(5000)])), &create_ctx(&flags, &[])).unwrap();
        let path = find_cycle(Some(1), "f1", &group(json!([dep(5000)])), &flags).unwrap();
        assert_eq!(path.len(), 5001);
        assert_eq!(path.first().map(String::as_str), Some("f1"));
        assert_eq!(path.last().map(String::as_str), Some("f1"));
    }

    #[test]
    fn dependency_checks_are_skipped_without_a_key() {
        let mut ctx = create_ctx(&[], &[]);
        ctx.flag_key = "";
        validate(&group(json!([dep(999)])), &ctx).unwrap();
    }

    #[test]
    fn find_cycle_is_none_without_dependencies() {
        assert_eq!(find_cycle(None, "x", &json!({}), &[]), None);
        assert_eq!(
            find_cycle(Some(1), "x", &json!({"groups": "odd"}), &[]),
            None
        );
    }

    // -- dependents and descriptions -----------------------------------------------------------

    #[test]
    fn dependents_are_active_live_others_sorted_by_key() {
        let mut off = depending(5, "a-off", &[1]);
        off.active = false;
        let mut gone = depending(6, "a-gone", &[1]);
        gone.deleted = true;
        let mut numeric = flag(7, "b-numeric");
        numeric.filters = json!({"groups": [{"properties": [{"key": 1, "type": "flag", "value": true, "operator": "flag_evaluates_to"}]}]});
        let mut padded = flag(8, "c-padded");
        padded.filters =
            json!({"groups": [{"properties": [{"key": " 1", "type": "flag", "value": true}]}]});
        let mut super_only = flag(9, "d-super");
        super_only.filters = json!({"groups": [], "super_groups": [{"properties": [dep(1)]}]});
        let flags = vec![
            depending(1, "target", &[1]),
            depending(3, "z-child", &[1]),
            depending(2, "m-child", &[4, 1]),
            depending(4, "unrelated", &[2]),
            off,
            gone,
            numeric,
            padded,
            super_only,
        ];
        let found: Vec<&str> = dependents(1, &flags)
            .iter()
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(found, ["b-numeric", "m-child", "z-child"]);
    }

    #[test]
    fn describe_flags_lists_at_most_max() {
        let flags: Vec<Flag> = (1..=7).map(|i| flag(i, &format!("k{i}"))).collect();
        let refs: Vec<&Flag> = flags.iter().collect();
        assert_eq!(describe_flags(&refs[..1], 5), "k1 (ID: 1)");
        assert_eq!(
            describe_flags(&refs[..5], 5),
            "k1 (ID: 1), k2 (ID: 2), k3 (ID: 3), k4 (ID: 4), k5 (ID: 5)"
        );
        assert_eq!(
            describe_flags(&refs, 5),
            "k1 (ID: 1), k2 (ID: 2), k3 (ID: 3), k4 (ID: 4), k5 (ID: 5), and 2 more"
        );
        assert_eq!(
            describe_flags(&refs[..4], 3),
            "k1 (ID: 1), k2 (ID: 2), k3 (ID: 3), and 1 more"
        );
        assert_eq!(describe_flags(&[], 5), "");
    }

    #[test]
    fn disabled_dependencies_sorted_by_key() {
        let mut b = flag(2, "b-off");
        b.active = false;
        let mut a = flag(3, "a-off");
        a.active = false;
        let mut gone = flag(4, "gone");
        gone.active = false;
        gone.deleted = true;
        let flags = [flag(1, "on"), b, a, gone];
        let filters = group(json!([dep(1), dep(2), dep(3), dep(4)]));
        let found: Vec<&str> = disabled_dependencies(&filters, &flags)
            .iter()
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(found, ["a-off", "b-off"]);
    }

    // -- rule 8 ---------------------------------------------------------------------------------

    #[test]
    fn e28_invalid_regex_cannot_be_evaluated() {
        let e28 = Err(ApiError::object(
            "Can't evaluate flag - please check release conditions",
        ));
        for pattern in ["(", "[a-", "?*", "(?=x)"] {
            let filters = group(json!([person("email", "regex", json!(pattern))]));
            assert_eq!(check_evaluable(&filters), e28, "{pattern}");
            let negated = group(json!([person("email", "not_regex", json!(pattern))]));
            assert_eq!(check_evaluable(&negated), e28);
        }
        let in_super = json!({"groups": [], "super_groups": [{"properties": [person("e", "regex", json!("("))]}]});
        assert_eq!(check_evaluable(&in_super), e28);
        let body = ApiError::object("x").body().unwrap();
        assert_eq!(body["attr"], Value::Null);
    }

    #[test]
    fn evaluable_filters_pass() {
        for pattern in ["^.*@posthog\\.com$", "", "a|b", "(?i)abc"] {
            let filters = group(json!([person("email", "regex", json!(pattern))]));
            assert_eq!(check_evaluable(&filters), Ok(()));
        }
        assert_eq!(check_evaluable(&json!({})), Ok(()));
        assert_eq!(check_evaluable(&json!([])), Ok(()));
        // Non-regex operators are not compiled.
        let filters = group(json!([person("email", "icontains", json!("("))]));
        assert_eq!(check_evaluable(&filters), Ok(()));
    }

    #[test]
    fn evaluability_is_skipped_with_flag_dependencies() {
        let filters = group(json!([person("email", "regex", json!("(")), dep(3)]));
        assert_eq!(check_evaluable(&filters), Ok(()));
    }

    // -- recommended checks --------------------------------------------------------------------

    fn recommended_error(filters: Value) -> String {
        let (code, detail, attr) = err(filters);
        assert_eq!(
            (code.as_str(), attr.as_deref()),
            ("invalid_input", Some("filters"))
        );
        detail
    }

    #[test]
    fn rollout_percentages_are_null_or_0_to_100() {
        for bad in [json!(101), json!(-1), json!("50"), json!(true), json!([])] {
            let filters = json!({"groups": [{"properties": [], "rollout_percentage": bad}]});
            assert!(recommended_error(filters).contains("rollout percentage"));
        }
        for good in [json!(0), json!(100), json!(33.3), Value::Null] {
            ok(json!({"groups": [{"properties": [], "rollout_percentage": good}]}));
        }
        ok(json!({"groups": [{"properties": []}]}));
    }

    #[test]
    fn super_and_holdout_groups_are_checked_too() {
        for name in ["super_groups", "holdout_groups"] {
            let mut filters = json!({"groups": [{"properties": []}]});
            filters[name] = json!([{"properties": [], "rollout_percentage": 120}]);
            assert!(recommended_error(filters.clone()).contains(name));
            filters[name] = json!("x");
            assert!(recommended_error(filters.clone()).contains(name));
            filters[name] = json!([1]);
            recommended_error(filters.clone());
            filters[name] = Value::Null;
            ok(filters);
        }
    }

    #[test]
    fn variant_percentages_and_keys() {
        let bad_rollout = multivariate(
            json!([{"key": "a", "rollout_percentage": 150}, {"key": "b", "rollout_percentage": -50}]),
        );
        assert!(recommended_error(bad_rollout).contains("variant 'a'"));
        let typed = multivariate(json!([{"key": "a", "rollout_percentage": "100"}]));
        assert!(recommended_error(typed).contains("variant 'a'"));
        // Null counts as 0 like a missing percentage.
        ok(multivariate(
            json!([{"key": "a", "rollout_percentage": 100}, {"key": "b", "rollout_percentage": null}]),
        ));
        for bad_key in ["has space", "", "ü", &"k".repeat(401)] {
            let filters = multivariate(json!([{"key": bad_key, "rollout_percentage": 100}]));
            assert!(recommended_error(filters).contains("variant key"));
        }
        ok(multivariate(
            json!([{"key": "v1.2/beta_A-b", "rollout_percentage": 100}]),
        ));
        ok(multivariate(
            json!([{"key": "k".repeat(400), "rollout_percentage": 100}]),
        ));
        for bad in [
            json!([{"rollout_percentage": 100}]),
            json!([{"key": 1}]),
            json!(["a"]),
            json!("a"),
        ] {
            recommended_error(multivariate(bad));
        }
        for bad in [json!("x"), json!([1]), json!(false), json!([]), json!(0)] {
            recommended_error(json!({"groups": [{"properties": []}], "multivariate": bad}));
        }
    }

    #[test]
    fn operators_must_be_known() {
        for op in [json!("equals"), json!(5), json!("")] {
            let prop = json!({"key": "email", "type": "person", "value": "x", "operator": op});
            assert!(recommended_error(group(json!([prop]))).contains("operator"));
        }
        for op in KNOWN_OPERATORS.iter().filter(|op| {
            !matches!(
                **op,
                "in" | "not_in" | "flag_evaluates_to" | "is_date_before" | "is_date_after"
            )
        }) {
            ok(group(json!([person("email", op, json!("1"))])));
        }
        ok(group(
            json!([{"key": "email", "type": "person", "value": "x"}]),
        ));
    }

    #[test]
    fn properties_need_a_key_and_usually_a_value() {
        for prop in [
            json!({"type": "person", "value": "x"}),
            json!({"key": null, "type": "person", "value": "x"}),
            json!({"key": 5, "type": "person", "value": "x"}),
            json!("email"),
            json!(null),
            json!([]),
        ] {
            recommended_error(group(json!([prop])));
        }
        let valueless = json!({"key": "email", "type": "person", "operator": "exact"});
        assert!(recommended_error(group(json!([valueless]))).contains("value"));
        for op in ["is_set", "is_not_set"] {
            ok(group(
                json!([{"key": "email", "type": "person", "operator": op}]),
            ));
        }
    }

    #[test]
    fn groups_and_properties_must_be_lists_of_objects() {
        for filters in [
            json!({"groups": [1]}),
            json!({"groups": [null]}),
            json!({"groups": ["x"]}),
            json!({"groups": [{"properties": "x"}]}),
            json!({"groups": [{"properties": null}]}),
            json!({"groups": [{"properties": {}}]}),
            json!({"groups": "x"}),
        ] {
            recommended_error(filters);
        }
    }

    #[test]
    fn aggregation_index_and_override_types() {
        for agg in [json!(7), json!(-1), json!("0"), json!(1.5), json!(true)] {
            let filters =
                json!({"aggregation_group_type_index": agg, "groups": [{"properties": []}]});
            assert!(recommended_error(filters).contains("aggregation_group_type_index"));
        }
        ok(json!({"aggregation_group_type_index": 4, "groups": [{"properties": []}]}));
        for falsy in [json!(false), json!(0), json!([])] {
            let filters = json!({"groups": [{"properties": [], "variant": falsy}]});
            assert!(recommended_error(filters).contains("variant override"));
        }
        ok(json!({"groups": [{"properties": [], "variant": ""}]}));
    }

    #[test]
    fn posthog_errors_win_over_recommended_ones() {
        let filters = json!({
            "groups": [{"properties": [], "rollout_percentage": 150}],
            "payloads": {"false": "1"}
        });
        assert_eq!(
            detail(filters),
            "Payload keys must be 'true' for boolean flags"
        );
        let unknown_op_and_type =
            group(json!([{"key": "x", "type": "event", "value": 1, "operator": "nope"}]));
        assert!(detail(unknown_op_and_type).starts_with("Filters are not valid"));
    }

    // -- never panic ------------------------------------------------------------------------------

    fn odd_values() -> Vec<Value> {
        vec![
            Value::Null,
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!(u64::MAX),
            json!(""),
            json!("x"),
            json!("1"),
            json!([]),
            json!([null]),
            json!([1, "a", {}]),
            json!({}),
            json!({"a": null}),
        ]
    }

    #[test]
    fn odd_shapes_never_panic_and_fail_as_filters_errors() {
        let mut cases = Vec::new();
        for odd in odd_values() {
            cases.push(odd.clone());
            for top in [
                "groups",
                "multivariate",
                "payloads",
                "aggregation_group_type_index",
                "super_groups",
                "holdout_groups",
            ] {
                let mut base = json!({"groups": [{"properties": []}]});
                base[top] = odd.clone();
                cases.push(base);
            }
            for field in ["properties", "rollout_percentage", "variant"] {
                let mut g = json!({"properties": []});
                g[field] = odd.clone();
                cases.push(json!({"groups": [g]}));
                cases.push(json!({"groups": [{"properties": []}], "super_groups": [g]}));
            }
            for field in ["key", "type", "operator", "value", "group_type_index"] {
                for kind in ["person", "cohort", "flag", "group"] {
                    let mut p = json!({"key": "k", "type": kind, "operator": "exact", "value": "v", "group_type_index": 0});
                    p[field] = odd.clone();
                    cases.push(group(json!([p.clone()])));
                    cases.push(
                        json!({"aggregation_group_type_index": 0, "groups": [{"properties": [p]}]}),
                    );
                }
            }
            for field in ["key", "rollout_percentage"] {
                let mut v = json!({"key": "a", "rollout_percentage": 100});
                v[field] = odd.clone();
                cases.push(multivariate(json!([v])));
            }
            cases.push(multivariate(odd.clone()));
            cases.push(with_payloads(json!({ "true": odd.clone() })));
        }
        let flags = [flag(1, "one"), depending(2, "two", &[1])];
        for filters in cases {
            for ctx in [create_ctx(&flags, &[]), update_ctx(1, "one", &flags)] {
                if let Err(e) = validate(&filters, &ctx) {
                    let body = e.body().unwrap();
                    assert_eq!(e.status(), 400, "{filters}");
                    assert_eq!(body["attr"], "filters", "{filters}: {body}");
                }
            }
            let _ = check_evaluable(&filters);
            let _ = find_cycle(None, "x", &filters, &flags);
        }
    }
}
