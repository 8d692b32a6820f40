//! Evaluations explained (flag-management-rules.md §5.10): `GET /feature_flags/evaluation_reasons/`,
//! `GET /feature_flags/my_flags/` and `POST /feature_flags/{id}/test_evaluation/`. Each
//! answers from the stored persons and cohorts through the engine and the same person reads
//! `/flags` makes ([`stored::evaluate`]), so what they explain is what SDKs are served.

use serde_json::{Map, Value, json};

use super::Context;
use super::flag_view::FlagView;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::evaluation::snapshot::{EvaluationSnapshot, cohorts_for};
use crate::evaluation::stored::{self, Answer, Prepared};
use crate::evaluation::{EvaluationInput, FlagEvaluation, GroupTypeMapping, Reason, ReasonCode};
use crate::flag::filters::{Filters, Section};
use crate::flag::{self, Flag};
use crate::http::{ApiRequest, ApiResponse};
use crate::identity::Project;
use crate::limits;
use crate::store::{DefinitionsStore, FeatureStore, FlagStore, HashKeyOverrideStore, PersonStore};

/// What the evaluation endpoints read: the flag stores plus persons, group types and hash keys.
pub trait EvaluationStore:
    FlagStore + FeatureStore + PersonStore + DefinitionsStore + HashKeyOverrideStore
{
}

impl<S: FlagStore + FeatureStore + PersonStore + DefinitionsStore + HashKeyOverrideStore>
    EvaluationStore for S
{
}

pub(super) struct FlagEvaluations<'a, S> {
    pub ctx: &'a Context<'a, S>,
    pub caller: &'a Caller,
    pub project: &'a Project,
}

/// Flag keys one request may name (a query string this long is already unusual).
const MAX_FLAG_KEYS: usize = 1000;

/// The project's flags as the engine sees them, read for one request.
struct ProjectFlags {
    flags: Vec<Flag>,
    snapshot: EvaluationSnapshot,
    mapping: GroupTypeMapping,
}

/// Where the answer for one person comes from: who, which groups, which flags.
struct Ask<'q> {
    distinct_id: &'q str,
    groups: &'q Map<String, Value>,
    flag_keys: Option<&'q [String]>,
}

