//! End to end with posthog-js 1.449.2 (node_modules, installed by `make setup`) in headless
//! Chromium (Debian's `/usr/bin/chromium`, driven by Playwright for Python from .venv) against the
//! server `make test` started, with posthog-js's default settings: `posthog.init(token,
//! {api_host})` and nothing else, on a page of another origin (so every call is a CORS request).
//!
//! `tests/browser/posthog_js.py` loads the page once per build (`array.js`, what the snippet
//! loads, and `module.mjs`, what bundlers import), reads the flags after the first
//! `onFeatureFlags`, identifies the person with `$set: {plan: "pro"}`, reads them again after the
//! reload `identify` starts, and waits for the `$identify` event to be captured. Here every flag
//! value and payload must equal the server's `/flags` answer for the same person, the flag
//! targeted on `plan` must turn on, no `onFeatureFlags` may report `errorsLoading`, the persons
//! API must know the identified person with its `$set` properties and its anonymous id, and the
//! browser must have seen no failed request, no answer >= 400 and no console error.
//! A missing Chromium or Playwright fails the test (run `make setup`).

use std::time::{Duration, Instant};

use e2e::{CHROMIUM, Server, run_browser_driver, unique_key};
use serde_json::{Value, json};

const BUILDS: [&str; 2] = ["array.js", "module.mjs"];

#[tokio::test]
async fn posthog_js_in_a_browser_with_default_settings() {
    let s = Server::from_env();
    let stem = unique_key("browser");
    let flags = create_flags(&s, &stem).await;
    let keys: Vec<&str> = flags.iter().map(|(_, k)| k.as_str()).collect();
    let person = format!("{stem}-person");
    let spec = json!({
        "api_url": s.url, "token": s.project_api_token, "keys": keys, "builds": BUILDS,
        "identify": {"distinct_id": person, "set": {"plan": "pro"}}, "chromium": CHROMIUM,
    });
    let out = run_browser_driver("posthog_js.py", &spec);
    for build in BUILDS {
        let run = &out[build];
        let context = format!("{build}: {}", serde_json::to_string_pretty(run).unwrap());
        let failures = run["failures"].as_array().expect("failures");
        assert!(
            failures.is_empty(),
            "{build}: the browser saw failures: {context}"
        );
        let callbacks = run["callbacks"].as_array().expect("callbacks");
        assert!(
            callbacks.len() >= 2,
            "onFeatureFlags fired on load and after identify: {context}"
        );
        for callback in callbacks {
            assert_eq!(callback["errorsLoading"], false, "{context}");
        }

        let anonymous = &run["anonymous"];
        let anon_id = anonymous["distinct_id"].as_str().expect("anonymous id");
        let pro = keys[2];
        assert_eq!(anonymous["flags"][pro], json!([false, null]), "{context}");
        // `identify` has since merged the anonymous id into the person with `plan = pro`, so
        // only the flags that ignore `plan` can still be compared with the server for it.
        let mut server = server_flags(&s, anon_id, &keys).await;
        server[pro] = anonymous["flags"][pro].clone();
        assert_eq!(anonymous["flags"], server, "{build} anonymous vs /flags");

        let identified = &run["identified"];
        let id = format!("{person}-{}", build.split('.').next().unwrap());
        assert_eq!(identified["distinct_id"], id.as_str());
        assert_eq!(
            identified["flags"][pro],
            json!([true, {"tier": "pro"}]),
            "the flag on `plan` follows identify's $set: {context}"
        );
        assert_eq!(run["identify_captured"], true, "{context}");
        let stored = stored_person(&s, &id).await;
        let distinct_ids = stored["distinct_ids"].as_array().expect("distinct_ids");
        assert!(
            distinct_ids.iter().any(|d| d == anon_id),
            "$identify merged the anonymous id into the person: {stored}"
        );
        // The stored person alone (no properties sent) decides as the browser did.
        let server = server_flags(&s, &id, &keys).await;
        assert_eq!(identified["flags"], server, "{build} identified vs /flags");
    }
    delete_flags(&s, &flags).await;
}

/// On for everyone with a payload, a variant flag with a payload per variant, one on
/// `plan = pro` with a payload, and one off for everyone.
async fn create_flags(s: &Server, stem: &str) -> Vec<(i64, String)> {
    let everyone = |rollout: u32| json!([{"properties": [], "rollout_percentage": rollout}]);
    let bodies = [
        json!({"key": format!("{stem}-on"), "filters": {"groups": everyone(100),
            "payloads": {"true": "{\"color\": \"blue\"}"}}}),
        json!({"key": format!("{stem}-variant"), "filters": {"groups": everyone(100),
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50},
                {"key": "test", "rollout_percentage": 50}]},
            "payloads": {"control": "[1, 2]", "test": "{\"v\": \"test\"}"}}}),
        json!({"key": format!("{stem}-pro"), "filters": {"groups": [{"properties": [
                {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}],
                "rollout_percentage": 100}],
            "payloads": {"true": "{\"tier\": \"pro\"}"}}}),
        json!({"key": format!("{stem}-off"), "filters": {"groups": everyone(0)}}),
    ];
    let mut created = Vec::new();
    for body in bodies {
        let r = s.call("POST", &s.flags_path(""), Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let key = body["key"].as_str().unwrap().to_string();
        created.push((r.json()["id"].as_i64().expect("id"), key));
    }
    created
}

async fn delete_flags(s: &Server, flags: &[(i64, String)]) {
    for (id, key) in flags {
        let path = s.flags_path(&format!("{id}/"));
        let r = s
            .call("PATCH", &path, Some(&json!({"deleted": true})))
            .await;
        assert_eq!(r.status, 200, "deleting {key}: {}", r.text);
    }
}

/// `{key: [value, payload]}` as posthog-js shows them (`getFeatureFlag`,
/// `getFeatureFlagPayload`: the payload parsed, none for a disabled flag), from `POST /flags/`.
async fn server_flags(s: &Server, distinct_id: &str, keys: &[&str]) -> Value {
    let body = json!({"token": s.project_api_token, "distinct_id": distinct_id});
    let r = s.send("POST", "/flags/?v=2", None, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let flags = &r.json()["flags"];
    let shown = keys.iter().map(|key| {
        let record = &flags[*key];
        let payload = match &record["metadata"]["payload"] {
            Value::String(text) if record["enabled"] == true => {
                serde_json::from_str(text).unwrap_or_else(|_| json!(text))
            }
            _ => Value::Null,
        };
        (key.to_string(), json!([record["value"], payload]))
    });
    Value::Object(shown.collect())
}

/// The persons API's person for `distinct_id`, once capture has stored identify's `$set`.
async fn stored_person(s: &Server, distinct_id: &str) -> Value {
    let path = format!(
        "/api/projects/{}/persons/?distinct_id={distinct_id}",
        s.project_id
    );
    let started = Instant::now();
    loop {
        let found = s.call("GET", &path, None).await;
        assert_eq!(found.status, 200, "{}", found.text);
        let person = found.json()["results"][0].clone();
        if person["properties"]["plan"] == "pro" {
            return person;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the persons API lacks {distinct_id} with plan = pro: {}",
            found.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
