//! Early access features (flag-management-rules.md §11): betas people opt into, each tied to a flag
//! that enrols them.
//!
//! Stage model (docs/reference/decisions.md §2): PostHog's v2 semantics written as the classic `super_groups`
//! condition. `alpha`, `beta` and `general-availability` enrol opted-in people; `concept` is a
//! waitlist that does not; `draft` and `archived` are not released.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use unicode_normalization::UnicodeNormalization;

use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::flag::filters::Filters;
use crate::identity::UserSummary;
use crate::time::{self, Timestamp, serde_ts};

pub const STAGES: &[&str] = &[
    "draft",
    "concept",
    "alpha",
    "beta",
    "general-availability",
    "archived",
];
const NAME_MAX_CHARS: usize = 200;
const URL_MAX_CHARS: usize = 800;
const ENROLLMENT_PREFIX: &str = "$feature_enrollment/";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// UUIDv7: time-ordered, so listing by id is listing by creation.
    pub id: String,
    pub project_id: i64,
    pub feature_flag_id: Option<i64>,
    pub name: String,
    pub description: String,
    pub stage: String,
    pub documentation_url: String,
    #[serde(with = "crate::json_text")]
    pub payload: Value,
    pub created_by: Option<UserSummary>,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
    /// Bumped by every write; writes are conditional on it so none is lost.
    #[serde(default)]
    pub version: i64,
}

/// Stages whose linked flag carries the enrollment condition.
pub fn enrols(stage: &str) -> bool {
    matches!(stage, "alpha" | "beta" | "general-availability")
}

/// PostHog's "super condition": a person who opted in (`$feature_enrollment/<key>` = true)
/// gets the flag whatever its release conditions say.
pub fn enrollment_condition(flag_key: &str) -> Value {
    json!({
        "properties": [{
            "key": format!("{ENROLLMENT_PREFIX}{flag_key}"),
            "type": "person",
            "operator": "exact",
            "value": ["true"],
        }],
        "rollout_percentage": 100,
    })
}

/// The flag's filters with the enrollment gate added; other keys untouched.
pub fn with_enrollment(filters: &Value, flag_key: &str) -> Value {
    let mut out = object(filters);
    out.insert(
        "super_groups".into(),
        json!([enrollment_condition(flag_key)]),
    );
    Value::Object(out)
}

/// The flag's filters with the gate removed: `super_groups` stays as `null`, as PostHog stores it.
pub fn without_enrollment(filters: &Value) -> Value {
    let mut out = object(filters);
    out.insert("super_groups".into(), Value::Null);
    Value::Object(out)
}

pub fn has_enrollment(filters: &Value) -> bool {
    Filters::of(filters).super_groups().next().is_some()
}

fn object(filters: &Value) -> Map<String, Value> {
    filters.as_object().cloned().unwrap_or_default()
}

/// Django's `slugify`: NFKD then ASCII only, lower case, keep letters, digits, `_`, `-` and
/// spaces, collapse runs of spaces and dashes into one `-`, trim `-` and `_` at both ends.
pub fn slugify(name: &str) -> String {
    let ascii: String = name
        .nfkd()
        .filter(char::is_ascii)
        .collect::<String>()
        .to_lowercase();
    let kept: String = ascii
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-') || c.is_whitespace())
        .collect();
    let mut slug = String::with_capacity(kept.len());
    let mut in_run = false;
    for c in kept.chars() {
        if c == '-' || c.is_whitespace() {
            in_run = true;
            continue;
        }
        if in_run && !slug.is_empty() {
            slug.push('-');
        }
        in_run = false;
        slug.push(c);
    }
    slug.trim_matches(|c| c == '-' || c == '_').to_string()
}

/// The flag PostHog creates for a feature created without `feature_flag_id`.
pub fn new_flag_body(feature_name: &str, stage: &str) -> Map<String, Value> {
    let key = slugify(feature_name);
    let mut filters =
        json!({"groups": [{"properties": [], "rollout_percentage": 0, "variant": null}]});
    if enrols(stage) {
        filters = with_enrollment(&filters, &key);
    }
    let mut body = Map::new();
    body.insert("key".into(), json!(key));
    body.insert(
        "name".into(),
        json!(format!("Feature Flag for Feature {feature_name}")),
    );
    body.insert("filters".into(), filters);
    body.insert("creation_context".into(), json!("early_access_features"));
    body.insert("active".into(), json!(true));
    body
}

