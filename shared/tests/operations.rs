//! Running it in production (issue 18, docs/operations.md): PostHog's local-evaluation rate
//! limit enforced across function instances against DynamoDB Local, and the `/flags`
//! evaluation metric. The request log line is tested in `request_log.rs`, a binary of its own
//! because it installs a `tracing` subscriber.

mod common;
mod operations_support;

use chrono::TimeZone;
use common::World;
use operations_support::{definitions_poll, header, instance, json_body};
use serde_json::{Value, json};
use shared::api::Group;
use shared::store::{IdentityAdmin, IdentityWrites};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_evaluation_allows_600_a_minute_per_project_across_instances() {
    let world = World::new().await;
    let instances = [
        instance(&world, Group::Flags),
        instance(&world, Group::Flags),
    ];
    // The clock is pinned 10 s into a minute, so every poll falls in one window.
    let now = chrono::Utc.timestamp_opt(1_800_000_000 + 10, 0).unwrap();
    let pollers = 8;
    let per_poller = 85; // 680 polls in all, 80 more than the limit
    let statuses: Vec<Vec<(u16, Option<String>)>> =
        futures::future::join_all((0..pollers).map(|p| {
            let function = &instances[p % 2];
            let secret = world.secret_key.clone();
            async move {
                let mut seen = Vec::new();
                for _ in 0..per_poller {
                    let r = function.call_at(&definitions_poll(&secret), now).await;
                    seen.push((r.status().as_u16(), header(&r, "retry-after")));
                }
                seen
            }
        }))
        .await;
    let all: Vec<_> = statuses.into_iter().flatten().collect();
    let ok = all.iter().filter(|(s, _)| *s == 200).count();
    let throttled: Vec<_> = all.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(ok, 600, "exactly the limit is served across both instances");
    assert_eq!(
        throttled.len(),
        80,
        "{:?}",
        all.iter()
            .filter(|(s, _)| *s != 200 && *s != 429)
            .collect::<Vec<_>>()
    );
    assert!(
        throttled
            .iter()
            .all(|(_, retry)| retry.as_deref() == Some("50")),
        "Retry-After is the rest of the minute"
    );

    // The refusal is PostHog's (DRF's Throttled through PostHog's exception handler).
    let r = instances[1]
        .call_at(&definitions_poll(&world.secret_key), now)
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("50"));
    assert_eq!(
        json_body(&r),
        json!({"type": "throttled_error", "code": "throttled",
            "detail": "Request was throttled. Expected available in 50 seconds.", "attr": null})
    );
    // A 304 poll counts too (PostHog throttles before the view), so it is refused as well.
    let mut conditional = definitions_poll(&world.secret_key);
    conditional
        .headers_mut()
        .insert("if-none-match", "*".parse().unwrap());
    assert_eq!(instances[0].call_at(&conditional, now).await.status(), 429);

    // Another project is counted on its own, and the next minute starts afresh.
    let other_secret = shared::auth::generate_key("phs_");
    let other = shared::identity::Project {
        id: world.store.next_id("project").await.unwrap(),
        organization_id: world.org.id.clone(),
        name: "Other".into(),
        api_token: shared::auth::generate_key("phc_"),
        secret_api_key_hash: shared::auth::hash_key(&other_secret),
        created_at: now,
    };
    world.store.put_project(&other).await.unwrap();
    assert_eq!(
        instances[0]
            .call_at(&definitions_poll(&other_secret), now)
            .await
            .status(),
        200
    );
    let next_minute = now + chrono::Duration::seconds(50);
    assert_eq!(
        instances[1]
            .call_at(&definitions_poll(&world.secret_key), next_minute)
            .await
            .status(),
        200
    );
}

#[test]
fn a_flags_evaluation_is_an_embedded_metric() {
    let now = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let line: Value = serde_json::from_str(&shared::api::evaluation_metric(now)).unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(line["_aws"]["Timestamp"], 1_800_000_000_000i64);
    assert_eq!(directive["Namespace"], "FeatureFlags");
    assert_eq!(directive["Dimensions"], json!([["Service"]]));
    assert_eq!(
        directive["Metrics"],
        json!([{"Name": "FlagsEvaluations", "Unit": "Count"}])
    );
    assert_eq!(line["Service"], "flags");
    assert_eq!(line["FlagsEvaluations"], 1);
}
