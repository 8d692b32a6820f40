//! Property filters and their operators with PostHog's server semantics (evaluation-rules.md §2.4),
//! except semver, which follows posthog-python (see `versions`).
//!
//! A filter is prepared once per flag definition (lowercased values, parsed numbers, dates and
//! versions, compiled regexes) and then matched against many people. Matching never fails: the
//! server turns every matching error into "no match" (`unwrap_or(false)`), and so do we.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::dates::{self, RelativeDate};
use super::versions::{self, Version};

/// The server's regex step budget: a pathological pattern gives up (no match) instead of
/// burning the request.
const REGEX_BACKTRACK_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Exact,
    IsNot,
    Icontains,
    NotIcontains,
    IcontainsMulti,
    NotIcontainsMulti,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Regex,
    NotRegex,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    NotBetween,
    IsSet,
    IsNotSet,
    IsDateBefore,
    IsDateAfter,
    IsDateExact,
    SemverEq,
    SemverNeq,
    SemverGt,
    SemverGte,
    SemverLt,
    SemverLte,
    SemverTilde,
    SemverCaret,
    SemverWildcard,
    In,
    NotIn,
    FlagEvaluatesTo,
    /// An operator PostHog does not know: the filter never matches.
    Unknown,
}

impl Operator {
    /// A missing or null operator means `exact`.
    pub(crate) fn parse(text: Option<&str>) -> Operator {
        use Operator::*;
        match text.unwrap_or("exact") {
            "exact" => Exact,
            "is_not" => IsNot,
            "icontains" => Icontains,
            "not_icontains" => NotIcontains,
            "icontains_multi" => IcontainsMulti,
            "not_icontains_multi" => NotIcontainsMulti,
            "starts_with" => StartsWith,
            "not_starts_with" => NotStartsWith,
            "ends_with" => EndsWith,
            "not_ends_with" => NotEndsWith,
            "regex" => Regex,
            "not_regex" => NotRegex,
            "gt" => Gt,
            "gte" => Gte,
            "lt" => Lt,
            "lte" => Lte,
            "between" => Between,
            "not_between" => NotBetween,
            "is_set" => IsSet,
            "is_not_set" => IsNotSet,
            "is_date_before" => IsDateBefore,
            "is_date_after" => IsDateAfter,
            "is_date_exact" => IsDateExact,
            "semver_eq" => SemverEq,
            "semver_neq" => SemverNeq,
            "semver_gt" => SemverGt,
            "semver_gte" => SemverGte,
            "semver_lt" => SemverLt,
            "semver_lte" => SemverLte,
            "semver_tilde" => SemverTilde,
            "semver_caret" => SemverCaret,
            "semver_wildcard" => SemverWildcard,
            "in" => In,
            "not_in" => NotIn,
            "flag_evaluates_to" => FlagEvaluatesTo,
            _ => Unknown,
        }
    }

    /// The negative operators: they match when the property is missing.
    fn matches_missing(self) -> bool {
        use Operator::*;
        matches!(
            self,
            IsNot
                | NotIcontains
                | NotIcontainsMulti
                | NotStartsWith
                | NotEndsWith
                | NotRegex
                | NotBetween
                | IsNotSet
        )
    }
}

/// A filter's value prepared for its operator.
#[derive(Debug)]
enum Prepared {
    /// The filter has no (or a null) value: value operators never match.
    NoValue,
    Exact(ExactValue),
    /// ASCII-lowercased needle of the substring/prefix/suffix operators.
    Text(String),
    Multi(Vec<String>),
    /// `None`: the pattern does not compile, so neither `regex` nor `not_regex` matches.
    Regex(Option<Box<fancy_regex::Regex>>),
    /// `None`: the filter is not numeric, which the server reports as an error (no match).
    Number(Option<f64>),
    Range(Option<(f64, f64)>),
    Date(DateValue),
    /// `None`: the SDK cannot read the filter's version, so nothing matches. Boxed, like the
    /// regex, so rarely used operators don't grow every filter.
    Version(Option<Box<Version>>),
    /// Tilde, caret and wildcard filters as `[lower, upper)`.
    VersionRange(Option<Box<versions::Range>>),
    /// Set-ness, cohort and flag filters need nothing prepared here.
    Nothing,
}

