//! `POST /flags/` and `POST /decide/`: remote evaluation for the project of the body's token
//! (evaluation-rules.md §3). DynamoDB reads per warm request: the definitions version, the stored
//! person (distinct item, then person), plus the person's hash key overrides when a
//! continuity flag needs them.

use serde_json::Value;

use super::body::{self, Limits, SdkError};
use super::request::{self, FlagsRequest};
use super::response::{self, Envelope, Shape};
use super::{Context, Snapshot, Store};
use crate::evaluation::stored::{self, Prepared};
use crate::evaluation::{EvaluationInput, Evaluations};
use crate::http::{ApiRequest, ApiResponse, MAX_BODY_BYTES};

/// A `/flags` body is small (one person's properties); 1 MB before and after decompression.
const LIMITS: Limits = Limits {
    raw: MAX_BODY_BYTES,
    decoded: MAX_BODY_BYTES,
};

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

/// The engine's answer for the request's person, stored data included
/// ([`stored::evaluate`], shared with the management endpoints that explain evaluations, and
/// with OFREP's endpoints, [`super::ofrep`]).
pub(super) async fn answer<S: Store>(
    ctx: &Context<'_, S>,
    snapshot: &Snapshot,
    parsed: &FlagsRequest,
    project_id: i64,
) -> Evaluations {
    let prepared = Prepared {
        set: &snapshot.set,
        flags: &snapshot.flags,
        static_cohort_ids: &snapshot.static_cohort_ids,
    };
    let input = EvaluationInput {
        distinct_id: &parsed.distinct_id,
        device_id: parsed.device_id.as_deref(),
        person_properties: &parsed.person_properties,
        groups: &parsed.groups,
        group_properties: &parsed.group_properties,
        group_type_mapping: &snapshot.mapping,
        anon_distinct_id: parsed.anon_distinct_id.as_deref(),
        runtime: parsed.runtime,
        evaluation_contexts: &parsed.evaluation_contexts,
        flag_keys: parsed.flag_keys.as_deref(),
        ..EvaluationInput::new(&parsed.distinct_id, ctx.now)
    };
    stored::evaluate(ctx.store, project_id, prepared, &input)
        .await
        .evaluations
}
