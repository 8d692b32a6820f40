//! `POST /flags/` and `POST /decide/`: remote evaluation for the project of the body's token
//! (evaluation-rules.md §3). DynamoDB reads per warm request: the definitions version, the stored
//! person (distinct item, then person), plus the person's hash key overrides when a
//! continuity flag needs them.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::body::{self, Limits, SdkError};
use super::request::{self, FlagsRequest};
use super::response::{self, Envelope, Shape};
use super::{Context, Snapshot, Store};
use crate::evaluation::{EvaluationInput, Evaluations, FlagEvaluation};
use crate::http::{ApiRequest, ApiResponse, MAX_BODY_BYTES};
use crate::person::Person;

/// A `/flags` body is small (one person's properties); 1 MB before and after decompression.
const LIMITS: Limits = Limits {
    raw: MAX_BODY_BYTES,
    decoded: MAX_BODY_BYTES,
};

const OVERRIDE_ERROR: &str = "hash_key_override_error";
const OVERRIDE_ERROR_DESCRIPTION: &str =
    "Failed to fetch hash key override for experience continuity";

pub async fn handle<S: Store>(ctx: &Context<'_, S>, req: &ApiRequest, decide: bool) -> ApiResponse {
    match req.method.as_str() {
        "POST" => evaluate(ctx, req, decide)
            .await
            .unwrap_or_else(ApiResponse::from),
        // PostHog answers these without evaluating anything.
        "GET" | "HEAD" => ApiResponse::ok(render(req, decide, &Evaluations::default())),
        "OPTIONS" => ApiResponse::empty(200),
        other => SdkError::Method(other.to_string()).into(),
    }
}

async fn evaluate<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    decide: bool,
) -> Result<ApiResponse, SdkError> {
    let body = match body::json(req, LIMITS)? {
        Value::Object(map) => map,
        _ => return Err(SdkError::Parse("the body must be a JSON object".into())),
    };
    let token = request::token(&body, req)?;
    let project = ctx
        .cache
        .project_by_token(ctx.store, &token)
        .await?
        .ok_or(SdkError::InvalidToken)?;
    let parsed = FlagsRequest::parse(&body, req)?;
    if parsed.disable_flags {
        return Ok(ApiResponse::ok(render(
            req,
            decide,
            &Evaluations::default(),
        )));
    }
    let snapshot = ctx.cache.snapshot(ctx.store, project.id).await?;
    let answers = answer(ctx, &snapshot, &parsed, project.id).await;
    Ok(ApiResponse::ok(render(req, decide, &answers)).gzip_if_accepted(req))
}

fn render(req: &ApiRequest, decide: bool, answers: &Evaluations) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let envelope = Envelope {
        request_id: &request_id,
        evaluated_at: chrono::Utc::now().timestamp_millis(),
    };
    response::render(Shape::of(req, decide), answers, &envelope)
}

/// The engine's answer, with continuity flags failed when their overrides could not be read.
async fn answer<S: Store>(
    ctx: &Context<'_, S>,
    snapshot: &Snapshot,
    parsed: &FlagsRequest,
    project_id: i64,
) -> Evaluations {
    // Independent reads: continuity overrides and the stored person go out together.
    let (overrides, person) = tokio::join!(
        continuity_overrides(ctx, snapshot, parsed, project_id),
        stored_person(ctx, snapshot, parsed, project_id),
    );
    let person_properties = merged_person_properties(person.as_ref(), &parsed.person_properties);
    let static_cohort_ids = static_memberships(ctx, snapshot, person.as_ref(), project_id).await;
    let empty = HashMap::new();
    let input = EvaluationInput {
        distinct_id: &parsed.distinct_id,
        device_id: parsed.device_id.as_deref(),
        person_properties: &person_properties,
        groups: &parsed.groups,
        group_properties: &parsed.group_properties,
        group_type_mapping: &snapshot.mapping,
        hash_key_overrides: overrides.as_ref().unwrap_or(&empty),
        anon_distinct_id: parsed.anon_distinct_id.as_deref(),
        runtime: parsed.runtime,
        evaluation_contexts: &parsed.evaluation_contexts,
        flag_keys: parsed.flag_keys.as_deref(),
        static_cohort_ids: &static_cohort_ids,
        property_matching_version: 1,
        now: ctx.now,
    };
    let mut answers = snapshot.set.evaluate(&input);
    if overrides.is_none() {
        fail_continuity_flags(snapshot, &mut answers);
    }
    answers
}

