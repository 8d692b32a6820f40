//! List filters and ordering for GET /feature_flags/ (§5.1).
//!
//! A list reads a small [`ListEntry`] per flag, not the flags: every filter and order runs in
//! memory over all of a project's entries, which reproduces PostHog's semantics (icontains,
//! STALE, JSON-based `type`, an exact `count`) whatever the project's size. What an entry
//! cannot tell (usage for STALE, the cut end of a long name or tag list) is decided on the
//! flag itself ([`Verdict::Undecided`]), with [`listed_entry`], the one predicate over whole
//! flags.

use std::cmp::Ordering;
use std::collections::HashMap;

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

/// What the list's filters and orderings read of a flag: everything but its conditions and
/// usage. Entries are stored beside the flags (one small record each) so a list reads them
/// instead of the flags; a stored entry may hold a long name or tag list cut short
/// ([`ListEntry::stored`]), and the filters then ask for the flag ([`Verdict::Undecided`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub id: i64,
    pub key: String,
    pub name: String,
    /// `name` holds only the beginning of the flag's name.
    pub name_cut: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: Option<i64>,
    pub active: bool,
    pub archived: bool,
    pub multivariant: bool,
    pub remote_configuration: bool,
    pub evaluation_runtime: String,
    pub tags: Vec<String>,
    /// `tags` holds only the first of the flag's tags.
    pub tags_cut: bool,
    pub has_evaluation_tags: bool,
}

/// A stored entry keeps at most this much of a name, and of its tags together, so that an
/// entry stays near a kilobyte whatever the flag holds (keys are at most 400 characters).
pub const STORED_NAME_BYTES: usize = 200;
pub const STORED_TAGS_BYTES: usize = 300;

impl ListEntry {
    pub fn of(flag: &Flag) -> Self {
        ListEntry {
            id: flag.id,
            key: flag.key.clone(),
            name: flag.name.clone(),
            name_cut: false,
            created_at: flag.created_at,
            updated_at: flag.updated_at,
            created_by: flag.created_by.as_ref().map(|u| u.id),
            active: flag.active,
            archived: flag.archived,
            multivariant: !flag.variants().is_empty(),
            remote_configuration: flag.is_remote_configuration == Some(true),
            evaluation_runtime: flag.evaluation_runtime.clone(),
            tags: flag.tags.clone(),
            tags_cut: false,
            has_evaluation_tags: !flag.evaluation_tags.is_empty(),
        }
    }

    /// The entry as stored: a long name or tag list cut to its beginning, and marked so.
    pub fn stored(mut self) -> Self {
        if self.name.len() > STORED_NAME_BYTES {
            self.name
                .truncate(char_boundary(&self.name, STORED_NAME_BYTES));
            self.name_cut = true;
        }
        let mut bytes = 0;
        let fits = self
            .tags
            .iter()
            .take_while(|t| {
                bytes += t.len();
                bytes <= STORED_TAGS_BYTES
            })
            .count();
        if fits < self.tags.len() {
            self.tags.truncate(fits);
            self.tags_cut = true;
        }
        self
    }
}

fn char_boundary(text: &str, at: usize) -> usize {
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// Whether an entry is listed, or whether only its flag can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Listed,
    Left,
    /// The query reads what the entry does not hold: usage (`active=STALE`), or the part of
    /// a name or tag list that was cut.
    Undecided,
}

/// Entries the query keeps, and the ids of flags it must read to decide the rest
/// ([`Selection::decide`]).
#[derive(Debug, Default)]
pub struct Selection {
    pub listed: Vec<ListEntry>,
    pub undecided: Vec<i64>,
}

impl Selection {
    /// Every listed entry (in no order), given flags read by id (at least the undecided ones;
    /// one missing was deleted since its entry was read).
    pub fn decide(
        mut self,
        read: &HashMap<i64, Flag>,
        query: &ListQuery,
        now: Timestamp,
    ) -> Vec<ListEntry> {
        self.listed.extend(
            self.undecided
                .iter()
                .filter_map(|id| read.get(id))
                .filter_map(|f| listed_entry(f, query, now)),
        );
        self.listed
    }
}

