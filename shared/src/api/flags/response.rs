//! `/flags` and `/decide` answers in the shape the request's `v` asks for (evaluation-rules.md §3.3).
//!
//! Every detailed record is the combined one of §3.4: the v2 fields (`enabled`, `variant`,
//! `reason`, `metadata`) plus the typed `value` and `metadata.config_version`, which both SDKs
//! read correctly whatever `v` they sent.

use serde_json::{Map, Value, json};

use crate::evaluation::{Evaluations, FlagEvaluation};
use crate::flag::ENCRYPTED_SENTINEL;
use crate::http::ApiRequest;

/// Which answer the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"flags": {key: record}}`, with remote-config keys merged in when `config` is set.
    Detailed { config: bool },
    /// `{"featureFlags": {key: value}, "featureFlagPayloads": {key: payload}}`.
    Legacy,
    /// `/decide` v1: `{"featureFlags": [enabled keys]}`.
    EnabledKeys,
    /// `/decide` v2: `{"featureFlags": {enabled key: value}}`.
    EnabledValues,
}

impl Shape {
    /// `/flags`: no `v` and no `config` → detailed with config; `v` ≥ 2 → detailed; `v=1`,
    /// a non-numeric `v`, or no `v` but `config` → legacy. `/decide` keeps its old ladder.
    pub fn of(req: &ApiRequest, decide: bool) -> Shape {
        let config_param = req.query_value("config");
        let config = config_param.is_some_and(|c| matches!(c.trim(), "true" | "1"));
        let version = req.query_value("v").map(|v| v.trim().parse::<f64>().ok());
        if decide {
            return match version.flatten() {
                None => Shape::EnabledKeys,
                Some(v) if v < 2.0 => Shape::EnabledKeys,
                Some(v) if v < 3.0 => Shape::EnabledValues,
                Some(v) if v < 4.0 => Shape::Legacy,
                Some(_) => Shape::Detailed { config },
            };
        }
        match (version, config_param) {
            (None, None) => Shape::Detailed { config: true },
            (None, Some(_)) => Shape::Legacy,
            (Some(Some(v)), _) if v >= 2.0 => Shape::Detailed { config },
            (Some(_), _) => Shape::Legacy,
        }
    }
}

/// What the whole answer carries besides the flags.
pub struct Envelope<'a> {
    pub request_id: &'a str,
    /// Milliseconds since the epoch.
    pub evaluated_at: i64,
}

pub fn render(shape: Shape, answers: &Evaluations, envelope: &Envelope) -> Value {
    let errors = answers.errors_while_computing_flags;
    let mut out = Map::new();
    out.insert("errorsWhileComputingFlags".into(), json!(errors));
    match shape {
        Shape::Detailed { config } => {
            let flags: Map<String, Value> = answers
                .flags
                .iter()
                .map(|f| (f.key.to_string(), record(f)))
                .collect();
            out.insert("flags".into(), Value::Object(flags));
            if config {
                out.extend(remote_config());
            }
        }
        Shape::Legacy => {
            out.insert("featureFlags".into(), values(answers, false));
            out.insert("featureFlagPayloads".into(), payloads(answers));
        }
        Shape::EnabledKeys => {
            let keys: Vec<&str> = enabled(answers).map(|f| &*f.key).collect();
            out.insert("featureFlags".into(), json!(keys));
        }
        Shape::EnabledValues => {
            out.insert("featureFlags".into(), values(answers, true));
        }
    }
    out.insert("requestId".into(), json!(envelope.request_id));
    out.insert("evaluatedAt".into(), json!(envelope.evaluated_at));
    Value::Object(out)
}

/// PostHog's detailed record plus the typed fields of §3.4.
fn record(flag: &FlagEvaluation) -> Value {
    let mut metadata = Map::new();
    metadata.insert("id".into(), json!(flag.id));
    metadata.insert("version".into(), json!(flag.version));
    metadata.insert("description".into(), Value::Null);
    metadata.insert("payload".into(), payload(flag).unwrap_or(Value::Null));
    metadata.insert("has_experiment".into(), json!(false));
    metadata.insert("config_version".into(), json!(1));
    if let Some(variant) = flag.variant.as_ref().filter(|_| flag.enabled) {
        metadata.insert("variant_key".into(), json!(variant));
    }
    let mut out = Map::new();
    out.insert("key".into(), json!(flag.key));
    out.insert("enabled".into(), json!(flag.enabled));
    out.insert("variant".into(), json!(flag.variant));
    out.insert("reason".into(), flag.reason.to_json());
    out.insert("metadata".into(), Value::Object(metadata));
    if flag.failed {
        out.insert("failed".into(), json!(true));
        out.insert("value".into(), Value::Null);
    } else {
        out.insert("value".into(), flag.value());
    }
    Value::Object(out)
}

/// The stored JSON text; encrypted payloads are for server-side readers with a key (remote
/// config), never for this public, token-only endpoint, so they show PostHog's sentinel.
fn payload(flag: &FlagEvaluation) -> Option<Value> {
    let stored = flag.payload.clone()?;
    Some(if flag.payload_encrypted {
        json!(ENCRYPTED_SENTINEL)
    } else {
        stored
    })
}

fn enabled(answers: &Evaluations) -> impl Iterator<Item = &FlagEvaluation> {
    answers.flags.iter().filter(|f| f.enabled && !f.failed)
}

fn values(answers: &Evaluations, only_enabled: bool) -> Value {
    let flags = answers
        .flags
        .iter()
        .filter(|f| !only_enabled || (f.enabled && !f.failed))
        .map(|f| (f.key.to_string(), f.value()));
    Value::Object(flags.collect())
}