impl<S: EvaluationStore> FlagEvaluations<'_, S> {
    /// `GET /feature_flags/evaluation_reasons/?distinct_id=…&groups=…&flag_keys=…`: per flag
    /// key, `{"value", "evaluation": {"reason", "condition_index", "description"}}`; disabled
    /// flags answer `reason: "disabled"`.
    pub(super) async fn evaluation_reasons(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let distinct_id = match req.query_value("distinct_id") {
            None => {
                return Err(ApiError::field(
                    "distinct_id",
                    "required",
                    "This field is required.",
                ));
            }
            Some("") => {
                return Err(ApiError::field(
                    "distinct_id",
                    "blank",
                    "This field may not be blank.",
                ));
            }
            Some(d) => d,
        };
        let groups = groups_param(req)?;
        let flag_keys = flag_keys_param(req)?;
        let project = self.read_project().await?;
        let ask = Ask {
            distinct_id,
            groups: &groups,
            flag_keys: flag_keys.as_deref(),
        };
        let answer = self.answer(&project, &ask).await;
        let wanted = |key: &str| {
            flag_keys
                .as_ref()
                .is_none_or(|k| k.iter().any(|w| w == key))
        };
        let mut out = Map::new();
        for record in answer.evaluations.flags.iter().filter(|r| wanted(&r.key)) {
            out.insert(
                record.key.to_string(),
                json!({
                    "value": record.value(),
                    "evaluation": {
                        "reason": record.reason.code,
                        "condition_index": record.reason.condition_index,
                        "description": record.reason.description,
                    },
                }),
            );
        }
        let disabled = project
            .flags
            .iter()
            .filter(|f| !f.deleted && !f.active && wanted(&f.key));
        for flag in disabled {
            out.insert(
                flag.key.clone(),
                json!({"value": false, "evaluation": {"reason": "disabled", "condition_index": null}}),
            );
        }
        Ok(ApiResponse::ok(Value::Object(out)))
    }

    /// `GET /feature_flags/my_flags/?groups=…&flag_keys=…`: every flag of the project (newest
    /// first) with its value for the calling user's `distinct_id`.
    pub(super) async fn my_flags(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let groups = groups_param(req)?;
        let flag_keys = flag_keys_param(req)?;
        let distinct_id = self
            .caller
            .user()
            .map(|u| u.distinct_id.as_str())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| ApiError::object("User distinct_id is required"))?;
        let project = self.read_project().await?;
        let mut listed: Vec<&Flag> = project
            .flags
            .iter()
            .filter(|f| !f.deleted)
            .filter(|f| flag_keys.as_ref().is_none_or(|k| k.contains(&f.key)))
            .collect();
        if listed.is_empty() {
            return Ok(ApiResponse::ok(json!([])));
        }
        listed.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let ask = Ask {
            distinct_id,
            groups: &groups,
            flag_keys: flag_keys.as_deref(),
        };
        let answer = self.answer(&project, &ask).await;
        let view = FlagView::new(self.ctx, self.caller, self.project);
        let shown: Vec<Value> = listed
            .into_iter()
            .map(|flag| {
                let value = answer
                    .evaluations
                    .flags
                    .iter()
                    .find(|r| r.id == flag.id)
                    .map_or(json!(false), FlagEvaluation::value);
                json!({"feature_flag": self.minimal(&view, flag), "value": value})
            })
            .collect();
        Ok(ApiResponse::ok(Value::Array(shown)))
    }

    /// PostHog's `MinimalFeatureFlagSerializer` (with `evaluation_contexts`, its name for
    /// the tags), filters shown as GET shows them.
    fn minimal(&self, view: &FlagView<'_, S>, flag: &Flag) -> Value {
        let mut full = view.show(flag, &[]);
        let filters = full["filters"].take();
        let mut shown = flag::minimal_representation(flag, filters);
        shown["evaluation_contexts"] = json!(flag.evaluation_tags);
        shown
    }

    /// The project's flags, group types and the cohorts they name, prepared for the engine.
    async fn read_project(&self) -> ApiResult<ProjectFlags> {
        Ok(self.read_project_probing(None).await?.0)
    }

    /// [`Self::read_project`], with the probes explaining `target` among the flags.
    async fn read_project_probing(
        &self,
        target: Option<&Flag>,
    ) -> ApiResult<(ProjectFlags, Probes)> {
        let store = self.ctx.store;
        let project_id = self.project.id;
        let mut flags = store.project_flags(project_id).await?;
        let group_types = store.group_types(project_id).await?;
        let cohorts = cohorts_for(store, project_id, &flags).await?;
        let probes = match target {
            Some(target) => Probes::add(&mut flags, target),
            None => Probes {
                conditions: Vec::new(),
            },
        };
        let project = ProjectFlags {
            snapshot: EvaluationSnapshot::build(&flags, &cohorts),
            mapping: GroupTypeMapping::new(group_types.into_iter().map(|g| (g.index, g.name))),
            flags,
        };
        Ok((project, probes))
    }

    /// The answer `/flags` would give this person, for every runtime.
    async fn answer(&self, project: &ProjectFlags, ask: &Ask<'_>) -> Answer {
        let prepared = Prepared {
            set: &project.snapshot.set,
            flags: &project.flags,
            static_cohort_ids: &project.snapshot.static_cohort_ids,
        };
        let input = EvaluationInput {
            groups: ask.groups,
            group_type_mapping: &project.mapping,
            flag_keys: ask.flag_keys,
            ..EvaluationInput::new(ask.distinct_id, self.ctx.now)
        };
        stored::evaluate(self.ctx.store, self.project.id, prepared, &input).await
    }
}