#[derive(Debug)]
struct ExactValue {
    /// `Some(truthiness)` when the filter is boolean-like (legacy truthiness comparison).
    truthiness: Option<bool>,
    empty_list: bool,
    /// Lowercased string forms: the list's elements, or the single value.
    lowered: Vec<String>,
}

#[derive(Debug)]
enum DateValue {
    Relative(RelativeDate),
    Absolute(DateTime<Utc>),
    /// Not a string, or not a date: no match.
    Invalid,
}

/// Where a filter reads its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKind {
    Person,
    Group,
    Cohort,
    Flag,
    /// Any other `type`: PostHog cannot evaluate it, so it never matches.
    Other,
}

/// One `PropertyFilter` of a condition or cohort, ready to match.
#[derive(Debug)]
pub(crate) struct PropertyFilter {
    pub key: String,
    pub kind: FilterKind,
    pub operator: Operator,
    /// The raw value (`None` when absent or null), for cohort ids and flag dependencies.
    pub value: Option<Value>,
    pub negation: bool,
    pub group_type_index: Option<i32>,
    /// For `type: flag` filters: the index of the flag it depends on, once resolved.
    pub dependency: Option<usize>,
    prepared: Prepared,
}

impl PropertyFilter {
    /// Reads a filter object; a missing `type` is a person filter (PostHog's legacy default).
    pub(crate) fn parse(raw: &Value) -> PropertyFilter {
        let key = raw.get("key").map(string_form).unwrap_or_default();
        let kind = match raw.get("type").and_then(Value::as_str).unwrap_or("person") {
            "person" => FilterKind::Person,
            "group" => FilterKind::Group,
            "cohort" => FilterKind::Cohort,
            "flag" => FilterKind::Flag,
            _ => FilterKind::Other,
        };
        let operator = Operator::parse(raw.get("operator").and_then(Value::as_str));
        let value = raw.get("value").filter(|v| !v.is_null()).cloned();
        let prepared = match (&value, kind) {
            (_, FilterKind::Cohort | FilterKind::Flag | FilterKind::Other) => Prepared::Nothing,
            (None, _) => Prepared::NoValue,
            (Some(v), _) => prepare(operator, v),
        };
        PropertyFilter {
            key: key.into_owned(),
            kind,
            operator,
            value,
            negation: raw
                .get("negation")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            group_type_index: raw
                .get("group_type_index")
                .and_then(Value::as_i64)
                .and_then(|i| i32::try_from(i).ok()),
            dependency: None,
            prepared,
        }
    }

    /// Matches a person or group filter against `props` (the server's `match_property` with
    /// full properties: a missing key gets the "missing" semantics, never an error).
    pub(crate) fn matches(&self, props: &dyn PropertySource, ctx: &MatchContext) -> bool {
        match self.operator {
            Operator::IsSet => return props.get(&self.key).is_some(),
            Operator::IsNotSet => return props.get(&self.key).is_none(),
            _ => {}
        }
        if matches!(self.prepared, Prepared::NoValue) {
            return false;
        }
        // Regex compiles are checked after the missing-key answer, like the server.
        match props.get(&self.key) {
            None => self.operator.matches_missing(),
            Some(found) => self.matches_value(found, ctx),
        }
    }

    fn matches_value(&self, found: &Value, ctx: &MatchContext) -> bool {
        use Operator::*;
        let op = self.operator;
        match &self.prepared {
            Prepared::Exact(exact) => (op == Exact) == exact.matches(found, ctx.matching_version),
            Prepared::Text(needle) => text_match(op, &ascii_lower(found), needle),
            Prepared::Multi(needles) => {
                let haystack = ascii_lower(found);
                let any = needles.iter().any(|n| haystack.contains(n.as_str()));
                (op == IcontainsMulti) == any
            }
            Prepared::Regex(regex) => regex_match(op, regex.as_deref(), found),
            Prepared::Number(filter) => match (number(found), filter) {
                (Some(p), Some(f)) => compare(op, p, *f),
                _ => false,
            },
            Prepared::Range(range) => range_match(op, *range, found),
            Prepared::Date(date) => date_match(op, date, found, ctx.now),
            Prepared::Version(filter) => match (filter, versions::parse(found)) {
                (Some(f), Some(p)) => version_compare(op, &p, f),
                _ => false,
            },
            Prepared::VersionRange(range) => match (range, versions::parse(found)) {
                (Some(r), Some(p)) => r.contains(&p),
                _ => false,
            },
            Prepared::NoValue | Prepared::Nothing => false,
        }
    }
}

