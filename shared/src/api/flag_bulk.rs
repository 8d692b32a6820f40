//! `POST /api/projects/{project_id}/feature_flags/bulk_keys/`, `…/bulk_update_tags/` and
//! `…/bulk_delete/` (issue 13): PostHog's bodies, limits and per-flag reports. Every change is
//! an ordinary [`FlagService`] write (its own transaction, conditions and activity entry) of one
//! batch, so the project's definitions version moves once per request, not once per flag.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value, json};

use super::Context;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::flag::filters;
use crate::flag::status::{self, RolledOut};
use crate::flag::{Flag, list};
use crate::http::ApiResponse;
use crate::identity::{Project, UserSummary};
use crate::python;
use crate::service::{Changes, FlagService};
use crate::store::{FeatureStore, FlagStore, IdentityStore};

/// PostHog's `BULK_UPDATE_TAGS_MAX_IDS`.
pub const BULK_UPDATE_TAGS_MAX_IDS: usize = 500;
/// PostHog's `BULK_UPDATE_TAGS_MAX_TAGS`.
pub const BULK_UPDATE_TAGS_MAX_TAGS: usize = 100;
/// PostHog's `TAG_NAME_MAX_LENGTH` (characters).
pub const TAG_NAME_MAX_LENGTH: usize = 255;
/// PostHog's `BULK_UPDATE_TAGS_MAX_OPERATIONS`: ids × distinct tags.
pub const BULK_UPDATE_TAGS_MAX_OPERATIONS: usize = 10_000;
/// PostHog deletes any number of flags in one request; every deletion here is its own
/// conditional transaction within one function invocation, so a request deletes at most this
/// many (by `ids` or matched by `filters`) and answers 400 past it.
pub const BULK_DELETE_MAX_FLAGS: usize = 500;
/// PostHog looks up any number of ids; this bounds the request (and its `warning` text).
pub const BULK_KEYS_MAX_IDS: usize = 1_000;

/// PostHog gives one reason for missing and inaccessible flags alike.
const SKIPPED_REASON: &str = "Not found or no edit access";

/// The filter keys `bulk_delete` accepts (PostHog's `BulkDeleteFiltersSerializer`).
const DELETE_FILTER_KEYS: [&str; 10] = [
    "active",
    "archived",
    "created_by_id",
    "evaluation_runtime",
    "excluded_properties",
    "excluded_tags",
    "has_evaluation_contexts",
    "search",
    "tags",
    "type",
];

pub(super) struct FlagBulk<'a, S> {
    pub ctx: &'a Context<'a, S>,
    pub caller: &'a Caller,
    pub project: &'a Project,
}

/// PostHog answers these endpoints' own 400s with `{"error": …}`, not the error envelope.
fn error_400(message: impl Into<String>) -> ApiResponse {
    ApiResponse::json(400, json!({"error": message.into()}))
}

/// An id as PostHog's bulk endpoints read one: an integer, or a string of digits.
fn flag_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

