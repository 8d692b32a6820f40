//! The OpenFeature Remote Evaluation Protocol (OFREP, open-feature/protocol
//! `service/openapi.yaml` 0.3): `POST /ofrep/v1/evaluate/flags/{key}` for one flag and
//! `POST /ofrep/v1/evaluate/flags` for every flag (with `ETag`/`If-None-Match`), so every
//! OpenFeature SDK with an OFREP provider reads our flags (docs/openfeature.md).
//!
//! The request is turned into the `/flags` body it stands for (`targetingKey` is the
//! distinct id, `groups`/`groupProperties` the groups, every other attribute a person
//! property) and answered by the same engine call as `/flags/` ([`remote::answer`]), so the
//! two endpoints agree flag for flag; only the representation differs:
//! * value: the flag's `/flags` value (`true`/`false`, or the variant key), except for a
//!   remote-configuration flag, whose value is its payload (an object, list, string or
//!   number: OpenFeature's object and number flags);
//! * `variant`: the variant key, else `"true"`/`"false"`;
//! * a flag switched off (inactive or archived), which `/flags` leaves out, is answered
//!   `false` with the reason `DISABLED` rather than FLAG_NOT_FOUND;
//! * `reason`: [`reason`]; `metadata`: the payload as `/flags` shows it (JSON text), the flag's
//!   id and version, and PostHog's reason code.
//!
//! Authentication is the public project token, sent the ways the OFREP providers can be
//! configured to send a header: `Authorization: Bearer phc_…`, `X-API-Key: phc_…`, or
//! PostHog's own `token` query parameter.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::body::{self, Limits, SdkError};
use super::remote;
use super::request::FlagsRequest;
use super::{Context, Store};
use crate::evaluation::{Evaluations, FlagEvaluation, ReasonCode};
use crate::flag::{ENCRYPTED_SENTINEL, Flag};
use crate::http::{ApiRequest, ApiResponse, MAX_BODY_BYTES};

const LIMITS: Limits = Limits {
    raw: MAX_BODY_BYTES,
    decoded: MAX_BODY_BYTES,
};

/// Context attributes that are not person properties.
const GROUPS: [&str; 2] = ["groups", "$groups"];
const GROUP_PROPERTIES: [&str; 3] = ["groupProperties", "group_properties", "$group_properties"];

/// Why a request got no evaluation: the spec's request-level failures.
#[derive(Debug)]
enum Failure {
    /// 400 `PARSE_ERROR`: the body is not a JSON object.
    Parse(String),
    /// 400 `INVALID_CONTEXT`.
    InvalidContext(String),
    /// 400 `TARGETING_KEY_MISSING`.
    TargetingKeyMissing,
    /// 401: no project token in any place this endpoint reads one.
    NoToken,
    /// 401: no project has this token.
    InvalidToken,
    /// What `/flags` would answer (too large: 413, wrong method: 405, a store failure).
    Sdk(SdkError),
}

impl From<SdkError> for Failure {
    fn from(e: SdkError) -> Self {
        match e {
            SdkError::Parse(text) => Failure::InvalidContext(text),
            SdkError::Decode(text) => Failure::Parse(text),
            SdkError::MissingDistinctId => Failure::TargetingKeyMissing,
            SdkError::NoToken => Failure::NoToken,
            SdkError::InvalidToken => Failure::InvalidToken,
            other => Failure::Sdk(other),
        }
    }
}

impl Failure {
    /// The answer; the single-flag form names its key as the spec's `evaluationFailure` does.
    fn response(self, key: Option<&str>) -> ApiResponse {
        let (status, code, details) = match self {
            Failure::Parse(text) => (400, "PARSE_ERROR", text),
            Failure::InvalidContext(text) => (400, "INVALID_CONTEXT", text),
            Failure::TargetingKeyMissing => (
                400,
                "TARGETING_KEY_MISSING",
                "context.targetingKey is missing: set the evaluation context's targeting key \
                 to the person's distinct id"
                    .to_string(),
            ),
            Failure::NoToken => (
                401,
                "GENERAL",
                "No project token: send the project API token (phc_…) as `Authorization: \
                 Bearer <token>` or `X-API-Key: <token>`"
                    .to_string(),
            ),
            Failure::InvalidToken => (
                401,
                "GENERAL",
                "The project API token is invalid: use the project's phc_… token".to_string(),
            ),
            Failure::Sdk(e) => {
                let answer = ApiResponse::from(e);
                let details = match &answer.body {
                    Some(Value::String(text)) => text.clone(),
                    Some(body) => body["detail"].as_str().unwrap_or("").to_string(),
                    None => String::new(),
                };
                (answer.status, "GENERAL", details)
            }
        };
        let mut body = Map::new();
        if let Some(key) = key.filter(|_| status == 400) {
            body.insert("key".into(), json!(key));
        }
        body.insert("errorCode".into(), json!(code));
        body.insert("errorDetails".into(), json!(details));
        ApiResponse::json(status, Value::Object(body))
    }
}