/// Why a flag cannot back an early access feature (§11.3), checked in PostHog's order.
pub fn check_linkable(flag: Option<&Flag>, already_linked: bool) -> ApiResult<&Flag> {
    let flag = flag
        .filter(|f| !f.deleted)
        .ok_or_else(|| ApiError::object("Feature Flag with this ID does not exist"))?;
    if already_linked {
        return Err(ApiError::object(format!(
            "Linked feature flag {} already has a feature attached to it.",
            flag.key
        )));
    }
    if flag.is_group_based() {
        return Err(ApiError::object(
            "Group-based feature flags are not supported for Early Access Features.",
        ));
    }
    if !flag.variants().is_empty() {
        return Err(ApiError::object(
            "Multivariate feature flags are not supported for Early Access Features.",
        ));
    }
    Ok(flag)
}

/// Fields of a create or update body, validated in serializer order.
#[derive(Debug, Default, PartialEq)]
pub struct FeatureInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub stage: Option<String>,
    pub documentation_url: Option<String>,
    pub payload: Option<Value>,
    /// Create only: link this flag instead of creating one (0 or null means none).
    pub feature_flag_id: Option<i64>,
}

/// `partial` is PATCH; create and PUT require `name` and `stage`.
pub fn parse(body: &Map<String, Value>, partial: bool, creating: bool) -> ApiResult<FeatureInput> {
    let required = |attr: &str| {
        if partial {
            Ok(())
        } else {
            Err(ApiError::field(attr, "required", "This field is required."))
        }
    };
    let mut input = FeatureInput::default();
    match body.get("name") {
        Some(v) => input.name = Some(text("name", v, false, NAME_MAX_CHARS)?),
        None => required("name")?,
    }
    if let Some(v) = body.get("description") {
        input.description = Some(text("description", v, true, usize::MAX)?);
    }
    match body.get("stage") {
        Some(v) => input.stage = Some(stage(v)?),
        None => required("stage")?,
    }
    if let Some(v) = body.get("documentation_url") {
        input.documentation_url = Some(documentation_url(v)?);
    }
    if let Some(v) = body.get("payload") {
        // PostHog stores a falsy payload as `{}`.
        input.payload = Some(if !crate::python::truthy(v) {
            json!({})
        } else {
            v.clone()
        });
    }
    if creating {
        input.feature_flag_id = match body.get("feature_flag_id") {
            None | Some(Value::Null) => None,
            Some(v) => flag_id(v)?.filter(|id| *id != 0),
        };
    }
    Ok(input)
}

fn text(attr: &str, v: &Value, allow_blank: bool, max: usize) -> ApiResult<String> {
    crate::python::char_field(attr, v, allow_blank, max)
}

fn stage(v: &Value) -> ApiResult<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => {
            return Err(ApiError::field(
                "stage",
                "null",
                "This field may not be null.",
            ));
        }
        other => other.to_string(),
    };
    if STAGES.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(ApiError::field(
            "stage",
            "invalid_choice",
            format!("\"{s}\" is not a valid choice."),
        ))
    }
}

/// Django's URLField: blank allowed; otherwise http(s)/ftp(s) with a real host.
fn documentation_url(v: &Value) -> ApiResult<String> {
    let s = text("documentation_url", v, true, URL_MAX_CHARS)?;
    if s.is_empty() || is_valid_url(&s) {
        Ok(s)
    } else {
        Err(ApiError::invalid("documentation_url", "Enter a valid URL."))
    }
}

fn is_valid_url(s: &str) -> bool {
    let Ok(url) = url::Url::parse(s) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https" | "ftp" | "ftps")
        || s.chars().any(char::is_whitespace)
    {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d == "localhost" || (d.contains('.') && !d.ends_with('.') && !d.starts_with('.'))
        }
        Some(_) => true,
        None => false,
    }
}

