//! What the engine answers: per flag the value, PostHog's reason and the payload, plus the
//! request-level error flag (evaluation-rules.md §3.3).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::flag::Flag;

/// PostHog's `FeatureFlagMatchReason`. The declaration order is irrelevant; [`Self::score`]
/// decides which reason a flag reports when several conditions disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    SuperConditionValue,
    HoldoutConditionValue,
    ConditionMatch,
    OutOfRolloutBound,
    NoConditionMatch,
    /// `no_condition_match` on the wire, with a description saying group conditions were
    /// skipped because the request lacked their group.
    NoConditionMatchGroupsNotEvaluated,
    NoGroupType,
    FlagDisabled,
    MissingDependency,
}

impl ReasonCode {
    /// The server's ranking: the best-scoring reason wins, ties go to the later condition.
    pub fn score(self) -> i32 {
        match self {
            ReasonCode::SuperConditionValue => 6,
            ReasonCode::HoldoutConditionValue => 5,
            ReasonCode::ConditionMatch => 4,
            ReasonCode::OutOfRolloutBound => 3,
            ReasonCode::NoConditionMatch | ReasonCode::NoConditionMatchGroupsNotEvaluated => 2,
            ReasonCode::NoGroupType => 1,
            ReasonCode::FlagDisabled => 0,
            ReasonCode::MissingDependency => -1,
        }
    }

    /// `reason.code` on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::SuperConditionValue => "super_condition_value",
            ReasonCode::HoldoutConditionValue => "holdout_condition_value",
            ReasonCode::ConditionMatch => "condition_match",
            ReasonCode::OutOfRolloutBound => "out_of_rollout_bound",
            ReasonCode::NoConditionMatch | ReasonCode::NoConditionMatchGroupsNotEvaluated => {
                "no_condition_match"
            }
            ReasonCode::NoGroupType => "no_group_type",
            ReasonCode::FlagDisabled => "flag_disabled",
            ReasonCode::MissingDependency => "missing_dependency",
        }
    }
}

/// `reason` of a `/flags` record. `code` is either a [`ReasonCode`] or, for failed records, an
/// error code chosen by the caller. Borrowed static text where possible: a request answers
/// every flag, and allocating two strings per flag would be most of its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub code: Cow<'static, str>,
    pub condition_index: Option<usize>,
    pub description: Option<Cow<'static, str>>,
}

/// "Matched condition set N" for the first conditions, prebuilt.
const MATCHED: [&str; 10] = [
    "Matched condition set 1",
    "Matched condition set 2",
    "Matched condition set 3",
    "Matched condition set 4",
    "Matched condition set 5",
    "Matched condition set 6",
    "Matched condition set 7",
    "Matched condition set 8",
    "Matched condition set 9",
    "Matched condition set 10",
];

fn matched_description(condition_index: Option<usize>) -> Cow<'static, str> {
    let index = condition_index.unwrap_or(0);
    match MATCHED.get(index) {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(format!("Matched condition set {}", index + 1)),
    }
}

impl Reason {
    /// PostHog's description for a match reason (`Matched condition set N` counts from 1).
    pub fn from_code(code: ReasonCode, condition_index: Option<usize>) -> Reason {
        let description: Cow<'static, str> = match code {
            ReasonCode::ConditionMatch => matched_description(condition_index),
            ReasonCode::NoConditionMatch => "No matching condition set".into(),
            ReasonCode::NoConditionMatchGroupsNotEvaluated => "No matching condition set (group conditions were not evaluated because no group type was provided)".into(),
            ReasonCode::OutOfRolloutBound => "Out of rollout bound".into(),
            ReasonCode::NoGroupType => "No group type".into(),
            ReasonCode::SuperConditionValue => "Super condition value".into(),
            ReasonCode::HoldoutConditionValue => "Holdout condition value".into(),
            ReasonCode::FlagDisabled => "Feature flag is disabled".into(),
            ReasonCode::MissingDependency => {
                "Flag cannot be evaluated due to missing dependency".into()
            }
        };
        Reason {
            code: Cow::Borrowed(code.as_str()),
            condition_index,
            description: Some(description),
        }
    }

    /// `{"code", "condition_index", "description"?}`: PostHog omits a null description.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("code".into(), json!(self.code));
        out.insert("condition_index".into(), json!(self.condition_index));
        if let Some(description) = &self.description {
            out.insert("description".into(), json!(description));
        }
        Value::Object(out)
    }
}

/// One flag's answer for one person.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEvaluation {
    /// Shared with the prepared flag: cloning a key per answer costs an allocation otherwise.
    pub key: Arc<str>,
    pub id: i64,
    pub version: i64,
    pub enabled: bool,
    /// The variant key (or `holdout-<id>`) when the flag is enabled with one.
    pub variant: Option<String>,
    /// Only set for records the caller marks failed (see [`FlagEvaluation::failure`]).
    pub failed: bool,
    /// The server-side reason code, kept typed for callers that branch on it.
    pub code: Option<ReasonCode>,
    pub reason: Reason,
    /// `filters.payloads[variant or "true"]` exactly as stored (JSON text, a string value) for an
    /// enabled result, else `None`. Ciphertext when `payload_encrypted`: the caller decrypts.
    pub payload: Option<Value>,
    pub payload_encrypted: bool,
}

impl FlagEvaluation {
    /// The flag's value: the variant, else `enabled`.
    pub fn value(&self) -> Value {
        match &self.variant {
            Some(variant) if self.enabled => json!(variant),
            _ => json!(self.enabled),
        }
    }

    /// A failed record (`failed: true`, disabled, no payload) for a flag whose evaluation the
    /// caller could not complete, e.g. when reading experience-continuity overrides failed.
    /// Such records set `errorsWhileComputingFlags`.
    pub fn failure(flag: &Flag, code: &str, description: &str) -> FlagEvaluation {
        FlagEvaluation {
            key: Arc::from(flag.key.as_str()),
            id: flag.id,
            version: flag.version,
            enabled: false,
            variant: None,
            failed: true,
            code: None,
            reason: Reason {
                code: Cow::Owned(code.into()),
                condition_index: None,
                description: Some(Cow::Owned(description.into())),
            },
            payload: None,
            payload_encrypted: flag.has_encrypted_payloads.unwrap_or(false),
        }
    }
}

/// The answer for every flag the request covers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluations {
    /// In the order of the flags given to the engine.
    pub flags: Vec<FlagEvaluation>,
    /// `errorsWhileComputingFlags`: a dependency cycle touched an evaluated flag. Callers also set
    /// it when they add failed records.
    pub errors_while_computing_flags: bool,
}

impl Evaluations {
    pub fn get(&self, key: &str) -> Option<&FlagEvaluation> {
        self.flags.iter().find(|f| &*f.key == key)
    }

    /// Replaces (or adds) a record with a failed one and raises the error flag.
    pub fn mark_failed(&mut self, failure: FlagEvaluation) {
        self.errors_while_computing_flags = true;
        match self.flags.iter_mut().find(|f| f.key == failure.key) {
            Some(existing) => *existing = failure,
            None => self.flags.push(failure),
        }
    }
}
