//! Scheduled flag changes (issue 14) against DynamoDB Local: the API's rules and answers, and
//! the executor driven by a clock the tests choose (`ScheduleService::run_due(now)`), so a
//! change "a day later" runs without waiting: one-time and recurring runs (interval, cron),
//! missed runs skipped, end dates, failures and their bound, deleted flags, pausing, and the
//! same change run by several executors at once.

mod common;

use chrono::Duration;
use common::{Response, World, assert_error};
use serde_json::{Value, json};
use shared::api::Group;
use shared::http::ApiRequest;
use shared::schedule::MAX_ATTEMPTS;
use shared::service::ScheduleService;
use shared::service::schedules::Outcome;
use shared::store::dynamo::DynamoStore;
use shared::store::{FlagStore, ScheduleStore};
use shared::time::{self, Timestamp};

struct Env {
    world: World,
}

impl Env {
    async fn new() -> Env {
        Env {
            world: World::new().await,
        }
    }

    fn project(&self) -> i64 {
        self.world.project.id
    }

    async fn call_as(&self, key: &str, method: &str, rest: &str, body: Option<Value>) -> Response {
        // Flags and scheduled changes are the feature-flags function's; the log is activity's.
        let group = if rest.contains("/activity") {
            Group::Activity
        } else {
            Group::FeatureFlags
        };
        self.world
            .call_group(group, key, method, rest, &[], body)
            .await
    }

    async fn call(&self, method: &str, rest: &str, body: Option<Value>) -> Response {
        self.call_as(&self.world.key, method, rest, body).await
    }

    async fn flag(&self, body: Value) -> i64 {
        let flag = self.world.create(body).await;
        flag["id"].as_i64().unwrap()
    }