/// Per-request settings the operators need.
pub(crate) struct MatchContext {
    pub now: DateTime<Utc>,
    pub matching_version: u8,
}

/// Property lookup: a plain map, or the person view that adds derived properties.
pub(crate) trait PropertySource {
    fn get(&self, key: &str) -> Option<&Value>;
}

impl PropertySource for Map<String, Value> {
    fn get(&self, key: &str) -> Option<&Value> {
        Map::get(self, key)
    }
}

fn prepare(op: Operator, value: &Value) -> Prepared {
    use Operator::*;
    match op {
        Exact | IsNot => Prepared::Exact(ExactValue::new(value)),
        Icontains | NotIcontains | StartsWith | NotStartsWith | EndsWith | NotEndsWith => {
            Prepared::Text(ascii_lower(value).into_owned())
        }
        IcontainsMulti | NotIcontainsMulti => Prepared::Multi(match value {
            Value::Array(items) => items.iter().map(|v| ascii_lower(v).into_owned()).collect(),
            single => vec![ascii_lower(single).into_owned()],
        }),
        Regex | NotRegex => Prepared::Regex(compile_regex(&string_form(value))),
        Gt | Gte | Lt | Lte => Prepared::Number(number(value)),
        Between | NotBetween => Prepared::Range(range(value)),
        IsDateBefore | IsDateAfter | IsDateExact => Prepared::Date(DateValue::new(value)),
        SemverEq | SemverNeq | SemverGt | SemverGte | SemverLt | SemverLte => {
            Prepared::Version(versions::parse(value).map(Box::new))
        }
        SemverTilde => Prepared::VersionRange(versions::tilde(value).map(Box::new)),
        SemverCaret => Prepared::VersionRange(versions::caret(value).map(Box::new)),
        SemverWildcard => Prepared::VersionRange(versions::wildcard(value).map(Box::new)),
        IsSet | IsNotSet | In | NotIn | FlagEvaluatesTo | Unknown => Prepared::Nothing,
    }
}

/// A value as PostHog's operators see it as text: strings bare, everything else as compact
/// JSON (`true`, `123`, `1.0`, `[1,2]`).
pub(crate) fn string_form(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

fn ascii_lower(value: &Value) -> Cow<'_, str> {
    let text = string_form(value);
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        text
    }
}

/// Full Unicode lowercase, as the server's `exact` uses (`to_lowercase`).
fn unicode_lower(value: &Value) -> Cow<'_, str> {
    let text = string_form(value);
    let already_lower = text
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase());
    if already_lower {
        text
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

impl ExactValue {
    fn new(value: &Value) -> ExactValue {
        let lowered = match value {
            Value::Array(items) => items
                .iter()
                .map(|v| unicode_lower(v).into_owned())
                .collect(),
            single => vec![unicode_lower(single).into_owned()],
        };
        ExactValue {
            truthiness: is_boolean_like(value).then(|| is_truthy(value)),
            empty_list: value.as_array().is_some_and(Vec::is_empty),
            lowered,
        }
    }

    /// Version 1 compares truthiness when the filter is boolean-like; version 2 only for an
    /// empty list. Otherwise the lowercased string form must equal one of the filter's.
    fn matches(&self, found: &Value, matching_version: u8) -> bool {
        let use_truthiness = if matching_version == 2 {
            self.empty_list
        } else {
            self.truthiness.is_some()
        };
        if use_truthiness {
            return self.truthiness == Some(is_truthy(found));
        }
        let target = unicode_lower(found);
        self.lowered.iter().any(|v| *v == target)
    }
}

/// A bool, `"true"`/`"false"` in any case, or a list of such (an empty list qualifies).
fn is_boolean_like(value: &Value) -> bool {
    match value {
        Value::Bool(_) => true,
        Value::String(s) => s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"),
        Value::Array(items) => items.iter().all(is_boolean_like),
        _ => false,
    }
}

/// `true`, `"true"` in any case, or a list whose every element is truthy; all else is falsy.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Array(items) => items.iter().all(is_truthy),
        _ => false,
    }
}

