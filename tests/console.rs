//! End to end with the web console (functions/console, console/) in headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by Playwright for Python from .venv, launched as tests/browser.rs
//! does) against the server `make test` started, signed in with the seeded personal API key.
//!
//! `tests/browser/console.py` signs in, creates a flag with two release conditions and three
//! variants with payloads, toggles it on the list, edits it after another client changed the
//! same field (the conflict must show), reverts it from the history, sees usage after captured
//! events, tests the flag for a person, opens PostHog's hyphenated deep link and moves an early
//! access feature through its stages. Here every effect is checked through the API, and the
//! browser must have seen no failed request, no answer >= 400 besides the provoked 409 and no
//! console error (a Content-Security-Policy violation is one).
//!
//! With `CONSOLE_SCREENSHOTS=<dir>` the driver also saves the screenshots shown in
//! docs/console.md (`CONSOLE_SCREENSHOTS=docs/images scripts/test.sh -E 'binary(console)'`).

use e2e::{CHROMIUM, Server, checkout, run_browser_driver, unique_key};
use serde_json::{Value, json};

#[tokio::test]
async fn the_console_manages_a_flag_end_to_end_in_a_browser() {
    let s = Server::from_env();
    let stem = unique_key("console");
    let screenshots = std::env::var("CONSOLE_SCREENSHOTS")
        .ok()
        .map(|dir| checkout().join(dir));
    let spec = json!({
        "api_url": s.url, "key": s.personal_api_key, "token": s.project_api_token,
        "project_id": s.project_id, "stem": stem, "chromium": CHROMIUM,
        "screenshots": screenshots,
    });
    let out = run_browser_driver("console.py", &spec);
    let context = serde_json::to_string_pretty(&json!({
        "error": out["error"], "failed_at_url": out["failed_at_url"], "steps": out["steps"],
        "failures": out["failures"], "console": out["console"],
    }))
    .unwrap();
    assert!(out["error"].is_null(), "the browser run stopped: {context}");
    let failures = out["failures"].as_array().expect("failures");
    assert!(failures.is_empty(), "the browser saw failures: {context}");
    let steps = &out["steps"];

    // Signed in; the key lives in session storage only.
    assert_eq!(steps["key_in_session_storage"], true, "{context}");
    assert_eq!(steps["key_in_local_storage_or_cookie"], false, "{context}");
    assert_eq!(steps["payload_error_shown"], true, "{context}");

    // The flag as created: two conditions, three variants with their payloads.
    let id = out["flag_id"].as_i64().expect("flag id");
    let created = first_version(&s, id).await;
    let filters = &created["filters"];
    let groups = filters["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{filters}");
    assert_eq!(
        groups[0]["properties"],
        json!([{"key": "plan", "type": "person", "operator": "exact", "value": ["pro", "team"]}])
    );
    assert_eq!(groups[0]["rollout_percentage"], 50);
    assert_eq!(
        groups[1]["properties"],
        json!([{"key": "email", "type": "person", "operator": "icontains", "value": "@example.com"}])
    );
    let variants: Vec<(String, f64)> = filters["multivariate"]["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_string(),
                v["rollout_percentage"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        variants,
        [
            ("control".to_string(), 34.0),
            ("test".to_string(), 33.0),
            ("bold".to_string(), 33.0)
        ]
    );
    assert_eq!(
        filters["payloads"],
        json!({"control": "{\"color\": \"blue\"}", "test": "[1, 2]", "bold": "\"big\""})
    );

    // Toggled off with confirmation.
    assert_eq!(steps["toggled_off"], false, "{context}");
    // The stale save was refused with PostHog's conflict and did not overwrite.
    let conflict = steps["conflict_text"].as_str().unwrap_or("");
    assert!(
        conflict.contains("since you started editing it"),
        "{context}"
    );
    assert_eq!(
        steps["name_after_conflict"], "Changed elsewhere",
        "{context}"
    );
    // History with diffs, and the revert to the first version (enabled, its first name).
    assert!(
        steps["history_entries"].as_i64().unwrap_or(0) >= 3,
        "{context}"
    );
    assert_eq!(steps["history_diff_shown"], true, "{context}");
    assert_eq!(
        steps["after_revert"],
        json!({"name": "Checkout v2", "active": true}),
        "{context}"
    );
    // Test this flag (enabled again by the revert): the second condition matches
    // `email icontains @example.com` at 100 %, so the value is one of the variants, as `/flags`
    // answers for the same person and properties.
    let body = json!({"token": s.project_api_token, "distinct_id": format!("{stem}-person"),
        "person_properties": {"email": "someone@example.com"}});
    let flags = s.send("POST", "/flags/?v=2", None, Some(&body)).await;
    let key = format!("{stem}-checkout");
    let served = &flags.json()["flags"][&key];
    assert_eq!(
        steps["test_value"],
        json!(served["variant"]).to_string(),
        "{context}\n{}",
        flags.text
    );
    assert!(
        ["\"control\"", "\"test\"", "\"bold\""]
            .contains(&steps["test_value"].as_str().unwrap_or("")),
        "{context}"
    );
    assert!(
        steps["test_reason"]
            .as_str()
            .unwrap_or("")
            .contains("condition"),
        "{context}"
    );
    let now = s.call("GET", &s.flags_path(&format!("{id}/")), None).await;
    assert_eq!(now.json()["name"], "Checkout v2");
    // Usage: three calls of `control` by three users (calls, then unique users).
    assert_eq!(steps["usage_counts"], json!(["3", "3"]), "{context}");
    assert_eq!(steps["deep_link"], true, "{context}");
    // The early access feature went through its stages, as the API now says.
    assert_eq!(
        steps["stages"],
        json!(["concept", "beta", "general-availability"]),
        "{context}"
    );
    let feature = out["feature_id"].as_str().expect("feature id");
    let path = format!(
        "/api/projects/{}/early_access_feature/{feature}/",
        s.project_id
    );
    let r = s.call("GET", &path, None).await;
    assert_eq!(r.json()["stage"], "general-availability", "{}", r.text);
    // A scheduled change was listed (then cancelled), and a cohort was created.
    assert_eq!(
        steps["scheduled"],
        json!({"operation": "update_status", "value": false}),
        "{context}"
    );
    let cohort = out["cohort_id"].as_i64().expect("cohort id");
    let path = format!("/api/projects/{}/cohorts/{cohort}/", s.project_id);
    let r = s.call("GET", &path, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let values = &r.json()["filters"]["properties"]["values"][0]["values"];
    assert_eq!(
        values,
        &json!([{"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}]),
        "{}",
        r.text
    );
    assert_eq!(steps["phone_switch_visible"], true, "{context}");
    assert_eq!(steps["signed_out_key_gone"], true, "{context}");

    let r = s
        .call(
            "PATCH",
            &s.flags_path(&format!("{id}/")),
            Some(&json!({"deleted": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The flag as its creation left it: the snapshot of its oldest activity entry.
async fn first_version(s: &Server, id: i64) -> Value {
    let r = s
        .call(
            "GET",
            &s.flags_path(&format!("{id}/activity/?limit=50")),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let entries = r.json()["results"].as_array().expect("results").clone();
    let created = entries
        .iter()
        .find(|e| e["activity"] == "created")
        .unwrap_or_else(|| panic!("no created entry: {}", r.text));
    let changes = created["detail"]["changes"].as_array().cloned();
    let mut flag = json!({});
    for change in changes.into_iter().flatten() {
        if let Some(field) = change["field"].as_str() {
            flag[field] = change["after"].clone();
        }
    }
    if flag["filters"].is_null() {
        // An entry without field changes: the revert left the flag as it was created.
        let r = s.call("GET", &s.flags_path(&format!("{id}/")), None).await;
        return r.json();
    }
    flag
}