/// `POST /feature_flags/{id}/test_evaluation/`.
impl<S: EvaluationStore> FlagEvaluations<'_, S> {
    pub(super) async fn test_evaluation(
        &self,
        id: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<ApiResponse> {
        let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
        let target = self
            .ctx
            .store
            .get_flag(self.project.id, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let request = TestRequest::parse(body)?;
        if request.timestamp {
            return Ok(ApiResponse::json(
                400,
                json!({"error": "Evaluating a flag at a past timestamp is not supported here: leave timestamp out to evaluate the flag as it is now."}),
            ));
        }
        // Who: the distinct id asked for (a person may not exist yet), or the person's own
        // first distinct id in sorted order, as PostHog picks one.
        let distinct_id = match (&request.distinct_id, &request.person_id) {
            (Some(d), _) => d.clone(),
            (None, Some(uuid)) => {
                let person = if limits::is_identifier(uuid) {
                    self.ctx
                        .store
                        .persons_by_ids(self.project.id, std::slice::from_ref(uuid))
                        .await?
                        .into_iter()
                        .next()
                } else {
                    None
                };
                let mut ids = person.map(|p| p.distinct_ids).unwrap_or_default();
                ids.sort();
                match ids.into_iter().next() {
                    Some(d) => d,
                    None => {
                        return Ok(ApiResponse::json(
                            404,
                            json!({"detail": format!("Person not found for person_id: {uuid}")}),
                        ));
                    }
                }
            }
            (None, None) => unreachable!("TestRequest::parse requires one"),
        };
        let (project, probes) = self.read_project_probing(Some(&target)).await?;
        let keys = [target.key.clone()];
        let ask = Ask {
            distinct_id: &distinct_id,
            groups: &request.groups,
            flag_keys: Some(&keys),
        };
        let answer = self.answer(&project, &ask).await;
        let record = answer.evaluations.flags.iter().find(|r| r.id == target.id);
        // A disabled flag is `flag_disabled`; a soft-deleted one is not served at all, which
        // PostHog reports as `flag_not_found`.
        let (result, reason) = match record {
            Some(r) => (r.value(), r.reason.clone()),
            None if target.deleted => (
                json!(false),
                Reason {
                    code: "flag_not_found".into(),
                    condition_index: None,
                    description: None,
                },
            ),
            None => (
                json!(false),
                Reason::from_code(ReasonCode::FlagDisabled, None),
            ),
        };
        let payload = record.and_then(|r| self.payload(r));
        let response = json!({
            "flag_key": target.key,
            "result": result,
            "reason": reason.code,
            "reason_description": reason.description,
            "condition_index": reason.condition_index,
            "payload": payload,
            "person_properties": used_person_properties(&target, &answer.person_properties),
            "evaluation_distinct_id": request.distinct_id,
            "conditions": probes.explain(&target, &answer, record),
        });
        Ok(ApiResponse::ok(response))
    }

    /// The payload as `/flags` stores it (JSON text); personal-key callers, the only ones
    /// here, read encrypted payloads in plain text as GET shows them.
    fn payload(&self, record: &FlagEvaluation) -> Option<Value> {
        let stored = record.payload.clone()?;
        if !record.payload_encrypted {
            return Some(stored);
        }
        let wrapped = json!({"payloads": {"p": stored}});
        let shown = self
            .ctx
            .cipher
            .reveal(&wrapped, self.caller.sees_decrypted_payloads());
        shown["payloads"].get("p").cloned()
    }
}

/// The `test_evaluation` body (PostHog's `FeatureFlagTestEvaluationRequestSerializer`).
struct TestRequest {
    distinct_id: Option<String>,
    person_id: Option<String>,
    timestamp: bool,
    groups: Map<String, Value>,
}

impl TestRequest {
    fn parse(body: &Map<String, Value>) -> ApiResult<TestRequest> {
        let text = |attr: &str| -> ApiResult<Option<String>> {
            match body.get(attr) {
                None => Ok(None),
                Some(Value::Null) => {
                    Err(ApiError::field(attr, "null", "This field may not be null."))
                }
                Some(Value::String(s)) if s.is_empty() => Err(ApiError::field(
                    attr,
                    "blank",
                    "This field may not be blank.",
                )),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(ApiError::invalid(attr, "Not a valid string.")),
            }
        };
        let distinct_id = text("distinct_id")?;
        let person_id = text("person_id")?;
        let timestamp = match body.get("timestamp") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if crate::time::parse(s).is_some() => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "timestamp",
                    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
                ));
            }
        };
        let groups = match body.get("groups") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(ApiError::invalid("groups", "groups must be a JSON object")),
        };
        match (&distinct_id, &person_id) {
            (None, None) => Err(ApiError::object(
                "Either distinct_id or person_id must be provided",
            )),
            (Some(_), Some(_)) => Err(ApiError::object(
                "Cannot provide both distinct_id and person_id",
            )),
            _ => Ok(TestRequest {
                distinct_id,
                person_id,
                timestamp,
                groups,
            }),
        }
    }
}