/// Entries `offset..offset + limit` of the listed ones in the query's order. Only the entries
/// up to the page's end are sorted: a first page of a big project sorts a hundred, not all.
pub fn page(
    mut listed: Vec<ListEntry>,
    query: &ListQuery,
    offset: usize,
    limit: usize,
) -> Vec<ListEntry> {
    let order = query.order.unwrap_or(DEFAULT_ORDER);
    let by_order = |a: &ListEntry, b: &ListEntry| compare(a, b, order);
    let end = offset.saturating_add(limit).min(listed.len());
    if end == 0 {
        return Vec::new();
    }
    if end < listed.len() {
        listed.select_nth_unstable_by(end - 1, by_order);
        listed.truncate(end);
    }
    listed.sort_by(by_order);
    listed.split_off(offset.min(end))
}

/// Sorts entries of non-deleted flags into listed, left out and undecided.
pub fn select(entries: Vec<ListEntry>, query: &ListQuery) -> Selection {
    let mut selection = Selection::default();
    for entry in entries {
        match verdict(&entry, query) {
            Verdict::Listed => selection.listed.push(entry),
            Verdict::Left => {}
            Verdict::Undecided => selection.undecided.push(entry.id),
        }
    }
    selection
}

pub fn verdict(entry: &ListEntry, query: &ListQuery) -> Verdict {
    if !matches_entry(entry, query) {
        return Verdict::Left;
    }
    let cut_search = query
        .search
        .as_deref()
        .is_some_and(|s| !search_in(&[&entry.key], s) && entry.name_cut);
    let cut_tags = entry.tags_cut
        && !query.tags.is_empty()
        && !entry.tags.iter().any(|t| query.tags.contains(t));
    let cut_order = entry.name_cut && query.order.is_some_and(|o| o.field == OrderField::Name);
    // Stale flags are active and not archived; only their usage can tell which of those are.
    let usage = query.active == Some(ActiveFilter::Stale) && entry.active && !entry.archived;
    if cut_search || cut_tags || cut_order || usage {
        Verdict::Undecided
    } else {
        Verdict::Listed
    }
}

/// Every filter an entry can decide; a cut name or tag list passes the filters it cannot.
fn matches_entry(entry: &ListEntry, query: &ListQuery) -> bool {
    let active = match query.active {
        None => true,
        Some(ActiveFilter::Stale) => entry.active && !entry.archived,
        Some(ActiveFilter::Enabled) => entry.active,
        Some(ActiveFilter::Disabled) => !entry.active,
    };
    active
        && query
            .created_by_id
            .is_none_or(|id| entry.created_by == Some(id))
        && query.search.as_deref().is_none_or(|s| {
            // A cut name may end in the middle of a match, or lower-case differently there.
            entry.name_cut || search_in(&[&entry.key, &entry.name], s)
        })
        && query
            .key
            .as_deref()
            .is_none_or(|k| python::sql_upper(&entry.key) == python::sql_upper(k))
        && entry.archived == query.archived.unwrap_or(false)
        && query.flag_type.is_none_or(|t| match t {
            TypeFilter::Boolean => !entry.multivariant,
            TypeFilter::Multivariant => entry.multivariant,
            TypeFilter::Experiment => false,
            TypeFilter::RemoteConfig => entry.remote_configuration,
        })
        && query
            .evaluation_runtime
            .as_deref()
            .is_none_or(|r| entry.evaluation_runtime == r)
        && !query.excluded_keys.contains(&entry.key)
        && (query.tags.is_empty()
            || entry.tags_cut
            || entry.tags.iter().any(|t| query.tags.contains(t)))
        && query
            .has_evaluation_tags
            .is_none_or(|wanted| wanted == entry.has_evaluation_tags)
}

