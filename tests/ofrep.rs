//! The OpenFeature Remote Evaluation Protocol (OFREP) end to end, against the server `make test`
//! started, with the OFREP providers users install (all from `make setup`):
//! `@openfeature/ofrep-provider` with `@openfeature/server-sdk` in node
//! (tests/ofrep/ofrep_node.mjs), `@openfeature/ofrep-web-provider` with `@openfeature/web-sdk` in
//! headless Chromium (tests/ofrep/ofrep_web.py, bundled by esbuild) and
//! `openfeature-provider-ofrep` with `openfeature-sdk` from PyPI (tests/ofrep/ofrep_python.py).
//!
//! Each provider evaluates boolean flags (targeted, rolled out to half, disabled), string flags
//! (a variant for everyone, and a variant only for `plan = pro`, which is `false` for the others
//! and so the code default with TYPE_MISMATCH), an object flag (a remote-configuration flag whose
//! value is its payload) and a missing flag for a dozen contexts, and every answer must be what
//! `POST /flags/` says for the same person and properties. A second test checks the wire:
//! error codes and statuses, the ways of sending the token, `ETag`/`If-None-Match` → 304, and
//! that single and bulk answers agree with `/flags/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{Server, unique_key};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const USERS: usize = 12;

struct Flags {
    boolean: Vec<String>,
    string: Vec<String>,
    object: Vec<String>,
    missing: Vec<String>,
    ids: Vec<i64>,
}

impl Flags {
    fn spec(&self) -> Value {
        json!({"boolean": self.boolean, "string": self.string, "object": self.object,
            "missing": self.missing})
    }

    fn all(&self) -> Vec<&String> {
        self.boolean
            .iter()
            .chain(&self.string)
            .chain(&self.object)
            .collect()
    }
}

#[tokio::test]
async fn openfeature_providers_agree_with_flags() {
    let s = Server::from_env();
    let stem = unique_key("ofrep");
    let flags = create_flags(&s, &stem).await;
    let users: Vec<Value> = (0..USERS)
        .map(|i| {
            let plan = if i % 2 == 0 { "pro" } else { "free" };
            json!({"targetingKey": format!("{stem}-user-{i}"), "plan": plan,
                "email": format!("user{i}@example.com")})
        })
        .collect();
    let mut expected = Vec::new();
    for user in &users {
        expected.push(expected_answers(&s, &flags, user).await);
    }
    // The rollout and the variants split the users: both halves must be exercised.
    let values = |key: &String| -> Vec<Value> {
        let mut v: Vec<Value> = expected.iter().map(|e| e[key]["value"].clone()).collect();
        v.sort_by_key(|v| v.to_string());
        v.dedup();
        v
    };
    assert!(
        values(&flags.boolean[1]).len() == 2,
        "the 50 % rollout splits the users"
    );
    assert!(
        values(&flags.string[0]).len() >= 2,
        "the variants split the users"
    );

    let spec = json!({"base_url": s.url, "token": s.project_api_token, "users": users,
        "flags": flags.spec(), "chromium": CHROMIUM});
    let node = run_driver("node", &[], "tests/ofrep/ofrep_node.mjs", &spec);
    let python = run_driver(
        ".venv/bin/python",
        &[],
        "tests/ofrep/ofrep_python.py",
        &spec,
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run `make setup`"
    );
    let web = run_driver(".venv/bin/python", &[], "tests/ofrep/ofrep_web.py", &spec);
    assert_eq!(
        web["failures"],
        json!([]),
        "the browser saw failures: {web}"
    );

    for (name, answers) in [
        ("node", &node),
        ("python", &python),
        ("web", &web["answers"]),
    ] {
        for (i, wanted) in expected.iter().enumerate() {
            let got = &answers[i];
            for (key, want) in wanted.as_object().unwrap() {
                let got = &got[key];
                let context = format!("{name}, user {i}, {key}: got {got}, want {want}");
                assert_eq!(got["value"], want["value"], "value: {context}");
                assert_eq!(got["errorCode"], want["errorCode"], "errorCode: {context}");
                if want["errorCode"].is_null() {
                    assert_eq!(got["variant"], want["variant"], "variant: {context}");
                    assert_eq!(got["reason"], want["reason"], "reason: {context}");
                } else {
                    assert_eq!(got["reason"], "ERROR", "reason: {context}");
                }
            }
        }
    }
    delete_flags(&s, &flags.ids).await;
}

