//! Placeholder: the static-cohort fill worker (issue 7) is being built.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;

pub async fn serve() -> Result<(), lambda_http::Error> {
    super::tracing_subscriber_init();
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_http::Error>(Value::Null)
    }))
    .await
}
