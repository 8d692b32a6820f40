//! `flagsctl import` end to end (issue 17): a rich project is copied from one project of the
//! server `make test` started into a new one over HTTP, and `/flags/` must answer the same for
//! 1,000 people in both.
//!
//! The source: the SDK test's random flag set (tests/sdk/generate.rs: every operator, variants,
//! payloads, rollouts, flag dependencies, group flags, an inactive and a continuity flag), plus
//! flags targeting a property cohort (which itself uses another cohort) and a static cohort, a
//! remote-configuration flag with an encrypted payload, and an early access feature with its
//! flag. A dry run changes nothing; the import copies everything; a re-run changes nothing and
//! duplicates nothing.

#[path = "sdk/generate.rs"]
mod generate;

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{Server, unique_key};
use futures::future::join_all;
use serde_json::{Value, json};

const USERS: usize = 1000;
const SEED: u64 = 17;

#[tokio::test]
async fn import_copies_a_project_that_answers_the_same() {
    let s = Server::from_env();
    let stem = unique_key("import");
    // Both projects are new ones of the seeded organization, so the copy holds only this
    // test's flags; both learn the same group type.
    let project = s
        .call("GET", &format!("/api/projects/{}/", s.project_id), None)
        .await;
    assert_eq!(project.status, 200, "{}", project.text);
    let org = project.json()["organization"]
        .as_str()
        .expect("organization")
        .to_string();
    let (source_id, source_token) = new_project(&s, &org, &format!("{stem} source")).await;
    let (target_id, target_token) = new_project(&s, &org, &format!("{stem} target")).await;
    let company = learn_group_type(&s, &source_token, "company").await;
    assert_eq!(
        learn_group_type(&s, &target_token, "company").await,
        company
    );

    let source = create_source(&s, source_id, &source_token, &stem, company).await;

    // A dry run plans every copy and makes none.
    let plan = import(&s, source_id, target_id, true);
    assert_eq!(plan["created"]["flags"], json!(source.flags), "{plan}");
    assert_eq!(
        list(&s, target_id, "feature_flags/").await.len(),
        0,
        "a dry run copies nothing"
    );

    let done = import(&s, source_id, target_id, false);
    assert_eq!(done["created"]["flags"], json!(source.flags), "{done}");
    assert_eq!(done["created"]["cohorts"], json!(3), "{done}");
    assert_eq!(done["created"]["early_access_features"], json!(1), "{done}");
    assert_eq!(done["skipped"], json!([]), "{done}");
    assert_eq!(done["static_cohort_members"], json!(1), "{done}");

    // Keys unchanged; the early access feature's flag is the copied flag.
    let copied = list(&s, target_id, "feature_flags/").await;
    let mut keys: Vec<&str> = copied.iter().filter_map(|f| f["key"].as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        source.keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let features = list(&s, target_id, "early_access_feature/").await;
    assert_eq!(features.len(), 1);
    assert_eq!(
        features[0]["feature_flag"]["key"],
        source.feature_flag.as_str()
    );

    // The same answers for 1,000 people, payloads (the encrypted one included) and all.
    let mut rng = generate::Rng::new(SEED);
    let users: Vec<Value> = (0..USERS).map(|i| generate::user(&mut rng, i)).collect();
    let mut compared = 0;
    let mut on = std::collections::BTreeSet::new();
    for chunk in users.chunks(25) {
        let (s, source_token, target_token) = (&s, &source_token, &target_token);
        let pairs = join_all(chunk.iter().map(|user| async move {
            let a = flags(s, source_token, user).await;
            let b = flags(s, target_token, user).await;
            (user, a, b)
        }))
        .await;
        for (user, a, b) in pairs {
            for (key, answer) in &a {
                if answer[0] != false {
                    on.insert(key.clone());
                }
            }
            for key in &source.keys {
                assert_eq!(
                    a.get(key.as_str()),
                    b.get(key.as_str()),
                    "{key} for {user}: source vs imported"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, USERS * source.keys.len());
    assert!(
        on.len() * 3 >= source.keys.len() * 2,
        "most flags are on for someone, so the comparison sees both outcomes: {on:?}"
    );
    let secret = s
        .call(
            "GET",
            &format!(
                "/api/projects/{target_id}/feature_flags/{}/remote_config/",
                copied
                    .iter()
                    .find(|f| f["key"] == source.secret.as_str())
                    .unwrap()["id"]
            ),
            None,
        )
        .await;
    assert_eq!(secret.status, 200, "{}", secret.text);
    assert_eq!(
        secret.json(),
        json!("{\"api\": \"s3cret\"}"),
        "re-encrypted, readable"
    );

    // A re-run duplicates nothing and changes nothing but the encrypted flag (whose stored
    // ciphertext cannot be compared).
    let again = import(&s, source_id, target_id, false);
    assert_eq!(again["created"], json!({}), "{again}");
    assert_eq!(again["unchanged"]["cohorts"], json!(3), "{again}");
    assert_eq!(
        again["unchanged"]["early_access_features"],
        json!(1),
        "{again}"
    );
    let updated = again["updated"]["flags"].as_i64().unwrap_or(0);
    assert!(
        updated <= 1,
        "only the encrypted flag is sent again: {again}"
    );
    assert_eq!(
        list(&s, target_id, "feature_flags/").await.len(),
        source.flags
    );
}

struct Source {
    flags: usize,
    keys: Vec<String>,
    secret: String,
    feature_flag: String,
}

async fn new_project(s: &Server, org: &str, name: &str) -> (i64, String) {
    let created = s
        .call(
            "POST",
            &format!("/api/organizations/{org}/projects/"),
            Some(&json!({"name": name})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let project = created.json();
    let token = project["api_token"]
        .as_str()
        .expect("api_token")
        .to_string();
    (project["id"].as_i64().expect("id"), token)
}

async fn create_source(s: &Server, project: i64, token: &str, stem: &str, company: i64) -> Source {
    let mut rng = generate::Rng::new(SEED);
    let mut earlier: Vec<(i64, String, Vec<String>)> = Vec::new();
    let mut bodies = Vec::new();
    for index in 0..generate::flag_count() {
        let key = format!("{stem}-{index}");
        let body = generate::flag(&mut rng, index, &key, &earlier, company);
        let id = post(s, project, "feature_flags/", &body)
            .await
            .as_i64()
            .expect("id");
        let variants = body["filters"]["multivariate"]["variants"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x["key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        earlier.push((id, key, variants));
        bodies.push(body);
    }
    let person = |key: &str, operator: &str, value: Value| json!({"key": key, "type": "person", "operator": operator, "value": value});
    let pro = post(
        s,
        project,
        "cohorts/",
        &json!({"name": format!("{stem} pro"),
        "filters": {"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            person("plan", "exact", json!(["pro", "enterprise"]))]}]}}}),
    )
    .await;
    let pro_acme = post(
        s,
        project,
        "cohorts/",
        &json!({"name": format!("{stem} pro at acme"),
        "filters": {"properties": {"type": "AND", "values": [{"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": pro},
            person("email", "icontains", json!("acme"))]}]}}}),
    )
    .await;
    let member = format!("{stem}-member");
    let batch = json!({"api_key": token, "batch": [{"event": "$identify",
        "distinct_id": member, "properties": {"$set": {"plan": "free"}}}]});
    assert_eq!(
        s.send("POST", "/batch/", None, Some(&batch)).await.status,
        200
    );
    let fixed = post(
        s,
        project,
        "cohorts/",
        &json!({"name": format!("{stem} fixed"),
        "is_static": true, "distinct_ids": [member]}),
    )
    .await;
    let in_cohort = |id: Value| json!({"key": "id", "type": "cohort", "value": id});
    let extra = [
        json!({"key": format!("{stem}-cohort"), "filters": {"groups": [
            {"properties": [in_cohort(pro_acme)], "rollout_percentage": 100}],
            "payloads": {"true": "{\"cohort\": true}"}}}),
        json!({"key": format!("{stem}-static"), "filters": {"groups": [
            {"properties": [in_cohort(fixed)], "rollout_percentage": 100}]}}),
        json!({"key": format!("{stem}-secret"), "is_remote_configuration": true,
            "has_encrypted_payloads": true, "filters": {"groups": [
            {"properties": [], "rollout_percentage": 100}],
            "payloads": {"true": "{\"api\": \"s3cret\"}"}}}),
    ];
    for body in &extra {
        post(s, project, "feature_flags/", body).await;
        bodies.push(body.clone());
    }
    let body = json!({"name": format!("{stem} beta"), "description": "early", "stage": "beta"});
    let path = format!("/api/projects/{project}/early_access_feature/");
    let created = s.call("POST", &path, Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let feature = created.json();
    let feature_flag = feature["feature_flag"]["key"]
        .as_str()
        .expect("its flag")
        .to_string();
    let mut keys: Vec<String> = bodies
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_string())
        .collect();
    keys.push(feature_flag.clone());
    keys.sort();
    Source {
        flags: keys.len(),
        keys,
        secret: format!("{stem}-secret"),
        feature_flag,
    }
}

async fn post(s: &Server, project: i64, path: &str, body: &Value) -> Value {
    let r = s
        .call(
            "POST",
            &format!("/api/projects/{project}/{path}"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 201, "POST {path} {body}: {}", r.text);
    r.json()["id"].clone()
}

async fn list(s: &Server, project: i64, path: &str) -> Vec<Value> {
    let r = s
        .call(
            "GET",
            &format!("/api/projects/{project}/{path}?limit=1000"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    body["results"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| body.as_array().cloned().unwrap_or_default())
        .into_iter()
        .filter(|i| i["deleted"] != true)
        .collect()
}

async fn learn_group_type(s: &Server, token: &str, name: &str) -> i64 {
    let batch = json!({"api_key": token, "batch": [{"event": "$groupidentify", "distinct_id": "setup",
        "properties": {"$group_type": name, "$group_key": "acme", "$group_set": {}}}]});
    let r = s.send("POST", "/batch/", None, Some(&batch)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .send(
            "GET",
            &format!("/flags/definitions?token={token}"),
            Some(&s.personal_api_key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mapping = r.json()["group_type_mapping"].clone();
    mapping
        .as_object()
        .and_then(|m| m.iter().find(|(_, v)| *v == name))
        .and_then(|(k, _)| k.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {mapping}"))
}

/// `/flags/` for one person of generate.rs: `{key: [value, payload]}`.
async fn flags(s: &Server, token: &str, user: &Value) -> serde_json::Map<String, Value> {
    let body = json!({"token": token, "distinct_id": user["id"], "person_properties": user["person"],
        "groups": user["groups"], "group_properties": user["group_properties"]});
    let r = s.send("POST", "/flags/?v=2", None, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["flags"]
        .as_object()
        .expect("flags")
        .iter()
        .map(|(k, f)| (k.clone(), json!([f["value"], f["metadata"]["payload"]])))
        .collect()
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `flagsctl import` from `source` into `target` on the same server; returns the summary.
fn import(s: &Server, source: i64, target: i64, dry_run: bool) -> Value {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| checkout().join("target"));
    let flagsctl = dir.join("debug/flagsctl");
    let mut command = Command::new(&flagsctl);
    command
        .args([
            "import",
            "--from-host",
            &s.url,
            "--from-project",
            &source.to_string(),
        ])
        .args(["--to-host", &s.url, "--to-project", &target.to_string()])
        .env("FLAGSCTL_FROM_KEY", &s.personal_api_key)
        .env("FLAGSCTL_TO_KEY", &s.personal_api_key);
    if dry_run {
        command.arg("--dry-run");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {} (built by `make test`): {e}", flagsctl.display()));
    assert!(
        output.status.success(),
        "flagsctl import failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("flagsctl prints JSON")
}