/// `groups`: a JSON object in a query string (PostHog's `GroupsJSONField`); absent or empty
/// is `{}`.
fn groups_param(req: &ApiRequest) -> ApiResult<Map<String, Value>> {
    let raw = req.query_value("groups").unwrap_or("");
    if raw.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("groups", "groups must be a JSON object")),
        Err(_) => Err(ApiError::invalid(
            "groups",
            "Invalid JSON in groups parameter",
        )),
    }
}

/// `flag_keys`: repeated (`flag_keys=a&flag_keys=b`) or one JSON array (`flag_keys=["a","b"]`);
/// absent or empty means every flag.
fn flag_keys_param(req: &ApiRequest) -> ApiResult<Option<Vec<String>>> {
    let mut keys: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k == "flag_keys" || k == "flag_keys[]")
        .map(|(_, v)| v.clone())
        .collect();
    if let [single] = keys.as_slice()
        && single.trim_start().starts_with('[')
    {
        keys = match serde_json::from_str::<Value>(single.trim()) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ApiError::invalid("flag_keys", "Not a valid string.")),
                })
                .collect::<ApiResult<_>>()?,
            Ok(_) => {
                return Err(ApiError::invalid(
                    "flag_keys",
                    "flag_keys must be a JSON array",
                ));
            }
            Err(_) => {
                return Err(ApiError::invalid(
                    "flag_keys",
                    "Invalid JSON in flag_keys parameter",
                ));
            }
        };
    }
    if keys.len() > MAX_FLAG_KEYS {
        return Err(ApiError::invalid(
            "flag_keys",
            format!("Ask for at most {} flag keys at a time.", MAX_FLAG_KEYS),
        ));
    }
    Ok((!keys.is_empty()).then_some(keys))
}

