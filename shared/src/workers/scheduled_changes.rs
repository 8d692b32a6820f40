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
            let now = chrono::Utc::now();
            let counts = Box::pin(tick(store, cipher, now)).await.map_err(|e| {
                lambda_http::Error::from(format!("scheduled changes failed: {e:?}"))
            })?;
            println!("{}", tick_metrics(&counts, now));
            Ok::<Value, lambda_http::Error>(counts)
        }
    }))
    .await
}

/// A tick's counts as one CloudWatch embedded-metric-format line (`ScheduledChangesApplied`,
/// `…Failed`, `…Closed`, dimension `Service=scheduled-changes`): the failed-changes alarm
/// watches `ScheduledChangesFailed` with no API call from the function.
pub fn tick_metrics(counts: &Value, now: Timestamp) -> String {
    let names = [
        ("applied", "ScheduledChangesApplied"),
        ("failed", "ScheduledChangesFailed"),
        ("closed", "ScheduledChangesClosed"),
    ];
    let mut line = json!({
        "_aws": {
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": crate::request_log::metrics_namespace(),
                "Dimensions": [["Service"]],
                "Metrics": names.iter().map(|(_, m)| json!({"Name": m, "Unit": "Count"})).collect::<Vec<_>>(),
            }],
        },
        "Service": "scheduled-changes",
    });
    for (field, metric) in names {
        line[metric] = json!(counts[field].as_u64().unwrap_or(0));
    }
    line.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_tick_is_an_embedded_metric_line() {
        let now = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let counts = json!({"applied": 2, "failed": 1, "closed": 0, "skipped": 4});
        let line: Value = serde_json::from_str(&tick_metrics(&counts, now)).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(
            directive["Metrics"][1],
            json!({"Name": "ScheduledChangesFailed", "Unit": "Count"})
        );
        assert_eq!(line["Service"], "scheduled-changes");
        assert_eq!(
            (
                &line["ScheduledChangesApplied"],
                &line["ScheduledChangesFailed"],
                &line["ScheduledChangesClosed"]
            ),
            (&json!(2), &json!(1), &json!(0))
        );
    }
}
