//! A `/flags` request body with PostHog's field aliases (evaluation-rules.md §3.2). A field of the
//! wrong JSON type is a 400 naming the field, as PostHog's typed parsing answers; unknown
//! fields are ignored.

use serde_json::{Map, Value};

use super::body::SdkError;
use crate::evaluation::Runtime;
use crate::http::ApiRequest;

/// PostHog truncates longer distinct ids rather than refusing them.
const DISTINCT_ID_MAX_CHARS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct FlagsRequest {
    pub distinct_id: String,
    pub person_properties: Map<String, Value>,
    pub groups: Map<String, Value>,
    pub group_properties: Map<String, Value>,
    pub flag_keys: Option<Vec<String>>,
    pub device_id: Option<String>,
    pub anon_distinct_id: Option<String>,
    pub disable_flags: bool,
    pub evaluation_contexts: Vec<String>,
    /// As detected from the body's `evaluation_runtime`, the User-Agent and browser headers.
    pub runtime: Option<Runtime>,
}

/// The project token: body `token`/`api_key`/`$token`, else the `token` query parameter.
pub fn token(body: &Map<String, Value>, req: &ApiRequest) -> Result<String, SdkError> {
    let from_body = ["token", "api_key", "$token"]
        .iter()
        .find_map(|k| body.get(*k)?.as_str());
    from_body
        .or_else(|| req.query_value("token"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or(SdkError::NoToken)
}

impl FlagsRequest {
    pub fn parse(body: &Map<String, Value>, req: &ApiRequest) -> Result<Self, SdkError> {
        let fields = Fields(body);
        let explicit_runtime = fields.string(&["evaluation_runtime"])?;
        let parsed = FlagsRequest {
            distinct_id: distinct_id(&fields)?,
            person_properties: fields.object(&["person_properties", "$properties"])?,
            groups: groups(&fields)?,
            group_properties: group_properties(&fields)?,
            flag_keys: fields.strings(&["flag_keys_to_evaluate", "flag_keys"])?,
            device_id: fields.string(&["device_id", "$device_id"])?,
            anon_distinct_id: fields.string(&["$anon_distinct_id", "anon_distinct_id"])?,
            disable_flags: fields.flag("disable_flags")?,
            evaluation_contexts: fields
                .strings(&["evaluation_contexts", "evaluation_environments"])?
                .unwrap_or_default(),
            runtime: Runtime::detect(
                explicit_runtime.as_deref().map(Runtime::parse),
                req.header("user-agent"),
                browser_headers(req),
            ),
        };
        Ok(parsed)
    }
}

/// `distinct_id` (or `$distinct_id`): a string or a number (its JSON text), never empty.
fn distinct_id(fields: &Fields) -> Result<String, SdkError> {
    let text = match fields.get(&["distinct_id", "$distinct_id"]) {
        None | Some(Value::Null) => return Err(SdkError::MissingDistinctId),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(wrong_type("distinct_id", "a string", other)),
    };
    if text.trim().is_empty() {
        return Err(SdkError::MissingDistinctId);
    }
    Ok(text.chars().take(DISTINCT_ID_MAX_CHARS).collect())
}

/// Group type name → key, where a key is a string or a number.
fn groups(fields: &Fields) -> Result<Map<String, Value>, SdkError> {
    let groups = fields.object(&["groups", "$groups"])?;
    for (name, key) in &groups {
        if !matches!(key, Value::String(_) | Value::Number(_)) {
            return Err(wrong_type(&format!("groups.{name}"), "a string", key));
        }
    }
    Ok(groups)
}

/// Group type name → that group's properties (an object).
fn group_properties(fields: &Fields) -> Result<Map<String, Value>, SdkError> {
    let all = fields.object(&["group_properties", "$group_properties"])?;
    for (name, properties) in &all {
        if !matches!(properties, Value::Object(_) | Value::Null) {
            return Err(wrong_type(
                &format!("group_properties.{name}"),
                "a map",
                properties,
            ));
        }
    }
    Ok(all)
}

fn browser_headers(req: &ApiRequest) -> bool {
    req.headers
        .iter()
        .any(|(k, _)| k == "origin" || k == "referer" || k.starts_with("sec-fetch-"))
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> SdkError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    SdkError::Parse(format!("{field} must be {expected}, got {kind}"))
}

/// Typed reads of optional fields; a JSON `null` reads as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    /// The first alias present.
    fn get(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|n| self.0.get(*n))
    }

    fn object(&self, names: &[&str]) -> Result<Map<String, Value>, SdkError> {
        match self.get(names) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(other) => Err(wrong_type(names[0], "a map", other)),
        }
    }

    fn string(&self, names: &[&str]) -> Result<Option<String>, SdkError> {
        match self.get(names) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(names[0], "a string", other)),
        }
    }

    fn strings(&self, names: &[&str]) -> Result<Option<Vec<String>>, SdkError> {
        let list = match self.get(names) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(list)) => list,
            Some(other) => return Err(wrong_type(names[0], "a list of strings", other)),
        };
        list.iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(names[0], "a list of strings", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn flag(&self, name: &str) -> Result<bool, SdkError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong_type(name, "a boolean", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<FlagsRequest, SdkError> {
        let req = ApiRequest::new("POST", "/flags/");
        FlagsRequest::parse(body.as_object().unwrap(), &req)
    }

    #[test]
    fn python_and_node_bodies() {
        let python = parse(
            json!({"distinct_id": "u", "groups": {}, "person_properties": {"plan": "pro"},
            "group_properties": {}, "geoip_disable": true, "device_id": null,
            "flag_keys_to_evaluate": ["a"], "sent_at": "x", "api_key": "phc_1"}),
        )
        .unwrap();
        assert_eq!(python.person_properties["plan"], "pro");
        assert_eq!(python.flag_keys, Some(vec!["a".to_string()]));
        assert_eq!(python.device_id, None);
        let node = parse(json!({"token": "phc_1", "$distinct_id": 42, "$groups": {"company": 7},
            "$device_id": "dev", "evaluation_runtime": "server", "evaluation_environments": ["web"]}))
        .unwrap();
        assert_eq!(node.distinct_id, "42");
        assert_eq!(node.groups["company"], 7);
        assert_eq!(node.device_id.as_deref(), Some("dev"));
        assert_eq!(node.runtime, Some(Runtime::Server));
        assert_eq!(node.evaluation_contexts, ["web"]);
    }

    #[test]
    fn distinct_id_rules() {
        assert!(matches!(parse(json!({})), Err(SdkError::MissingDistinctId)));
        assert!(matches!(
            parse(json!({"distinct_id": "  "})),
            Err(SdkError::MissingDistinctId)
        ));
        let long = parse(json!({"distinct_id": "x".repeat(300)})).unwrap();
        assert_eq!(long.distinct_id.len(), 200);
        let err = parse(json!({"distinct_id": ["a"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to parse request: distinct_id must be a string, got a list. Please ensure your request is properly formatted and all required fields are present."
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (
                json!({"distinct_id": "u", "person_properties": "x"}),
                "person_properties must be a map, got a string",
            ),
            (
                json!({"distinct_id": "u", "groups": {"company": {}}}),
                "groups.company must be a string, got a map",
            ),
            (
                json!({"distinct_id": "u", "group_properties": {"company": 1}}),
                "group_properties.company must be a map, got a number",
            ),
            (
                json!({"distinct_id": "u", "flag_keys_to_evaluate": [1]}),
                "flag_keys_to_evaluate must be a list of strings, got a number",
            ),
            (
                json!({"distinct_id": "u", "disable_flags": "yes"}),
                "disable_flags must be a boolean, got a string",
            ),
        ];
        for (body, message) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn token_from_body_aliases_or_query() {
        let req = ApiRequest::new("POST", "/flags/").with_query("token", "phc_q");
        let body = json!({"api_key": " phc_b "});
        assert_eq!(token(body.as_object().unwrap(), &req).unwrap(), "phc_b");
        assert_eq!(token(&Map::new(), &req).unwrap(), "phc_q");
        let bare = ApiRequest::new("POST", "/flags/");
        assert!(matches!(token(&Map::new(), &bare), Err(SdkError::NoToken)));
    }
}
