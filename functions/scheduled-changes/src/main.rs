//! Lambda invoked once a minute (template.yaml: an EventBridge Scheduler schedule): applies every
//! scheduled flag change that is due. Thin on purpose: everything lives in `shared`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::workers::scheduled_changes::serve().await
}