fn text_match(op: Operator, haystack: &str, needle: &str) -> bool {
    use Operator::*;
    match op {
        Icontains => haystack.contains(needle),
        NotIcontains => !haystack.contains(needle),
        StartsWith => haystack.starts_with(needle),
        NotStartsWith => !haystack.starts_with(needle),
        EndsWith => haystack.ends_with(needle),
        NotEndsWith => !haystack.ends_with(needle),
        _ => false,
    }
}

fn compile_regex(pattern: &str) -> Option<Box<fancy_regex::Regex>> {
    fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(REGEX_BACKTRACK_LIMIT)
        .build()
        .ok()
        .map(Box::new)
}

/// Unanchored search. An invalid pattern, or one that exhausts the backtrack budget, matches
/// for neither operator.
fn regex_match(op: Operator, regex: Option<&fancy_regex::Regex>, found: &Value) -> bool {
    let Some(regex) = regex else {
        return false;
    };
    let haystack = string_form(found);
    match regex.find(haystack.as_ref()) {
        Ok(hit) => (op == Operator::Regex) == hit.is_some(),
        Err(_) => false,
    }
}

/// A number as-is, or a string parsed as f64 (Rust's grammar, like the server); else `None`.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        other => string_form(other).parse().ok(),
    }
}

fn compare(op: Operator, property: f64, filter: f64) -> bool {
    match op {
        Operator::Gt => property > filter,
        Operator::Gte => property >= filter,
        Operator::Lt => property < filter,
        Operator::Lte => property <= filter,
        _ => false,
    }
}

/// `[min, max]` with two numeric, non-NaN bounds and `min <= max`; else the filter is invalid.
fn range(value: &Value) -> Option<(f64, f64)> {
    let [low, high] = value.as_array()?.as_slice() else {
        return None;
    };
    let (low, high) = (number(low)?, number(high)?);
    (!low.is_nan() && !high.is_nan() && low <= high).then_some((low, high))
}

/// Inclusive range test; a non-numeric or NaN property matches neither operator.
fn range_match(op: Operator, range: Option<(f64, f64)>, found: &Value) -> bool {
    let (Some((low, high)), Some(p)) = (range, number(found)) else {
        return false;
    };
    if p.is_nan() {
        return false;
    }
    (op == Operator::Between) == (low <= p && p <= high)
}

impl DateValue {
    /// Only string filter values are dates.
    fn new(value: &Value) -> DateValue {
        let Some(text) = value.as_str() else {
            return DateValue::Invalid;
        };
        if let Some(relative) = RelativeDate::parse(text) {
            return DateValue::Relative(relative);
        }
        match dates::parse_absolute(text) {
            Some(date) => DateValue::Absolute(date),
            None => DateValue::Invalid,
        }
    }
}

fn date_match(op: Operator, filter: &DateValue, found: &Value, now: DateTime<Utc>) -> bool {
    let Some(property) = dates::property_date(found, now) else {
        return false;
    };
    let filter = match filter {
        DateValue::Relative(relative) => relative.resolve(now),
        DateValue::Absolute(date) => Some(*date),
        DateValue::Invalid => None,
    };
    let Some(filter) = filter else {
        return false;
    };
    match op {
        Operator::IsDateBefore => property < filter,
        Operator::IsDateAfter => property > filter,
        Operator::IsDateExact => property == filter,
        _ => false,
    }
}

fn version_compare(op: Operator, property: &Version, filter: &Version) -> bool {
    use Operator::*;
    match op {
        SemverEq => property == filter,
        SemverNeq => property != filter,
        SemverGt => property > filter,
        SemverGte => property >= filter,
        SemverLt => property < filter,
        SemverLte => property <= filter,
        _ => false,
    }
}
