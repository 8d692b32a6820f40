//! End to end with the real PostHog SDKs (posthog-python from .venv, posthog-node from
//! node_modules, both installed by `make setup`) against the server `make test` started.
//!
//! A reproducible random set of flags (every operator, variants, payloads, rollouts,
//! dependencies, group flags) is created through the management API; both SDKs then evaluate
//! it for 200 people remotely (`POST /flags`), with local evaluation (definitions, falling back
//! to `/flags` when they must), locally only, flag by flag and through the `evaluate_flags`
//! snapshot API. Every answer must equal the engine's on the same definitions.
//!
//! Then cohort targeting (`sdk/cohorts.rs`): property and static cohorts, `in` and `not_in`,
//! checked against answers computed from the seeded persons. Last, each SDK with its default
//! settings (and posthog-python also with `gzip=True`) captures `$set` for a few persons, which
//! must reach the persons API and then decide their flags (`sdk/captured.rs`).

#[path = "sdk/captured.rs"]
mod captured;
#[path = "sdk/cohorts.rs"]
mod cohorts;
#[path = "sdk/engine.rs"]
mod engine;
#[path = "sdk/generate.rs"]
mod generate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{Server, unique_key};
use engine::{Answers, definitions, engine_answers};
use serde_json::{Value, json};

const SEED: u64 = 5;
const USERS: usize = 200;
/// People asked flag by flag and through `evaluate_flags` (each costs a request per flag).
const SINGLE_USERS: usize = 5;

/// One test: the parts share the project and its flag count.
#[tokio::test]
async fn python_and_node_sdks_against_the_server() {
    let s = Server::from_env();
    sdks_agree_with_the_engine(&s).await;
    cohorts::cohort_targeting_with_both_sdks(&s).await;
    sdk_flag_calls_set_last_called_at(&s).await;
    every_sdk_route_over_http(&s).await;
    sdk_captures_reach_persons(&s).await;
}