impl<S: FlagStore + IdentityStore + FeatureStore> FlagBulk<'_, S> {
    fn actor(&self) -> Option<UserSummary> {
        self.caller.user().map(UserSummary::from)
    }

    fn service(&self) -> FlagService<'_, S> {
        FlagService::batch(self.ctx.store, self.ctx.cipher)
    }

    /// `bulk_keys`: `{"keys": {"<id>": key}}` for the listed ids of this project's flags
    /// (soft-deleted ones included, as PostHog's query does); anything but an integer or a
    /// digit string is left out and named in `warning`.
    pub async fn bulk_keys(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let listed = match body.get("ids") {
            None => return Ok(ApiResponse::ok(json!({"keys": {}}))),
            Some(v) if !python::truthy(v) => return Ok(ApiResponse::ok(json!({"keys": {}}))),
            Some(Value::Array(items)) => items,
            Some(_) => return Ok(error_400("Invalid flag IDs provided")),
        };
        if listed.len() > BULK_KEYS_MAX_IDS {
            return Ok(error_400(format!(
                "Too many flag IDs: at most {BULK_KEYS_MAX_IDS} per request."
            )));
        }
        let (valid, invalid): (Vec<&Value>, Vec<&Value>) =
            listed.iter().partition(|v| flag_id(v).is_some());
        if valid.is_empty() {
            return Ok(error_400("Invalid flag IDs provided"));
        }
        let wanted: HashSet<i64> = valid.iter().filter_map(|v| flag_id(v)).collect();
        let flags = self.ctx.store.project_flags(self.project.id).await?;
        let keys: Map<String, Value> = flags
            .iter()
            .filter(|f| wanted.contains(&f.id))
            .map(|f| (f.id.to_string(), Value::String(f.key.clone())))
            .collect();
        let mut shown = json!({"keys": keys});
        if !invalid.is_empty() {
            let ignored = Value::Array(invalid.into_iter().cloned().collect());
            shown["warning"] = json!(format!(
                "Invalid flag IDs ignored: {}",
                python::str(&ignored)
            ));
        }
        Ok(ApiResponse::ok(shown))
    }

    /// `bulk_update_tags`: `add`, `remove` or `set` tags on up to 500 flags. Each flag whose
    /// tags change is a PATCH of `tags` (version, activity entry); the tags are worked out from
    /// the flag as stored on every attempt, so a concurrent edit is never undone.
    pub async fn bulk_update_tags(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let request = TagsRequest::parse(body)?;
        let flags = self.ctx.store.project_flags(self.project.id).await?;
        let mut found: Vec<&Flag> = flags
            .iter()
            .filter(|f| !f.deleted && request.ids.contains(&f.id))
            .collect();
        found.sort_by_key(|f| f.id);
        let mut skipped: Vec<Value> = Vec::new();
        let found_ids: HashSet<i64> = found.iter().map(|f| f.id).collect();
        for id in &request.ids {
            if !found_ids.contains(id) {
                skipped.push(json!({"id": id, "reason": SKIPPED_REASON}));
            }
        }
        let service = self.service();
        let actor = self.actor();
        let mut updated = Vec::new();
        for flag in found {
            let changes = Changes::action_from_stored(|stored: &Flag| {
                let tags = request.resolve(&stored.tags);
                let current: BTreeSet<String> = stored.tags.iter().cloned().collect();
                let mut body = Map::new();
                if tags != current {
                    body.insert("tags".into(), json!(tags));
                }
                Ok(body)
            });
            let result = service
                .update(
                    self.project.id,
                    actor.as_ref(),
                    flag.id,
                    changes,
                    self.ctx.now,
                )
                .await;
            match result {
                Ok(stored) => {
                    let mut tags = stored.tags.clone();
                    tags.sort();
                    updated.push(json!({"id": stored.id, "tags": tags}));
                }
                Err(e) => skipped.push(json!({"id": flag.id, "reason": reason(&e)})),
            }
        }
        service.finish_batch().await?;
        Ok(ApiResponse::ok(
            json!({"updated": updated, "skipped": skipped}),
        ))
    }

    /// `bulk_delete`: soft-deletes the flags named by `ids`, or matched by `filters` (the list
    /// endpoint's filters), up to [`BULK_DELETE_MAX_FLAGS`]. Flags other flags depend on or an
    /// early access feature uses are reported in `errors`, as are unknown ids; each deletion is
    /// the same guarded write as `PATCH {"deleted": true}`.
    pub async fn bulk_delete(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let given_filters = body.get("filters").filter(|v| python::truthy(v));
        let given_ids = body.get("ids").filter(|v| python::truthy(v));
        let all = self.ctx.store.project_flags(self.project.id).await?;
        let mut errors: Vec<Value> = Vec::new();
        let chosen: Vec<&Flag> = match (given_filters, given_ids) {
            (Some(_), Some(_)) => return Ok(error_400("Provide either filters or ids, not both")),
            (None, None) => return Ok(error_400("Must provide either filters or ids")),
            (Some(f), None) => {
                let Value::Object(f) = f else {
                    return Ok(error_400("filters must be an object"));
                };
                let unknown: BTreeSet<&str> = f
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !DELETE_FILTER_KEYS.contains(k))
                    .collect();
                if !unknown.is_empty() {
                    let names: Vec<&str> = unknown.into_iter().collect();
                    return Ok(error_400(format!(
                        "Unknown filter keys: {}",
                        names.join(", ")
                    )));
                }
                matching(&all, f, self.ctx.now)?
            }
            (None, Some(ids)) => {
                let Value::Array(ids) = ids else {
                    return Ok(error_400("ids must be a list of flag IDs"));
                };
                if ids.len() > BULK_DELETE_MAX_FLAGS {
                    return Ok(error_400(too_many_to_delete(ids.len())));
                }
                let live = |id: i64| all.iter().find(|f| f.id == id && !f.deleted);
                for raw in ids {
                    match flag_id(raw) {
                        None => errors.push(json!({"id": raw, "reason": "Invalid flag ID format"})),
                        Some(id) if live(id).is_none() => {
                            errors.push(json!({"id": id, "reason": "Flag not found"}))
                        }
                        Some(_) => {}
                    }
                }
                let wanted: HashSet<i64> = ids.iter().filter_map(flag_id).collect();
                let mut chosen: Vec<&Flag> = all
                    .iter()
                    .filter(|f| !f.deleted && wanted.contains(&f.id))
                    .collect();
                chosen.sort_by_key(|f| f.id);
                chosen
            }
        };
        if chosen.len() > BULK_DELETE_MAX_FLAGS {
            return Ok(error_400(too_many_to_delete(chosen.len())));
        }
        let features = self.ctx.store.project_features(self.project.id).await?;
        let service = self.service();
        let actor = self.actor();
        let mut deleted = Vec::new();
        for flag in chosen {
            if let Some(reason) = refusal(flag, &all, &features) {
                errors.push(json!({"id": flag.id, "key": flag.key, "reason": reason}));
                continue;
            }
            let result = service
                .set_deleted(self.project.id, actor.as_ref(), flag.id, true, self.ctx.now)
                .await;
            match result {
                Ok(_) => deleted.push(deleted_entry(flag)),
                Err(e) => {
                    errors.push(json!({"id": flag.id, "key": flag.key, "reason": reason(&e)}))
                }
            }
        }
        service.finish_batch().await?;
        Ok(ApiResponse::ok(
            json!({"deleted": deleted, "errors": errors}),
        ))
    }
}

