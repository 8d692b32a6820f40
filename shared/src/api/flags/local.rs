//! `GET /flags/definitions`, `/api/feature_flag/local_evaluation/` and
//! `/api/projects/{project_id}/feature_flags/local_evaluation/`: the definitions the SDKs poll
//! for local evaluation (evaluation-rules.md §4).
//!
//! Auth: the project secret key or a personal API key with `feature_flag:read`, for the project
//! named by `?token=` (or the path, or else the key's own/current project). The ETag is the
//! project's definitions version, so a poll with a matching `If-None-Match` costs one small
//! read and answers 304 without touching the flags themselves.
//!
//! Each project may poll 600 times a minute across all instances (PostHog's
//! `LocalEvaluationThrottle`, [`crate::rate_limit`]); past that, 429 with `Retry-After`.

use super::{Context, Store};
use crate::auth::{self, Accepts, Caller};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::identity::Project;
use crate::rate_limit;

/// Bumped when the payload's format changes, so SDKs holding an old body refetch it.
const PAYLOAD_FORMAT: u32 = 1;

pub async fn handle<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    path_project: Option<&str>,
) -> ApiResponse {
    serve(ctx, req, path_project)
        .await
        .unwrap_or_else(ApiResponse::from)
}

async fn serve<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    path_project: Option<&str>,
) -> ApiResult<ApiResponse> {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Err(ApiError::MethodNotAllowed(req.method.clone()));
    }
    let caller =
        auth::authenticate(req, None, ctx.store, Accepts::PersonalKeysOrProjectSecret).await?;
    caller.require_scope("feature_flag:read")?;
    let project = project(ctx, req, &caller, path_project).await?;
    // PostHog's LocalEvaluationThrottle runs after authentication: every poll counts, a 304 too.
    rate_limit::check(
        ctx.store,
        rate_limit::local_evaluation(),
        project.id,
        ctx.now,
    )
    .await?;
    let version = ctx.store.definitions_version(project.id).await?;
    let etag = etag(project.id, version);
    let headers = vec![
        ("etag".to_string(), etag.clone()),
        (
            "cache-control".to_string(),
            "private, must-revalidate".to_string(),
        ),
    ];
    if matches_etag(req.header("if-none-match"), &etag) {
        let mut response = ApiResponse::empty(304);
        response.headers = headers;
        return Ok(response);
    }
    let snapshot = ctx
        .cache
        .snapshot_at(ctx.store, project.id, version)
        .await?;
    let mut response = ApiResponse::ok(snapshot.definitions().clone());
    response.headers = headers;
    Ok(response.gzip_if_accepted(req))
}

/// The path's project, else the `token`'s (query, or the `X-PostHog-Project-Api-Key` header
/// posthog-rs sends with a personal key), else the caller's own (secret key) or current one.
async fn project<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    caller: &Caller,
    path_project: Option<&str>,
) -> ApiResult<Project> {
    if let Some(segment) = path_project {
        return caller.project(segment, ctx.store).await;
    }
    let Some(token) = req
        .query_value("token")
        .or_else(|| req.header("x-posthog-project-api-key"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return caller.project("@current", ctx.store).await;
    };
    let named = ctx
        .cache
        .project_by_token(ctx.store, token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized {
            code: "authentication_failed",
            detail: "The provided API key is invalid or has expired. Please check your API key and try again."
                .into(),
        })?;
    caller.project(&named.id.to_string(), ctx.store).await
}

fn etag(project_id: i64, version: i64) -> String {
    format!("W/\"{project_id}-{version}-{PAYLOAD_FORMAT}\"")
}

/// `If-None-Match` uses weak comparison: `W/` is ignored, lists and `*` are understood.
fn matches_etag(header: Option<&str>, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = strip(etag);
    header.is_some_and(|h| h.split(',').any(|t| t.trim() == "*" || strip(t) == ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly() {
        let tag = etag(3, 17);
        assert_eq!(tag, "W/\"3-17-1\"");
        assert!(matches_etag(Some("W/\"3-17-1\""), &tag));
        assert!(matches_etag(Some("\"3-17-1\""), &tag));
        assert!(matches_etag(Some("\"x\", W/\"3-17-1\""), &tag));
        assert!(matches_etag(Some("*"), &tag));
        assert!(!matches_etag(Some("W/\"3-16-1\""), &tag));
        assert!(!matches_etag(None, &tag));
    }
}