async fn sdks_agree_with_the_engine(s: &Server) {
    let company = learn_group_type(s, "company").await;
    let stem = unique_key("sdk");
    let mut rng = generate::Rng::new(SEED);
    let created = create_flags(s, &mut rng, &stem, company).await;
    let keys: Vec<String> = created.iter().map(|(_, k)| k.clone()).collect();
    assert!(keys.len() >= 30, "at least 30 flags");
    let users: Vec<Value> = (0..USERS).map(|i| generate::user(&mut rng, i)).collect();
    let spec = json!({
        "api_url": s.url, "token": s.project_api_token, "secret_key": s.project_secret_key,
        "keys": keys, "users": users, "single_users": SINGLE_USERS,
    });
    let expected = engine_answers(s, &keys, &users).await;
    assert_variety(&expected);
    for sdk in ["python", "node"] {
        let (problems, log) = agreement(sdk, &spec, &expected);
        assert!(
            problems.is_empty(),
            "{sdk}: {} disagreements (flag stem {stem}, seed {SEED}); per mode: {:?}; first ones:\n{}\n\
             {sdk} log:\n{log}",
            problems.len(),
            per_mode(&problems),
            problems
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    captured::delete_flags(s, &created).await;
}

/// Runs one SDK over the spec and compares every mode with the engine; returns the
/// disagreements and the SDK's log.
fn agreement(sdk: &str, spec: &Value, expected: &Answers) -> (Vec<String>, String) {
    let out = run_sdk(sdk, spec);
    let mut problems = Vec::new();
    for mode in ["remote", "local", "single", "evaluate"] {
        let label = format!("{sdk} {mode}");
        compare(expected, &answers(&out[mode]), &label, &mut problems);
    }
    check_local_only(expected, &answers(&out["local_only"]), sdk, &mut problems);
    let log = out["log"].as_str().unwrap_or_default().to_string();
    (problems, log)
}

/// The SDKs' `$feature_flag_called` events (Python plain JSON, Node batched) reach `/batch/`
/// and set each flag's `last_called_at`.
async fn sdk_flag_calls_set_last_called_at(s: &Server) {
    for sdk in ["python", "node"] {
        let key = unique_key(&format!("called-{sdk}"));
        let created = s
            .call("POST", &s.flags_path(""), Some(&json!({"key": key, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}})))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.json()["id"].as_i64().expect("id");
        let spec = json!({"api_url": s.url, "token": s.project_api_token, "secret_key": s.project_secret_key,
            "called": {"key": key, "user": "caller-1"}});
        let out = run_sdk(sdk, &spec);
        assert_eq!(out["value"], true, "{sdk} got the flag");
        let flag = s
            .call("GET", &s.flags_path(&format!("{id}/")), None)
            .await
            .json();
        assert!(
            flag["last_called_at"].is_string(),
            "{sdk}: last_called_at not set: {flag}"
        );
    }
}

/// Each SDK as an application would use it, with its default settings (posthog-python also
/// with `gzip=True`, which gzips `/batch/` bodies labelled `application/json`, as posthog-node
/// does by default): `$set` captured for a few persons reaches the persons API, and then the
/// stored properties alone give the engine's answers.
async fn sdk_captures_reach_persons(s: &Server) {
    let stem = unique_key("sdk-captured");
    let created = captured::create_flags(s, &stem).await;
    let keys: Vec<String> = created.iter().map(|(_, k)| k.clone()).collect();
    let runs = [
        ("python", json!({})),
        ("python", json!({"gzip": true})),
        ("node", json!({})),
    ];
    for (run, (sdk, options)) in runs.into_iter().enumerate() {
        let label = format!("{sdk} capturing with options {options}");
        let people = captured::people(&format!("{stem}-{run}"));
        let spec = json!({"api_url": s.url, "token": s.project_api_token, "keys": keys,
            "users": people, "capture": {"options": options}});
        let out = run_sdk(sdk, &spec);
        captured::assert_stored(s, &label, &people).await;
        let expected = engine_answers(s, &keys, &people).await;
        let mut problems = Vec::new();
        compare(&expected, &answers(&out["stored"]), &label, &mut problems);
        assert!(
            problems.is_empty(),
            "{label}: {} disagreements with the engine:\n{}\n{sdk} log:\n{}",
            problems.len(),
            problems.join("\n"),
            out["log"].as_str().unwrap_or_default()
        );
    }
    captured::delete_flags(s, &created).await;
}

/// Each route of the `flags` function through the router, with the answers SDKs rely on.
async fn every_sdk_route_over_http(s: &Server) {
    let project = s.project_id;
    for path in [
        "/flags/definitions".to_string(),
        "/api/feature_flag/local_evaluation/".to_string(),
        format!("/api/projects/{project}/feature_flags/local_evaluation"),
    ] {
        let url = format!("{}{path}?token={}", s.url, s.project_api_token);
        let first = s
            .http
            .get(&url)
            .bearer_auth(&s.project_secret_key)
            .send()
            .await
            .expect("get");
        assert_eq!(first.status().as_u16(), 200, "{path}");
        let etag = first.headers()["etag"].to_str().expect("etag").to_string();
        let again = s
            .http
            .get(&url)
            .bearer_auth(&s.project_secret_key)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("poll");
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(
            again.text().await.expect("body"),
            "",
            "{path}: 304 is empty"
        );
    }
    let person = json!({"api_key": s.project_api_token, "distinct_id": "route-check"});
    let decide = s.send("POST", "/decide/?v=3", None, Some(&person)).await;
    assert_eq!(decide.status, 200, "{}", decide.text);
    assert!(decide.json()["featureFlags"].is_object());
    let event = json!({"event": "pageview", "distinct_id": "route-check", "properties": {"token": s.project_api_token}});
    for path in ["/e/", "/i/v0/e/", "/capture/", "/batch"] {
        let r = s.send("POST", path, None, Some(&event)).await;
        assert_eq!((r.status, r.json()), (200, json!({"status": 1})), "{path}");
    }
    // Gzip labelled as binary, as a client that names no content type sends it.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut encoder,
        json!({"api_key": s.project_api_token, "batch": [event]})
            .to_string()
            .as_bytes(),
    )
    .expect("gzip");
    let zipped = s
        .http
        .post(format!("{}/batch/", s.url))
        .header("content-type", "application/octet-stream")
        .header("content-encoding", "gzip")
        .body(encoder.finish().expect("gzip"))
        .send()
        .await
        .expect("batch");
    assert_eq!(zipped.status().as_u16(), 200);
    let bad = s
        .http
        .post(format!("{}/flags/?v=4", s.url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("flags");
    assert_eq!(bad.status().as_u16(), 400);
    assert!(
        bad.text()
            .await
            .expect("text")
            .starts_with("Failed to parse request")
    );
    let anonymous = s
        .send(
            "POST",
            "/flags/?v=4",
            None,
            Some(&json!({"distinct_id": "x"})),
        )
        .await;
    assert_eq!(anonymous.status, 401);
}

/// Announces a group type the way SDKs do (`$groupidentify` to `/batch/`) and reads the index
/// the server gave it from the definitions.
async fn learn_group_type(s: &Server, name: &str) -> i64 {
    let batch = json!({"api_key": s.project_api_token, "batch": [{"event": "$groupidentify", "distinct_id": "setup",
        "properties": {"$group_type": name, "$group_key": "acme", "$group_set": {}}}]});
    let r = s.send("POST", "/batch/", None, Some(&batch)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mapping = definitions(s).await["group_type_mapping"].clone();
    mapping
        .as_object()
        .and_then(|m| m.iter().find(|(_, v)| *v == name))
        .and_then(|(k, _)| k.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {mapping}"))
}

async fn create_flags(
    s: &Server,
    rng: &mut generate::Rng,
    stem: &str,
    company: i64,
) -> Vec<(i64, String)> {
    let mut earlier: Vec<(i64, String, Vec<String>)> = Vec::new();
    for index in 0..generate::flag_count() {
        let key = format!("{stem}-{index}");
        let body = generate::flag(rng, index, &key, &earlier, company);
        let r = s.call("POST", &s.flags_path(""), Some(&body)).await;
        assert_eq!(r.status, 201, "creating {body}: {}", r.text);
        let variants = body["filters"]["multivariate"]["variants"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x["key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        earlier.push((r.json()["id"].as_i64().expect("id"), key, variants));
    }
    earlier.into_iter().map(|(id, key, _)| (id, key)).collect()
}

/// An SDK's output for one mode, absent flags read as `false` with no payload.
fn answers(mode: &Value) -> Answers {
    let mut out = Answers::new();
    for (user, flags) in mode.as_object().expect("per user") {
        let row = flags
            .as_object()
            .expect("per flag")
            .iter()
            .map(|(k, pair)| (k.clone(), (pair[0].clone(), pair[1].clone())))
            .collect();
        out.insert(user.clone(), row);
    }
    out
}

/// The set must exercise what it claims: both outcomes, variants and payloads, for many flags.
fn assert_variety(expected: &Answers) {
    let all: Vec<&(Value, Value)> = expected.values().flat_map(|row| row.values()).collect();
    let enabled = all.iter().filter(|(v, _)| *v != json!(false)).count();
    let variants = all.iter().filter(|(v, _)| v.is_string()).count();
    let payloads = all.iter().filter(|(_, p)| !p.is_null()).count();
    eprintln!(
        "{} answers: {enabled} enabled, {variants} variants, {payloads} payloads",
        all.len()
    );
    assert!(
        enabled * 5 > all.len() && enabled * 5 < all.len() * 4,
        "{enabled} of {}",
        all.len()
    );
    assert!(
        variants > 500 && payloads > 500,
        "{variants} variants, {payloads} payloads"
    );
    for key in expected
        .values()
        .next()
        .map(|row| row.keys())
        .into_iter()
        .flatten()
    {
        let on = expected
            .values()
            .filter(|row| row[key].0 != json!(false))
            .count();
        eprintln!("  {key}: enabled for {on} of {}", expected.len());
    }
}

/// How many disagreements each SDK mode has (the text before the first `:`).
fn per_mode(problems: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for p in problems {
        *counts.entry(p.split(':').next().unwrap_or("")).or_insert(0) += 1;
    }
    counts
}

/// Every person the SDK answered for must match the engine on every flag.
fn compare(expected: &Answers, got: &Answers, label: &str, problems: &mut Vec<String>) {
    assert!(!got.is_empty(), "{label}: no answers");
    for (user, flags) in got {
        for (key, want) in &expected[user] {
            let (value, payload) = flags
                .get(key)
                .cloned()
                .unwrap_or((json!(false), Value::Null));
            let payload = if value == json!(false) {
                Value::Null
            } else {
                payload
            };
            let have = (value, payload);
            if &have != want {
                problems.push(format!(
                    "{label}: {user} {key}: got {have:?}, engine {want:?}"
                ));
            }
        }
    }
}

/// What the SDK decided without the server must be right, and must be most of it (otherwise
/// local evaluation did not really happen).
fn check_local_only(expected: &Answers, got: &Answers, sdk: &str, problems: &mut Vec<String>) {
    let mut decided = 0;
    let mut total = 0;
    for (user, want_row) in expected {
        total += want_row.len();
        for (key, (value, payload)) in got.get(user).into_iter().flatten() {
            decided += 1;
            let payload = if *value == json!(false) {
                Value::Null
            } else {
                payload.clone()
            };
            if want_row.get(key) != Some(&(value.clone(), payload.clone())) {
                problems.push(format!(
                    "{sdk} local_only: {user} {key}: got {:?}, engine {:?}",
                    (value, payload),
                    want_row.get(key)
                ));
            }
        }
    }
    eprintln!("{sdk}: {decided} of {total} answers decided locally");
    assert!(
        decided * 2 > total,
        "{sdk} decided only {decided} of {total} answers locally"
    );
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs tests/sdk/<sdk>_sdk.* on `spec`; returns the JSON it wrote.
fn run_sdk(sdk: &str, spec: &Value) -> Value {
    let root = checkout();
    let dir = std::env::temp_dir().join(unique_key("sdk-run"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (spec_path, out_path) = (dir.join("spec.json"), dir.join("out.json"));
    std::fs::write(&spec_path, spec.to_string()).expect("spec written");
    let mut command = match sdk {
        "python" => {
            let mut c = Command::new(root.join(".venv/bin/python"));
            c.arg(root.join("tests/sdk/python_sdk.py"));
            c
        }
        _ => {
            let mut c = Command::new("node");
            c.arg(root.join("tests/sdk/node_sdk.mjs"));
            c
        }
    };
    let output = command
        .arg(&spec_path)
        .arg(&out_path)
        .output()
        .unwrap_or_else(|e| panic!("running the {sdk} SDK script (run `make setup`): {e}"));
    assert!(
        output.status.success(),
        "{sdk} SDK script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out_path).expect("SDK output");
    let _ = std::fs::remove_dir_all(&dir);
    let mut out: Value = serde_json::from_str(&text).expect("SDK output is JSON");
    // What the SDK logged (errors it swallowed), for the failure message.
    let log = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    out["log"] = json!(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    out
}
