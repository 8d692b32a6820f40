//! Flag status (§5.6): ACTIVE / STALE / ARCHIVED / DELETED, computed on read. Every time
//! comparison is made against the caller's `now` so results are reproducible in tests and
//! across a request.

use crate::python;
use chrono::TimeDelta;
use serde_json::Value;

use super::Flag;
use super::filters::{ConditionSet, Filters};
use crate::time::Timestamp;

/// Flags untouched for this long are candidates for cleanup.
const STALE_AFTER_DAYS: i64 = 30;

/// What a fully rolled-out flag always evaluates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolledOut {
    /// A boolean flag that is on for everyone.
    Boolean,
    /// A multivariate flag that always serves this variant.
    Variant(String),
}

impl RolledOut {
    /// PostHog's wording for the status endpoint.
    pub fn reason(&self) -> String {
        match self {
            RolledOut::Boolean => "This boolean flag will always evaluate to \"true\"".into(),
            RolledOut::Variant(v) => format!("This flag will always use the variant \"{v}\""),
        }
    }
}

/// The upper-case enum name shown in the `status` field of flag representations.
pub fn status_name(flag: &Flag, now: Timestamp) -> &'static str {
    match status_detail(flag, now).0 {
        "deleted" => "DELETED",
        "archived" => "ARCHIVED",
        "stale" => "STALE",
        _ => "ACTIVE",
    }
}

/// The `{status, reason}` pair of `GET /feature_flags/{id}/status/` (lower-case status).
/// The first matching rule wins, in PostHog's order.
pub fn status_detail(flag: &Flag, now: Timestamp) -> (&'static str, String) {
    if flag.deleted {
        return ("deleted", "Flag has been deleted".into());
    }
    if flag.archived {
        return ("archived", "Flag has been archived".into());
    }
    if !flag.active {
        return (
            "active",
            "Flag is disabled (not evaluated for staleness)".into(),
        );
    }
    if let Some(called) = flag.last_called_at {
        return usage_status(called, now);
    }
    if flag.created_at < threshold(now)
        && let Some(rolled_out) = fully_rolled_out(flag)
    {
        return ("stale", rolled_out.reason());
    }
    ("active", "Flag has no usage data yet".into())
}

/// The list filter `active=STALE` selects exactly the flags whose status is STALE, so a listed
/// flag never contradicts its own `status` field.
pub fn is_stale(flag: &Flag, now: Timestamp) -> bool {
    status_detail(flag, now).0 == "stale"
}

/// Usage data is the strongest signal, so it decides alone once a flag has been called.
fn usage_status(called: Timestamp, now: Timestamp) -> (&'static str, String) {
    // A call timestamp slightly in the future (clock skew) reads as "today", not "-1 days".
    let days = whole_days(now - called).max(0);
    if called < threshold(now) {
        return ("stale", format!("Flag has not been called in {days} days"));
    }
    match days {
        0 => ("active", "Flag was called today".into()),
        1 => ("active", "Flag was last called 1 day ago".into()),
        n => ("active", format!("Flag was last called {n} days ago")),
    }
}

fn threshold(now: Timestamp) -> Timestamp {
    now - TimeDelta::days(STALE_AFTER_DAYS)
}

/// Whole days, rounded down like Python's `timedelta.days`.
fn whole_days(delta: TimeDelta) -> i64 {
    let days = delta.num_days();
    if delta < TimeDelta::days(days) {
        days - 1
    } else {
        days
    }
}

/// Whether the stored configuration can only ever give one answer (regardless of `active`).
/// Reads the stored `filters`, so legacy flags stored as `{}` count as on for everyone.
pub fn fully_rolled_out(flag: &Flag) -> Option<RolledOut> {
    let filters = &flag.filters;
    match Filters::of(filters).multivariate() {
        Some(mv) if python::truthy(mv) => multivariate_rolled_out(filters),
        _ => boolean_rolled_out(filters).then_some(RolledOut::Boolean),
    }
}