/// The flag's entry if the whole flag is listed: not deleted, the entry's filters, its usage.
pub fn listed_entry(flag: &Flag, query: &ListQuery, now: Timestamp) -> Option<ListEntry> {
    if flag.deleted {
        return None;
    }
    let entry = ListEntry::of(flag);
    let listed = verdict(&entry, query) != Verdict::Left
        && (query.active != Some(ActiveFilter::Stale) || status::is_stale(flag, now));
    listed.then_some(entry)
}

/// Keeps the non-deleted flags matching every filter and sorts them.
pub fn apply(flags: Vec<Flag>, query: &ListQuery, now: Timestamp) -> Vec<Flag> {
    let order = query.order.unwrap_or(DEFAULT_ORDER);
    let mut kept: Vec<(ListEntry, Flag)> = flags
        .into_iter()
        .filter_map(|f| Some((listed_entry(&f, query, now)?, f)))
        .collect();
    kept.sort_by(|(a, _), (b, _)| compare(a, b, order));
    kept.into_iter().map(|(_, f)| f).collect()
}

/// Case-insensitive substring of any of the texts (PostHog's `icontains`).
fn search_in(texts: &[&str], search: &str) -> bool {
    let needle = search.to_lowercase();
    texts.iter().any(|t| t.to_lowercase().contains(&needle))
}