#[tokio::test]
async fn the_wire_follows_the_specification() {
    let s = Server::from_env();
    let stem = unique_key("ofrep-wire");
    let flags = create_flags(&s, &stem).await;
    let token = s.project_api_token.clone();
    let user = json!({"targetingKey": format!("{stem}-user"), "plan": "pro"});
    let bulk_path = "/ofrep/v1/evaluate/flags";
    let single = |key: &str| format!("/ofrep/v1/evaluate/flags/{key}");

    // Single evaluations equal /flags/, for each way of sending the token.
    let expected = expected_answers(&s, &flags, &user).await;
    let targeted = &flags.boolean[0];
    for auth in [
        Auth::Bearer(&token),
        Auth::ApiKey(&token),
        Auth::Query(&token),
    ] {
        let r = post(&s, &single(targeted), auth, &json!({"context": user}), None).await;
        assert_eq!(r.status, 200, "{:?}: {}", auth, r.body);
        assert_eq!(r.body["key"], targeted.as_str());
        assert_eq!(r.body["value"], expected[targeted]["value"]);
        assert_eq!(r.body["variant"], expected[targeted]["variant"]);
        assert_eq!(r.body["reason"], "TARGETING_MATCH");
        assert_eq!(r.body["metadata"]["payload"], "{\"tier\": \"pro\"}");
    }
    let config = &flags.object[0];
    let r = post(
        &s,
        &single(config),
        Auth::Bearer(&token),
        &json!({"context": user}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["value"], json!({"color": "blue", "size": 3}));
    assert_eq!(r.body["reason"], "STATIC");

    // Bulk: every flag of the request, each equal to /flags/; ETag and 304.
    let body = json!({"context": user});
    let r = post(&s, bulk_path, Auth::Bearer(&token), &body, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let records = r.body["flags"].as_array().expect("flags");
    for key in flags.all() {
        let record = records
            .iter()
            .find(|f| f["key"] == key.as_str())
            .unwrap_or_else(|| panic!("{key} is in the bulk answer: {}", r.body));
        let want = &expected[key.as_str()];
        if want["errorCode"].is_null() {
            assert_eq!(record["value"], want["value"], "{key}");
        } else {
            // The string flag off for this person: the bulk record carries /flags/'s `false`.
            assert_eq!(record["value"], false, "{key}");
        }
    }
    // Other tests add flags to the same project meanwhile, which changes the answer: a 200 is
    // then right if (and only if) it comes with another body and ETag. A few rounds see a 304.
    let (mut etag, mut last) = (r.etag.clone().expect("the bulk answer has an ETag"), r.body);
    let mut not_modified = false;
    for _ in 0..10 {
        let again = post(&s, bulk_path, Auth::Bearer(&token), &body, Some(&etag)).await;
        let tag = again.etag.clone().expect("every answer has an ETag");
        if again.status == 304 {
            assert_eq!(tag, etag, "a 304 repeats the ETag");
            not_modified = true;
            break;
        }
        assert_eq!(again.status, 200, "{}", again.body);
        assert_ne!(
            again.body, last,
            "a 200 to a matching If-None-Match: the answer changed"
        );
        assert_ne!(tag, etag, "another answer, another ETag");
        (etag, last) = (tag, again.body);
    }
    assert!(not_modified, "an unchanged answer is 304 to its ETag");
    let other = json!({"context": {"targetingKey": format!("{stem}-user"), "plan": "free"}});
    let changed = post(&s, bulk_path, Auth::Bearer(&token), &other, Some(&etag)).await;
    assert_eq!(
        changed.status, 200,
        "another context, other answers: {}",
        changed.body
    );
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
    // Editing a flag changes the answer, so the ETag too.
    let patch = json!({"filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}});
    let r = s
        .call(
            "PATCH",
            &s.flags_path(&format!("{}/", flags.ids[0])),
            Some(&patch),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let edited = post(&s, bulk_path, Auth::Bearer(&token), &body, Some(&etag)).await;
    assert_eq!(edited.status, 200, "a flag changed: {}", edited.body);

    // The spec's failures.
    let missing = format!("{stem}-missing");
    let r = post(&s, &single(&missing), Auth::Bearer(&token), &body, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(r.body["key"], missing.as_str());
    let no_key = json!({"context": {"plan": "pro"}});
    for path in [single(targeted), bulk_path.to_string()] {
        let r = post(&s, &path, Auth::Bearer(&token), &no_key, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.body["errorCode"], "TARGETING_KEY_MISSING", "{path}");
        let r = post(&s, &path, Auth::Bearer(&token), &json!({}), None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.body["errorCode"], "INVALID_CONTEXT", "{path}");
        let r = post(&s, &path, Auth::Bearer(&token), &json!("text"), None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.body["errorCode"], "PARSE_ERROR", "{path}");
        let r = post(&s, &path, Auth::None, &body, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let r = post(&s, &path, Auth::Bearer("phc_not_a_token"), &body, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    let r = post(&s, &single(targeted), Auth::Bearer(&token), &no_key, None).await;
    assert_eq!(
        r.body["key"],
        targeted.as_str(),
        "a single failure names its key"
    );
    let bad = json!({"context": {"targetingKey": "u", "groups": "company"}});
    let r = post(&s, bulk_path, Auth::Bearer(&token), &bad, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["errorCode"], "INVALID_CONTEXT");
    delete_flags(&s, &flags.ids).await;
}

#[derive(Debug, Clone, Copy)]
enum Auth<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
    Query(&'a str),
    None,
}

struct OfrepReply {
    status: u16,
    body: Value,
    etag: Option<String>,
}

async fn post(
    s: &Server,
    path: &str,
    auth: Auth<'_>,
    body: &Value,
    if_none_match: Option<&str>,
) -> OfrepReply {
    let url = match auth {
        Auth::Query(token) => format!("{}{path}?token={token}", s.url),
        _ => format!("{}{path}", s.url),
    };
    let mut req = s.http.post(url).json(body);
    match auth {
        Auth::Bearer(token) => req = req.bearer_auth(token),
        Auth::ApiKey(token) => req = req.header("X-API-Key", token),
        Auth::Query(_) | Auth::None => {}
    }
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", tag);
    }
    let resp = req.send().await.expect("request reaches the server");
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    OfrepReply { status, body, etag }
}

/// Boolean: on for `plan = pro` (with a payload), rolled out to half, disabled. String: three
/// variants for everyone, and a variant for `plan = pro` only. Object: a remote-configuration
/// flag. Missing: a key no flag has.
async fn create_flags(s: &Server, stem: &str) -> Flags {
    let pro = json!([{"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}]);
    let variants = json!({"variants": [
        {"key": "red", "rollout_percentage": 34}, {"key": "green", "rollout_percentage": 33},
        {"key": "blue", "rollout_percentage": 33}]});
    let bodies = [
        (
            "boolean",
            json!({"key": format!("{stem}-pro"), "filters": {
            "groups": [{"properties": pro, "rollout_percentage": 100}],
            "payloads": {"true": "{\"tier\": \"pro\"}"}}}),
        ),
        (
            "boolean",
            json!({"key": format!("{stem}-half"), "filters": {
            "groups": [{"properties": [], "rollout_percentage": 50}]}}),
        ),
        (
            "boolean",
            json!({"key": format!("{stem}-off"), "active": false, "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100}]}}),
        ),
        (
            "string",
            json!({"key": format!("{stem}-color"), "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": variants, "payloads": {"red": "\"#f00\""}}}),
        ),
        (
            "string",
            json!({"key": format!("{stem}-pro-color"), "filters": {
            "groups": [{"properties": pro, "rollout_percentage": 100, "variant": "gold"}],
            "multivariate": {"variants": [{"key": "gold", "rollout_percentage": 100}]}}}),
        ),
        (
            "object",
            json!({"key": format!("{stem}-config"), "is_remote_configuration": true,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
            "payloads": {"true": "{\"color\": \"blue\", \"size\": 3}"}}}),
        ),
    ];
    let mut flags = Flags {
        boolean: vec![],
        string: vec![],
        object: vec![],
        missing: vec![format!("{stem}-missing")],
        ids: vec![],
    };
    for (kind, body) in bodies {
        let r = s.call("POST", &s.flags_path(""), Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        flags.ids.push(r.json()["id"].as_i64().expect("id"));
        let key = body["key"].as_str().unwrap().to_string();
        match kind {
            "boolean" => flags.boolean.push(key),
            "string" => flags.string.push(key),
            _ => flags.object.push(key),
        }
    }
    flags
}

async fn delete_flags(s: &Server, ids: &[i64]) {
    for id in ids {
        let path = s.flags_path(&format!("{id}/"));
        let r = s
            .call("PATCH", &path, Some(&json!({"deleted": true})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

/// What an OpenFeature client must report for each key, from `POST /flags/` for the same person
/// and properties: `{key: {value, variant, reason, errorCode}}`.
async fn expected_answers(s: &Server, flags: &Flags, context: &Value) -> Value {
    let mut properties = context.as_object().unwrap().clone();
    let distinct_id = properties.remove("targetingKey").unwrap();
    let body = json!({"token": s.project_api_token, "distinct_id": distinct_id,
        "person_properties": properties});
    let r = s.send("POST", "/flags/?v=2", None, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let answers = r.json()["flags"].clone();
    let mut out = serde_json::Map::new();
    let success = |value: Value, variant: &str, reason: &str| json!({"value": value, "variant": variant, "reason": reason, "errorCode": null});
    for key in &flags.boolean {
        let Some(record) = answers.get(key.as_str()) else {
            // /flags/ leaves a switched-off flag out; OFREP says so.
            out.insert(key.clone(), success(json!(false), "false", "DISABLED"));
            continue;
        };
        let value = record["value"].clone();
        let reason = match record["reason"]["code"].as_str().unwrap() {
            "flag_disabled" => "DISABLED",
            "out_of_rollout_bound" => "SPLIT",
            "condition_match" if key.ends_with("-half") => "SPLIT",
            "condition_match" => "TARGETING_MATCH",
            _ => "DEFAULT",
        };
        let variant = value.to_string();
        out.insert(key.clone(), success(value, &variant, reason));
    }
    for key in &flags.string {
        let record = &answers[key.as_str()];
        let answer = match &record["value"] {
            Value::String(variant) => {
                // A variant the condition names is targeting; one drawn by hash is a split.
                let reason = if key.ends_with("-pro-color") {
                    "TARGETING_MATCH"
                } else {
                    "SPLIT"
                };
                success(json!(variant), variant, reason)
            }
            _ => json!({"value": "code-default", "errorCode": "TYPE_MISMATCH"}),
        };
        out.insert(key.clone(), answer);
    }
    for key in &flags.object {
        let record = &answers[key.as_str()];
        assert_eq!(record["enabled"], true, "{record}");
        let payload: Value =
            serde_json::from_str(record["metadata"]["payload"].as_str().unwrap()).unwrap();
        out.insert(key.clone(), success(payload, "true", "STATIC"));
    }
    for key in &flags.missing {
        assert!(answers.get(key.as_str()).is_none());
        out.insert(
            key.clone(),
            json!({"value": false, "errorCode": "FLAG_NOT_FOUND"}),
        );
    }
    Value::Object(out)
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs a driver script with `SPEC OUT`; returns the JSON it wrote.
fn run_driver(program: &str, args: &[&str], script: &str, spec: &Value) -> Value {
    let root = checkout();
    let program = if program.contains('/') {
        root.join(program).display().to_string()
    } else {
        program.to_string()
    };
    let dir = std::env::temp_dir().join(unique_key("ofrep-run"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (spec_path, out_path) = (dir.join("spec.json"), dir.join("out.json"));
    std::fs::write(&spec_path, spec.to_string()).expect("spec written");
    let output = Command::new(&program)
        .args(args)
        .arg(root.join(script))
        .arg(&spec_path)
        .arg(&out_path)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (run `make setup`): {e}"));
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out_path).expect("driver output");
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&text).expect("driver output is JSON")
}
