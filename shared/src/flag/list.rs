//! List filters and ordering for GET /feature_flags/ (§5.1). Pagination is the caller's.
//!
//! Projects hold at most a few thousand flags, so every filter runs in memory over the full
//! set; that reproduces PostHog's semantics (icontains, STALE, JSON-based `type`) exactly.

use std::cmp::Ordering;

use serde_json::Value;

use super::{Flag, status};
use crate::error::{ApiError, ApiResult};
use crate::python;
use crate::time::Timestamp;

/// The `active` parameter: anything but `STALE` or exactly `true` means "disabled".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveFilter {
    Stale,
    Enabled,
    Disabled,
}

/// The `type` parameter; unknown values do not filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFilter {
    Boolean,
    Multivariant,
    /// There are no experiments in this product, so this matches nothing.
    Experiment,
    RemoteConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    Key,
    Name,
    CreatedAt,
    UpdatedAt,
    Id,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub field: OrderField,
    pub descending: bool,
}

/// The default listing order: newest first.
const DEFAULT_ORDER: Order = Order {
    field: OrderField::CreatedAt,
    descending: true,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub active: Option<ActiveFilter>,
    pub created_by_id: Option<i64>,
    pub search: Option<String>,
    /// Exact key, case-insensitively; `None` when absent or blank.
    pub key: Option<String>,
    /// `None` (no `archived` parameter) lists only flags that are not archived.
    pub archived: Option<bool>,
    pub flag_type: Option<TypeFilter>,
    pub evaluation_runtime: Option<String>,
    /// Keys to leave out (`excluded_properties`).
    pub excluded_keys: Vec<String>,
    /// Keep flags having any of these tags; empty means no tag filter.
    pub tags: Vec<String>,
    pub has_evaluation_tags: Option<bool>,
    /// `None` is the default order (created_at desc).
    pub order: Option<Order>,
}

/// Reads the query string. Like Django's `QueryDict.dict()`, the last value of a repeated key
/// wins. Only a non-integer `created_by_id` is an error (PostHog answers it with a 500).
pub fn parse(params: &[(String, String)]) -> ApiResult<ListQuery> {
    let mut query = ListQuery::default();
    for (name, value) in params {
        match name.as_str() {
            "active" => query.active = Some(parse_active(value)),
            "created_by_id" => query.created_by_id = Some(parse_user_id(value)?),
            "search" => query.search = Some(value.clone()),
            "key" => {
                query.key = Some(python::strip(value))
                    .filter(|k| !k.is_empty())
                    .map(String::from)
            }
            "archived" => query.archived = Some(python::str_to_bool(value)),
            "type" => query.flag_type = parse_type(value),
            "evaluation_runtime" => query.evaluation_runtime = Some(value.clone()),
            "excluded_properties" => query.excluded_keys = json_names(value),
            "tags" => query.tags = json_names(value),
            "has_evaluation_tags" => query.has_evaluation_tags = Some(parse_yes(value)),
            "order" => query.order = parse_order(value),
            _ => {}
        }
    }
    Ok(query)
}

fn parse_active(value: &str) -> ActiveFilter {
    match value {
        "STALE" => ActiveFilter::Stale,
        "true" => ActiveFilter::Enabled,
        _ => ActiveFilter::Disabled,
    }
}

fn parse_user_id(value: &str) -> ApiResult<i64> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid("created_by_id", "A valid integer is required."))
}

fn parse_type(value: &str) -> Option<TypeFilter> {
    match value {
        "boolean" => Some(TypeFilter::Boolean),
        "multivariant" => Some(TypeFilter::Multivariant),
        "experiment" => Some(TypeFilter::Experiment),
        "remote_config" => Some(TypeFilter::RemoteConfig),
        _ => None,
    }
}

fn parse_yes(value: &str) -> bool {
    matches!(value.to_lowercase().as_str(), "true" | "1" | "yes")
}