/// `key` is the path's flag key (single evaluation), `None` for bulk.
pub async fn handle<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    key: Option<&str>,
) -> ApiResponse {
    if req.method != "POST" {
        return Failure::Sdk(SdkError::Method(req.method.clone())).response(None);
    }
    match evaluate(ctx, req, key).await {
        Ok(answer) => answer,
        Err(failure) => failure.response(key),
    }
}

async fn evaluate<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    key: Option<&str>,
) -> Result<ApiResponse, Failure> {
    let token = token(req).ok_or(Failure::NoToken)?;
    let body = match body::json(req, LIMITS) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(Failure::Parse("the body must be a JSON object".into())),
        Err(SdkError::Parse(text)) => return Err(Failure::Parse(text)),
        Err(e) => return Err(e.into()),
    };
    let flags_body = flags_body(&body, key)?;
    let project = ctx
        .cache
        .project_by_token(ctx.store, &token)
        .await
        .map_err(|e| Failure::Sdk(e.into()))?
        .ok_or(Failure::InvalidToken)?;
    let parsed = FlagsRequest::parse(&flags_body, req)?;
    let snapshot = ctx
        .cache
        .snapshot(ctx.store, project.id)
        .await
        .map_err(|e| Failure::Sdk(e.into()))?;
    let answers = remote::answer(ctx, &snapshot, &parsed, project.id).await;
    let flags: HashMap<&str, &Flag> = snapshot
        .flags
        .iter()
        .filter(|f| !f.deleted)
        .map(|f| (f.key.as_str(), f))
        .collect();
    Ok(match key {
        Some(key) => single(&answers, &flags, key),
        None => bulk(req, &answers, &flags),
    })
}