/// The requested order, then newest first and highest id first so pages are stable.
fn compare(a: &ListEntry, b: &ListEntry, order: Order) -> Ordering {
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

    /// Flags covering every field a filter or order reads, with long names and tag lists
    /// whose stored entries are cut (a match before and after the cut).
    fn varied_flags() -> Vec<Flag> {
        (0..48)
            .map(|i| {
                let mut f = flag(i, &format!("flag-{i}"));
                f.name = match i % 6 {
                    0 => format!("{}needle {i}", "x".repeat(STORED_NAME_BYTES)),
                    1 => format!("Needle {i}{}", "é".repeat(STORED_NAME_BYTES)),
                    2 => format!("{}{i}", "Σ".repeat(STORED_NAME_BYTES)),
                    3 => String::new(),
                    _ => format!("flag number {}", i % 4),
                };
                f.tags = match i % 5 {
                    0 => (0..80).map(|t| format!("tag-{t}")).chain(["late".into()]).collect(),
                    1 => vec!["late".into(), "t0".into()],
                    2 => vec!["t0".into()],
                    _ => Vec::new(),
                };
                f.evaluation_tags = f.tags.iter().take(i as usize % 2).cloned().collect();
                f.active = i % 7 != 0;
                f.archived = i % 11 == 0;
                f.deleted = i % 13 == 5;
                if i % 3 == 0 {
                    f.created_by = Some(user(2));
                }
                if i % 9 == 0 {
                    f.created_by = None;
                }
                if i % 4 == 1 {
                    f.filters = json!({"groups": [], "multivariate": {"variants": [{"key": "a", "rollout_percentage": 100}]}});
                }
                if i % 4 == 2 {
                    f.filters = json!({"groups": [{"properties": [], "rollout_percentage": 100}]});
                }
                f.is_remote_configuration = Some(i % 8 == 3);
                f.evaluation_runtime = ["all", "server", "client"][i as usize % 3].into();
                f.last_called_at = match i % 4 {
                    0 => Some(now() - TimeDelta::days(45)),
                    1 => Some(now() - TimeDelta::days(2)),
                    _ => None,
                };
                if i % 5 == 2 {
                    f.created_at = now() - TimeDelta::days(60 + i);
                }
                f.updated_at = now() - TimeDelta::minutes((i * 37) % 50);
                f
            })
            .collect()
    }

    #[test]
    fn stored_entries_list_exactly_what_the_flags_do() {
        let flags = varied_flags();
        let queries: &[&[(&str, &str)]] = &[
            &[],
            &[("search", "needle")],
            &[("search", "NEEDLE 1")],
            &[("search", "flag-1")],
            &[("search", "σσ")],
            &[("search", "number 2"), ("order", "-name")],
            &[("tags", r#"["late"]"#)],
            &[("tags", r#"["t0", "tag-3"]"#)],
            &[("active", "STALE")],
            &[("active", "STALE"), ("tags", r#"["late"]"#)],
            &[("active", "true")],
            &[("active", "false"), ("archived", "true")],
            &[("order", "name")],
            &[("order", "-name"), ("search", "needle")],
            &[("order", "key")],
            &[("order", "-updated_at")],
            &[("order", "id")],
            &[("type", "boolean")],
            &[("type", "multivariant")],
            &[("type", "remote_config")],
            &[("type", "experiment")],
            &[("created_by_id", "2")],
            &[("created_by_id", "1"), ("order", "name")],
            &[("evaluation_runtime", "server")],
            &[("has_evaluation_tags", "true")],
            &[("has_evaluation_tags", "false")],
            &[("key", "FLAG-12")],
            &[("excluded_properties", r#"["flag-1", "flag-2"]"#)],
        ];
        for pairs in queries {
            let query = parse(&params(pairs)).unwrap();
            let expected = keys(&apply(flags.clone(), &query, now()))
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            let entries = flags
                .iter()
                .filter(|f| !f.deleted)
                .map(|f| ListEntry::of(f).stored())
                .collect();
            let selection = select(entries, &query);
            let read: HashMap<i64, Flag> = flags.iter().map(|f| (f.id, f.clone())).collect();
            let listed = selection.decide(&read, &query, now());
            let all: Vec<String> = page(listed.clone(), &query, 0, usize::MAX)
                .into_iter()
                .map(|e| e.key)
                .collect();
            assert_eq!(all, expected, "{pairs:?}");
            for (offset, limit) in [(0, 1), (0, 5), (3, 4), (10, 100), (100, 5)] {
                let keys: Vec<String> = page(listed.clone(), &query, offset, limit)
                    .into_iter()
                    .map(|e| e.key)
                    .collect();
                let slice: Vec<String> =
                    expected.iter().skip(offset).take(limit).cloned().collect();
                assert_eq!(keys, slice, "{pairs:?} {offset} {limit}");
            }
            let listed = all;
            assert_eq!(listed, expected, "{pairs:?}");
        }
        let cut = flags.iter().map(|f| ListEntry::of(f).stored());
        assert!(cut.clone().any(|e| e.name_cut) && cut.clone().any(|e| e.tags_cut));
    }

    #[test]
    fn only_what_an_entry_cannot_tell_is_read() {
        let flags = varied_flags();
        let entries = || {
            flags
                .iter()
                .filter(|f| !f.deleted)
                .map(|f| ListEntry::of(f).stored())
                .collect()
        };
        let read = |pairs: &[(&str, &str)]| {
            select(entries(), &parse(&params(pairs)).unwrap())
                .undecided
                .len()
        };
        assert_eq!(read(&[]), 0);
        assert_eq!(read(&[("order", "key"), ("type", "boolean")]), 0);
        let cut_names_not_matching_by_key = flags
            .iter()
            .filter(|f| !f.deleted && !f.archived && !f.key.contains("flag-1"))
            .filter(|f| ListEntry::of(f).stored().name_cut)
            .count();
        assert_eq!(read(&[("search", "flag-1")]), cut_names_not_matching_by_key);
        assert!(read(&[("search", "needle")]) > 0);
        assert!(read(&[("active", "STALE")]) > 0);
    }

    #[test]
    fn unknown_params_are_ignored() {
        let query = parse(&params(&[("limit", "5"), ("offset", "x"), ("foo", "bar")])).unwrap();
        assert_eq!(query, ListQuery::default());
    }
}
