//! Lambda for the flag activity log: `/api/projects/{project_id}/feature_flags/activity/`,
//! `…/{id}/activity/` and `…/{id}/activity/{activity_id}/revert/`. Thin on purpose: build the
//! clients once, convert each request, hand it to `shared::api::activity`.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use shared::api::{Context, activity};
use shared::crypto::PayloadCipher;
use shared::http::ApiRequest;
use shared::store::dynamo::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let store = DynamoStore::from_env().await;
    // A revert re-encrypts the payloads of flags that encrypt them.
    let cipher = PayloadCipher::from_env();
    run(service_fn(|event: Request| handle(&store, &cipher, event))).await
}

async fn handle(
    store: &DynamoStore,
    cipher: &PayloadCipher,
    event: Request,
) -> Result<Response<Body>, Error> {
    let ctx = Context {
        store,
        cipher,
        now: chrono::Utc::now(),
    };
    let response = activity::handle(&ctx, &ApiRequest::from_lambda(&event)).await;
    Ok(response.into_lambda())
}