fn flag_id(v: &Value) -> ApiResult<Option<i64>> {
    let bad = || ApiError::invalid("feature_flag_id", "A valid integer is required.");
    match v {
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(bad),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

impl Feature {
    /// Applies validated fields; `stage` and the link are handled by the caller.
    pub fn apply(&mut self, input: &FeatureInput) {
        if let Some(v) = &input.name {
            self.name = v.clone();
        }
        if let Some(v) = &input.description {
            self.description = v.clone();
        }
        if let Some(v) = &input.stage {
            self.stage = v.clone();
        }
        if let Some(v) = &input.documentation_url {
            self.documentation_url = v.clone();
        }
        if let Some(v) = &input.payload {
            self.payload = v.clone();
        }
    }

    /// The management representation; `flag` is the linked flag in its minimal form.
    pub fn to_json(&self, flag: Option<Value>) -> Value {
        json!({
            "id": self.id,
            "feature_flag": flag,
            "name": self.name,
            "description": self.description,
            "stage": self.stage,
            "documentation_url": self.documentation_url,
            "payload": self.payload,
            "created_by": self.created_by.as_ref().map(UserSummary::to_json),
            "created_at": time::format(&self.created_at),
        })
    }

    /// The short form in flag representations and the public SDK endpoint.
    pub fn summary(&self, flag_key: &str) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "stage": self.stage,
            "documentationUrl": self.documentation_url,
            "flagKey": flag_key,
            "payload": self.payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugify_matches_django() {
        assert_eq!(slugify("Hick bondoogling"), "hick-bondoogling");
        assert_eq!(slugify("  Crème brûlée -- v2!! "), "creme-brulee-v2");
        assert_eq!(slugify("__under_score__"), "under_score");
        assert_eq!(slugify("a - b"), "a-b");
        assert_eq!(slugify("日本語"), "");
    }

    #[test]
    fn enrollment_condition_shape_and_stage_model() {
        let f = with_enrollment(&json!({"groups": [], "payloads": {"true": "1"}}), "beta-x");
        assert_eq!(
            f["super_groups"],
            json!([{"properties": [{"key": "$feature_enrollment/beta-x", "type": "person", "operator": "exact", "value": ["true"]}], "rollout_percentage": 100}])
        );
        assert_eq!(f["payloads"], json!({"true": "1"}));
        let removed = without_enrollment(&f);
        assert_eq!(removed["super_groups"], Value::Null);
        assert!(removed.as_object().unwrap().contains_key("super_groups"));
        assert!(!has_enrollment(&removed));
        assert!(enrols("alpha") && enrols("beta") && enrols("general-availability"));
        assert!(!enrols("concept") && !enrols("draft") && !enrols("archived"));
    }

    #[test]
    fn new_flag_follows_posthog() {
        let body = new_flag_body("Hick bondoogling", "beta");
        assert_eq!(body["key"], "hick-bondoogling");
        assert_eq!(body["name"], "Feature Flag for Feature Hick bondoogling");
        assert_eq!(
            body["filters"]["groups"],
            json!([{"properties": [], "rollout_percentage": 0, "variant": null}])
        );
        assert!(has_enrollment(&body["filters"]));
        assert!(!has_enrollment(&new_flag_body("x", "concept")["filters"]));
    }

    fn parse_err(body: Value) -> Value {
        parse(body.as_object().unwrap(), false, true)
            .unwrap_err()
            .body()
            .unwrap()
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            parse_err(json!({"stage": "beta"})),
            json!({"type":"validation_error","code":"required","detail":"This field is required.","attr":"name"})
        );
        assert_eq!(parse_err(json!({"name": "a"}))["attr"], "stage");
        assert_eq!(
            parse_err(json!({"name": "a", "stage": "foo"})),
            json!({"type":"validation_error","code":"invalid_choice","detail":"\"foo\" is not a valid choice.","attr":"stage"})
        );
        assert_eq!(
            parse_err(json!({"name": "a".repeat(201), "stage": "beta"}))["code"],
            "max_length"
        );
        assert_eq!(
            parse_err(json!({"name": "a", "stage": "beta", "documentation_url": "not a url"})),
            json!({"type":"validation_error","code":"invalid_input","detail":"Enter a valid URL.","attr":"documentation_url"})
        );
        let ok = parse(json!({"name": "a", "stage": "beta", "documentation_url": "https://docs.example.com/x", "payload": null, "feature_flag_id": 0}).as_object().unwrap(), false, true).unwrap();
        assert_eq!(ok.payload, Some(json!({})));
        assert_eq!(ok.feature_flag_id, None);
        assert!(parse(json!({}).as_object().unwrap(), true, false).is_ok());
    }

    #[test]
    fn urls() {
        assert!(is_valid_url("http://localhost:8000/a"));
        assert!(is_valid_url("https://10.0.0.1/x"));
        assert!(!is_valid_url("https://nodot"));
        assert!(!is_valid_url("javascript:alert(1)"));
        assert!(!is_valid_url("example.com"));
    }
}
