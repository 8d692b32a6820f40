//! End to end: real HTTP through the local API server (API Gateway's routes and events), the
//! feature-flags function, and DynamoDB Local. `make test` starts all of it.

use e2e::{Server, unique_key};
use serde_json::{Value, json};

#[tokio::test]
async fn flag_lifecycle_over_http() {
    let s = Server::from_env();
    let key = unique_key("e2e-life");
    let created = s
        .call("POST", &s.flags_path(""), Some(&json!({"key": key, "name": "E2E", "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let flag = created.json();
    assert_eq!(flag["version"], 1);
    assert_eq!(flag["status"], "ACTIVE");
    let id = flag["id"].as_i64().expect("integer id");

    // Trailing slash optional on every route.
    let no_slash = s
        .call(
            "GET",
            &format!("/api/projects/{}/feature_flags/{id}", s.project_id),
            None,
        )
        .await;
    assert_eq!(no_slash.status, 200, "{}", no_slash.text);
    assert_eq!(no_slash.json()["key"], key.as_str());

    let patched = s
        .call(
            "PATCH",
            &s.flags_path(&format!("{id}/")),
            Some(&json!({"name": "Renamed", "version": 1})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["version"], 2);

    let deleted = s
        .call(
            "PATCH",
            &s.flags_path(&format!("{id}/")),
            Some(&json!({"deleted": true})),
        )
        .await;
    assert_eq!(deleted.json()["deleted"], true);
    let listed = s
        .call("GET", &s.flags_path(&format!("?search={key}")), None)
        .await;
    assert_eq!(
        listed.json()["count"],
        0,
        "soft-deleted flags are hidden from the list"
    );
    let still = s.call("GET", &s.flags_path(&format!("{id}/")), None).await;
    assert_eq!(still.json()["status"], "DELETED");

    let restored = s
        .call(
            "PATCH",
            &s.flags_path(&format!("{id}/")),
            Some(&json!({"deleted": false})),
        )
        .await;
    assert_eq!(restored.status, 200);
    assert_eq!(restored.json()["version"], 4);

    let hard = s
        .call("DELETE", &s.flags_path(&format!("{id}/")), None)
        .await;
    assert_eq!(hard.status, 405);
    assert_eq!(hard.text, "", "DELETE answers 405 with an empty body");
}

#[tokio::test]
async fn list_links_are_absolute_urls_of_this_server() {
    let s = Server::from_env();
    let stem = unique_key("e2e-page");
    for i in 0..3 {
        let r = s
            .call(
                "POST",
                &s.flags_path(""),
                Some(&json!({"key": format!("{stem}-{i}")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let page = s
        .call(
            "GET",
            &s.flags_path(&format!("?search={stem}&limit=2")),
            None,
        )
        .await
        .json();
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().map(Vec::len), Some(2));
    let next = page["next"].as_str().expect("next link");
    assert_eq!(
        next,
        format!(
            "{}{}?limit=2&offset=2&search={stem}",
            s.url,
            s.flags_path("")
        )
    );
    let last = s
        .http
        .get(next)
        .bearer_auth(&s.personal_api_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(last["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["next"], Value::Null);
}

#[tokio::test]
async fn errors_keep_posthogs_envelope_over_http() {
    let s = Server::from_env();
    let anonymous = s.send("GET", &s.flags_path(""), None, None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.json(),
        json!({"type": "authentication_error", "code": "not_authenticated", "detail": "Authentication credentials were not provided.", "attr": null})
    );
    let bad_key = s
        .send("GET", &s.flags_path(""), Some("phx_not_a_real_key"), None)
        .await;
    assert_eq!(
        bad_key.json()["detail"],
        "Personal API key found in request Authorization header is invalid."
    );
    let bad = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(&json!({"key": "has space"})),
        )
        .await;
    assert_eq!(
        bad.json(),
        json!({"type": "validation_error", "code": "invalid_key", "detail": "Only letters, numbers, hyphens (-) & underscores (_) are allowed.", "attr": "key"})
    );
    let missing = s.call("GET", &s.flags_path("999999999/"), None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["detail"], "Not found.");
    let not_project = s
        .call("GET", "/api/projects/abc/feature_flags/", None)
        .await;
    assert_eq!(not_project.json()["detail"], "Project not found.");
}

#[tokio::test]
async fn oversized_body_is_a_clear_400_not_a_500() {
    let s = Server::from_env();
    let huge = json!({"key": unique_key("e2e-huge"), "name": "x".repeat(1_100_000)});
    let r = s.call("POST", &s.flags_path(""), Some(&huge)).await;
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(r.json()["code"], "request_too_large");
    let big_item = json!({"key": unique_key("e2e-big"), "name": "x".repeat(300_000)});
    let r = s.call("POST", &s.flags_path(""), Some(&big_item)).await;
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("too large"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn status_dependents_and_remote_config_over_http() {
    let s = Server::from_env();
    let parent = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(&json!({"key": unique_key("e2e-parent")})),
        )
        .await
        .json();
    let pid = parent["id"].as_i64().unwrap();
    let child_key = unique_key("e2e-child");
    let child = s
        .call("POST", &s.flags_path(""), Some(&json!({"key": child_key, "filters": {"groups": [{"properties": [{"key": pid.to_string(), "type": "flag", "value": true, "operator": "flag_evaluates_to"}], "rollout_percentage": 100}]}})))
        .await;
    assert_eq!(child.status, 201, "{}", child.text);
    let deps = s
        .call(
            "GET",
            &s.flags_path(&format!("{pid}/dependent_flags/")),
            None,
        )
        .await
        .json();
    assert_eq!(
        deps,
        json!([{"id": child.json()["id"], "key": child_key, "name": child_key}])
    );
    let status = s
        .call("GET", &s.flags_path(&format!("{pid}/status")), None)
        .await
        .json();
    assert_eq!(
        status,
        json!({"status": "active", "reason": "Flag has no usage data yet"})
    );

    let config_key = unique_key("e2e-config");
    let config = s
        .call("POST", &s.flags_path(""), Some(&json!({"key": config_key, "is_remote_configuration": true, "has_encrypted_payloads": true, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": "{\"color\": \"blue\"}"}}})))
        .await;
    assert_eq!(config.status, 201, "{}", config.text);
    let by_secret = s
        .send(
            "GET",
            &s.flags_path(&format!("{config_key}/remote_config/")),
            Some(&s.project_secret_key),
            None,
        )
        .await;
    assert_eq!(by_secret.status, 200, "{}", by_secret.text);
    assert_eq!(by_secret.json(), json!("{\"color\": \"blue\"}"));
    let secret_on_list = s
        .send("GET", &s.flags_path(""), Some(&s.project_secret_key), None)
        .await;
    assert_eq!(secret_on_list.status, 403);
}

/// The activity function behind the router: `/feature_flags/activity` must reach it, not the
/// feature-flags function's `/feature_flags/{id}`.
#[tokio::test]
async fn activity_log_pages_and_revert_over_http() {
    let s = Server::from_env();
    let key = unique_key("e2e-activity");
    let created = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(&json!({"key": key, "name": "first"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_i64().expect("integer id");
    let renamed = s
        .call(
            "PATCH",
            &s.flags_path(&format!("{id}/")),
            Some(&json!({"name": "second"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);

    let log_path = s.flags_path(&format!("{id}/activity"));
    let log = s.call("GET", &format!("{log_path}?limit=1"), None).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let log = log.json();
    assert_eq!(log["total_count"], 2);
    assert_eq!(log["results"][0]["activity"], "updated");
    assert_eq!(
        log["next"],
        format!("{}{log_path}?limit=1&page=2", s.url),
        "absolute links to this server"
    );
    let older = s
        .http
        .get(log["next"].as_str().expect("next link"))
        .bearer_auth(&s.personal_api_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(older["results"][0]["activity"], "created");
    assert_eq!(older["next"], Value::Null);
    let created_entry = older["results"][0]["id"]
        .as_str()
        .expect("entry id")
        .to_string();

    let project_log = s
        .call("GET", &s.flags_path("activity/?limit=100"), None)
        .await;
    assert_eq!(project_log.status, 200, "{}", project_log.text);
    let project_log = project_log.json();
    assert!(project_log["total_count"].as_i64().unwrap_or(0) >= 2);
    assert!(
        project_log["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|e| e["id"] == created_entry.as_str()),
        "the project log holds the flag's entries"
    );

    let reverted = s
        .call(
            "POST",
            &s.flags_path(&format!("{id}/activity/{created_entry}/revert/")),
            None,
        )
        .await;
    assert_eq!(reverted.status, 200, "{}", reverted.text);
    assert_eq!(reverted.json()["name"], "first");
    assert_eq!(reverted.json()["version"], 3);
    let newest = s.call("GET", &format!("{log_path}/"), None).await.json();
    assert_eq!(newest["total_count"], 3);
    assert_eq!(
        newest["results"][0]["detail"]["trigger"],
        json!({"job_type": "revert", "job_id": created_entry, "payload": {}})
    );

    let missing = s
        .call("GET", &s.flags_path("999999999/activity/"), None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.text, "",
        "unknown flags answer 404 with an empty body"
    );
    let bad_limit = s.call("GET", &s.flags_path("activity?limit=0"), None).await;
    assert_eq!(
        bad_limit.json(),
        json!({"type": "validation_error", "code": "min_value", "detail": "Ensure this value is greater than or equal to 1.", "attr": "limit"})
    );
    let anonymous = s.send("GET", &s.flags_path("activity/"), None, None).await;
    assert_eq!(anonymous.status, 401);
}

/// The early-access-features function behind the router (management routes and the public SDK
/// endpoint): create with a new flag → stage change → public list with the project token →
/// delete, and the flag side of the link in between.
#[tokio::test]
async fn early_access_feature_lifecycle_over_http() {
    let s = Server::from_env();
    let base = format!("/api/projects/{}/early_access_feature/", s.project_id);
    let name = unique_key("E2E preview");
    let key = name.to_lowercase().replace(' ', "-");

    let created = s
        .call(
            "POST",
            &base,
            Some(&json!({"name": name, "description": "Try it", "stage": "concept", "payload": {"cta": "Join"}})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    let id = created["id"].as_str().expect("uuid id").to_string();
    let flag = &created["feature_flag"];
    assert_eq!(flag["key"], key.as_str(), "slugified name");
    assert_eq!(
        flag["filters"],
        json!({"groups": [{"properties": [], "rollout_percentage": 0, "variant": null}]}),
        "concept does not enrol"
    );
    let flag_id = flag["id"].as_i64().expect("flag id");
    let flag_path = s.flags_path(&format!("{flag_id}/"));

    // Trailing slash optional; concept → beta adds the enrollment gate through the flag rules.
    let beta = s
        .call(
            "PATCH",
            &format!("{base}{id}"),
            Some(&json!({"stage": "beta"})),
        )
        .await;
    assert_eq!(beta.status, 200, "{}", beta.text);
    let gate = json!([{"properties": [{"key": format!("$feature_enrollment/{key}"), "type": "person", "operator": "exact", "value": ["true"]}], "rollout_percentage": 100}]);
    assert_eq!(beta.json()["feature_flag"]["filters"]["super_groups"], gate);
    assert_eq!(beta.json()["feature_flag"]["version"], 2);
    let shown = s.call("GET", &flag_path, None).await.json();
    assert_eq!(shown["filters"]["super_groups"], gate);
    let summary = json!({"id": id, "name": name, "description": "Try it", "stage": "beta", "documentationUrl": "", "flagKey": key, "payload": {"cta": "Join"}});
    assert_eq!(shown["features"], json!([summary.clone()]));
    let refused = s
        .call("PATCH", &flag_path, Some(&json!({"deleted": true})))
        .await;
    assert_eq!(
        refused.json(),
        json!({"type": "validation_error", "code": "invalid_input", "detail": "Cannot delete a feature flag that is in use with early access features. Please delete the early access feature before deleting the flag.", "attr": null})
    );

    // posthog-js: no credentials but the project token; the Origin comes back for CORS.
    let public = |query: String| {
        let s = &s;
        async move {
            let resp = s
                .http
                .get(format!("{}/api/early_access_features/?{query}", s.url))
                .header("origin", "https://app.example.com")
                .send()
                .await
                .expect("request reaches the server");
            let cors = resp
                .headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let status = resp.status().as_u16();
            (status, cors, resp.json::<Value>().await.expect("JSON"))
        }
    };
    let listed_here = |body: &Value| -> Vec<Value> {
        body["earlyAccessFeatures"]
            .as_array()
            .expect("earlyAccessFeatures")
            .iter()
            .filter(|f| f["id"] == id.as_str())
            .cloned()
            .collect()
    };
    let (status, cors, body) = public(format!("token={}", s.project_api_token)).await;
    assert_eq!(status, 200, "{body}");
    // The HTTP API's CorsConfiguration answers for every function (API Gateway replaces the
    // function's own CORS headers), so a browser on any origin may read the list.
    assert_eq!(cors.as_deref(), Some("*"));
    assert_eq!(
        listed_here(&body),
        vec![summary.clone()],
        "beta is the default"
    );
    let (_, _, body) = public(format!(
        "token={}&stage=alpha&stage=concept",
        s.project_api_token
    ))
    .await;
    assert!(listed_here(&body).is_empty(), "only the stages asked for");
    let (status, cors, body) = public(String::new()).await;
    assert_eq!(status, 401);
    assert_eq!(cors.as_deref(), Some("*"));
    assert_eq!(
        body,
        json!({"type": "authentication_error", "code": "missing_api_key", "detail": "API key not provided. You can find your project API key in PostHog project settings.", "attr": null})
    );
    let (status, _, body) = public("token=phc_not_a_project".into()).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "invalid_api_key");

    // Delete: 204 with an empty body, the gate goes, the flag stays and can now be deleted.
    let deleted = s.call("DELETE", &format!("{base}{id}/"), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.text, "");
    let gone = s.call("GET", &format!("{base}{id}/"), None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["detail"], "Not found.");
    let (_, _, body) = public(format!("token={}", s.project_api_token)).await;
    assert!(listed_here(&body).is_empty());
    let shown = s.call("GET", &flag_path, None).await.json();
    assert_eq!(shown["filters"]["super_groups"], Value::Null);
    assert_eq!(shown["features"], json!([]));
    let flag_deleted = s
        .call("PATCH", &flag_path, Some(&json!({"deleted": true})))
        .await;
    assert_eq!(flag_deleted.status, 200, "{}", flag_deleted.text);

    let anonymous = s.send("GET", &base, None, None).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn captured_person_properties_drive_flags_over_http() {
    let s = Server::from_env();
    let plan = unique_key("e2e-plan");
    let person = unique_key("e2e-person");
    let key = unique_key("e2e-person-flag");
    let created = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(&json!({"key": key, "filters": {"groups": [{"properties": [
                {"key": "plan", "value": [plan], "operator": "exact", "type": "person"}
            ], "rollout_percentage": 100}]}})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);

    let captured = s
        .send(
            "POST",
            "/batch/",
            None,
            Some(&json!({"api_key": s.project_api_token, "batch": [
                {"event": "$pageview", "distinct_id": person, "properties": {"$set": {"plan": plan}}},
            ]})),
        )
        .await;
    assert_eq!(captured.status, 200, "{}", captured.text);
    assert_eq!(captured.json(), json!({"status": 1}));

    let found = s
        .call(
            "GET",
            &format!(
                "/api/projects/{}/persons/?distinct_id={person}",
                s.project_id
            ),
            None,
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let results = found.json()["results"].clone();
    assert_eq!(results.as_array().map(Vec::len), Some(1), "{results}");
    assert_eq!(results[0]["properties"]["plan"], plan.as_str());
    assert_eq!(results[0]["distinct_ids"], json!([person]));

    // The SDK sends no properties: the stored ones decide.
    let flags = s.flags_for(&person).await;
    assert_eq!(flags.status, 200, "{}", flags.text);
    assert_eq!(
        flags.json()["flags"][key.as_str()]["enabled"],
        true,
        "{}",
        flags.text
    );
}

#[tokio::test]
async fn static_cohort_from_flag_targets_exactly_its_members_over_http() {
    let s = Server::from_env();
    let plan = unique_key("e2e-cohort-plan");
    let stem = unique_key("e2e-cohort-person");
    // Five persons on the plan, four not (the project holds other tests' persons too).
    let people: Vec<(String, bool)> = (0..9)
        .map(|i| (format!("{stem}-{i}"), i % 2 == 0))
        .collect();
    let batch: Vec<Value> = people
        .iter()
        .map(|(id, on)| {
            let value = if *on { plan.clone() } else { format!("{plan}-other") };
            json!({"event": "$pageview", "distinct_id": id, "properties": {"$set": {"plan": value}}})
        })
        .collect();
    let captured = s.capture_batch(&batch).await;
    assert_eq!(captured.status, 200, "{}", captured.text);

    let source = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(&json!({"key": unique_key("e2e-cohort-source"), "filters": {"groups": [{"properties": [
                {"key": "plan", "value": [plan], "operator": "exact", "type": "person"}
            ], "rollout_percentage": 100}]}})),
        )
        .await;
    assert_eq!(source.status, 201, "{}", source.text);
    let source_id = source.json()["id"].as_i64().expect("flag id");
    let created = s
        .call(
            "POST",
            &s.flags_path(&format!("{source_id}/create_static_cohort_for_flag/")),
            Some(&json!({})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let cohort = created.json()["cohort"].clone();
    assert_eq!(cohort["is_static"], true);
    let cohort_id = cohort["id"].as_i64().expect("cohort id");

    // The stream pump drives the cohort-jobs function until the fill is done.
    let cohort_path = format!("/api/projects/{}/cohorts/{cohort_id}/", s.project_id);
    let started = std::time::Instant::now();
    let done = loop {
        let got = s.call("GET", &cohort_path, None).await;
        assert_eq!(got.status, 200, "{}", got.text);
        let body = got.json();
        if body["is_calculating"] == false {
            break body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "the fill did not finish: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(done["count"], 5, "{done}");
    let members = s
        .call("GET", &format!("{cohort_path}persons/?limit=100"), None)
        .await;
    assert_eq!(members.status, 200, "{}", members.text);
    let mut member_ids: Vec<String> = members.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|p| {
            p["distinct_ids"][0]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    member_ids.sort();
    let mut expected: Vec<String> = people
        .iter()
        .filter(|(_, on)| *on)
        .map(|(id, _)| id.clone())
        .collect();
    expected.sort();
    assert_eq!(member_ids, expected);

    let target_key = unique_key("e2e-cohort-target");
    let target = s
        .call(
            "POST",
            &s.flags_path(""),
            Some(
                &json!({"key": target_key, "filters": {"groups": [{"properties": [
                {"key": "id", "type": "cohort", "value": cohort_id, "operator": "in"}
            ], "rollout_percentage": 100}]}}),
            ),
        )
        .await;
    assert_eq!(target.status, 201, "{}", target.text);
    assert_eq!(
        target.json()["filters"]["groups"][0]["properties"][0]["cohort_name"],
        cohort["name"]
    );
    for (id, on) in &people {
        let flags = s.flags_for(id).await;
        assert_eq!(flags.status, 200, "{}", flags.text);
        assert_eq!(
            flags.json()["flags"][target_key.as_str()]["enabled"],
            *on,
            "{id}: {}",
            flags.text
        );
    }
}

#[tokio::test]
async fn flag_usage_reaches_the_usage_dashboard_over_http() {
    let s = Server::from_env();
    let key = unique_key("e2e-usage");
    let created = s
        .call("POST", &s.flags_path(""), Some(&json!({"key": key})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let dashboard = created.json()["usage_dashboard"].clone();
    assert!(dashboard.is_i64(), "{}", created.text);

    let called = |user: &str, response: Value| {
        json!({"event": "$feature_flag_called", "distinct_id": user,
               "properties": {"$feature_flag": key, "$feature_flag_response": response}})
    };
    let captured = s
        .send(
            "POST",
            "/batch/",
            None,
            Some(&json!({"api_key": s.project_api_token, "batch": [
                called("a", json!(true)), called("a", json!(true)), called("b", json!(true)),
                called("c", json!(false)),
            ]})),
        )
        .await;
    assert_eq!(captured.status, 200, "{}", captured.text);

    let board = s
        .call(
            "GET",
            &format!("/api/projects/{}/dashboards/{dashboard}/", s.project_id),
            None,
        )
        .await;
    assert_eq!(board.status, 200, "{}", board.text);
    let board = board.json();
    let today = |tile: usize, value: &str| {
        board["tiles"][tile]["insight"]["result"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["breakdown_value"] == value))
            .map(|series| series["data"][29].clone())
    };
    assert_eq!(today(0, "true"), Some(json!(3)), "{board}");
    assert_eq!(today(0, "false"), Some(json!(1)));
    assert_eq!(today(1, "true"), Some(json!(2)));
    assert_eq!(today(1, "false"), Some(json!(1)));
}
