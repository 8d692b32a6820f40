//! The SDK endpoints, one Lambda (`flags`): remote evaluation (`/flags/`, `/decide/`),
//! local-evaluation definitions (`/flags/definitions`, `/api/feature_flag/local_evaluation/`,
//! `/api/projects/{project_id}/feature_flags/local_evaluation/`), capture (`/batch/`, `/e/`,
//! `/i/v0/e/`, `/capture/`) and posthog-js's remote config (`/array/{token}/config`,
//! `/array/{token}/config.js`) and the OpenFeature Remote Evaluation Protocol
//! (`/ofrep/v1/evaluate/flags[/{key}]`, [`ofrep`]). Behaviour: evaluation-rules.md §3–§5;
//! caching: [`cache`].

mod body;
pub mod cache;
mod ingest;
mod local;
mod ofrep;
mod person_updates;
mod remote;
mod remote_config;
mod request;
mod response;

pub use cache::{DefinitionsCache, Snapshot};

use super::{Context, project_route};
use crate::http::{ApiRequest, ApiResponse};
use crate::store::PersonStore;
use crate::store::{
    DefinitionsStore, FlagStore, HashKeyOverrideStore, IdentityStore, RateLimitStore, UsageStore,
};

/// Everything the SDK endpoints read and write.
pub trait Store:
    FlagStore
    + IdentityStore
    + DefinitionsStore
    + HashKeyOverrideStore
    + UsageStore
    + PersonStore
    + RateLimitStore
{
}

impl<
    S: FlagStore
        + IdentityStore
        + DefinitionsStore
        + HashKeyOverrideStore
        + UsageStore
        + PersonStore
        + RateLimitStore,
> Store for S
{
}

pub async fn handle<S: Store>(ctx: &Context<'_, S>, req: &ApiRequest) -> ApiResponse {
    let segments = req.segments();
    if let Some((project, rest)) = project_route(&segments, "feature_flags") {
        return match rest.as_slice() {
            ["local_evaluation"] => local::handle(ctx, req, Some(project)).await,
            _ => not_found(),
        };
    }
    // Paths are matched from the end so a stage prefix (`/prod/flags/`) still routes.
    match segments.as_slice() {
        // Before `[.., "flags"]`, which would take OFREP's bulk path too.
        [.., "ofrep", "v1", "evaluate", "flags"] => ofrep::handle(ctx, req, None).await,
        [.., "ofrep", "v1", "evaluate", "flags", key] => ofrep::handle(ctx, req, Some(key)).await,
        [.., "flags", "definitions"] => local::handle(ctx, req, None).await,
        [.., "api", "feature_flag", "local_evaluation"] => local::handle(ctx, req, None).await,
        [.., "flags"] => remote::handle(ctx, req, false).await,
        [.., "decide"] => remote::handle(ctx, req, true).await,
        [.., "array", token, "config"] => {
            remote_config::handle(ctx, req, token, remote_config::Format::Json).await
        }
        [.., "array", token, "config.js"] => {
            remote_config::handle(ctx, req, token, remote_config::Format::Script).await
        }
        [.., "batch"] | [.., "e"] | [.., "capture"] => ingest::handle(ctx, req).await,
        _ => not_found(),
    }
}

fn not_found() -> ApiResponse {
    crate::error::ApiError::not_found().into()
}
