//! One function's request path: its state, built once per instance, and the dispatch to its
//! group's handler.

use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};

#[cfg(feature = "flags")]
use super::flags::DefinitionsCache;
use crate::crypto::PayloadCipher;
use crate::http::{ApiRequest, ApiResponse};
use crate::request_log;
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
            // Boxed: this arm's future would otherwise add to every group's frame.
            Group::FeatureFlags if super::scheduled_changes::serves(req) => {
                Box::pin(super::scheduled_changes::handle(ctx, req)).await
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
    pub fn new(group: Group, store: DynamoStore, cipher: PayloadCipher) -> Self {
        Function {
            group,
            store,
            cipher,
            #[cfg(feature = "flags")]
            cache: DefinitionsCache::default(),
        }
    }

    /// The DynamoDB client, payload keys and the SDK cache, from the environment.
    pub async fn from_env(group: Group) -> Self {
        Self::new(
            group,
            DynamoStore::from_env().await,
            PayloadCipher::from_env(),
        )
    }

    /// One request as API Gateway hands it to the function; the clock is read per request.
    pub async fn call(&self, event: &Request) -> Response<Body> {
        self.call_at(event, chrono::Utc::now()).await
    }

    /// [`Self::call`] at a given time (tests pin the clock). Every request ends with one
    /// structured log line ([`RequestLine`]); a `/flags` evaluation also adds one embedded
    /// metric (docs/operations.md "Logs", "Metrics").
    pub async fn call_at(&self, event: &Request, now: Timestamp) -> Response<Body> {
        let started = Instant::now();
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now,
            #[cfg(feature = "flags")]
            cache: &self.cache,
        };
        let req = ApiRequest::from_lambda(event);
        let (response, summary) = request_log::scope(self.group.handle(&ctx, &req)).await;
        let (route, request_id) = route_and_request_id(event);
        RequestLine {
            request_id: request_id.as_deref().unwrap_or("-"),
            route: route.as_deref().unwrap_or("-"),
            project_id: summary.project_id,
            status: response.status,
            latency_ms: started.elapsed().as_millis() as u64,
            dynamodb_capacity_units: summary.capacity_units,
        }
        .emit();
        #[cfg(feature = "flags")]
        if self.group == Group::Flags && response.status == 200 && is_evaluation(&req) {
            println!("{}", evaluation_metric(now));
        }
        response.into_lambda()
    }
}

/// API Gateway's route key (`POST /flags`, with `{project_id}` left as a placeholder: a path
/// can hold a token, a route key never does) and request id, else the Lambda invocation's.
fn route_and_request_id(event: &Request) -> (Option<String>, Option<String>) {
    match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => (
            c.route_key.clone(),
            c.request_id
                .clone()
                .or_else(|| event.lambda_context_ref().map(|l| l.request_id.clone())),
        ),
        _ => (
            None,
            event.lambda_context_ref().map(|l| l.request_id.clone()),
        ),
    }
}

/// The one log line of a request: identifiers and numbers only, never a key, token, path,
/// query or body (a path can hold a token, so the route key stands for it).
pub struct RequestLine<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub project_id: Option<i64>,
    pub status: u16,
    pub latency_ms: u64,
    /// Read plus write capacity units DynamoDB reported for the request's calls.
    pub dynamodb_capacity_units: f64,
}

impl RequestLine<'_> {
    pub fn emit(&self) {
        tracing::info!(
            target: "request",
            request_id = self.request_id,
            route = self.route,
            project_id = self.project_id,
            status = self.status,
            latency_ms = self.latency_ms,
            dynamodb_capacity_units = self.dynamodb_capacity_units,
            "request"
        );
    }
}

/// `/flags` and `/decide` (with or without a stage prefix or trailing slash).
#[cfg(feature = "flags")]
fn is_evaluation(req: &ApiRequest) -> bool {
    matches!(req.segments().last(), Some(&"flags") | Some(&"decide"))
}

/// One `/flags` evaluation as a CloudWatch embedded-metric-format line: CloudWatch Logs turns
/// it into the `FlagsEvaluations` metric (dimension `Service=flags`) with no API call.
pub fn evaluation_metric(now: Timestamp) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": request_log::metrics_namespace(),
                "Dimensions": [["Service"]],
                "Metrics": [{"Name": "FlagsEvaluations", "Unit": "Count"}],
            }],
        },
        "Service": "flags",
        "FlagsEvaluations": 1,
    })
    .to_string()
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
