//! `GET /api/projects/{project_id}/dashboards/{id}/` (scope `dashboard:read`): a dashboard
//! with its tiles and each insight's daily series of the last 30 days ([`crate::dashboard`]).

use chrono::Duration;

use super::{Authorized, Context, authorized_route};
use crate::auth::Accepts;
use crate::dashboard::{self, SERIES_DAYS};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::store::{DashboardStore, FlagStore, IdentityStore, UsageStore};

pub async fn handle<S>(ctx: &Context<'_, S>, req: &ApiRequest) -> ApiResponse
where
    S: IdentityStore + DashboardStore + FlagStore + UsageStore,
{
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

async fn route<S>(ctx: &Context<'_, S>, req: &ApiRequest) -> ApiResult<ApiResponse>
where
    S: IdentityStore + DashboardStore + FlagStore + UsageStore,
{
    let access = |_: &str, rest: &[&str]| {
        matches!(rest, [_]).then_some(("dashboard:read", Accepts::PersonalKeys))
    };
    let (Authorized { project, .. }, rest) =
        authorized_route(ctx.store, req, "dashboards", access).await?;
    let [id] = rest.as_slice() else {
        return Err(ApiError::not_found());
    };
    if req.method != "GET" {
        return Err(ApiError::MethodNotAllowed(req.method.clone()));
    }
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let found = ctx
        .store
        .dashboard(project.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    // The insights follow the flag's current key (PostHog re-points them on rename); a flag
    // that is gone leaves the key the dashboard was made for.
    let key = ctx
        .store
        .get_flag(project.id, found.flag_id)
        .await?
        .map_or_else(|| found.flag_key.clone(), |f| f.key);
    let today = ctx.now.date_naive();
    let rows = ctx
        .store
        .usage_rows(
            project.id,
            found.flag_id,
            today - Duration::days(SERIES_DAYS - 1),
            today,
        )
        .await?;
    Ok(ApiResponse::ok(dashboard::representation(
        &found, &key, &rows, ctx.now,
    )))
}
