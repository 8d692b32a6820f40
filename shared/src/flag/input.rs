//! Reading create/update bodies with DRF's field rules, in serializer field order, so the first
//! error reported is the one PostHog would report.

use serde_json::{Map, Value};

use super::filters::{self, FilterContext, Filters};
use super::{Flag, KEY_MAX_CHARS};
use crate::error::{ApiError, ApiResult};
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Create,
    /// PUT: like PATCH, but `key` is required and filters without `groups` still count.
    Replace,
    Patch,
}

/// What the body carries besides flag fields.
#[derive(Debug, Default)]
pub struct Extras {
    /// The version the client last read (concurrency token).
    pub version: Option<i64>,
    /// The flag as the client loaded it, for PostHog's conflict rule.
    pub original_flag: Option<Map<String, Value>>,
}

/// Applies every writable field present in `body` to `flag`, validating as PostHog does.
/// `ctx` carries what `filters` validation needs (the project's flags, links).
pub fn apply(
    body: &Map<String, Value>,
    mode: Mode,
    flag: &mut Flag,
    ctx: &FilterContext<'_>,
) -> ApiResult<Extras> {
    if let Some(v) = body.get("name") {
        flag.name = string("name", v)?;
    }
    match body.get("key") {
        Some(v) => flag.key = key(v, flag.id, ctx.project_flags)?,
        None if mode != Mode::Patch => {
            return Err(ApiError::field(
                "key",
                "required",
                "This field is required.",
            ));
        }
        None => {}
    }
    if let Some(v) = body.get("filters") {
        let ignored = mode == Mode::Patch && v.is_object() && !Filters::of(v).has_groups();
        if !ignored {
            // PostHog names "the flag" (self-dependency, cycle paths) by the submitted key on
            // create but by the stored key on update, even when the same body renames it.
            let flag_key = if ctx.is_create {
                &flag.key
            } else {
                ctx.flag_key
            };
            let ctx = FilterContext { flag_key, ..*ctx };
            flag.filters = filters::validate(v, &ctx)?;
        }
    }
    if let Some(v) = body.get("deleted") {
        flag.deleted = boolean("deleted", v)?;
    }
    if let Some(v) = body.get("active") {
        flag.active = boolean("active", v)?;
    }
    let archiving = body
        .get("archived")
        .map(|v| boolean("archived", v))
        .transpose()?;
    if let Some(archived) = archiving {
        flag.archived = archived;
    }
    if let Some(v) = body.get("created_at") {
        flag.created_at = datetime("created_at", v)?;
    }
    let version = body
        .get("version")
        .map(|v| integer("version", v))
        .transpose()?
        .flatten();
    if let Some(v) = body.get("ensure_experience_continuity") {
        flag.ensure_experience_continuity = nullable_boolean("ensure_experience_continuity", v)?;
    }
    if let Some(v) = body.get("rollback_conditions") {
        flag.rollback_conditions = v.clone();
    }
    if let Some(v) = body.get("performed_rollback") {
        flag.performed_rollback = nullable_boolean("performed_rollback", v)?;
    }
    if let Some(v) = body.get("tags") {
        flag.tags = tags("tags", v)?;
    }
    if let Some(v) = body.get("evaluation_tags") {
        flag.evaluation_tags = tags("evaluation_tags", v)?;
    }
    if let Some(v) = body.get("analytics_dashboards") {
        add_dashboards(&mut flag.analytics_dashboards, dashboard_ids(v)?);
    }
    if let Some(v) = body.get("has_enriched_analytics") {
        flag.has_enriched_analytics = nullable_boolean("has_enriched_analytics", v)?;
    }
    if let Some(v) = body
        .get("creation_context")
        .filter(|_| mode == Mode::Create)
    {
        flag.creation_context = choice("creation_context", v, CREATION_CONTEXTS)?;
    }
    if let Some(v) = body.get("is_remote_configuration") {
        flag.is_remote_configuration = nullable_boolean("is_remote_configuration", v)?;
    }
    if let Some(v) = body.get("has_encrypted_payloads") {
        flag.has_encrypted_payloads = nullable_boolean("has_encrypted_payloads", v)?;
    }
    if let Some(v) = body.get("evaluation_runtime") {
        flag.evaluation_runtime = choice("evaluation_runtime", v, &["server", "client", "all"])?;
    }
    if let Some(v) = body.get("bucketing_identifier") {
        flag.bucketing_identifier =
            choice("bucketing_identifier", v, &["distinct_id", "device_id"])?;
    }
    if let Some(v) = body.get("last_called_at") {
        flag.last_called_at = match v {
            Value::Null => None,
            v => Some(datetime("last_called_at", v)?),
        };
    }
    if body.contains_key("evaluation_tags") {
        evaluation_tags_subset(&flag.evaluation_tags, body.get("tags").map(|_| &flag.tags))?;
    }
    archived_flags_are_disabled(flag, archiving == Some(true))?;
    let original_flag = body
        .get("original_flag")
        .and_then(Value::as_object)
        .cloned();
    Ok(Extras {
        version,
        original_flag,
    })
}

