//! `POST /api/organizations/{organization_id}/feature_flags/copy_flags/` and its
//! `dependency_requirements/` (issue 13): copies are ordinary creates or updates (activity
//! entries, versions), dependencies and cohorts follow by key and by name, and a key sees only
//! the projects it may use.

use serde_json::{Value, json};
use shared::api::Group;
use shared::flag::Flag;
use shared::http::ApiRequest;
use shared::identity::Project;
use shared::store::{CohortStore, DefinitionsStore, FlagStore};

use crate::common::{Response, World, assert_error};
use crate::support::*;

async fn org_post(w: &World, key: &str, action: &str, body: Value) -> Response {
    let path = format!("/api/organizations/{}/feature_flags/{action}", w.org.id);
    let req = ApiRequest::new("POST", &path)
        .with_header("authorization", &format!("Bearer {key}"))
        .with_json(&body);
    let r = w.send_to(Group::FeatureFlags, req).await;
    Response {
        status: r.status,
        body: r.body.unwrap_or(Value::Null),
    }
}

async fn copy(w: &World, body: Value) -> Response {
    org_post(w, &w.key, "copy_flags/", body).await
}

async fn live_flag(w: &World, project: &Project, key: &str) -> Option<Flag> {
    w.store
        .project_flags(project.id)
        .await
        .unwrap()
        .into_iter()
        .find(|f| !f.deleted && f.key == key)
}