/// The person capture stored for the request's distinct id (two GetItems), `None` when there
/// is none, no live flag could use it, or reading failed (then the request's properties
/// alone decide, and the failure is logged).
async fn stored_person<S: Store>(
    ctx: &Context<'_, S>,
    snapshot: &Snapshot,
    parsed: &FlagsRequest,
    project_id: i64,
) -> Option<Person> {
    // An over-long id cannot have been stored: capture never keeps one.
    if snapshot.flags.iter().all(|f| f.deleted)
        || !crate::limits::is_identifier(&parsed.distinct_id)
    {
        return None;
    }
    match ctx
        .store
        .person_by_distinct_id(project_id, &parsed.distinct_id)
        .await
    {
        Ok(person) => person,
        Err(e) => {
            tracing::error!(error = %e, "reading the stored person failed");
            None
        }
    }
}

/// The static cohorts (of those the project's flags reach) the stored person belongs to: one
/// BatchGetItem of their membership items, only when flags reach static cohorts. A failed read
/// counts as no memberships (logged), like a person without any.
async fn static_memberships<S: Store>(
    ctx: &Context<'_, S>,
    snapshot: &Snapshot,
    person: Option<&Person>,
    project_id: i64,
) -> Vec<i64> {
    let Some(person) = person.filter(|_| !snapshot.static_cohort_ids.is_empty()) else {
        return Vec::new();
    };
    let uuids = [person.uuid.clone()];
    match ctx
        .store
        .static_memberships(project_id, &snapshot.static_cohort_ids, &uuids)
        .await
    {
        Ok(mut found) => found.remove(&person.uuid).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "reading static cohort memberships failed");
            Vec::new()
        }
    }
}

/// Stored person properties under the request's `person_properties` (request wins), as
/// PostHog's server merges them (evaluation-rules.md §2.4).
fn merged_person_properties(
    person: Option<&Person>,
    request: &Map<String, Value>,
) -> Map<String, Value> {
    let Some(person) = person else {
        return request.clone();
    };
    let mut merged = person.properties.clone();
    merged.extend(request.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

/// PostHog's order: with `$anon_distinct_id`, first store it as the hash key of every
/// continuity flag the person (and the anonymous id) has none for, then read the person's
/// overrides. `None` when reading failed; a failed write only loses the new overrides.
async fn continuity_overrides<S: Store>(
    ctx: &Context<'_, S>,
    snapshot: &Snapshot,
    parsed: &FlagsRequest,
    project_id: i64,
) -> Option<HashMap<String, String>> {
    let keys = snapshot.set.experience_continuity_keys();
    if let Some(anon) = parsed
        .anon_distinct_id
        .as_deref()
        .filter(|_| !keys.is_empty())
    {
        let people = [parsed.distinct_id.as_str(), anon];
        if let Err(e) = ctx
            .store
            .add_hash_key_overrides(project_id, &people, &keys, anon)
            .await
        {
            tracing::error!(error = %e, "storing hash key overrides failed");
        }
    }
    if !snapshot.set.needs_hash_key_overrides() {
        return Some(HashMap::new());
    }
    match ctx
        .store
        .hash_key_overrides(project_id, &parsed.distinct_id)
        .await
    {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::error!(error = %e, "reading hash key overrides failed");
            None
        }
    }
}

fn fail_continuity_flags(snapshot: &Snapshot, answers: &mut Evaluations) {
    let continuity = snapshot
        .flags
        .iter()
        .filter(|f| f.ensure_experience_continuity == Some(true) && !f.deleted);
    for flag in continuity {
        if answers.get(&flag.key).is_some() {
            answers.mark_failed(FlagEvaluation::failure(
                flag,
                OVERRIDE_ERROR,
                OVERRIDE_ERROR_DESCRIPTION,
            ));
        }
    }
}