const CREATION_CONTEXTS: &[&str] = &[
    "feature_flags",
    "experiments",
    "surveys",
    "early_access_features",
    "web_experiments",
    "product_tours",
];

fn null_error(attr: &str) -> ApiError {
    ApiError::field(attr, "null", "This field may not be null.")
}

/// DRF `CharField`: numbers become text, surrounding whitespace is trimmed.
fn string(attr: &str, v: &Value) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Err(null_error(attr)),
        _ => Err(ApiError::invalid(attr, "Not a valid string.")),
    }
}

/// Key rules in PostHog's order: required/blank/length, then uniqueness, then charset.
fn key(v: &Value, own_id: i64, project_flags: &[Flag]) -> ApiResult<String> {
    let key = string("key", v)?;
    if key.is_empty() {
        return Err(ApiError::field(
            "key",
            "blank",
            "This field may not be blank.",
        ));
    }
    if key.chars().count() > KEY_MAX_CHARS {
        return Err(ApiError::field(
            "key",
            "max_length",
            "Ensure this field has no more than 400 characters.",
        ));
    }
    if project_flags
        .iter()
        .any(|f| !f.deleted && f.key == key && f.id != own_id)
    {
        return Err(key_taken());
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::field(
            "key",
            "invalid_key",
            "Only letters, numbers, hyphens (-) & underscores (_) are allowed.",
        ));
    }
    Ok(key)
}

pub fn key_taken() -> ApiError {
    ApiError::field(
        "key",
        "unique",
        "There is already a feature flag with this key.",
    )
}