    async fn stored_flag(&self, id: i64) -> shared::flag::Flag {
        self.world
            .store
            .get_flag(self.project(), id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn schedule(&self, body: Value) -> Value {
        let r = self
            .call("POST", "scheduled_changes/", Some(body.clone()))
            .await;
        assert_eq!(r.status, 201, "schedule {body} → {}", r.body);
        r.body
    }

    async fn change(&self, id: &Value) -> Value {
        let r = self
            .call("GET", &format!("scheduled_changes/{id}/"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    fn service(&self) -> ScheduleService<'_, DynamoStore> {
        ScheduleService::new(&self.world.store, &self.world.cipher)
    }

    /// One executor tick at `now`: the outcomes for this project's changes.
    async fn tick(&self, now: Timestamp) -> Vec<Outcome> {
        let outcomes = Box::pin(self.service().run_due(now)).await.unwrap();
        outcomes
            .into_iter()
            .filter(|(p, _, _)| *p == self.project())
            .map(|(_, _, o)| o)
            .collect()
    }

    async fn flag_activity(&self, flag: i64) -> Vec<Value> {
        let r = self
            .call("GET", &format!("feature_flags/{flag}/activity/"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["results"].as_array().unwrap().clone()
    }
}

fn at(ts: Timestamp) -> String {
    time::format(&ts)
}

fn parse(v: &Value) -> Timestamp {
    time::parse(v.as_str().unwrap()).unwrap()
}

fn simple_flag(key: &str, active: bool) -> Value {
    json!({
        "key": key,
        "active": active,
        "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
    })
}

fn enable(flag: i64, when: Timestamp) -> Value {
    json!({
        "record_id": flag.to_string(),
        "model_name": "FeatureFlag",
        "payload": {"operation": "update_status", "value": true},
        "scheduled_at": at(when),
    })
}

/// A base time well clear of the real clock, on a Friday at 09:00 UTC.
fn friday_nine() -> Timestamp {
    time::parse("2030-03-01T09:00:00Z").unwrap()
}

#[tokio::test]
async fn create_list_get_update_delete_with_posthogs_shapes() {
    let env = Env::new().await;
    let flag = env.flag(simple_flag("launch", false)).await;
    let other = env.flag(simple_flag("other", false)).await;
    let t = friday_nine();
    // A padded id names the same flag and is stored as the flag's id.
    let mut body = enable(flag, t);
    body["record_id"] = json!(format!("000{flag}"));
    let made = env.schedule(body).await;
    assert_eq!(made["record_id"], flag.to_string());
    assert_eq!(made["team_id"], env.project());
    assert_eq!(made["model_name"], "FeatureFlag");
    assert_eq!(
        made["payload"],
        json!({"operation": "update_status", "value": true})
    );
    assert_eq!(parse(&made["scheduled_at"]), t);
    assert_eq!(made["executed_at"], Value::Null);
    assert_eq!(made["failure_reason"], Value::Null);
    assert_eq!(made["is_recurring"], false);
    assert_eq!(made["recurrence_interval"], Value::Null);
    assert_eq!(made["cron_expression"], Value::Null);
    assert_eq!(made["last_executed_at"], Value::Null);
    assert_eq!(made["end_date"], Value::Null);
    assert_eq!(made["timezone"], "UTC");
    assert_eq!(made["created_by"]["email"], "owner@example.com");
    let keys: Vec<&str> = made
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "team_id",
            "record_id",
            "model_name",
            "payload",
            "scheduled_at",
            "executed_at",
            "failure_reason",
            "created_at",
            "created_by",
            "updated_at",
            "is_recurring",
            "recurrence_interval",
            "cron_expression",
            "last_executed_at",
            "end_date",
            "timezone"
        ]
    );
    let second = env
        .schedule(json!({
            "record_id": other,
            "model_name": "FeatureFlag",
            "payload": {"operation": "update_status", "value": false},
            "scheduled_at": at(t),
            "is_recurring": true,
            "recurrence_interval": "weekly",
        }))
        .await;
    assert_eq!(second["record_id"], other.to_string());

    let all = env.call("GET", "scheduled_changes/", None).await;
    assert_eq!(all.body["count"], 2);
    assert_eq!(all.body["results"][0]["id"], made["id"]);
    let path = format!("scheduled_changes/?model_name=FeatureFlag&record_id={other}");
    let req = ApiRequest::new(
        "GET",
        &format!("/api/projects/{}/scheduled_changes/", env.project()),
    )
    .with_header("authorization", &format!("Bearer {}", env.world.key))
    .with_query("model_name", "FeatureFlag")
    .with_query("record_id", &other.to_string());
    let filtered = env.world.send_to(Group::FeatureFlags, req).await;
    let filtered = filtered.body.unwrap();
    assert_eq!(filtered["count"], 1, "{path}: {filtered}");
    assert_eq!(filtered["results"][0]["id"], second["id"]);

    let id = &made["id"];
    let moved = env
        .call(
            "PATCH",
            &format!("scheduled_changes/{id}/"),
            Some(json!({"scheduled_at": at(t + Duration::hours(1))})),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(parse(&moved.body["scheduled_at"]), t + Duration::hours(1));
    assert_eq!(
        env.change(id).await["scheduled_at"],
        moved.body["scheduled_at"]
    );

    let gone = env
        .call("DELETE", &format!("scheduled_changes/{id}/"), None)
        .await;
    assert_eq!(gone.status, 204);
    let r = env
        .call("GET", &format!("scheduled_changes/{id}/"), None)
        .await;
    assert_error(&r, 404, "not_found", "Not found.", None);
    let r = env
        .call("DELETE", &format!("scheduled_changes/{id}/"), None)
        .await;
    assert_eq!(r.status, 404);
    let r = env.call("GET", "scheduled_changes/abc/", None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn posthogs_validation_rules_and_messages() {
    let env = Env::new().await;
    let flag = env.flag(simple_flag("rules", false)).await;
    let t = friday_nine();
    let post = |body: Value| env.call("POST", "scheduled_changes/", Some(body));
    let with = |extra: Value| {
        let mut body = enable(flag, t);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };

    let r = post(json!({"model_name": "FeatureFlag"})).await;
    assert_error(
        &r,
        400,
        "required",
        "This field is required.",
        Some("record_id"),
    );
    let r = post(with(json!({"model_name": "Survey"}))).await;
    assert_error(
        &r,
        400,
        "invalid_choice",
        "\"Survey\" is not a valid choice.",
        Some("model_name"),
    );
    let r = post(with(json!({"scheduled_at": "soon"}))).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
        Some("scheduled_at"),
    );
    let r = post(with(json!({"record_id": "999999999"}))).await;
    assert_error(&r, 400, "invalid_input", "Feature flag not found", None);
    let r = post(with(json!({"record_id": "not-a-number"}))).await;
    assert_error(&r, 400, "invalid_input", "Feature flag not found", None);
    let r = post(with(json!({"is_recurring": true, "recurrence_interval": "daily", "cron_expression": "0 9 * * *"}))).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Cannot set both cron_expression and recurrence_interval. Use one or the other.",
        Some("cron_expression"),
    );
    let r = post(with(json!({"is_recurring": true}))).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Either recurrence_interval or cron_expression is required when is_recurring is true.",
        Some("recurrence_interval"),
    );
    let r = post(with(
        json!({"is_recurring": true, "cron_expression": "0 0 9 * * 1-5"}),
    ))
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Only standard 5-field cron expressions are supported (minute hour day month weekday). Example: '0 9 * * 1-5'.",
        Some("cron_expression"),
    );
    let r = post(with(
        json!({"is_recurring": true, "cron_expression": "61 9 * * *"}),
    ))
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Invalid cron expression. Use standard 5-field cron syntax (e.g., '0 9 * * 1-5').",
        Some("cron_expression"),
    );
    let r = post(with(json!({"recurrence_interval": "daily"}))).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Cannot set recurrence_interval when is_recurring is false for new schedules.",
        Some("recurrence_interval"),
    );
    let r = post(with(
        json!({"is_recurring": true, "recurrence_interval": "hourly"}),
    ))
    .await;
    assert_error(
        &r,
        400,
        "invalid_choice",
        "\"hourly\" is not a valid choice.",
        Some("recurrence_interval"),
    );
    let r = post(with(json!({"end_date": at(t)}))).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "End date must be after the scheduled start date.",
        Some("end_date"),
    );
    let r = post(with(json!({
        "is_recurring": true,
        "recurrence_interval": "daily",
        "payload": {"operation": "add_release_condition", "value": {"groups": []}},
    })))
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Recurring schedules are not supported for add_release_condition because it appends conditions on each run, creating duplicates.",
        Some("payload"),
    );
    let r = post(with(
        json!({"payload": {"operation": "delete_everything", "value": true}}),
    ))
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["attr"], "payload");

    // Scopes: reading needs feature_flag:read, writing feature_flag:write.
    let reader = env
        .world
        .add_key(env.world.user.id, &["feature_flag:read"], None)
        .await;
    let r = env
        .call_as(&reader, "POST", "scheduled_changes/", Some(enable(flag, t)))
        .await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:write'",
        None,
    );
    assert_eq!(
        env.call_as(&reader, "GET", "scheduled_changes/", None)
            .await
            .status,
        200
    );
    let nobody = env
        .world
        .add_key(env.world.user.id, &["cohort:read"], None)
        .await;
    let r = env
        .call_as(&nobody, "GET", "scheduled_changes/", None)
        .await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:read'",
        None,
    );

    // Updates: the target is fixed, an executed one-time change is final.
    let made = env.schedule(enable(flag, t)).await;
    let id = &made["id"];
    let r = env
        .call(
            "PATCH",
            &format!("scheduled_changes/{id}/"),
            Some(json!({"record_id": "42"})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Cannot change the target record of an existing scheduled change.",
        Some("record_id"),
    );
    assert_eq!(env.tick(t).await, [Outcome::Applied]);
    let r = env
        .call(
            "PATCH",
            &format!("scheduled_changes/{id}/"),
            Some(json!({"scheduled_at": at(t)})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Cannot modify a scheduled change that has already executed.",
        None,
    );
}

#[tokio::test]
async fn a_one_time_change_runs_at_its_time_through_the_flag_write_path() {
    let env = Env::new().await;
    let flag = env.flag(simple_flag("launch-day", false)).await;
    let before = env.stored_flag(flag).await;
    let t = friday_nine();
    let made = env.schedule(enable(flag, t)).await;

    assert_eq!(env.tick(t - Duration::seconds(1)).await, []);
    assert!(!env.stored_flag(flag).await.active);

    assert_eq!(
        env.tick(t + Duration::seconds(20)).await,
        [Outcome::Applied]
    );
    let after = env.stored_flag(flag).await;
    assert!(after.active);
    assert_eq!(after.version, before.version + 1);
    assert_eq!(
        after.last_modified_by.as_ref().map(|u| u.id),
        Some(env.world.user.id)
    );
    let change = env.change(&made["id"]).await;
    assert_eq!(parse(&change["executed_at"]), t + Duration::seconds(20));
    assert_eq!(change["last_executed_at"], Value::Null);

    // The activity entry is the scheduler's author's, with PostHog's trigger.
    let entries = env.flag_activity(flag).await;
    let entry = &entries[0];
    assert_eq!(entry["activity"], "updated");
    assert_eq!(entry["user"]["email"], "owner@example.com");
    assert_eq!(
        entry["detail"]["trigger"],
        json!({"job_type": "scheduled_change", "job_id": made["id"].to_string(), "payload": {"scheduled_change_id": made["id"]}})
    );

    // It never runs again.
    assert_eq!(env.tick(t + Duration::days(3)).await, []);
    assert_eq!(env.stored_flag(flag).await.version, after.version);
}

#[tokio::test]
async fn parallel_executors_apply_a_change_exactly_once() {
    let env = Env::new().await;
    let flag = env
        .flag(json!({
            "key": "once",
            "filters": {"groups": [{"properties": [], "rollout_percentage": 10}]},
        }))
        .await;
    let before = env.stored_flag(flag).await;
    let t = friday_nine();
    // Appending a condition is not idempotent: a second run would add a second group.
    let made = env
        .schedule(json!({
            "record_id": flag.to_string(),
            "model_name": "FeatureFlag",
            "payload": {"operation": "add_release_condition", "value": {"groups": [
                {"properties": [], "rollout_percentage": 50}
            ]}},
            "scheduled_at": at(t),
        }))
        .await;
    let id = made["id"].as_i64().unwrap();
    let service = env.service();
    let runs = (0..6).map(|_| Box::pin(service.run(env.project(), id, t)));
    let outcomes = futures::future::join_all(runs).await;
    let applied = outcomes
        .iter()
        .filter(|o| *o.as_ref().unwrap() == Outcome::Applied)
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.as_ref().unwrap(), Outcome::Applied | Outcome::Skipped)),
        "{outcomes:?}"
    );
    let after = env.stored_flag(flag).await;
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.filters["groups"].as_array().unwrap().len(), 2);
    let runs = env
        .flag_activity(flag)
        .await
        .iter()
        .filter(|e| e["detail"]["trigger"]["job_type"] == "scheduled_change")
        .count();
    assert_eq!(runs, 1);
    let change = env
        .world
        .store
        .schedule(env.project(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.failure_count, 0);
    assert_eq!(change.executed_at, Some(t));
}

