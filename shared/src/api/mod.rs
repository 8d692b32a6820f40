//! Endpoint handlers: route matching, authentication and HTTP mapping around the domain
//! modules. Each function binary calls one `handle` here.

pub mod activity;
pub mod cohorts;
pub mod dashboards;
pub mod early_access;
pub mod feature_flags;
// How a flag is shown, by its endpoints and by a revert.
mod flag_view;
pub mod flags;
pub mod persons;

use lambda_http::{Body, Request, Response, service_fn};

use serde_json::{Map, Value};

use crate::auth::{self, Accepts, Caller};
use crate::crypto::PayloadCipher;
use crate::error::ApiResult;
use crate::http::{ApiRequest, ApiResponse};
use crate::identity::Project;
use crate::store::IdentityStore;
use crate::store::dynamo::DynamoStore;
use crate::time::Timestamp;
use flags::DefinitionsCache;

/// What every handler needs, built once per Lambda instance (the clock is read per request).
pub struct Context<'a, S> {
    pub store: &'a S,
    pub cipher: &'a PayloadCipher,
    pub now: Timestamp,
    /// Warm-instance cache of the SDK endpoints (`flags` group); the other groups ignore it.
    pub cache: &'a DefinitionsCache,
}

/// The endpoint groups, one Lambda function each (decisions.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    FeatureFlags,
    Activity,
    EarlyAccessFeatures,
    Flags,
    Persons,
    Cohorts,
    Dashboards,
}

impl Group {
    pub async fn handle(self, ctx: &Context<'_, DynamoStore>, req: &ApiRequest) -> ApiResponse {
        match self {
            Group::FeatureFlags => feature_flags::handle(ctx, req).await,
            Group::Activity => activity::handle(ctx, req).await,
            Group::EarlyAccessFeatures => early_access::handle(ctx, req).await,
            Group::Flags => flags::handle(ctx, req).await,
            Group::Persons => persons::handle(ctx, req).await,
            Group::Cohorts => cohorts::handle(ctx, req).await,
            Group::Dashboards => dashboards::handle(ctx, req).await,
        }
    }
}

/// One function's state, built once per instance (Lambda) or once per function (the local API
/// server), and shared by every request it answers.
pub struct Function {
    group: Group,
    store: DynamoStore,
    cipher: PayloadCipher,
    cache: DefinitionsCache,
}

impl Function {
    /// The DynamoDB client, payload keys and the SDK cache, from the environment.
    pub async fn from_env(group: Group) -> Self {
        Function {
            group,
            store: DynamoStore::from_env().await,
            cipher: PayloadCipher::from_env(),
            cache: DefinitionsCache::default(),
        }
    }

    /// One request as API Gateway hands it to the function; the clock is read per request.
    pub async fn call(&self, event: &Request) -> Response<Body> {
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now: chrono::Utc::now(),
            cache: &self.cache,
        };
        self.group
            .handle(&ctx, &ApiRequest::from_lambda(event))
            .await
            .into_lambda()
    }
}

/// A function's whole `main`: logging, then [`Function`] behind the Lambda runtime.
pub async fn serve(group: Group) -> Result<(), lambda_http::Error> {
    tracing_subscriber_init();
    let function = Function::from_env(group).await;
    lambda_http::run(service_fn(|event: Request| {
        let function = &function;
        async move { Ok::<Response<Body>, lambda_http::Error>(function.call(&event).await) }
    }))
    .await
}

pub fn tracing_subscriber_init() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
}

/// A request past PostHog's checks, in its order: authentication, scope, project access.
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

/// Path segments after `/api/projects/{project_id}/<resource>/`, or `None` when the path is
/// not under that resource. Tolerates a stage prefix before `/api`.
pub fn project_route<'p>(segments: &[&'p str], resource: &str) -> Option<(&'p str, Vec<&'p str>)> {
    let start = segments.iter().position(|s| *s == "api")?;
    match &segments[start..] {
        ["api", "projects", project, r, rest @ ..] if *r == resource => {
            Some((project, rest.to_vec()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_stage_prefix() {
        let segs = ["api", "projects", "7", "feature_flags", "12", "status"];
        assert_eq!(
            project_route(&segs, "feature_flags"),
            Some(("7", vec!["12", "status"]))
        );
        let staged = ["prod", "api", "projects", "@current", "feature_flags"];
        assert_eq!(
            project_route(&staged, "feature_flags"),
            Some(("@current", vec![]))
        );
        assert_eq!(project_route(&segs, "early_access_feature"), None);
    }
}