fn payloads(answers: &Evaluations) -> Value {
    let found = enabled(answers).filter_map(|f| Some((f.key.to_string(), payload(f)?)));
    Value::Object(found.collect())
}

/// The remote-config part of an unversioned answer. Server SDKs ignore it; browser SDKs get
/// "nothing configured": no recordings, no site apps, compression they may use.
fn remote_config() -> Map<String, Value> {
    let config = json!({
        "supportedCompression": ["gzip", "gzip-js"],
        "config": {"enable_collect_everything": true},
        "toolbarParams": {},
        "isAuthenticated": false,
        "sessionRecording": false,
        "siteApps": [],
    });
    match config {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::{Reason, ReasonCode};

    fn req(query: &[(&str, &str)]) -> ApiRequest {
        query
            .iter()
            .fold(ApiRequest::new("POST", "/flags/"), |r, (k, v)| {
                r.with_query(k, v)
            })
    }

    #[test]
    fn version_ladder() {
        assert_eq!(
            Shape::of(&req(&[]), false),
            Shape::Detailed { config: true }
        );
        assert_eq!(
            Shape::of(&req(&[("v", "2")]), false),
            Shape::Detailed { config: false }
        );
        assert_eq!(
            Shape::of(&req(&[("v", "4")]), false),
            Shape::Detailed { config: false }
        );
        assert_eq!(
            Shape::of(&req(&[("v", "2"), ("config", "true")]), false),
            Shape::Detailed { config: true }
        );
        assert_eq!(Shape::of(&req(&[("v", "1")]), false), Shape::Legacy);
        assert_eq!(Shape::of(&req(&[("v", "x")]), false), Shape::Legacy);
        assert_eq!(Shape::of(&req(&[("config", "true")]), false), Shape::Legacy);
        assert_eq!(Shape::of(&req(&[]), true), Shape::EnabledKeys);
        assert_eq!(Shape::of(&req(&[("v", "2")]), true), Shape::EnabledValues);
        assert_eq!(Shape::of(&req(&[("v", "3")]), true), Shape::Legacy);
        assert_eq!(
            Shape::of(&req(&[("v", "4")]), true),
            Shape::Detailed { config: false }
        );
    }

    fn answer(
        key: &str,
        enabled: bool,
        variant: Option<&str>,
        payload: Option<&str>,
    ) -> FlagEvaluation {
        FlagEvaluation {
            key: key.into(),
            id: 1,
            version: 2,
            enabled,
            variant: variant.map(str::to_string),
            failed: false,
            code: Some(ReasonCode::ConditionMatch),
            reason: Reason::from_code(ReasonCode::ConditionMatch, Some(0)),
            payload: payload.map(|p| json!(p)),
            payload_encrypted: false,
        }
    }

    fn answers() -> Evaluations {
        Evaluations {
            flags: vec![
                answer("on", true, None, Some("{\"a\": 1}")),
                answer("mv", true, Some("test"), None),
                answer("off", false, None, None),
            ],
            errors_while_computing_flags: false,
        }
    }

    const ENVELOPE: Envelope = Envelope {
        request_id: "r",
        evaluated_at: 5,
    };

    #[test]
    fn detailed_records_are_combined() {
        let out = render(Shape::Detailed { config: false }, &answers(), &ENVELOPE);
        assert_eq!(
            out["flags"]["mv"],
            json!({"key": "mv", "enabled": true, "variant": "test",
                "reason": {"code": "condition_match", "condition_index": 0, "description": "Matched condition set 1"},
                "metadata": {"id": 1, "version": 2, "description": null, "payload": null,
                    "has_experiment": false, "config_version": 1, "variant_key": "test"},
                "value": "test"})
        );
        assert_eq!(out["flags"]["on"]["metadata"]["payload"], "{\"a\": 1}");
        assert_eq!(out["flags"]["off"]["value"], false);
        assert_eq!(out["requestId"], "r");
        assert_eq!(out["evaluatedAt"], 5);
        assert!(out.get("supportedCompression").is_none());
    }

    #[test]
    fn legacy_and_decide_shapes() {
        let legacy = render(Shape::Legacy, &answers(), &ENVELOPE);
        assert_eq!(
            legacy["featureFlags"],
            json!({"on": true, "mv": "test", "off": false})
        );
        assert_eq!(legacy["featureFlagPayloads"], json!({"on": "{\"a\": 1}"}));
        let keys = render(Shape::EnabledKeys, &answers(), &ENVELOPE);
        assert_eq!(keys["featureFlags"], json!(["on", "mv"]));
        let values = render(Shape::EnabledValues, &answers(), &ENVELOPE);
        assert_eq!(values["featureFlags"], json!({"on": true, "mv": "test"}));
    }

    #[test]
    fn encrypted_payloads_show_the_sentinel_and_failures_have_no_value() {
        let mut secret = answer("secret", true, None, Some("gAAAA-token"));
        secret.payload_encrypted = true;
        let mut broken = answer("broken", false, None, None);
        broken.failed = true;
        let answers = Evaluations {
            flags: vec![secret, broken],
            errors_while_computing_flags: true,
        };
        let out = render(Shape::Detailed { config: false }, &answers, &ENVELOPE);
        assert_eq!(
            out["flags"]["secret"]["metadata"]["payload"],
            ENCRYPTED_SENTINEL
        );
        assert_eq!(out["flags"]["broken"]["failed"], true);
        assert_eq!(out["flags"]["broken"]["value"], Value::Null);
        assert_eq!(out["errorsWhileComputingFlags"], true);
    }
}
