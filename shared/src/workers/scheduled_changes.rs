//! The scheduled-changes executor (`functions/scheduled-changes`): on AWS an EventBridge
//! Scheduler schedule invokes it once a minute; locally `scripts/schedule-pump.py` invokes it
//! through the local API server's Invoke API every `SCHEDULE_PUMP_INTERVAL` seconds. Each tick
//! Queries the due index and runs every due change through the flag service
//! (`service::schedules`, docs/scheduled-changes.md). The event's content is not read: a tick
//! is "now", so a late or repeated invocation is harmless.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};

use crate::crypto::PayloadCipher;
use crate::error::ApiResult;
use crate::service::ScheduleService;
use crate::service::schedules::Outcome;
use crate::store::dynamo::DynamoStore;
use crate::store::{FeatureStore, FlagStore, ScheduleStore};
use crate::time::Timestamp;

/// The function's whole `main`.
pub async fn serve() -> Result<(), lambda_http::Error> {
    crate::api::tracing_subscriber_init();
    let store = DynamoStore::from_env().await;
    let cipher = PayloadCipher::from_env();
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| {
        let (store, cipher) = (&store, &cipher);
        async move {
            Box::pin(tick(store, cipher, chrono::Utc::now()))
                .await
                .map_err(|e| lambda_http::Error::from(format!("scheduled changes failed: {e:?}")))
        }
    }))
    .await
}

/// One tick at `now`; answers how many changes were applied, failed, closed and skipped.
pub async fn tick<S: FlagStore + FeatureStore + ScheduleStore>(
    store: &S,
    cipher: &PayloadCipher,
    now: Timestamp,
) -> ApiResult<Value> {
    let outcomes = ScheduleService::new(store, cipher).run_due(now).await?;
    let count = |o: Outcome| outcomes.iter().filter(|(_, _, x)| *x == o).count();
    Ok(json!({
        "applied": count(Outcome::Applied),
        "failed": count(Outcome::Failed),
        "closed": count(Outcome::Closed),
        "skipped": count(Outcome::Skipped),
    }))
}
