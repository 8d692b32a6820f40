//! What every management API group checks before its handler runs; the SDK endpoints (`flags`)
//! authenticate by project token instead.

use serde_json::{Map, Value};

use crate::auth::{self, Accepts, Caller};
use crate::error::ApiResult;
use crate::http::ApiRequest;
use crate::identity::Project;
use crate::store::IdentityStore;

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

pub(crate) async fn authorize<S: IdentityStore>(
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
