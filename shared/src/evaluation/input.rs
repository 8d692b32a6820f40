//! What a caller hands the engine for one evaluation: who is asking, with which properties, and
//! the project data (group types, cohorts) the flags refer to.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A project's group types, index → name (`{"0": "company"}` in PostHog's JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTypeMapping {
    names: HashMap<i32, String>,
}

impl GroupTypeMapping {
    pub fn new(pairs: impl IntoIterator<Item = (i32, String)>) -> Self {
        GroupTypeMapping {
            names: pairs.into_iter().collect(),
        }
    }

    /// Reads PostHog's `group_type_mapping` object; entries that are not `"<int>": "<name>"` are
    /// skipped (a bad entry must not hide the good ones).
    pub fn from_json(mapping: &Value) -> Self {
        let pairs = mapping
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.trim().parse::<i32>().ok()?, v.as_str()?.to_string())));
        Self::new(pairs)
    }

    pub fn name(&self, index: i32) -> Option<&str> {
        self.names.get(&index).map(String::as_str)
    }
}

/// Where a flag may be evaluated (`evaluation_runtime`), and where a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    All,
    Client,
    Server,
}

impl Runtime {
    /// PostHog's reading: case-insensitive `client`/`server`; anything else (`all`, empty,
    /// unknown) means all runtimes.
    pub fn parse(text: &str) -> Runtime {
        if text.eq_ignore_ascii_case("client") {
            Runtime::Client
        } else if text.eq_ignore_ascii_case("server") {
            Runtime::Server
        } else {
            Runtime::All
        }
    }

    /// The request's runtime as PostHog's `/flags` handler infers it: the body's explicit
    /// `evaluation_runtime` wins; else the User-Agent (browsers and mobile SDKs → client, server
    /// SDKs, python-requests and curl → server); else browser-only headers (`Origin`, `Referer`,
    /// `Sec-Fetch-*`) → client; else unknown (`None`), which keeps only flags for all runtimes.
    pub fn detect(
        explicit: Option<Runtime>,
        user_agent: Option<&str>,
        has_browser_headers: bool,
    ) -> Option<Runtime> {
        if explicit.is_some() {
            return explicit;
        }
        if let Some(ua) = user_agent {
            const BROWSERS: [&str; 5] = ["Mozilla/", "Chrome/", "Safari/", "Firefox/", "Edge/"];
            const SERVER_SDKS: [&str; 8] = [
                "posthog-python/",
                "posthog-ruby/",
                "posthog-php/",
                "posthog-java/",
                "posthog-go/",
                "posthog-node/",
                "posthog-dotnet/",
                "posthog-elixir/",
            ];
            const MOBILE_SDKS: [&str; 4] = [
                "posthog-android/",
                "posthog-ios/",
                "posthog-react-native/",
                "posthog-flutter/",
            ];
            if BROWSERS.iter().any(|b| ua.contains(b)) {
                return Some(Runtime::Client);
            }
            if SERVER_SDKS.iter().any(|s| ua.starts_with(s))
                || ua.contains("python-requests/")
                || ua.contains("curl/")
            {
                return Some(Runtime::Server);
            }
            if MOBILE_SDKS.iter().any(|m| ua.starts_with(m)) {
                return Some(Runtime::Client);
            }
        }
        has_browser_headers.then_some(Runtime::Client)
    }
}

/// A cohort definition. `filters` is PostHog's cohort filter tree, either the stored form
/// `{"properties": {"type": "AND"|"OR", "values": [...]}}` or the bare property group the
/// definitions endpoint sends; `{}` means everyone. Static cohorts have no filters: membership
/// comes from [`EvaluationInput::static_cohort_ids`].
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub id: i64,
    pub filters: Value,
    pub is_static: bool,
}

/// One person (and their groups) asking for flags. Everything is borrowed: the engine reads
/// the request as it is and never allocates copies of the property maps.
#[derive(Debug, Clone)]
pub struct EvaluationInput<'a> {
    pub distinct_id: &'a str,
    /// Body `device_id`/`$device_id`; when `None` the engine falls back to
    /// `person_properties.$device_id`. Used by `bucketing_identifier: "device_id"` flags.
    pub device_id: Option<&'a str>,
    /// Request person properties (plus stored ones, request values winning, if the caller has
    /// any). The engine adds `distinct_id` and missing `$initial_*` values itself.
    pub person_properties: &'a Map<String, Value>,
    /// Group type name → group key (string or number).
    pub groups: &'a Map<String, Value>,
    /// Group type name → that group's properties.
    pub group_properties: &'a Map<String, Value>,
    pub group_type_mapping: &'a GroupTypeMapping,
    /// Stored experience-continuity hash keys of this person, flag key → hash key.
    pub hash_key_overrides: &'a HashMap<String, String>,
    /// The request's `$anon_distinct_id`: the hash key of continuity flags without an override.
    pub anon_distinct_id: Option<&'a str>,
    /// The request's runtime (see [`Runtime::detect`]); `None` keeps only all-runtime flags.
    pub runtime: Option<Runtime>,
    /// Request `evaluation_contexts` (alias `evaluation_environments`); empty = no filtering.
    pub evaluation_contexts: &'a [String],
    /// `flag_keys_to_evaluate`: evaluate and return only these flags and what they depend on.
    pub flag_keys: Option<&'a [String]>,
    /// Static cohorts this person belongs to.
    pub static_cohort_ids: &'a [i64],
    /// The project's `property_matching_version` (1 = legacy truthiness in `exact`, 2 = explicit).
    pub property_matching_version: u8,
    /// "Now" for relative dates (`-7d`); the engine never reads the clock.
    pub now: DateTime<Utc>,
}

impl<'a> EvaluationInput<'a> {
    /// An input for `distinct_id` with nothing else set: no properties, groups, overrides or
    /// filters, runtime `All` (every flag), matching version 1.
    pub fn new(distinct_id: &'a str, now: DateTime<Utc>) -> Self {
        EvaluationInput {
            distinct_id,
            device_id: None,
            person_properties: empty_map(),
            groups: empty_map(),
            group_properties: empty_map(),
            group_type_mapping: empty_mapping(),
            hash_key_overrides: empty_overrides(),
            anon_distinct_id: None,
            runtime: Some(Runtime::All),
            evaluation_contexts: &[],
            flag_keys: None,
            static_cohort_ids: &[],
            property_matching_version: 1,
            now,
        }
    }
}

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

fn empty_mapping() -> &'static GroupTypeMapping {
    static EMPTY: std::sync::OnceLock<GroupTypeMapping> = std::sync::OnceLock::new();
    EMPTY.get_or_init(GroupTypeMapping::default)
}

fn empty_overrides() -> &'static HashMap<String, String> {
    static EMPTY: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(HashMap::new)
}