/// DRF `BooleanField`: the usual spellings of true and false, nothing else.
pub fn parse_boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::String(s) => match s.as_str() {
            "t" | "T" | "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on"
            | "On" | "ON" | "1" => Some(true),
            "f" | "F" | "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off"
            | "Off" | "OFF" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn boolean(attr: &str, v: &Value) -> ApiResult<bool> {
    if v.is_null() {
        return Err(null_error(attr));
    }
    parse_boolean(v).ok_or_else(|| ApiError::invalid(attr, "Must be a valid boolean."))
}

fn nullable_boolean(attr: &str, v: &Value) -> ApiResult<Option<bool>> {
    if v.is_null() {
        return Ok(None);
    }
    boolean(attr, v).map(Some)
}

/// DRF `IntegerField`; null means "not sent".
pub(crate) fn integer(attr: &str, v: &Value) -> ApiResult<Option<i64>> {
    let bad = || ApiError::invalid(attr, "A valid integer is required.");
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(bad),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn datetime(attr: &str, v: &Value) -> ApiResult<Timestamp> {
    let bad = || {
        ApiError::invalid(
            attr,
            "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
        )
    };
    match v {
        Value::Null => Err(null_error(attr)),
        Value::String(s) => time::parse(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn choice(attr: &str, v: &Value, allowed: &[&str]) -> ApiResult<String> {
    let text = match v {
        Value::Null => return Ok(allowed.last().copied().unwrap_or_default().to_string()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if allowed.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(ApiError::field(
            attr,
            "invalid_choice",
            format!("\"{text}\" is not a valid choice."),
        ))
    }
}

/// Tags are trimmed, lower-cased and de-duplicated, first occurrence first.
fn tags(attr: &str, v: &Value) -> ApiResult<Vec<String>> {
    let items = match v {
        Value::Array(items) => items,
        Value::Null => return Err(null_error(attr)),
        other => {
            return Err(ApiError::field(
                attr,
                "not_a_list",
                format!(
                    "Expected a list of items but got type \"{}\".",
                    crate::python::type_name(other)
                ),
            ));
        }
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let tag = string(attr, item)?.to_lowercase();
        if tag.is_empty() {
            return Err(ApiError::field(
                attr,
                "blank",
                "This field may not be blank.",
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// `analytics_dashboards` as DRF's primary-key list reads it: integers or integer strings, in
/// order, first bad item reported. Whether each exists in the project is checked by the
/// handler against the store ([`crate::api::feature_flags`]).
pub fn dashboard_ids(v: &Value) -> ApiResult<Vec<i64>> {
    let attr = "analytics_dashboards";
    let Value::Array(items) = v else {
        return Err(ApiError::field(
            attr,
            "not_a_list",
            format!(
                "Expected a list of items but got type \"{}\".",
                crate::python::type_name(v)
            ),
        ));
    };
    items
        .iter()
        .map(|item| {
            let id = match item {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            id.ok_or_else(|| match item {
                Value::Number(_) => dashboard_missing(item),
                other => ApiError::field(
                    attr,
                    "incorrect_type",
                    format!(
                        "Incorrect type. Expected pk value, received {}.",
                        crate::python::type_name(other)
                    ),
                ),
            })
        })
        .collect()
}

/// PostHog's error for a dashboard id that is not one of the project's dashboards.
pub fn dashboard_missing(id: &Value) -> ApiError {
    let shown = match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    ApiError::field(
        "analytics_dashboards",
        "does_not_exist",
        format!("Invalid pk \"{shown}\" - object does not exist."),
    )
}

/// Links are add-only through `analytics_dashboards` (PostHog `get_or_create`s each one).
fn add_dashboards(linked: &mut Vec<i64>, ids: Vec<i64>) {
    for id in ids {
        if !linked.contains(&id) {
            linked.push(id);
        }
    }
}

/// An archived flag is "done for good", never paused: it must stay disabled. Which message
/// depends on whether this body is the one archiving (PostHog's
/// `_validate_archived_flags_are_disabled`).
fn archived_flags_are_disabled(flag: &Flag, archiving: bool) -> ApiResult<()> {
    if !(flag.archived && flag.active) {
        return Ok(());
    }
    Err(ApiError::object(if archiving {
        "Cannot archive an enabled feature flag. Disable it first, or send active: false in the same request."
    } else {
        "Cannot enable an archived feature flag. Unarchive it first."
    }))
}

/// Evaluation tags must be among the tags sent in the same body.
fn evaluation_tags_subset(evaluation_tags: &[String], tags: Option<&Vec<String>>) -> ApiResult<()> {
    let mut invalid: Vec<&str> = evaluation_tags
        .iter()
        .filter(|t| !tags.is_some_and(|tags| tags.contains(t)))
        .map(String::as_str)
        .collect();
    if invalid.is_empty() {
        return Ok(());
    }
    invalid.sort_unstable();
    Err(ApiError::object(format!(
        "Evaluation tags must be a subset of tags. Invalid evaluation tags: {}",
        invalid.join(", ")
    )))
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
            last_name: String::new(),
            email: "a@b.c".into(),
        }
    }

    fn run(body: Value, mode: Mode, existing: &[Flag]) -> ApiResult<Flag> {
        let mut flag = Flag::new(99, 1, String::new(), user(), chrono::Utc::now());
        let ctx = FilterContext {
            is_create: mode == Mode::Create,
            flag_key: "",
            flag_id: None,
            linked_to_early_access: false,
            project_flags: existing,
            cohorts: &[],
        };
        apply(body.as_object().unwrap(), mode, &mut flag, &ctx).map(|_| flag)
    }

    fn err(body: Value, mode: Mode) -> Value {
        run(body, mode, &[]).unwrap_err().body().unwrap()
    }

    #[test]
    fn key_rules_in_posthog_order() {
        assert_eq!(err(json!({}), Mode::Create)["code"], "required");
        assert_eq!(err(json!({}), Mode::Replace)["code"], "required");
        assert!(run(json!({}), Mode::Patch, &[]).is_ok());
        assert_eq!(err(json!({"key": ""}), Mode::Create)["code"], "blank");
        assert_eq!(err(json!({"key": "   "}), Mode::Create)["code"], "blank");
        assert_eq!(err(json!({"key": null}), Mode::Create)["code"], "null");
        assert_eq!(
            err(json!({"key": "a".repeat(401)}), Mode::Create)["code"],
            "max_length"
        );
        assert_eq!(
            err(json!({"key": "a b"}), Mode::Create)["code"],
            "invalid_key"
        );
        assert_eq!(
            run(json!({"key": " ok-key_1 "}), Mode::Create, &[])
                .unwrap()
                .key,
            "ok-key_1"
        );
        assert_eq!(
            run(json!({"key": 123}), Mode::Create, &[]).unwrap().key,
            "123"
        );
    }

    #[test]
    fn uniqueness_is_checked_before_charset_and_ignores_deleted_and_self() {
        let mut taken = Flag::new(5, 1, "bad key".into(), user(), chrono::Utc::now());
        let e = run(
            json!({"key": "bad key"}),
            Mode::Create,
            std::slice::from_ref(&taken),
        )
        .unwrap_err();
        assert_eq!(e.body().unwrap()["code"], "unique");
        taken.deleted = true;
        let e = run(
            json!({"key": "bad key"}),
            Mode::Create,
            std::slice::from_ref(&taken),
        )
        .unwrap_err();
        assert_eq!(e.body().unwrap()["code"], "invalid_key");
        let own = Flag::new(99, 1, "mine".into(), user(), chrono::Utc::now());
        assert!(run(json!({"key": "mine"}), Mode::Patch, &[own]).is_ok());
        let other = Flag::new(7, 1, "Foo".into(), user(), chrono::Utc::now());
        assert!(
            run(json!({"key": "foo"}), Mode::Create, &[other]).is_ok(),
            "keys are case-sensitive"
        );
    }

    #[test]
    fn booleans_follow_drf() {
        let f = run(json!({"active": "False", "deleted": 0}), Mode::Patch, &[]).unwrap();
        assert!(!f.active && !f.deleted);
        let e = err(json!({"active": "maybe"}), Mode::Patch);
        assert_eq!(
            e,
            json!({"type":"validation_error","code":"invalid_input","detail":"Must be a valid boolean.","attr":"active"})
        );
        assert_eq!(err(json!({"active": null}), Mode::Patch)["code"], "null");
        let f = run(
            json!({"ensure_experience_continuity": null}),
            Mode::Patch,
            &[],
        )
        .unwrap();
        assert_eq!(f.ensure_experience_continuity, None);
    }

    #[test]
    fn choices_and_version() {
        let e = err(json!({"evaluation_runtime": "both"}), Mode::Patch);
        assert_eq!(e["code"], "invalid_choice");
        assert_eq!(e["detail"], "\"both\" is not a valid choice.");
        assert_eq!(e["attr"], "evaluation_runtime");
        assert_eq!(
            err(json!({"bucketing_identifier": "x"}), Mode::Patch)["attr"],
            "bucketing_identifier"
        );
        assert_eq!(
            err(json!({"version": "abc"}), Mode::Patch)["detail"],
            "A valid integer is required."
        );
        let mut flag = Flag::new(1, 1, "k".into(), user(), chrono::Utc::now());
        let ctx = FilterContext {
            is_create: false,
            flag_key: "k",
            flag_id: Some(1),
            linked_to_early_access: false,
            project_flags: &[],
            cohorts: &[],
        };
        let extras = apply(
            json!({"version": 3}).as_object().unwrap(),
            Mode::Patch,
            &mut flag,
            &ctx,
        )
        .unwrap();
        assert_eq!(extras.version, Some(3));
        assert_eq!(flag.version, 1, "the client's version is only a token");
    }

    #[test]
    fn tags_normalised_and_evaluation_tags_subset() {
        let f = run(
            json!({"tags": [" Beta", "beta", "Team-A"]}),
            Mode::Patch,
            &[],
        )
        .unwrap();
        assert_eq!(f.tags, vec!["beta", "team-a"]);
        let e = err(
            json!({"tags": ["a"], "evaluation_tags": ["z", "a", "b"]}),
            Mode::Patch,
        );
        assert_eq!(
            e["detail"],
            "Evaluation tags must be a subset of tags. Invalid evaluation tags: b, z"
        );
        assert_eq!(e["attr"], Value::Null);
        assert!(
            err(json!({"evaluation_tags": ["a"]}), Mode::Patch)["detail"]
                .as_str()
                .unwrap()
                .starts_with("Evaluation tags")
        );
        assert!(run(json!({"evaluation_tags": []}), Mode::Patch, &[]).is_ok());
        let f = run(
            json!({"tags": ["A"], "evaluation_tags": ["a"]}),
            Mode::Patch,
            &[],
        )
        .unwrap();
        assert_eq!(f.evaluation_tags, vec!["a"]);
    }

    #[test]
    fn dashboard_ids_are_integers_and_links_only_grow() {
        let e = err(json!({"analytics_dashboards": [true]}), Mode::Patch);
        assert_eq!(
            e,
            json!({"type":"validation_error","code":"incorrect_type","detail":"Incorrect type. Expected pk value, received bool.","attr":"analytics_dashboards"})
        );
        let e = err(json!({"analytics_dashboards": ["x"]}), Mode::Patch);
        assert_eq!(
            e["detail"],
            "Incorrect type. Expected pk value, received str."
        );
        let f = run(
            json!({"analytics_dashboards": [3, "4", 3]}),
            Mode::Patch,
            &[],
        )
        .unwrap();
        assert_eq!(f.analytics_dashboards, vec![3, 4]);
        assert!(run(json!({"analytics_dashboards": []}), Mode::Patch, &[]).is_ok());
    }

    #[test]
    fn archived_flags_must_be_disabled() {
        let archive_enabled = "Cannot archive an enabled feature flag. Disable it first, or send active: false in the same request.";
        let enable_archived = "Cannot enable an archived feature flag. Unarchive it first.";
        let e = err(json!({"key": "k", "archived": true}), Mode::Create);
        assert_eq!(
            e,
            json!({"type": "validation_error", "code": "invalid_input", "detail": archive_enabled, "attr": null})
        );
        let f = run(
            json!({"key": "k", "archived": "true", "active": false}),
            Mode::Create,
            &[],
        )
        .unwrap();
        assert!(f.archived && !f.active);

        let mut archived = Flag::new(99, 1, "k".into(), user(), chrono::Utc::now());
        archived.archived = true;
        archived.active = false;
        let patch = |body: Value, flag: &Flag| {
            let mut flag = flag.clone();
            let ctx = FilterContext {
                is_create: false,
                flag_key: "k",
                flag_id: Some(99),
                linked_to_early_access: false,
                project_flags: &[],
                cohorts: &[],
            };
            apply(body.as_object().unwrap(), Mode::Patch, &mut flag, &ctx).map(|_| flag)
        };
        let e = patch(json!({"active": true}), &archived).unwrap_err();
        assert_eq!(e.body().unwrap()["detail"], enable_archived);
        let e = patch(json!({"archived": true, "active": true}), &archived).unwrap_err();
        assert_eq!(e.body().unwrap()["detail"], archive_enabled);
        let f = patch(json!({"archived": false, "active": true}), &archived).unwrap();
        assert!(!f.archived && f.active);
        assert!(patch(json!({"name": "still archived"}), &archived).is_ok());
        let enabled = Flag::new(99, 1, "k".into(), user(), chrono::Utc::now());
        let e = patch(json!({"archived": true}), &enabled).unwrap_err();
        assert_eq!(e.body().unwrap()["detail"], archive_enabled);
        assert_eq!(
            patch(json!({"archived": null}), &enabled)
                .unwrap_err()
                .body()
                .unwrap()["code"],
            "null"
        );
        assert_eq!(
            patch(json!({"archived": "maybe"}), &enabled)
                .unwrap_err()
                .body()
                .unwrap()["attr"],
            "archived"
        );
    }

    #[test]
    fn first_error_in_field_order_wins() {
        let e = err(json!({"name": null, "key": ""}), Mode::Create);
        assert_eq!(e["attr"], "name");
        let e = err(json!({"key": "", "active": "x"}), Mode::Create);
        assert_eq!(e["attr"], "key");
    }

    #[test]
    fn dates() {
        let f = run(
            json!({"created_at": "2020-01-01T00:00:00Z", "last_called_at": null}),
            Mode::Patch,
            &[],
        )
        .unwrap();
        assert_eq!(time::format(&f.created_at), "2020-01-01T00:00:00.000000Z");
        assert_eq!(
            err(json!({"created_at": "soon"}), Mode::Patch)["code"],
            "invalid_input"
        );
    }
}
