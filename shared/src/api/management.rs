//! What every management API group checks before its handler runs; the SDK endpoints (`flags`)
//! authenticate by project token instead.

use serde_json::{Map, Value};

use crate::auth::{self, Accepts, Caller};
use crate::error::{ApiError, ApiResult};
use crate::http::ApiRequest;
use crate::identity::Project;
use crate::store::IdentityStore;

use super::project_route;

/// A request past PostHog's checks, in its order: authentication, scope, project access.
#[allow(
    dead_code,
    reason = "read-only groups (persons, dashboards) built alone read neither body nor caller"
)]
pub(crate) struct Authorized {
    /// Parsed before authentication because it may carry the key; a body that does not parse
    /// can still not hide a credential, so its error is reported only after the checks.
    pub body: ApiResult<Map<String, Value>>,
    pub caller: Caller,
    pub project: Project,
}

/// The common preamble of a management handler: the path under
/// `/api/projects/{project_id}/<resource>/`, the scope and credentials `access` asks of its
/// method and remaining segments, then [`authorize`]. A path outside the resource, or one
/// `access` does not know (`None`), is a 404 before any authentication.
pub(crate) async fn authorized_route<'r, S: IdentityStore>(
    store: &S,
    req: &'r ApiRequest,
    resource: &str,
    access: impl FnOnce(&str, &[&str]) -> Option<(&'static str, Accepts)>,
) -> ApiResult<(Authorized, Vec<&'r str>)> {
    let segments = req.segments();
    let (project_segment, rest) =
        project_route(&segments, resource).ok_or_else(ApiError::not_found)?;
    let (scope, accepts) = access(&req.method, &rest).ok_or_else(ApiError::not_found)?;
    let authorized = authorize(store, req, project_segment, scope, accepts).await?;
    Ok((authorized, rest))
}

async fn authorize<S: IdentityStore>(
    store: &S,
    req: &ApiRequest,
    project_segment: &str,
    scope: &str,
    accepts: Accepts,
) -> ApiResult<Authorized> {
    let body = req.body_object();
    let caller = auth::authenticate(req, body.as_ref().ok(), store, accepts).await?;
    caller.require_scope(scope)?;
    let project = caller.project(project_segment, store).await?;
    Ok(Authorized {
        body,
        caller,
        project,
    })
}
