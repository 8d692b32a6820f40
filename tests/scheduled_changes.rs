//! Scheduled flag changes end to end (issue 14): a change scheduled a few seconds ahead over
//! HTTP is applied by the executor (scripts/schedule-pump.py ticks it through the local API
//! server's Invoke API, as EventBridge Scheduler does on AWS), and the flag, the change and the
//! flag's activity log show it through the router, as do SDK evaluations.

use std::time::{Duration, Instant};

use e2e::{Server, unique_key};
use serde_json::{Value, json};

/// Ticks come every `SCHEDULE_PUMP_INTERVAL` seconds (1 in `make test`); this bound only stops
/// a broken executor from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_change_scheduled_seconds_ahead_turns_the_flag_on() {
    let s = Server::from_env();
    let key = unique_key("e2e-scheduled");
    let created = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(&json!({
                "key": key,
                "active": false,
                "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let flag = created.json();
    let id = flag["id"].as_i64().unwrap();
    let version = flag["version"].as_i64().unwrap();

    let when = chrono::Utc::now() + chrono::Duration::seconds(3);
    let path = format!("/api/projects/{}/scheduled_changes/", s.project_id);
    let scheduled = s
        .call(
            "POST",
            &path,
            Some(&json!({
                "record_id": id.to_string(),
                "model_name": "FeatureFlag",
                "payload": {"operation": "update_status", "value": true},
                "scheduled_at": shared::time::format(&when),
            })),
        )
        .await;
    assert_eq!(scheduled.status, 201, "{}", scheduled.text);
    let change_id = scheduled.json()["id"].as_i64().unwrap();
    let listed = s
        .call("GET", &format!("{path}?record_id={id}"), None)
        .await
        .json();
    assert_eq!(listed["count"], 1, "{listed}");

    // Wait for the executor: the change's executed_at is set in the flag's own transaction.
    let started = Instant::now();
    let change = loop {
        let change = s
            .call("GET", &format!("{path}{change_id}"), None)
            .await
            .json();
        if !change["executed_at"].is_null() || started.elapsed() > PATIENCE {
            break change;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(change["executed_at"].is_string(), "never ran: {change}");
    assert!(change["failure_reason"].is_null(), "{change}");
    let executed = shared::time::parse(change["executed_at"].as_str().unwrap()).unwrap();
    assert!(executed >= when, "ran at {executed}, before {when}");

    let now = s
        .call("GET", &s.flags_path(&format!("{id}/")), None)
        .await
        .json();
    assert_eq!(now["active"], true, "{now}");
    assert_eq!(now["version"], version + 1);

    let activity = s
        .call("GET", &s.flags_path(&format!("{id}/activity/")), None)
        .await
        .json();
    let entry: &Value = &activity["results"][0];
    assert_eq!(
        entry["detail"]["trigger"]["job_type"], "scheduled_change",
        "{activity}"
    );
    assert_eq!(entry["detail"]["trigger"]["job_id"], change_id.to_string());

    // SDKs see it: /flags evaluates the flag as on.
    let evaluated = s
        .send(
            "POST",
            "/flags/?v=2",
            None,
            Some(&json!({"api_key": s.project_api_token, "distinct_id": "someone"})),
        )
        .await;
    assert_eq!(evaluated.status, 200, "{}", evaluated.text);
    assert_eq!(
        evaluated.json()["flags"][&key]["enabled"],
        true,
        "{}",
        evaluated.text
    );
}
