//! Every function of the template, each with its own state as a Lambda instance would have it
//! (DynamoDB client, payload keys, warm caches), built once at start.

use std::collections::{BTreeSet, HashMap};

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::api::{Function, Group};
use shared::crypto::PayloadCipher;
use shared::store::dynamo::DynamoStore;

enum Handler {
    Shared(Function),
    Schema,
    /// The web console's page and assets (compiled in).
    Console,
    /// The cohorts stream worker: invoked, never routed.
    CohortJobs(DynamoStore),
    /// The scheduled-changes executor: invoked (by scripts/schedule-pump.py), never routed.
    ScheduledChanges(DynamoStore, PayloadCipher),
}

pub struct Functions {
    handlers: HashMap<String, Handler>,
}

impl Functions {
    /// Fails on a template function this server does not know, so a new function is added here
    /// before `make dev` can start.
    pub async fn load(names: &BTreeSet<String>) -> Result<Functions, String> {
        let mut handlers = HashMap::new();
        for name in names {
            let group = match name.as_str() {
                "feature-flags" => Some(Group::FeatureFlags),
                "activity" => Some(Group::Activity),
                "early-access-features" => Some(Group::EarlyAccessFeatures),
                "flags" => Some(Group::Flags),
                "persons" => Some(Group::Persons),
                "cohorts" => Some(Group::Cohorts),
                "dashboards" => Some(Group::Dashboards),
                "identity" => Some(Group::Identity),
                _ => None,
            };
            let handler = match (group, name.as_str()) {
                (Some(group), _) => Handler::Shared(Function::from_env(group).await),
                (None, "api-schema") => Handler::Schema,
                (None, "console") => Handler::Console,
                (None, "cohort-jobs") => Handler::CohortJobs(DynamoStore::from_env().await),
                (None, "scheduled-changes") => Handler::ScheduledChanges(
                    DynamoStore::from_env().await,
                    PayloadCipher::from_env(),
                ),
                (None, other) => {
                    return Err(format!(
                        "template.yaml names function {other:?}, which local-api does not serve"
                    ));
                }
            };
            handlers.insert(name.clone(), handler);
        }
        Ok(Functions { handlers })
    }

    /// An HTTP request routed to `name`.
    pub async fn call(&self, name: &str, request: Request) -> Response<Body> {
        match self.handlers.get(name) {
            Some(Handler::Shared(function)) => function.call(&request).await,
            Some(Handler::Schema) => api_schema::handle(&request),
            Some(Handler::Console) => console::handle(&request),
            _ => crate::gateway::gateway_error(500, "Internal Server Error"),
        }
    }

    /// Lambda's Invoke API: 200 with the function's result, or 200 with
    /// `X-Amz-Function-Error` and the error when the function failed; 404 for an unknown name.
    pub async fn invoke(&self, name: &str, payload: &[u8]) -> Response<Body> {
        if let Some(Handler::ScheduledChanges(store, cipher)) = self.handlers.get(name) {
            return invoke_tick(store, cipher).await;
        }
        let Some(Handler::CohortJobs(store)) = self.handlers.get(name) else {
            let message = format!("Function not found: {name}");
            return invoke_answer(404, None, json!({"Type": "User", "Message": message}));
        };
        let event: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                let error = json!({"errorType": "InvalidRequestContentException", "errorMessage": e.to_string()});
                return invoke_answer(400, None, error);
            }
        };
        let options = shared::workers::cohort_fill::FillOptions::default();
        match Box::pin(shared::workers::cohort_fill::handle_event(
            store, &event, options,
        ))
        .await
        {
            Ok(_) => invoke_answer(200, None, Value::Null),
            Err(e) => {
                let error = json!({"errorType": "CohortFillFailed", "errorMessage": format!("cohort fill failed: {e:?}")});
                invoke_answer(200, Some("Unhandled"), error)
            }
        }
    }
}

/// One executor tick at the current time, as the once-a-minute schedule invokes it on AWS.
async fn invoke_tick(store: &DynamoStore, cipher: &PayloadCipher) -> Response<Body> {
    let now = chrono::Utc::now();
    match Box::pin(shared::workers::scheduled_changes::tick(store, cipher, now)).await {
        Ok(counts) => invoke_answer(200, None, counts),
        Err(e) => {
            let error = json!({"errorType": "ScheduledChangesFailed", "errorMessage": format!("scheduled changes failed: {e:?}")});
            invoke_answer(200, Some("Unhandled"), error)
        }
    }
}

fn invoke_answer(status: u16, function_error: Option<&str>, body: Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status.try_into().unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().expect("valid"));
    if let Some(kind) = function_error {
        headers.insert("x-amz-function-error", kind.parse().expect("valid"));
    }
    response
}