/// The person properties the flag's conditions read, with the values the engine saw
/// (PostHog's `_filter_person_properties_for_flag`).
fn used_person_properties(flag: &Flag, properties: &Map<String, Value>) -> Value {
    let filters = flag.effective_filters();
    let view = Filters::of(&filters);
    let mut out = Map::new();
    for section in [Section::Groups, Section::SuperGroups] {
        for condition in view.conditions(section) {
            for property in condition.properties() {
                let person = property
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "person");
                if let Some(key) = property.get("key").and_then(Value::as_str)
                    && person
                    && let Some(value) = properties.get(key)
                {
                    out.insert(key.to_string(), value.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// Per-condition analysis through the engine itself: each condition (without its rollout,
/// then with it) and each of its properties is added as a probe flag holding the target's key,
/// so hashing and every operator behave exactly as for the real flag.
struct Probes {
    conditions: Vec<ConditionProbe>,
}

struct ConditionProbe {
    /// Probe ids: all properties at 100 %, the condition as stored, each property alone.
    properties_id: i64,
    rollout_id: i64,
    property_ids: Vec<i64>,
}

impl Probes {
    /// Adds the probe flags for `target` to `flags`.
    fn add(flags: &mut Vec<Flag>, target: &Flag) -> Probes {
        let filters = target.effective_filters();
        let aggregation = filters
            .get("aggregation_group_type_index")
            .cloned()
            .unwrap_or(Value::Null);
        let groups: Vec<Value> = filters
            .get("groups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut next_id = -1;
        let mut probe = |condition: Value, flags: &mut Vec<Flag>| -> i64 {
            let id = next_id;
            next_id -= 1;
            let mut flag = target.clone();
            flag.id = id;
            flag.active = true;
            flag.deleted = false;
            flag.archived = false;
            flag.evaluation_tags = Vec::new();
            flag.filters =
                json!({"aggregation_group_type_index": aggregation, "groups": [condition]});
            flags.push(flag);
            id
        };
        let mut conditions = Vec::new();
        for group in &groups {
            let mut plain = group.as_object().cloned().unwrap_or_default();
            plain.remove("variant");
            let mut everyone = plain.clone();
            everyone.insert("rollout_percentage".into(), json!(100));
            let properties: Vec<Value> = plain
                .get("properties")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let properties_id = probe(Value::Object(everyone.clone()), flags);
            let rollout_id = probe(Value::Object(plain.clone()), flags);
            let property_ids = properties
                .into_iter()
                .map(|p| {
                    let mut alone = everyone.clone();
                    alone.insert("properties".into(), json!([p]));
                    probe(Value::Object(alone), flags)
                })
                .collect();
            conditions.push(ConditionProbe {
                properties_id,
                rollout_id,
                property_ids,
            });
        }
        Probes { conditions }
    }

    /// PostHog's `conditions` list: one entry per release condition.
    fn explain(&self, target: &Flag, answer: &Answer, record: Option<&FlagEvaluation>) -> Value {
        let enabled = |id: i64| {
            answer
                .evaluations
                .flags
                .iter()
                .find(|r| r.id == id)
                .is_some_and(|r| r.enabled)
        };
        let filters = target.effective_filters();
        let groups: Vec<Value> = filters
            .get("groups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let winner = record
            .filter(|r| r.code == Some(ReasonCode::ConditionMatch))
            .and_then(|r| r.reason.condition_index);
        let mut out = Vec::new();
        for (index, (group, probe)) in groups.iter().zip(&self.conditions).enumerate() {
            let properties_matched = enabled(probe.properties_id);
            let in_rollout = enabled(probe.rollout_id);
            let matched = winner == Some(index);
            let rollout = group
                .get("rollout_percentage")
                .and_then(Value::as_f64)
                .unwrap_or(100.0);
            let explanation = if matched {
                "This condition matched: it decided the flag's value.".to_string()
            } else if properties_matched && !in_rollout {
                format!("Every property matched, but the rollout of {rollout}% left this user out.")
            } else if properties_matched {
                "Every property matched, but another condition decided the flag's value."
                    .to_string()
            } else {
                "Not every property matched.".to_string()
            };
            let properties: Vec<Value> = group
                .get("properties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .zip(&probe.property_ids)
                .map(|(property, id)| explain_property(property, enabled(*id), answer))
                .collect();
            out.push(json!({
                "index": index,
                "matched": matched,
                "properties_matched": properties_matched,
                "explanation": explanation,
                "rollout_percentage": rollout,
                "rollout_excluded": properties_matched && !in_rollout,
                "variant": group.get("variant").cloned().unwrap_or(Value::Null),
                "properties": properties,
            }));
        }
        Value::Array(out)
    }
}

/// One property of a condition: what it asks, what the person has, whether it matched.
fn explain_property(property: &Value, matched: bool, answer: &Answer) -> Value {
    let key = property.get("key").and_then(Value::as_str).unwrap_or("");
    let kind = property
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("person");
    let operator = property
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("exact");
    let actual = match kind {
        "person" => answer.person_properties.get(key).cloned(),
        "flag" => answer
            .evaluations
            .flags
            .iter()
            .find(|r| r.id.to_string() == key || &*r.key == key)
            .map(FlagEvaluation::value),
        _ => None,
    }
    .unwrap_or(Value::Null);
    let expected = property.get("value").cloned().unwrap_or(Value::Null);
    let explanation = format!(
        "{kind} property {key} {operator} {expected}: {} (the user's value: {actual})",
        if matched { "matched" } else { "did not match" }
    );
    json!({
        "key": key,
        "operator": operator,
        "value": expected,
        "type": kind,
        "actual_value": actual,
        "matched": matched,
        "explanation": explanation,
    })
}