fn too_many_to_delete(count: usize) -> String {
    format!(
        "Too many flags to delete in one request: {count} selected, at most {BULK_DELETE_MAX_FLAGS}. Delete them in smaller batches."
    )
}

/// A failed write's message for a per-flag report (server errors stay generic).
fn reason(e: &ApiError) -> String {
    e.to_string()
}

/// The flags `filters` selects, as the list endpoint would list them (archived ones only when
/// the filters ask), in the list's order.
fn matching<'f>(
    all: &'f [Flag],
    given: &Map<String, Value>,
    now: crate::time::Timestamp,
) -> ApiResult<Vec<&'f Flag>> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut excluded_tags: Vec<String> = Vec::new();
    for (name, value) in given {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            other => other.to_string(),
        };
        match name.as_str() {
            "has_evaluation_contexts" => params.push(("has_evaluation_tags".into(), text)),
            "excluded_tags" => excluded_tags = json_strings(value),
            _ => params.push((name.clone(), text)),
        }
    }
    let query = list::parse(&params)?;
    let kept = list::apply(all.to_vec(), &query, now);
    let ids: Vec<i64> = kept
        .iter()
        .filter(|f| !f.tags.iter().any(|t| excluded_tags.contains(t)))
        .map(|f| f.id)
        .collect();
    Ok(ids
        .iter()
        .filter_map(|id| all.iter().find(|f| f.id == *id))
        .collect())
}

