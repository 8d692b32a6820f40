//! One function's request path: its state, built once per instance, and the dispatch to its
//! group's handler.

use lambda_http::{Body, Request, Response, service_fn};

#[cfg(feature = "flags")]
use super::flags::DefinitionsCache;
use crate::crypto::PayloadCipher;
use crate::http::{ApiRequest, ApiResponse};
use crate::store::dynamo::DynamoStore;
use crate::time::Timestamp;

/// What every handler needs, built once per Lambda instance (the clock is read per request).
pub struct Context<'a, S> {
    pub store: &'a S,
    pub cipher: &'a PayloadCipher,
    pub now: Timestamp,
    /// Warm-instance cache of the SDK endpoints, the only group that reads it.
    #[cfg(feature = "flags")]
    pub cache: &'a DefinitionsCache,
}

/// The endpoint groups, one Lambda function each (docs/reference/decisions.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    #[cfg(feature = "feature-flags")]
    FeatureFlags,
    #[cfg(feature = "activity")]
    Activity,
    #[cfg(feature = "early-access-features")]
    EarlyAccessFeatures,
    #[cfg(feature = "flags")]
    Flags,
    #[cfg(feature = "persons")]
    Persons,
    #[cfg(feature = "cohorts")]
    Cohorts,
    #[cfg(feature = "dashboards")]
    Dashboards,
    #[cfg(feature = "identity")]
    Identity,
}

impl Group {
    pub async fn handle(self, ctx: &Context<'_, DynamoStore>, req: &ApiRequest) -> ApiResponse {
        match self {
            #[cfg(feature = "feature-flags")]
            Group::FeatureFlags if super::scheduled_changes::serves(req) => {
                super::scheduled_changes::handle(ctx, req).await
            }
            #[cfg(feature = "feature-flags")]
            Group::FeatureFlags => super::feature_flags::handle(ctx, req).await,
            #[cfg(feature = "activity")]
            Group::Activity => super::activity::handle(ctx, req).await,
            #[cfg(feature = "early-access-features")]
            Group::EarlyAccessFeatures => super::early_access::handle(ctx, req).await,
            #[cfg(feature = "flags")]
            Group::Flags => super::flags::handle(ctx, req).await,
            #[cfg(feature = "persons")]
            Group::Persons => super::persons::handle(ctx, req).await,
            #[cfg(feature = "cohorts")]
            Group::Cohorts => super::cohorts::handle(ctx, req).await,
            #[cfg(feature = "dashboards")]
            Group::Dashboards => super::dashboards::handle(ctx, req).await,
            #[cfg(feature = "identity")]
            Group::Identity => super::identity::handle(ctx, req).await,
        }
    }
}

/// One function's state, built once per instance (Lambda) or once per function (the local API
/// server), and shared by every request it answers.
pub struct Function {
    group: Group,
    store: DynamoStore,
    cipher: PayloadCipher,
    #[cfg(feature = "flags")]
    cache: DefinitionsCache,
}

impl Function {
    /// The DynamoDB client, payload keys and the SDK cache, from the environment.
    pub async fn from_env(group: Group) -> Self {
        Function {
            group,
            store: DynamoStore::from_env().await,
            cipher: PayloadCipher::from_env(),
            #[cfg(feature = "flags")]
            cache: DefinitionsCache::default(),
        }
    }

    /// One request as API Gateway hands it to the function; the clock is read per request.
    pub async fn call(&self, event: &Request) -> Response<Body> {
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now: chrono::Utc::now(),
            #[cfg(feature = "flags")]
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
    super::tracing_subscriber_init();
    let function = Function::from_env(group).await;
    lambda_http::run(service_fn(|event: Request| {
        let function = &function;
        async move { Ok::<Response<Body>, lambda_http::Error>(function.call(&event).await) }
    }))
    .await
}
