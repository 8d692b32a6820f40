//! Capture: `POST /batch/`, `/e/`, `/i/v0/e/`, `/capture/` (evaluation-rules.md §5). The SDKs need a
//! 200 `{"status": 1}` (Python counts nothing else as delivered). From the events this service
//! learns persons (`$set`/`$set_once`/`$unset`/`$identify`, see `person_updates`), group types
//! (`$groupidentify`) and flag usage (`$feature_flag_called` → `last_called_at`); events
//! themselves are not stored.
//!
//! Body limits: up to 5 MB as sent (Lambda's 6 MB request limit with room for API Gateway's
//! encoding; posthog-python batches up to 5 MB) and 20 MB decompressed.

use super::body::{self, Limits, SdkError};
use super::{Context, Snapshot, Store, person_updates};
use crate::capture::Batch;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::store::{GROUP_TYPES_LIMIT, GroupType, GroupTypeError};
use crate::usage;

pub const LIMITS: Limits = Limits {
    raw: 5 * 1024 * 1024,
    decoded: 20 * 1024 * 1024,
};

/// Attempts to claim a free group type index when other writers keep taking them first.
const GROUP_TYPE_ATTEMPTS: usize = 5;

pub async fn handle<S: Store>(ctx: &Context<'_, S>, req: &ApiRequest) -> ApiResponse {
    match req.method.as_str() {
        "POST" => capture(ctx, req).await.unwrap_or_else(ApiResponse::from),
        "OPTIONS" => ApiResponse::empty(200),
        other => SdkError::Method(other.to_string()).into(),
    }
}

async fn capture<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> Result<ApiResponse, SdkError> {
    let body = body::json(req, LIMITS)?;
    let batch = Batch::parse(&body).map_err(|e| SdkError::Parse(e.to_string()))?;
    let token = batch
        .token
        .clone()
        .or_else(|| req.query_value("token").map(str::to_string))
        .ok_or(SdkError::NoToken)?;
    let project = ctx
        .cache
        .project_by_token(ctx.store, &token)
        .await?
        .ok_or(SdkError::InvalidToken)?;
    // Persons first: if anything later fails, the SDK's resend applies them again as no-ops.
    person_updates::upsert_persons(ctx, project.id, &batch).await?;
    let (group_types, flags_called) = (batch.group_types(), batch.flags_called());
    if !group_types.is_empty() || !flags_called.is_empty() {
        let snapshot = ctx.cache.snapshot(ctx.store, project.id).await?;
        learn_group_types(ctx, project.id, &snapshot, &group_types).await?;
        record_calls(ctx, &snapshot, &flags_called).await?;
        record_usage(ctx, project.id, &snapshot, &batch).await?;
    }
    Ok(ApiResponse::ok(serde_json::json!({"status": 1})))
}

/// Gives each new name the lowest free index (0–4), as PostHog does; past five group types a
/// name is ignored. Conditional writes make racing captures agree on one index per name.
async fn learn_group_types<S: Store>(
    ctx: &Context<'_, S>,
    project_id: i64,
    snapshot: &Snapshot,
    names: &[&str],
) -> Result<(), ApiError> {
    let mut known = snapshot.group_types.clone();
    for name in names {
        if known.iter().any(|g| g.name == *name) || !crate::limits::is_identifier(name) {
            continue;
        }
        for _ in 0..GROUP_TYPE_ATTEMPTS {
            let Some(index) = (0..GROUP_TYPES_LIMIT).find(|i| known.iter().all(|g| g.index != *i))
            else {
                tracing::warn!(
                    name,
                    "project has {GROUP_TYPES_LIMIT} group types; ignoring another"
                );
                break;
            };
            let group = GroupType {
                project_id,
                index,
                name: name.to_string(),
            };
            match ctx.store.create_group_type(&group).await {
                Ok(()) => {
                    known.push(group);
                    break;
                }
                Err(GroupTypeError::IndexTaken(_)) => {
                    known = ctx.store.group_types(project_id).await?;
                    if known.iter().any(|g| g.name == *name) {
                        break;
                    }
                }
                Err(GroupTypeError::NameTaken(_)) => break,
                Err(GroupTypeError::Api(e)) => return Err(e),
            }
        }
    }
    Ok(())
}

/// At most one `last_called_at` write per flag and minute: this instance remembers its own
/// writes, and the store's condition covers other instances.
async fn record_calls<S: Store>(
    ctx: &Context<'_, S>,
    snapshot: &Snapshot,
    keys: &[&str],
) -> Result<(), ApiError> {
    for key in keys {
        let Some(flag) = snapshot.flag(key) else {
            continue;
        };
        if !ctx.cache.claim_called_write(flag.project_id, flag.id) {
            continue;
        }
        if let Err(e) = ctx
            .store
            .record_flag_called(flag.project_id, flag.id, ctx.now)
            .await
        {
            ctx.cache.release_called_write(flag.project_id, flag.id);
            return Err(e);
        }
    }
    Ok(())
}

/// Usage counters from the batch's `$feature_flag_called` events: folded in memory into one
/// delta per (flag, day, response), then one atomic `ADD` each (`crate::usage`).
async fn record_usage<S: Store>(
    ctx: &Context<'_, S>,
    project_id: i64,
    snapshot: &Snapshot,
    batch: &Batch,
) -> Result<(), ApiError> {
    let deltas: Vec<_> = usage::aggregate(
        &batch.events,
        |key| snapshot.flag(key).map(|f| f.id),
        ctx.now,
    )
    .into_iter()
    .collect();
    if deltas.is_empty() {
        return Ok(());
    }
    ctx.store.add_usage(project_id, &deltas).await
}