fn boolean_rolled_out(filters: &Value) -> bool {
    let no_conditions = match filters {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    no_conditions || Filters::of(filters).groups().any(group_fully_rolled_out)
}

/// A 100% condition without properties plus a variant override, or plus a variant at 100%.
fn multivariate_rolled_out(filters: &Value) -> Option<RolledOut> {
    let filters = Filters::of(filters);
    let variant_at_100 = filters
        .variants()
        .find(|v| is_hundred(v.rollout_percentage()))
        .and_then(|v| v.raw().get("key"))
        .and_then(text);

    let mut some_group_at_100 = false;
    // Python's `override or group.get("variant")`: a falsy override is replaced by later ones.
    let mut override_variant: Option<String> = None;
    for group in filters.groups().filter(|g| group_fully_rolled_out(*g)) {
        some_group_at_100 = true;
        if override_variant.as_deref().is_none_or(str::is_empty) {
            override_variant = group.variant().and_then(text);
        }
    }

    if !some_group_at_100 || (override_variant.is_none() && variant_at_100.is_none()) {
        return None;
    }
    let name = [override_variant, variant_at_100]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    Some(RolledOut::Variant(name))
}

fn group_fully_rolled_out(group: ConditionSet) -> bool {
    let no_properties = match group.get("properties") {
        None | Some(Value::Null) => true,
        Some(Value::Array(props)) => props.is_empty(),
        Some(_) => false,
    };
    no_properties && is_hundred(group.rollout_percentage())
}

fn is_hundred(value: Option<&Value>) -> bool {
    value.and_then(Value::as_f64) == Some(100.0)
}

/// A variant name as text; `null` means "no variant" like Python's `None`.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserSummary;
    use serde_json::json;

    fn now() -> Timestamp {
        crate::time::parse("2025-06-30T12:00:00Z").unwrap()
    }

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

    /// A flag created `age_days` before `now()` with the given filters.
    fn flag(age_days: i64, filters: Value) -> Flag {
        let mut f = Flag::new(1, 1, "k".into(), user(), now() - TimeDelta::days(age_days));
        f.filters = filters;
        f
    }

    fn full_boolean() -> Value {
        json!({"groups": [{"properties": [], "rollout_percentage": 100}]})
    }

    #[test]
    fn deleted_wins_over_everything() {
        let mut f = flag(100, full_boolean());
        f.deleted = true;
        f.active = false;
        assert_eq!(
            status_detail(&f, now()),
            ("deleted", "Flag has been deleted".into())
        );
        assert_eq!(status_name(&f, now()), "DELETED");
    }

    #[test]
    fn archived_comes_after_deleted_and_before_staleness() {
        let mut f = flag(100, full_boolean());
        f.archived = true;
        f.active = false;
        f.last_called_at = Some(now() - TimeDelta::days(90));
        assert_eq!(
            status_detail(&f, now()),
            ("archived", "Flag has been archived".into())
        );
        assert_eq!(status_name(&f, now()), "ARCHIVED");
        assert!(!is_stale(&f, now()));
        f.deleted = true;
        assert_eq!(status_name(&f, now()), "DELETED");
    }

    #[test]
    fn disabled_flags_are_not_evaluated_for_staleness() {
        let mut f = flag(100, full_boolean());
        f.active = false;
        f.last_called_at = Some(now() - TimeDelta::days(90));
        assert_eq!(
            status_detail(&f, now()),
            (
                "active",
                "Flag is disabled (not evaluated for staleness)".into()
            )
        );
        assert_eq!(status_name(&f, now()), "ACTIVE");
        assert!(!is_stale(&f, now()));
    }

    #[test]
    fn usage_older_than_thirty_days_is_stale() {
        let mut f = flag(
            100,
            json!({"groups": [{"properties": [], "rollout_percentage": 50}]}),
        );
        f.last_called_at = Some(now() - TimeDelta::days(45) - TimeDelta::hours(3));
        assert_eq!(
            status_detail(&f, now()),
            ("stale", "Flag has not been called in 45 days".into())
        );
        assert_eq!(status_name(&f, now()), "STALE");
        assert!(is_stale(&f, now()));
    }

    #[test]
    fn exactly_thirty_days_is_not_yet_stale() {
        let mut f = flag(100, json!({}));
        f.last_called_at = Some(now() - TimeDelta::days(30));
        assert_eq!(
            status_detail(&f, now()),
            ("active", "Flag was last called 30 days ago".into())
        );
        f.last_called_at = Some(now() - TimeDelta::days(30) - TimeDelta::seconds(1));
        assert_eq!(status_detail(&f, now()).0, "stale");
    }

    #[test]
    fn recent_usage_reports_days_with_plural() {
        let mut f = flag(100, full_boolean());
        f.last_called_at = Some(now() - TimeDelta::hours(5));
        assert_eq!(
            status_detail(&f, now()),
            ("active", "Flag was called today".into())
        );
        f.last_called_at = Some(now() - TimeDelta::hours(30));
        assert_eq!(
            status_detail(&f, now()),
            ("active", "Flag was last called 1 day ago".into())
        );
        f.last_called_at = Some(now() - TimeDelta::days(2));
        assert_eq!(
            status_detail(&f, now()),
            ("active", "Flag was last called 2 days ago".into())
        );
        // Recent usage overrides a fully rolled-out configuration.
        assert!(!is_stale(&f, now()));
    }

    #[test]
    fn future_call_time_reads_as_today() {
        let mut f = flag(1, json!({}));
        f.last_called_at = Some(now() + TimeDelta::minutes(2));
        assert_eq!(
            status_detail(&f, now()),
            ("active", "Flag was called today".into())
        );
    }

    #[test]
    fn old_fully_rolled_out_boolean_without_usage_is_stale() {
        let f = flag(31, full_boolean());
        assert_eq!(
            status_detail(&f, now()),
            (
                "stale",
                "This boolean flag will always evaluate to \"true\"".into()
            )
        );
    }

    #[test]
    fn young_fully_rolled_out_flag_has_no_usage_data_yet() {
        let f = flag(29, full_boolean());
        assert_eq!(
            status_detail(&f, now()),
            ("active", "Flag has no usage data yet".into())
        );
        assert!(!is_stale(&f, now()));
    }

    #[test]
    fn empty_or_null_filters_count_as_rolled_out() {
        assert_eq!(
            fully_rolled_out(&flag(0, json!({}))),
            Some(RolledOut::Boolean)
        );
        assert_eq!(
            fully_rolled_out(&flag(0, Value::Null)),
            Some(RolledOut::Boolean)
        );
        assert!(is_stale(&flag(31, json!({})), now()));
    }

    #[test]
    fn partial_or_conditioned_booleans_are_not_rolled_out() {
        let partial = json!({"groups": [{"properties": [], "rollout_percentage": 99}]});
        let conditioned = json!({"groups": [{"properties": [{"key": "e", "value": "x", "type": "person"}], "rollout_percentage": 100}]});
        let null_rollout = json!({"groups": [{"properties": [], "rollout_percentage": null}]});
        let no_groups = json!({"groups": []});
        for filters in [partial, conditioned, null_rollout, no_groups] {
            assert_eq!(
                fully_rolled_out(&flag(0, filters.clone())),
                None,
                "{filters}"
            );
            assert_eq!(
                status_detail(&flag(40, filters), now()),
                ("active", "Flag has no usage data yet".into())
            );
        }
    }

    #[test]
    fn one_full_group_among_others_is_enough() {
        let filters = json!({"groups": [
            {"properties": [{"key": "e", "value": "x", "type": "person"}], "rollout_percentage": 10},
            {"rollout_percentage": 100.0}
        ]});
        assert_eq!(
            fully_rolled_out(&flag(0, filters)),
            Some(RolledOut::Boolean)
        );
    }

    fn multivariate(variants: Value, groups: Value) -> Value {
        json!({"groups": groups, "multivariate": {"variants": variants}})
    }

    #[test]
    fn multivariate_with_a_variant_at_100_is_rolled_out() {
        let filters = multivariate(
            json!([{"key": "a", "rollout_percentage": 0}, {"key": "b", "rollout_percentage": 100}]),
            json!([{"properties": [], "rollout_percentage": 100}]),
        );
        let f = flag(40, filters);
        assert_eq!(fully_rolled_out(&f), Some(RolledOut::Variant("b".into())));
        assert_eq!(
            status_detail(&f, now()),
            (
                "stale",
                "This flag will always use the variant \"b\"".into()
            )
        );
    }

    #[test]
    fn multivariate_override_wins_over_variant_at_100() {
        let filters = multivariate(
            json!([{"key": "a", "rollout_percentage": 0}, {"key": "b", "rollout_percentage": 100}]),
            json!([
                {"properties": [], "rollout_percentage": 100, "variant": null},
                {"properties": [], "rollout_percentage": 100, "variant": "a"}
            ]),
        );
        assert_eq!(
            fully_rolled_out(&flag(0, filters)),
            Some(RolledOut::Variant("a".into()))
        );
    }

    #[test]
    fn multivariate_needs_a_full_group() {
        let split =
            json!([{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]);
        let no_full_group = multivariate(
            json!([{"key": "a", "rollout_percentage": 100}]),
            json!([{"properties": [], "rollout_percentage": 50, "variant": "a"}]),
        );
        let full_group_split = multivariate(
            split.clone(),
            json!([{"properties": [], "rollout_percentage": 100}]),
        );
        assert_eq!(fully_rolled_out(&flag(0, no_full_group)), None);
        assert_eq!(fully_rolled_out(&flag(0, full_group_split)), None);
        let with_override = multivariate(
            split,
            json!([{"properties": [], "rollout_percentage": 100, "variant": "b"}]),
        );
        assert_eq!(
            fully_rolled_out(&flag(0, with_override)),
            Some(RolledOut::Variant("b".into()))
        );
    }

    #[test]
    fn empty_multivariate_object_is_a_boolean_flag() {
        let filters =
            json!({"groups": [{"properties": [], "rollout_percentage": 100}], "multivariate": {}});
        assert_eq!(
            fully_rolled_out(&flag(0, filters)),
            Some(RolledOut::Boolean)
        );
        let null_mv = json!({"groups": [{"properties": [], "rollout_percentage": 100}], "multivariate": null});
        assert_eq!(
            fully_rolled_out(&flag(0, null_mv)),
            Some(RolledOut::Boolean)
        );
    }

    #[test]
    fn odd_shapes_never_panic() {
        for filters in [
            json!([]),
            json!("x"),
            json!({"groups": "x"}),
            json!({"groups": [1, null, "a"]}),
            json!({"multivariate": {"variants": "x"}, "groups": [{"properties": "x", "rollout_percentage": 100}]}),
            json!({"multivariate": [1], "groups": [{"rollout_percentage": "100"}]}),
        ] {
            let f = flag(40, filters);
            let _ = status_detail(&f, now());
            let _ = fully_rolled_out(&f);
        }
    }
}
