//! `/api/projects/{project_id}/scheduled_changes/…` (served by the feature-flags function):
//! list, create, retrieve, update and delete scheduled flag changes with PostHog's scopes
//! (`feature_flag:read` / `feature_flag:write`). Rules live in `crate::schedule` and
//! `service::schedules`; docs/scheduled-changes.md describes the feature.

use super::{Authorized, Context, authorized_route, project_route};
use crate::auth::Accepts;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::UserSummary;
use crate::service::ScheduleService;
use crate::store::{FeatureStore, FlagStore, IdentityStore, ScheduleStore};

const RESOURCE: &str = "scheduled_changes";

/// Whether the request is for this resource (the feature-flags function serves both).
pub fn serves(req: &ApiRequest) -> bool {
    project_route(&req.segments(), RESOURCE).is_some()
}

pub async fn handle<S: FlagStore + FeatureStore + ScheduleStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

async fn route<S: FlagStore + FeatureStore + ScheduleStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let access = |method: &str, rest: &[&str]| match (method, rest) {
        ("GET", [] | [_]) => Some(("feature_flag:read", Accepts::PersonalKeys)),
        (_, [] | [_]) => Some(("feature_flag:write", Accepts::PersonalKeys)),
        _ => None,
    };
    let (
        Authorized {
            body,
            caller,
            project,
        },
        rest,
    ) = authorized_route(ctx.store, req, RESOURCE, access).await?;
    let service = ScheduleService::new(ctx.store, ctx.cipher);
    let id = |text: &str| text.parse::<i64>().map_err(|_| ApiError::not_found());
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", []) => {
            let listed = service
                .list(
                    project.id,
                    req.query_value("model_name"),
                    req.query_value("record_id"),
                )
                .await?;
            let shown = listed.iter().map(|c| c.to_json()).collect();
            Ok(ApiResponse::ok(paginate(req, shown)))
        }
        ("POST", []) => {
            let actor = caller
                .user()
                .map(UserSummary::from)
                .ok_or_else(|| ApiError::internal("scheduled change without a user"))?;
            let change = service.create(project.id, &actor, &body?, ctx.now).await?;
            Ok(ApiResponse::json(201, change.to_json()))
        }
        ("GET", [change]) => {
            let change = service.get(project.id, id(change)?).await?;
            Ok(ApiResponse::ok(change.to_json()))
        }
        (method @ ("PATCH" | "PUT"), [change]) => {
            let partial = method == "PATCH";
            let change = service
                .update(project.id, id(change)?, &body?, partial, ctx.now)
                .await?;
            Ok(ApiResponse::ok(change.to_json()))
        }
        ("DELETE", [change]) => {
            service.delete(project.id, id(change)?).await?;
            Ok(ApiResponse::empty(204))
        }
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}