#[tokio::test]
async fn copy_with_dependencies_and_cohorts_creates_each_flag_in_the_target() {
    let w = World::new().await;
    let target = w.add_project(&w.org.id).await;
    let cohort = w
        .send_to(
            Group::Cohorts,
            ApiRequest::new("POST", &format!("/api/projects/{}/cohorts/", w.project.id))
                .with_header("authorization", &format!("Bearer {}", w.key))
                .with_json(&json!({"name": "Pro users", "filters": {"properties": {"type": "OR", "values": [{"type": "AND", "values": [
                    {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}]}]}}})),
        )
        .await;
    assert_eq!(cohort.status, 201, "{:?}", cohort.body);
    let cohort_id = cohort.body.unwrap()["id"].as_i64().unwrap();
    let base = create_id(&w, json!({"key": "base", "filters": everyone(100)})).await;
    let main = json!({"key": "main", "name": "Main flag", "filters": {"groups": [
        {"properties": [depends_on(base)], "rollout_percentage": 100},
        {"properties": [{"key": "id", "type": "cohort", "value": cohort_id, "operator": "in"}], "rollout_percentage": 40}
    ]}});
    create_id(&w, main).await;
    let before = w.store.definitions_version(target.id).await.unwrap();

    let plan = org_post(
        &w,
        &w.key,
        "copy_flags/dependency_requirements/",
        json!({"feature_flag_key": "main", "from_project": w.project.id, "target_project_ids": [target.id]}),
    )
    .await;
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert_eq!(
        plan.body,
        json!({
            "can_copy_dependencies": true,
            "dependency_count": 1,
            "copied_dependency_keys": ["base"],
            "reused_dependency_keys": [],
            "warnings": [],
            "reason": "1 dependency flag can be copied."
        })
    );

    let r = copy(
        &w,
        json!({"feature_flag_key": "main", "from_project": w.project.id, "target_project_ids": [target.id], "copy_dependencies": true, "copy_schedule": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["failed"], json!([]));
    let result = &r.body["success"][0];
    assert_eq!(result["key"], "main");
    assert_eq!(result["team_id"], target.id);
    assert_eq!(result["copied_dependency_keys"], json!(["base"]));
    assert!(result.get("flag_dependency_warnings").is_none(), "{result}");

    let copied_base = live_flag(&w, &target, "base")
        .await
        .expect("dependency copied");
    let copied = live_flag(&w, &target, "main").await.expect("flag copied");
    assert!(copied.active);
    let groups = &copied.filters["groups"];
    assert_eq!(
        groups[0]["properties"][0]["key"],
        copied_base.id.to_string()
    );
    let target_cohorts = w.store.project_cohorts(target.id).await.unwrap();
    let new_cohort = target_cohorts
        .iter()
        .find(|c| c.name.as_deref() == Some("Pro users"))
        .expect("cohort created in the target");
    assert_ne!(new_cohort.id, cohort_id);
    assert_eq!(groups[1]["properties"][0]["value"], new_cohort.id);
    for flag in [&copied_base, &copied] {
        let log = w.flag_activity_in(target.id, flag.id).await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].activity, "created");
    }
    // Cohort creation moves it too; flag writes add exactly one bump for the target.
    let cohort_bumps = 1;
    assert_eq!(
        w.store.definitions_version(target.id).await.unwrap(),
        before + cohort_bumps + 1
    );

    // Copying again updates the target's flag (and reuses the dependency and the cohort).
    let r = copy(
        &w,
        json!({"feature_flag_key": "main", "from_project": w.project.id, "target_project_ids": [target.id], "disable_copied_flag": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let again = live_flag(&w, &target, "main").await.unwrap();
    assert_eq!(
        (again.id, again.version, again.active),
        (copied.id, 2, false)
    );
    let log = w.flag_activity_in(target.id, again.id).await;
    assert_eq!(log.last().map(|e| e.activity.as_str()), Some("updated"));
    assert_eq!(w.store.project_cohorts(target.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_missing_dependency_is_dropped_and_the_copy_lands_disabled() {
    let w = World::new().await;
    let target = w.add_project(&w.org.id).await;
    let base = create_id(&w, json!({"key": "base", "filters": everyone(100)})).await;
    create_id(
        &w,
        json!({"key": "main", "filters": filters_depending_on(&[base])}),
    )
    .await;
    let r = copy(
        &w,
        json!({"feature_flag_key": "main", "from_project": w.project.id, "target_project_ids": [target.id]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let warnings = &r.body["success"][0]["flag_dependency_warnings"];
    assert_eq!(
        warnings[0],
        "Removed dependency on flag 'base' because no flag with that key exists in the target project."
    );
    let copied = live_flag(&w, &target, "main").await.unwrap();
    assert!(!copied.active);
    assert!(live_flag(&w, &target, "base").await.is_none());
}

#[tokio::test]
async fn targets_the_key_cannot_see_fail_and_nothing_is_written_there() {
    let w = World::new().await;
    let allowed = w.add_project(&w.org.id).await;
    let hidden = w.add_project(&w.org.id).await;
    let foreign = w.foreign_project().await;
    create_id(&w, json!({"key": "f", "filters": everyone(100)})).await;
    let scoped = w
        .add_key(
            w.user.id,
            &["feature_flag:write"],
            Some(vec![w.project.id, allowed.id]),
        )
        .await;
    let body = json!({"feature_flag_key": "f", "from_project": w.project.id, "target_project_ids": [allowed.id, hidden.id, foreign.id, 987_654]});
    let r = org_post(&w, &scoped, "copy_flags/", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        r.body["failed"],
        json!([
            {"project_id": hidden.id, "error_message": "Project not found."},
            {"project_id": foreign.id, "error_message": "Project not found."},
            {"project_id": 987_654, "error_message": "Project not found."}
        ])
    );
    assert!(live_flag(&w, &allowed, "f").await.is_some());
    for p in [&hidden, &foreign] {
        assert!(live_flag(&w, p, "f").await.is_none());
    }
    // A source project outside the key's projects is as unknown as a missing flag.
    let narrow = w
        .add_key(w.user.id, &["feature_flag:write"], Some(vec![allowed.id]))
        .await;
    let body = json!({"feature_flag_key": "f", "from_project": w.project.id, "target_project_ids": [allowed.id]});
    let r = org_post(&w, &narrow, "copy_flags/", body).await;
    assert_eq!(
        (r.status, r.body),
        (
            400,
            json!({"error": "Feature flag to copy does not exist."})
        )
    );
}

#[tokio::test]
async fn copy_flags_checks_scope_organization_and_body() {
    let w = World::new().await;
    let target = w.add_project(&w.org.id).await;
    create_id(&w, json!({"key": "f"})).await;
    let reader = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let body = json!({"feature_flag_key": "f", "from_project": w.project.id, "target_project_ids": [target.id]});
    let r = org_post(&w, &reader, "copy_flags/", body.clone()).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:write'",
        None,
    );
    let r = org_post(&w, &reader, "copy_flags/dependency_requirements/", body).await;
    assert_eq!(r.status, 403);
    let r = copy(
        &w,
        json!({"from_project": w.project.id, "target_project_ids": [target.id]}),
    )
    .await;
    assert_error(
        &r,
        400,
        "required",
        "This field is required.",
        Some("feature_flag_key"),
    );
    let r = copy(
        &w,
        json!({"feature_flag_key": "f", "from_project": w.project.id, "target_project_ids": []}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["attr"].clone()),
        (400, json!("target_project_ids"))
    );
    let r = copy(&w, json!({"feature_flag_key": "nope", "from_project": w.project.id, "target_project_ids": [target.id]})).await;
    assert_eq!(
        (r.status, r.body),
        (
            400,
            json!({"error": "Feature flag to copy does not exist."})
        )
    );
    // An organization the user is not a member of.
    let path = format!(
        "/api/organizations/{}/feature_flags/copy_flags/",
        uuid::Uuid::new_v4()
    );
    let req = ApiRequest::new("POST", &path)
        .with_header("authorization", &format!("Bearer {}", w.key))
        .with_json(&json!({}));
    let r = w.send_to(Group::FeatureFlags, req).await;
    assert_eq!(r.status, 404);
}