#[tokio::test]
async fn an_interval_change_recurs_and_skips_missed_runs() {
    let env = Env::new().await;
    let flag = env.flag(simple_flag("nightly", true)).await;
    let t = friday_nine();
    let made = env
        .schedule(json!({
            "record_id": flag.to_string(),
            "model_name": "FeatureFlag",
            "payload": {"operation": "update_status", "value": false},
            "scheduled_at": at(t),
            "is_recurring": true,
            "recurrence_interval": "daily",
        }))
        .await;
    let id = &made["id"];
    let v0 = env.stored_flag(flag).await.version;

    assert_eq!(env.tick(t).await, [Outcome::Applied]);
    let change = env.change(id).await;
    assert_eq!(parse(&change["scheduled_at"]), t + Duration::days(1));
    assert_eq!(parse(&change["last_executed_at"]), t);
    assert_eq!(change["executed_at"], Value::Null);
    assert!(!env.stored_flag(flag).await.active);

    // The executor was away for three days: one run now, the next one tomorrow.
    let late = t + Duration::days(3) + Duration::hours(2);
    assert_eq!(env.tick(late).await, [Outcome::Applied]);
    assert_eq!(env.tick(late + Duration::minutes(1)).await, []);
    let change = env.change(id).await;
    assert_eq!(parse(&change["scheduled_at"]), t + Duration::days(4));
    assert_eq!(env.stored_flag(flag).await.version, v0 + 2);

    // Paused (is_recurring false keeps the interval): not run; resumed: runs again.
    let r = env
        .call(
            "PATCH",
            &format!("scheduled_changes/{id}/"),
            Some(json!({"is_recurring": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["recurrence_interval"], "daily");
    assert_eq!(env.tick(t + Duration::days(5)).await, []);
    let r = env
        .call(
            "PATCH",
            &format!("scheduled_changes/{id}/"),
            Some(json!({"is_recurring": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.tick(t + Duration::days(5)).await, [Outcome::Applied]);
    assert_eq!(env.stored_flag(flag).await.version, v0 + 3);
}

#[tokio::test]
async fn a_cron_change_follows_its_expression_until_its_end_date() {
    let env = Env::new().await;
    let flag = env.flag(simple_flag("weekdays", false)).await;
    let t = friday_nine();
    let made = env
        .schedule(json!({
            "record_id": flag.to_string(),
            "model_name": "FeatureFlag",
            "payload": {"operation": "update_status", "value": true},
            "scheduled_at": at(t),
            "is_recurring": true,
            "cron_expression": "0 9 * * 1-5",
            "end_date": at(t + Duration::days(3) + Duration::hours(12)),
        }))
        .await;
    let id = &made["id"];
    assert_eq!(env.tick(t + Duration::seconds(5)).await, [Outcome::Applied]);
    // Friday 09:00 → Monday 09:00 (weekdays only).
    let change = env.change(id).await;
    assert_eq!(parse(&change["scheduled_at"]), t + Duration::days(3));
    assert_eq!(change["executed_at"], Value::Null);
    // Monday's run is the last before the end date (Monday 21:00): it finishes the change.
    let monday = t + Duration::days(3);
    assert_eq!(env.tick(monday).await, [Outcome::Applied]);
    let change = env.change(id).await;
    assert_eq!(parse(&change["executed_at"]), monday);
    assert_eq!(parse(&change["last_executed_at"]), monday);
    assert_eq!(env.tick(monday + Duration::days(1)).await, []);

    // A recurring change whose end date passed before it could run closes without running.
    let other = env.flag(simple_flag("too-late", false)).await;
    let late = env
        .schedule(json!({
            "record_id": other.to_string(),
            "model_name": "FeatureFlag",
            "payload": {"operation": "update_status", "value": true},
            "scheduled_at": at(t),
            "is_recurring": true,
            "recurrence_interval": "weekly",
            "end_date": at(t + Duration::hours(1)),
        }))
        .await;
    let version = env.stored_flag(other).await.version;
    assert_eq!(env.tick(t + Duration::hours(2)).await, [Outcome::Closed]);
    assert_eq!(env.stored_flag(other).await.version, version);
    assert!(env.change(&late["id"]).await["executed_at"].is_string());
}

#[tokio::test]
async fn failures_are_recorded_and_a_deleted_flag_fails_clearly() {
    let env = Env::new().await;
    let t = friday_nine();
    let flag = env
        .flag(json!({
            "key": "variants",
            "filters": {
                "groups": [{"properties": [], "rollout_percentage": 100}],
                "multivariate": {"variants": [
                    {"key": "a", "rollout_percentage": 50},
                    {"key": "b", "rollout_percentage": 50}
                ]}
            },
        }))
        .await;
    let version = env.stored_flag(flag).await.version;
    // Rollouts summing to 90: checked when it runs, as PostHog does; a permanent error.
    let bad = env
        .schedule(json!({
            "record_id": flag.to_string(),
            "model_name": "FeatureFlag",
            "payload": {"operation": "update_variants", "value": {
                "variants": [{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 30}],
                "payloads": {}
            }},
            "scheduled_at": at(t),
        }))
        .await;
    assert_eq!(env.tick(t).await, [Outcome::Failed]);
    let change = env.change(&bad["id"]).await;
    assert_eq!(
        change["failure_reason"],
        "Invalid variant rollout percentages: sum is 90, must be 100 (permanent error)"
    );
    assert!(change["executed_at"].is_string());
    assert_eq!(env.stored_flag(flag).await.version, version);
    assert_eq!(env.tick(t + Duration::minutes(1)).await, []);

    // A valid variant change goes through the same path.
    let good = env
        .schedule(json!({
            "record_id": flag.to_string(),
            "model_name": "FeatureFlag",
            "payload": {"operation": "update_variants", "value": {
                "variants": [{"key": "a", "rollout_percentage": 20}, {"key": "b", "rollout_percentage": 80}],
                "payloads": {"a": "{\"x\": 1}"}
            }},
            "scheduled_at": at(t),
        }))
        .await;
    assert_eq!(env.tick(t + Duration::minutes(2)).await, [Outcome::Applied]);
    let stored = env.stored_flag(flag).await;
    assert_eq!(
        stored.filters["multivariate"]["variants"][1]["rollout_percentage"],
        80
    );
    assert_eq!(stored.filters["payloads"]["a"], "{\"x\": 1}");
    assert!(env.change(&good["id"]).await["failure_reason"].is_null());

    // The flag is deleted after the change was scheduled: the change fails for good, saying so.
    let doomed = env.flag(simple_flag("doomed", false)).await;
    let made = env.schedule(enable(doomed, t + Duration::hours(1))).await;
    let r = env
        .call(
            "PATCH",
            &format!("feature_flags/{doomed}/"),
            Some(json!({"deleted": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.tick(t + Duration::hours(1)).await, [Outcome::Failed]);
    let change = env.change(&made["id"]).await;
    assert_eq!(
        change["failure_reason"],
        format!(
            "Feature flag {doomed} no longer exists: it was deleted after this change was scheduled. (permanent error)"
        )
    );
    assert!(change["executed_at"].is_string());
    assert!(!env.stored_flag(doomed).await.active);
    // Editing it now is refused as PostHog does; deleting it works.
    let r = env
        .call(
            "DELETE",
            &format!("scheduled_changes/{}/", made["id"]),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn store_failures_are_retried_a_bounded_number_of_times() {
    let env = Env::new().await;
    let t = friday_nine();
    // An executor whose activity table is gone: every run's transaction fails in DynamoDB, an
    // error worth retrying (as an outage or throttling is).
    let mut tables = env.world.store.tables.clone();
    tables.activity = format!("{}-missing", tables.activity);
    let broken = DynamoStore::new(env.world.store.client.clone(), tables);
    let broken_service = ScheduleService::new(&broken, &env.world.cipher);
    let tick = |now: Timestamp| {
        let service = &broken_service;
        async move { Box::pin(service.run_due(now)).await.unwrap() }
    };

    // Fails once, then runs on a healthy tick.
    let flag = env.flag(simple_flag("recovers", false)).await;
    let made = env.schedule(enable(flag, t)).await;
    assert_eq!(tick(t).await.len(), 1);
    let change = env.change(&made["id"]).await;
    assert_eq!(
        change["failure_reason"],
        "A server error occurred while applying the change. (will retry automatically, 4 attempts remaining)"
    );
    assert!(change["executed_at"].is_null());
    assert!(!env.stored_flag(flag).await.active);
    assert_eq!(env.tick(t + Duration::minutes(1)).await, [Outcome::Applied]);
    assert!(env.stored_flag(flag).await.active);

    // Fails every time: given up after the fifth attempt, the flag untouched.
    let stuck = env.flag(simple_flag("stuck", false)).await;
    let made = env.schedule(enable(stuck, t)).await;
    for attempt in 1..=MAX_ATTEMPTS {
        let outcomes = tick(t + Duration::minutes(10 + attempt)).await;
        assert_eq!(outcomes.len(), 1, "attempt {attempt}");
        assert_eq!(outcomes[0].2, Outcome::Failed);
    }
    let change = env.change(&made["id"]).await;
    assert_eq!(
        change["failure_reason"],
        "A server error occurred while applying the change. (failed after 5 out of 5 attempts)"
    );
    assert!(change["executed_at"].is_string());
    assert!(tick(t + Duration::hours(1)).await.is_empty());
    assert_eq!(env.tick(t + Duration::hours(1)).await, []);
    assert!(!env.stored_flag(stuck).await.active);
}

#[tokio::test]
async fn a_project_holds_at_most_a_thousand_pending_changes() {
    use futures::StreamExt;
    use shared::service::schedules::MAX_PENDING;

    let env = Env::new().await;
    let flag = env.flag(simple_flag("busy", false)).await;
    let t = friday_nine();
    let first = env.schedule(enable(flag, t)).await;
    let stored = env
        .world
        .store
        .schedule(env.project(), first["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    // The rest written straight to the store (as creates would leave them), 50 at a time.
    let ids: Vec<i64> = (1..MAX_PENDING as i64).map(|n| 1_000_000 + n).collect();
    futures::stream::iter(ids)
        .map(|id| {
            let change = shared::schedule::ScheduledChange {
                id,
                ..stored.clone()
            };
            let store = &env.world.store;
            async move { store.create_schedule(&change).await.unwrap() }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    let r = env
        .call("POST", "scheduled_changes/", Some(enable(flag, t)))
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "This project already has 1000 pending scheduled changes, the most it can have. Delete some, or wait until they have run.",
        None,
    );
    // A finished change frees its place.
    assert_eq!(
        Box::pin(env.service().run(env.project(), stored.id, t))
            .await
            .unwrap(),
        Outcome::Applied
    );
    env.schedule(enable(flag, t)).await;
}