/// The token from `Authorization: Bearer`, `X-API-Key` or the `token` query parameter.
fn token(req: &ApiRequest) -> Option<String> {
    let bearer = req.header("authorization").and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
    });
    bearer
        .or_else(|| req.header("x-api-key"))
        .or_else(|| req.query_value("token"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The `/flags` body an OFREP request stands for.
fn flags_body(body: &Map<String, Value>, key: Option<&str>) -> Result<Map<String, Value>, Failure> {
    let context = match body.get("context") {
        None | Some(Value::Null) => {
            return Err(Failure::InvalidContext(
                "the body has no `context`: send {\"context\": {\"targetingKey\": \"<distinct id>\", …}}"
                    .into(),
            ));
        }
        Some(Value::Object(context)) => context,
        Some(_) => {
            return Err(Failure::InvalidContext(
                "`context` must be an object".into(),
            ));
        }
    };
    let distinct_id = match context.get("targetingKey") {
        None | Some(Value::Null) => return Err(Failure::TargetingKeyMissing),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(Failure::TargetingKeyMissing),
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        Some(_) => {
            return Err(Failure::InvalidContext(
                "context.targetingKey must be a string".into(),
            ));
        }
    };
    let pick = |names: &[&str]| names.iter().find_map(|n| context.get(*n)).cloned();
    let person_properties: Map<String, Value> = context
        .iter()
        .filter(|(name, _)| {
            name.as_str() != "targetingKey"
                && !GROUPS.contains(&name.as_str())
                && !GROUP_PROPERTIES.contains(&name.as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut out = Map::new();
    out.insert("distinct_id".into(), distinct_id);
    out.insert("person_properties".into(), Value::Object(person_properties));
    if let Some(groups) = pick(&GROUPS) {
        out.insert("groups".into(), groups);
    }
    if let Some(properties) = pick(&GROUP_PROPERTIES) {
        out.insert("group_properties".into(), properties);
    }
    if let Some(key) = key {
        out.insert("flag_keys_to_evaluate".into(), json!([key]));
    }
    Ok(out)
}

fn single(answers: &Evaluations, flags: &HashMap<&str, &Flag>, key: &str) -> ApiResponse {
    let Some(answer) = answers.get(key) else {
        if let Some(flag) = flags.get(key).filter(|f| switched_off(f)) {
            return ApiResponse::ok(disabled(flag));
        }
        return ApiResponse::json(
            404,
            json!({"key": key, "errorCode": "FLAG_NOT_FOUND",
                "errorDetails": format!("Flag '{key}' was not found")}),
        );
    };
    let record = record(answer, flags.get(key).copied());
    let status = if answer.failed { 500 } else { 200 };
    ApiResponse::json(status, record)
}

fn bulk(req: &ApiRequest, answers: &Evaluations, flags: &HashMap<&str, &Flag>) -> ApiResponse {
    let mut records: Vec<Value> = answers
        .flags
        .iter()
        .map(|answer| record(answer, flags.get(&*answer.key).copied()))
        .collect();
    let mut off: Vec<&Flag> = flags
        .values()
        .filter(|f| switched_off(f) && answers.get(&f.key).is_none())
        .copied()
        .collect();
    off.sort_by_key(|f| f.id);
    records.extend(off.into_iter().map(disabled));
    let body = json!({"flags": records});
    let etag = etag(&body);
    let fresh = req
        .header("if-none-match")
        .is_some_and(|sent| sent.split(',').any(|t| same_tag(t, &etag)));
    let mut answer = if fresh {
        ApiResponse::empty(304)
    } else {
        ApiResponse::ok(body).gzip_if_accepted(req)
    };
    answer.headers.push(("etag".into(), etag));
    answer
        .headers
        .push(("cache-control".into(), "no-cache".into()));
    answer
}

/// A flag switched off (inactive or archived): `/flags` leaves it out, OFREP says `DISABLED`
/// with the value `/flags` gives an unknown flag (`false`).
fn switched_off(flag: &Flag) -> bool {
    !flag.deleted && (!flag.active || flag.archived)
}

fn disabled(flag: &Flag) -> Value {
    json!({"key": flag.key, "value": false, "variant": "false", "reason": "DISABLED",
        "metadata": {"flagId": flag.id, "version": flag.version,
            "posthogReason": ReasonCode::FlagDisabled.as_str()}})
}

/// A strong ETag of the answer itself: it changes exactly when some flag's answer for this
/// context does (a flag edited in a way that does not change the answer keeps it).
fn etag(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `If-None-Match` compares weakly (RFC 9110 §13.1.2): `W/` and the quotes do not matter.
fn same_tag(sent: &str, ours: &str) -> bool {
    let bare = |t: &str| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t.trim_matches('"').to_string()
    };
    sent.trim() == "*" || bare(sent) == bare(ours)
}

/// One flag's `evaluationSuccess` (or `evaluationFailure` for a record `/flags` marks failed).
fn record(answer: &FlagEvaluation, flag: Option<&Flag>) -> Value {
    let key = &*answer.key;
    if answer.failed {
        let details = answer
            .reason
            .description
            .as_deref()
            .unwrap_or("the flag could not be evaluated");
        return json!({"key": key, "errorCode": "GENERAL", "errorDetails": details,
            "metadata": {"posthogReason": answer.reason.code}});
    }
    let payload = payload(answer);
    let remote_config = flag.is_some_and(|f| f.is_remote_configuration == Some(true));
    let value = match (&payload, remote_config && answer.enabled) {
        (Some(text), true) if !answer.payload_encrypted => {
            serde_json::from_str(text).unwrap_or_else(|_| json!(text))
        }
        _ => answer.value(),
    };
    let variant = match &answer.variant {
        Some(variant) if answer.enabled => variant.clone(),
        _ => answer.enabled.to_string(),
    };
    let mut metadata = Map::new();
    metadata.insert("flagId".into(), json!(answer.id));
    metadata.insert("version".into(), json!(answer.version));
    metadata.insert("posthogReason".into(), json!(answer.reason.code));
    if let Some(text) = payload {
        metadata.insert("payload".into(), json!(text));
    }
    json!({
        "key": key,
        "value": value,
        "variant": variant,
        "reason": reason(answer, flag, remote_config),
        "metadata": metadata,
    })
}

/// The payload as `/flags` shows it: the stored JSON text, or the sentinel when encrypted
/// (this endpoint is public, as `/flags` is).
fn payload(answer: &FlagEvaluation) -> Option<String> {
    let stored = answer.payload.as_ref()?;
    if answer.payload_encrypted {
        return Some(ENCRYPTED_SENTINEL.into());
    }
    Some(match stored {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

/// OpenFeature's resolution reason for PostHog's:
/// * flag disabled → `DISABLED`;
/// * a remote-configuration flag that is on → `STATIC`;
/// * a match decided by a percentage (a multivariate flag's variant drawn by hash, a holdout,
///   a condition rolled out to less than 100 %), or left out by the rollout percentage →
///   `SPLIT`;
/// * any other match (the person's properties, cohorts, a variant override, a super
///   condition) → `TARGETING_MATCH`;
/// * no condition matched, no group, a missing dependency → `DEFAULT`.
fn reason(answer: &FlagEvaluation, flag: Option<&Flag>, remote_config: bool) -> &'static str {
    let condition = |answer: &FlagEvaluation| {
        let index = answer.reason.condition_index?;
        flag?.filters["groups"].get(index).cloned()
    };
    match answer.code {
        Some(ReasonCode::FlagDisabled) => "DISABLED",
        Some(ReasonCode::ConditionMatch) if remote_config => "STATIC",
        Some(ReasonCode::HoldoutConditionValue) | Some(ReasonCode::OutOfRolloutBound) => "SPLIT",
        Some(ReasonCode::ConditionMatch) => {
            let condition = condition(answer).unwrap_or(Value::Null);
            let partial = condition["rollout_percentage"]
                .as_f64()
                .is_some_and(|p| p < 100.0);
            let drawn = answer.variant.is_some() && !condition["variant"].is_string();
            if partial || drawn {
                "SPLIT"
            } else {
                "TARGETING_MATCH"
            }
        }
        Some(ReasonCode::SuperConditionValue) => "TARGETING_MATCH",
        Some(
            ReasonCode::NoConditionMatch
            | ReasonCode::NoConditionMatchGroupsNotEvaluated
            | ReasonCode::NoGroupType
            | ReasonCode::MissingDependency,
        ) => "DEFAULT",
        None => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_headers_providers_send() {
        let bearer = ApiRequest::new("POST", "/ofrep/v1/evaluate/flags")
            .with_header("authorization", "Bearer phc_a");
        assert_eq!(token(&bearer).as_deref(), Some("phc_a"));
        let api_key =
            ApiRequest::new("POST", "/ofrep/v1/evaluate/flags").with_header("x-api-key", "phc_b");
        assert_eq!(token(&api_key).as_deref(), Some("phc_b"));
        let query =
            ApiRequest::new("POST", "/ofrep/v1/evaluate/flags").with_query("token", "phc_c");
        assert_eq!(token(&query).as_deref(), Some("phc_c"));
        let basic = ApiRequest::new("POST", "/ofrep/v1/evaluate/flags")
            .with_header("authorization", "Basic abc");
        assert_eq!(token(&basic), None);
    }

    #[test]
    fn the_context_becomes_a_flags_body() {
        let body = json!({"context": {"targetingKey": "u1", "plan": "pro",
            "groups": {"company": "c1"}, "groupProperties": {"company": {"size": 5}}}});
        let out = flags_body(body.as_object().unwrap(), Some("f")).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"distinct_id": "u1", "person_properties": {"plan": "pro"},
                "groups": {"company": "c1"}, "group_properties": {"company": {"size": 5}},
                "flag_keys_to_evaluate": ["f"]})
        );
        let missing = json!({"context": {"plan": "pro"}});
        assert!(matches!(
            flags_body(missing.as_object().unwrap(), None),
            Err(Failure::TargetingKeyMissing)
        ));
        let no_context = json!({});
        assert!(matches!(
            flags_body(no_context.as_object().unwrap(), None),
            Err(Failure::InvalidContext(_))
        ));
        let bad_key = json!({"context": {"targetingKey": {"a": 1}}});
        assert!(matches!(
            flags_body(bad_key.as_object().unwrap(), None),
            Err(Failure::InvalidContext(_))
        ));
    }

    #[test]
    fn etags_compare_weakly() {
        let ours = "\"abc\"";
        assert!(same_tag("\"abc\"", ours));
        assert!(same_tag("W/\"abc\"", ours));
        assert!(same_tag("abc", ours));
        assert!(same_tag("*", ours));
        assert!(!same_tag("\"abd\"", ours));
    }
}