/// A JSON array of names; invalid JSON or any other JSON shape is ignored, as in PostHog.
/// Numbers are compared by their text, the way the SQL `IN` would cast them.
fn json_names(value: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Only whitelisted fields, optionally prefixed by `-`; anything else keeps the default order.
fn parse_order(value: &str) -> Option<Order> {
    let (descending, name) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let field = match name {
        "key" => OrderField::Key,
        "name" => OrderField::Name,
        "created_at" => OrderField::CreatedAt,
        "updated_at" => OrderField::UpdatedAt,
        "id" => OrderField::Id,
        _ => return None,
    };
    Some(Order { field, descending })
}

/// Keeps the non-deleted flags matching every filter and sorts them.
pub fn apply(flags: Vec<Flag>, query: &ListQuery, now: Timestamp) -> Vec<Flag> {
    let mut kept: Vec<Flag> = flags
        .into_iter()
        .filter(|f| !f.deleted && matches(f, query, now))
        .collect();
    let order = query.order.unwrap_or(DEFAULT_ORDER);
    kept.sort_by(|a, b| compare(a, b, order));
    kept
}

fn matches(flag: &Flag, query: &ListQuery, now: Timestamp) -> bool {
    matches_active(flag, query.active, now)
        && query
            .created_by_id
            .is_none_or(|id| flag.created_by.as_ref().is_some_and(|u| u.id == id))
        && query
            .search
            .as_deref()
            .is_none_or(|s| matches_search(flag, s))
        && query
            .key
            .as_deref()
            .is_none_or(|k| python::sql_upper(&flag.key) == python::sql_upper(k))
        && flag.archived == query.archived.unwrap_or(false)
        && query.flag_type.is_none_or(|t| matches_type(flag, t))
        && query
            .evaluation_runtime
            .as_deref()
            .is_none_or(|r| flag.evaluation_runtime == r)
        && !query.excluded_keys.contains(&flag.key)
        && (query.tags.is_empty() || flag.tags.iter().any(|t| query.tags.contains(t)))
        && query
            .has_evaluation_tags
            .is_none_or(|wanted| wanted != flag.evaluation_tags.is_empty())
}

fn matches_active(flag: &Flag, filter: Option<ActiveFilter>, now: Timestamp) -> bool {
    match filter {
        None => true,
        Some(ActiveFilter::Stale) => status::is_stale(flag, now),
        Some(ActiveFilter::Enabled) => flag.active,
        Some(ActiveFilter::Disabled) => !flag.active,
    }
}

/// Case-insensitive substring of key or name (PostHog's `icontains`).
fn matches_search(flag: &Flag, search: &str) -> bool {
    let needle = search.to_lowercase();
    flag.key.to_lowercase().contains(&needle) || flag.name.to_lowercase().contains(&needle)
}

fn matches_type(flag: &Flag, wanted: TypeFilter) -> bool {
    match wanted {
        TypeFilter::Boolean => flag.variants().is_empty(),
        TypeFilter::Multivariant => !flag.variants().is_empty(),
        TypeFilter::Experiment => false,
        TypeFilter::RemoteConfig => flag.is_remote_configuration == Some(true),
    }
}

/// The requested order, then newest first and highest id first so pages are stable.
fn compare(a: &Flag, b: &Flag, order: Order) -> Ordering {
    let primary = match order.field {
        OrderField::Key => a.key.cmp(&b.key),
        OrderField::Name => a.name.cmp(&b.name),
        OrderField::CreatedAt => a.created_at.cmp(&b.created_at),
        OrderField::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        OrderField::Id => a.id.cmp(&b.id),
    };
    let primary = if order.descending {
        primary.reverse()
    } else {
        primary
    };
    primary
        .then_with(|| b.created_at.cmp(&a.created_at))
        .then_with(|| b.id.cmp(&a.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserSummary;
    use chrono::TimeDelta;
    use serde_json::json;

    fn now() -> Timestamp {
        crate::time::parse("2025-06-30T12:00:00Z").unwrap()
    }

    fn user(id: i64) -> UserSummary {
        UserSummary {
            id,
            uuid: format!("u{id}"),
            distinct_id: format!("d{id}"),
            first_name: "A".into(),
            last_name: "B".into(),
            email: "a@b.com".into(),
        }
    }

    /// Flag `id` created `id` hours before now (higher id = newer).
    fn flag(id: i64, key: &str) -> Flag {
        Flag::new(
            id,
            1,
            key.into(),
            user(1),
            now() - TimeDelta::days(1) + TimeDelta::hours(id),
        )
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn keys(flags: &[Flag]) -> Vec<&str> {
        flags.iter().map(|f| f.key.as_str()).collect()
    }

    fn run(flags: Vec<Flag>, pairs: &[(&str, &str)]) -> Vec<String> {
        let query = parse(&params(pairs)).unwrap();
        keys(&apply(flags, &query, now()))
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn default_excludes_deleted_and_orders_newest_first() {
        let mut deleted = flag(4, "gone");
        deleted.deleted = true;
        let flags = vec![flag(1, "a"), flag(3, "c"), flag(2, "b"), deleted];
        assert_eq!(run(flags, &[]), ["c", "b", "a"]);
    }

    #[test]
    fn equal_created_at_ties_break_by_id_desc() {
        let mut a = flag(1, "a");
        let mut b = flag(2, "b");
        a.created_at = now();
        b.created_at = now();
        assert_eq!(run(vec![a, b], &[]), ["b", "a"]);
    }

    #[test]
    fn active_true_false_and_anything_else() {
        let mut off = flag(1, "off");
        off.active = false;
        let flags = vec![off, flag(2, "on")];
        assert_eq!(run(flags.clone(), &[("active", "true")]), ["on"]);
        for other in ["false", "True", "1", "yes", ""] {
            assert_eq!(run(flags.clone(), &[("active", other)]), ["off"], "{other}");
        }
    }

    #[test]
    fn active_stale_uses_usage_and_configuration() {
        let old = now() - TimeDelta::days(40);
        let mut unused = flag(1, "unused");
        unused.last_called_at = Some(old);
        let mut recent = flag(2, "recent");
        recent.last_called_at = Some(now() - TimeDelta::days(1));
        let mut rolled_out = flag(3, "rolled-out");
        rolled_out.created_at = old;
        rolled_out.filters = json!({"groups": [{"properties": [], "rollout_percentage": 100}]});
        let mut young_rolled_out = flag(4, "young");
        young_rolled_out.filters = rolled_out.filters.clone();
        let mut legacy_empty = flag(5, "legacy");
        legacy_empty.created_at = old - TimeDelta::days(1);
        let mut disabled = unused.clone();
        disabled.key = "disabled".into();
        disabled.id = 6;
        disabled.active = false;
        let mut partial = flag(7, "partial");
        partial.created_at = old;
        partial.filters = json!({"groups": [{"properties": [], "rollout_percentage": 30}]});
        let flags = vec![
            unused,
            recent,
            rolled_out,
            young_rolled_out,
            legacy_empty,
            disabled,
            partial,
        ];
        let stale = run(flags, &[("active", "STALE")]);
        assert_eq!(stale, ["unused", "rolled-out", "legacy"]);
    }

    #[test]
    fn stale_flags_show_stale_status() {
        let mut f = flag(1, "a");
        f.last_called_at = Some(now() - TimeDelta::days(31));
        let query = parse(&params(&[("active", "STALE")])).unwrap();
        for f in apply(vec![f], &query, now()) {
            assert_eq!(status::status_name(&f, now()), "STALE");
        }
    }

    #[test]
    fn created_by_id_filters_and_rejects_non_integers() {
        let mut other = flag(1, "other");
        other.created_by = Some(user(2));
        let mut orphan = flag(2, "orphan");
        orphan.created_by = None;
        let flags = vec![other, orphan, flag(3, "mine")];
        assert_eq!(run(flags.clone(), &[("created_by_id", "1")]), ["mine"]);
        assert_eq!(run(flags, &[("created_by_id", " 2 ")]), ["other"]);
        for bad in ["abc", "", "1.5"] {
            let err = parse(&params(&[("created_by_id", bad)])).unwrap_err();
            assert_eq!(
                err,
                ApiError::invalid("created_by_id", "A valid integer is required.")
            );
        }
    }

    #[test]
    fn search_is_case_insensitive_on_key_or_name() {
        let mut named = flag(1, "alpha");
        named.name = "Checkout REDESIGN".into();
        let flags = vec![named, flag(2, "Beta-Redesign"), flag(3, "gamma")];
        assert_eq!(
            run(flags.clone(), &[("search", "redesign")]),
            ["Beta-Redesign", "alpha"]
        );
        assert_eq!(run(flags.clone(), &[("search", "ALP")]), ["alpha"]);
        assert_eq!(run(flags, &[("search", "")]).len(), 3);
    }

    #[test]
    fn type_filters() {
        let mut multi = flag(1, "multi");
        multi.filters = json!({"groups": [], "multivariate": {"variants": [{"key": "a", "rollout_percentage": 100}]}});
        let mut empty_variants = flag(2, "empty-variants");
        empty_variants.filters = json!({"groups": [], "multivariate": {"variants": []}});
        let mut null_mv = flag(3, "null-mv");
        null_mv.filters = json!({"groups": [], "multivariate": null});
        let mut remote = flag(4, "remote");
        remote.is_remote_configuration = Some(true);
        let flags = vec![multi, empty_variants, null_mv, remote];
        assert_eq!(
            run(flags.clone(), &[("type", "boolean")]),
            ["remote", "null-mv", "empty-variants"]
        );
        assert_eq!(run(flags.clone(), &[("type", "multivariant")]), ["multi"]);
        assert!(run(flags.clone(), &[("type", "experiment")]).is_empty());
        assert_eq!(run(flags.clone(), &[("type", "remote_config")]), ["remote"]);
        assert_eq!(run(flags, &[("type", "whatever")]).len(), 4);
    }

    #[test]
    fn evaluation_runtime_is_exact() {
        let mut server = flag(1, "server");
        server.evaluation_runtime = "server".into();
        let mut both = flag(2, "both");
        both.evaluation_runtime = "both".into();
        let flags = vec![server, both, flag(3, "all")];
        assert_eq!(
            run(flags.clone(), &[("evaluation_runtime", "server")]),
            ["server"]
        );
        assert_eq!(
            run(flags.clone(), &[("evaluation_runtime", "both")]),
            ["both"]
        );
        assert_eq!(
            run(flags.clone(), &[("evaluation_runtime", "all")]),
            ["all"]
        );
        assert!(run(flags, &[("evaluation_runtime", "Server")]).is_empty());
    }

    #[test]
    fn excluded_properties_json_list_of_keys() {
        let flags = vec![flag(1, "a"), flag(2, "b"), flag(3, "c"), flag(4, "5")];
        assert_eq!(
            run(flags.clone(), &[("excluded_properties", r#"["a","c"]"#)]),
            ["5", "b"]
        );
        assert_eq!(
            run(flags.clone(), &[("excluded_properties", "[5]")]),
            ["c", "b", "a"]
        );
        for ignored in ["not json", r#"{"a":1}"#, r#""a""#, "[]"] {
            assert_eq!(
                run(flags.clone(), &[("excluded_properties", ignored)]).len(),
                4,
                "{ignored}"
            );
        }
    }

    #[test]
    fn tags_any_of_exact_names() {
        let mut red = flag(1, "red");
        red.tags = vec!["red".into(), "shared".into()];
        let mut blue = flag(2, "blue");
        blue.tags = vec!["blue".into()];
        let flags = vec![red, blue, flag(3, "untagged")];
        assert_eq!(
            run(flags.clone(), &[("tags", r#"["red","blue"]"#)]),
            ["blue", "red"]
        );
        assert_eq!(run(flags.clone(), &[("tags", r#"["shared"]"#)]), ["red"]);
        assert!(run(flags.clone(), &[("tags", r#"["RED"]"#)]).is_empty());
        assert_eq!(run(flags.clone(), &[("tags", "[")]).len(), 3);
        assert_eq!(run(flags, &[("tags", "[]")]).len(), 3);
    }

    #[test]
    fn has_evaluation_tags() {
        let mut tagged = flag(1, "tagged");
        tagged.evaluation_tags = vec!["web".into()];
        let flags = vec![tagged, flag(2, "plain")];
        for yes in ["true", "1", "yes", "TRUE", "Yes"] {
            assert_eq!(
                run(flags.clone(), &[("has_evaluation_tags", yes)]),
                ["tagged"]
            );
        }
        for no in ["false", "0", "no", ""] {
            assert_eq!(
                run(flags.clone(), &[("has_evaluation_tags", no)]),
                ["plain"]
            );
        }
    }

    #[test]
    fn order_whitelist() {
        let mut a = flag(1, "b-key");
        a.name = "zeta".into();
        a.updated_at = now();
        let mut b = flag(2, "a-key");
        b.name = "alpha".into();
        b.updated_at = now() - TimeDelta::days(3);
        let flags = vec![a, b];
        assert_eq!(run(flags.clone(), &[("order", "key")]), ["a-key", "b-key"]);
        assert_eq!(run(flags.clone(), &[("order", "-key")]), ["b-key", "a-key"]);
        assert_eq!(run(flags.clone(), &[("order", "name")]), ["a-key", "b-key"]);
        assert_eq!(
            run(flags.clone(), &[("order", "-name")]),
            ["b-key", "a-key"]
        );
        assert_eq!(
            run(flags.clone(), &[("order", "created_at")]),
            ["b-key", "a-key"]
        );
        assert_eq!(
            run(flags.clone(), &[("order", "-created_at")]),
            ["a-key", "b-key"]
        );
        assert_eq!(
            run(flags.clone(), &[("order", "updated_at")]),
            ["a-key", "b-key"]
        );
        assert_eq!(
            run(flags.clone(), &[("order", "-updated_at")]),
            ["b-key", "a-key"]
        );
        assert_eq!(run(flags.clone(), &[("order", "id")]), ["b-key", "a-key"]);
        assert_eq!(run(flags.clone(), &[("order", "-id")]), ["a-key", "b-key"]);
        for ignored in ["filters", "--key", "", "-", "created_by"] {
            assert_eq!(
                run(flags.clone(), &[("order", ignored)]),
                ["a-key", "b-key"],
                "{ignored}"
            );
        }
    }

    #[test]
    fn filters_combine_with_and_and_last_repeat_wins() {
        let mut off = flag(1, "beta-off");
        off.active = false;
        let flags = vec![off, flag(2, "beta-on"), flag(3, "gamma-on")];
        assert_eq!(
            run(flags.clone(), &[("active", "true"), ("search", "beta")]),
            ["beta-on"]
        );
        assert_eq!(
            run(flags, &[("active", "false"), ("active", "true")]),
            ["gamma-on", "beta-on"]
        );
    }

    #[test]
    fn key_is_an_exact_case_insensitive_match() {
        let flags = vec![flag(1, "my-flag"), flag(2, "My-Flag-2"), flag(3, "other")];
        assert_eq!(run(flags.clone(), &[("key", "my-flag")]), ["my-flag"]);
        assert_eq!(run(flags.clone(), &[("key", " MY-FLAG\n")]), ["my-flag"]);
        assert_eq!(run(flags.clone(), &[("key", "MY-flag-2")]), ["My-Flag-2"]);
        assert!(run(flags.clone(), &[("key", "my")]).is_empty());
        assert!(run(flags.clone(), &[("key", "my-flag%")]).is_empty());
        for blank in ["", "   "] {
            assert_eq!(run(flags.clone(), &[("key", blank)]).len(), 3, "{blank:?}");
        }
        assert_eq!(
            run(flags, &[("key", "other"), ("search", "oth")]),
            ["other"]
        );
    }

    #[test]
    fn archived_flags_are_left_out_unless_asked_for() {
        let mut old = flag(1, "old");
        old.archived = true;
        old.active = false;
        let mut gone = flag(3, "gone");
        gone.archived = true;
        gone.deleted = true;
        let flags = vec![old, flag(2, "live"), gone];
        assert_eq!(run(flags.clone(), &[]), ["live"]);
        for yes in ["true", "True", "1", "yes", "y", "t", "on"] {
            assert_eq!(run(flags.clone(), &[("archived", yes)]), ["old"], "{yes}");
        }
        for no in ["false", "0", "", "nope"] {
            assert_eq!(run(flags.clone(), &[("archived", no)]), ["live"], "{no}");
        }
        assert_eq!(run(flags.clone(), &[("key", "old")]), Vec::<String>::new());
        assert_eq!(
            run(flags.clone(), &[("key", "OLD"), ("archived", "true")]),
            ["old"]
        );
        assert_eq!(
            run(flags, &[("active", "false"), ("archived", "true")]),
            ["old"]
        );
    }

    #[test]
    fn unknown_params_are_ignored() {
        let query = parse(&params(&[("limit", "5"), ("offset", "x"), ("foo", "bar")])).unwrap();
        assert_eq!(query, ListQuery::default());
    }
}