/// A list of names given as a JSON list or as the text of one (as PostHog reads filters).
fn json_strings(value: &Value) -> Vec<String> {
    let parsed;
    let items = match value {
        Value::Array(items) => items,
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => {
                parsed = items;
                &parsed
            }
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    items.iter().map(python::str).collect()
}

/// PostHog's reasons for leaving a flag out of a bulk delete, checked against the project as
/// it was read before the first deletion.
fn refusal(flag: &Flag, all: &[Flag], features: &[crate::early_access::Feature]) -> Option<String> {
    if features.iter().any(|f| f.feature_flag_id == Some(flag.id)) {
        return Some(
            "Cannot delete a feature flag that is in use with early access features".into(),
        );
    }
    let dependents = filters::dependents(flag.id, all);
    if dependents.is_empty() {
        return None;
    }
    let mut names: Vec<String> = dependents
        .iter()
        .take(3)
        .map(|f| format!("{} (ID: {})", f.key, f.id))
        .collect();
    if dependents.len() > 3 {
        names.push(format!("and {} more", dependents.len() - 3));
    }
    Some(format!(
        "Cannot delete because other flags depend on it: {}",
        names.join(", ")
    ))
}

/// A deleted flag as PostHog reports it: its rollout state at deletion time.
fn deleted_entry(flag: &Flag) -> Value {
    let (state, variant) = match status::fully_rolled_out(flag) {
        Some(RolledOut::Boolean) => ("fully_rolled_out", None),
        Some(RolledOut::Variant(v)) => ("fully_rolled_out", Some(v)),
        None if max_rollout(flag) == Some(0.0) => ("not_rolled_out", None),
        None => ("partial", None),
    };
    json!({"id": flag.id, "key": flag.key, "rollout_state": state, "active_variant": variant})
}

/// The highest rollout percentage of the flag's condition sets (a missing one is 100).
fn max_rollout(flag: &Flag) -> Option<f64> {
    filters::Filters::of(&flag.filters)
        .groups()
        .map(|g| {
            g.rollout_percentage()
                .and_then(Value::as_f64)
                .unwrap_or(100.0)
        })
        .reduce(f64::max)
}

/// A validated `bulk_update_tags` body (PostHog's `BulkUpdateTagsRequestSerializer`).
struct TagsRequest {
    ids: Vec<i64>,
    action: TagAction,
    /// Trimmed, lower-cased, blanks dropped (PostHog's `normalize_tag_names`).
    tags: BTreeSet<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum TagAction {
    Add,
    Remove,
    Set,
}

impl TagsRequest {
    fn parse(body: &Map<String, Value>) -> ApiResult<Self> {
        let ids = ids_field(body.get("ids"))?;
        let action = match body.get("action") {
            None => return Err(required("action")),
            Some(Value::String(s)) if s == "add" => TagAction::Add,
            Some(Value::String(s)) if s == "remove" => TagAction::Remove,
            Some(Value::String(s)) if s == "set" => TagAction::Set,
            Some(Value::Null) => return Err(null("action")),
            Some(other) => {
                return Err(ApiError::field(
                    "action",
                    "invalid_choice",
                    format!("\"{}\" is not a valid choice.", python::str(other)),
                ));
            }
        };
        let raw = tags_field(body.get("tags"))?;
        if action != TagAction::Set && raw.is_empty() {
            let name = if action == TagAction::Add {
                "add"
            } else {
                "remove"
            };
            return Err(ApiError::invalid(
                "tags",
                format!("tags must not be empty for action '{name}'."),
            ));
        }
        let distinct: HashSet<String> = raw.iter().map(|t| tagify(t)).collect();
        if ids.len() * distinct.len() > BULK_UPDATE_TAGS_MAX_OPERATIONS {
            return Err(ApiError::invalid(
                "tags",
                format!(
                    "Too many changes in one request: ids × distinct tags must not exceed {BULK_UPDATE_TAGS_MAX_OPERATIONS}."
                ),
            ));
        }
        let tags = raw
            .iter()
            .map(|t| tagify(t))
            .filter(|t| !t.is_empty())
            .collect();
        Ok(TagsRequest { ids, action, tags })
    }

    /// The tags a flag ends up with.
    fn resolve(&self, current: &[String]) -> BTreeSet<String> {
        let current: BTreeSet<String> = current.iter().cloned().collect();
        match self.action {
            TagAction::Add => current.union(&self.tags).cloned().collect(),
            TagAction::Remove => current.difference(&self.tags).cloned().collect(),
            TagAction::Set => self.tags.clone(),
        }
    }
}

/// PostHog's `tagify`: trimmed and lower-cased.
fn tagify(tag: &str) -> String {
    python::strip(tag).to_lowercase()
}

fn required(attr: &str) -> ApiError {
    ApiError::field(attr, "required", "This field is required.")
}

fn null(attr: &str) -> ApiError {
    ApiError::field(attr, "null", "This field may not be null.")
}

fn not_a_list(attr: &str, v: &Value) -> ApiError {
    ApiError::field(
        attr,
        "not_a_list",
        format!(
            "Expected a list of items but got type \"{}\".",
            python::type_name(v)
        ),
    )
}

/// `ids`: a non-empty list of at most 500 integers (DRF's `IntegerField` reads integral
/// numbers and integer strings); the first bad item is reported as `ids__<index>`.
fn ids_field(v: Option<&Value>) -> ApiResult<Vec<i64>> {
    let items = match v {
        None => return Err(required("ids")),
        Some(Value::Null) => return Err(null("ids")),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(not_a_list("ids", other)),
    };
    if items.is_empty() {
        return Err(ApiError::field(
            "ids",
            "empty",
            "This list may not be empty.",
        ));
    }
    if items.len() > BULK_UPDATE_TAGS_MAX_IDS {
        return Err(ApiError::field(
            "ids",
            "max_length",
            format!("Ensure this field has no more than {BULK_UPDATE_TAGS_MAX_IDS} elements."),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            integer(item).ok_or_else(|| {
                ApiError::field(
                    &format!("ids__{i}"),
                    "invalid",
                    "A valid integer is required.",
                )
            })
        })
        .collect()
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let text = python::strip(s);
            let text = text.split_once('.').map_or(text, |(whole, fraction)| {
                if fraction.bytes().all(|b| b == b'0') {
                    whole
                } else {
                    text
                }
            });
            text.parse().ok()
        }
        _ => None,
    }
}

/// `tags`: a list of at most 100 non-blank strings of at most 255 characters.
fn tags_field(v: Option<&Value>) -> ApiResult<Vec<String>> {
    let items = match v {
        None => return Err(required("tags")),
        Some(Value::Null) => return Err(null("tags")),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(not_a_list("tags", other)),
    };
    if items.len() > BULK_UPDATE_TAGS_MAX_TAGS {
        return Err(ApiError::field(
            "tags",
            "max_length",
            format!("Ensure this field has no more than {BULK_UPDATE_TAGS_MAX_TAGS} elements."),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let attr = format!("tags__{i}");
            let text = match item {
                Value::String(s) => python::strip(s).to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => return Err(null(&attr)),
                _ => return Err(ApiError::field(&attr, "invalid", "Not a valid string.")),
            };
            if text.is_empty() {
                return Err(ApiError::field(
                    &attr,
                    "blank",
                    "This field may not be blank.",
                ));
            }
            if text.chars().count() > TAG_NAME_MAX_LENGTH {
                return Err(ApiError::field(
                    &attr,
                    "max_length",
                    format!("Ensure this field has no more than {TAG_NAME_MAX_LENGTH} characters."),
                ));
            }
            Ok(text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn tag_requests_follow_posthogs_serializer() {
        let ok = TagsRequest::parse(&body(
            json!({"ids": [1, "2"], "action": "add", "tags": [" Beta ", "beta"]}),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.ids, vec![1, 2]);
        assert_eq!(ok.tags.iter().collect::<Vec<_>>(), vec!["beta"]);
        let err = |v: Value| TagsRequest::parse(&body(v)).err().and_then(|e| e.body());
        assert_eq!(
            err(json!({"action": "add", "tags": ["a"]})).unwrap()["attr"],
            "ids"
        );
        assert_eq!(
            err(json!({"ids": [], "action": "add", "tags": ["a"]})).unwrap()["code"],
            "empty"
        );
        assert_eq!(
            err(json!({"ids": [1, "x"], "action": "add", "tags": ["a"]})).unwrap()["attr"],
            "ids__1"
        );
        assert_eq!(
            err(json!({"ids": [1], "action": "merge", "tags": ["a"]})).unwrap()["code"],
            "invalid_choice"
        );
        assert_eq!(
            err(json!({"ids": [1], "action": "remove", "tags": []})).unwrap()["detail"],
            "tags must not be empty for action 'remove'."
        );
        let many: Vec<i64> = (0..=500).collect();
        assert_eq!(
            err(json!({"ids": many, "action": "set", "tags": []})).unwrap()["code"],
            "max_length"
        );
        let ids: Vec<i64> = (0..200).collect();
        let tags: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
        assert!(
            err(json!({"ids": ids, "action": "add", "tags": tags})).unwrap()["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("Too many changes"))
        );
        assert!(
            TagsRequest::parse(&body(json!({"ids": [1], "action": "set", "tags": []}))).is_ok()
        );
    }

    #[test]
    fn tag_actions_resolve_against_current_tags() {
        let request = |action| TagsRequest {
            ids: vec![1],
            action,
            tags: ["b", "c"].iter().map(|s| s.to_string()).collect(),
        };
        let current = vec!["a".to_string(), "b".to_string()];
        let names = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(request(TagAction::Add).resolve(&current)),
            ["a", "b", "c"]
        );
        assert_eq!(names(request(TagAction::Remove).resolve(&current)), ["a"]);
        assert_eq!(names(request(TagAction::Set).resolve(&current)), ["b", "c"]);
    }

    #[test]
    fn ids_are_integers_or_digit_strings() {
        assert_eq!(flag_id(&json!(7)), Some(7));
        assert_eq!(flag_id(&json!("42")), Some(42));
        assert_eq!(flag_id(&json!("4a")), None);
        assert_eq!(flag_id(&json!("-1")), None);
        assert_eq!(flag_id(&json!(1.5)), None);
        assert_eq!(flag_id(&json!(null)), None);
    }
}
