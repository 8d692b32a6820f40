//! The flagsctl binary against DynamoDB Local (`DYNAMODB_ENDPOINT`, started by `make test`),
//! each test on its own prefixed tables: one JSON object on stdout per call, one-line errors.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use uuid::Uuid;

struct Ctl {
    endpoint: String,
    prefix: String,
}

impl Ctl {
    /// Fresh tables, created through `flagsctl create-tables`.
    fn new() -> Self {
        let endpoint = std::env::var("DYNAMODB_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "http://127.0.0.1:8000".into());
        let ctl = Ctl {
            endpoint,
            prefix: format!("t{}-", Uuid::new_v4().simple()),
        };
        let created = ctl.ok(&["create-tables"]);
        let mut names: Vec<&str> = created["created"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        names.sort();
        let expected = [
            "activity",
            "cohorts",
            "early_access",
            "flags",
            "hash_key_overrides",
            "identity",
            "persons",
            "usage",
        ]
        .map(|t| format!("{}{t}", ctl.prefix));
        assert_eq!(names, expected);
        ctl
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_flagsctl"))
            .args(args)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.endpoint)
            // Every table under this test's prefix, whatever the caller's environment names.
            .env("TABLE_PREFIX", &self.prefix)
            .env_remove("FLAGS_TABLE")
            .env_remove("ACTIVITY_TABLE")
            .env_remove("IDENTITY_TABLE")
            .env_remove("EARLY_ACCESS_TABLE")
            .env_remove("HASH_KEY_OVERRIDES_TABLE")
            .env_remove("PERSONS_TABLE")
            .env_remove("COHORTS_TABLE")
            .env_remove("USAGE_TABLE")
            .env_remove("FLAGSCTL_AWS")
            .output()
            .expect("flagsctl runs")
    }

    /// Runs a call that must succeed; returns its one JSON object.
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON value")
    }

    /// Runs a call that must fail; returns its one-line error.
    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed to stdout on failure"
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        stderr
    }
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("flagsctl-test-{}", Uuid::new_v4().simple()))
        .join(name)
}

#[test]
fn org_project_user_and_keys_lifecycle() {
    let ctl = Ctl::new();
    assert_eq!(ctl.ok(&["create-tables"])["created"], serde_json::json!([]));

    let org = ctl.ok(&["create-org", "--name", "Acme"]);
    assert_eq!(org["name"], "Acme");
    let org_id = org["id"].as_str().unwrap();

    let project = ctl.ok(&["create-project", "--org", org_id, "--name", "Web"]);
    assert_eq!(project["id"], 1);
    assert_eq!(project["organization_id"], org_id);
    assert!(project["api_token"].as_str().unwrap().starts_with("phc_"));
    assert!(
        project["secret_api_key"]
            .as_str()
            .unwrap()
            .starts_with("phs_")
    );

    let user = ctl.ok(&[
        "create-user",
        "--org",
        org_id,
        "--email",
        "ada@example.com",
        "--first-name",
        "Ada",
    ]);
    assert_eq!(user["id"], 1);
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["last_name"], "");
    assert_eq!(user["organization_ids"], serde_json::json!([org_id]));

    let key = ctl.ok(&[
        "create-key",
        "--user",
        "1",
        "--scopes",
        "feature_flag:read,activity_log:read",
        "--projects",
        "1",
        "--label",
        "ci",
    ]);
    let key_value = key["key"].as_str().unwrap();
    assert!(key_value.starts_with("phx_"));
    assert_eq!(
        key["scopes"],
        serde_json::json!(["feature_flag:read", "activity_log:read"])
    );
    assert_eq!(key["scoped_teams"], serde_json::json!([1]));
    assert_eq!(key["label"], "ci");
    let star = ctl.ok(&["create-key", "--user", "1", "--scopes", "*"]);
    assert_eq!(star["scoped_teams"], Value::Null);

    let listed = ctl.ok(&["list-keys", "--user", "1"]);
    let results = listed["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["id"], key["id"]);
    assert_eq!(
        results[0]["mask_value"],
        format!("phx_...{}", &key_value[key_value.len() - 4..])
    );
    assert!(
        results[0].get("key").is_none(),
        "listing must not reveal keys"
    );
    assert!(results[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let key_id = key["id"].as_str().unwrap();
    assert_eq!(
        ctl.ok(&["revoke-key", "--id", key_id]),
        serde_json::json!({"id": key_id, "revoked": true})
    );
    assert!(
        ctl.err(&["revoke-key", "--id", key_id])
            .contains("no personal API key")
    );
    assert_eq!(
        ctl.ok(&["list-keys", "--user", "1"])["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn group_types_are_created_once_per_index_and_name() {
    let ctl = Ctl::new();
    let org = ctl.ok(&["create-org", "--name", "Acme"]);
    let project = ctl.ok(&[
        "create-project",
        "--org",
        org["id"].as_str().unwrap(),
        "--name",
        "Web",
    ]);
    let id = project["id"].to_string();
    let made = ctl.ok(&[
        "create-group-type",
        "--project",
        &id,
        "--index",
        "0",
        "--name",
        "company",
    ]);
    assert_eq!(
        made,
        serde_json::json!({"project_id": project["id"], "group_type_index": 0, "group_type": "company"})
    );
    let again = ctl.ok(&[
        "create-group-type",
        "--project",
        &id,
        "--index",
        "0",
        "--name",
        "company",
    ]);
    assert_eq!(again, made, "re-running is harmless");
    let taken = ctl.err(&[
        "create-group-type",
        "--project",
        &id,
        "--index",
        "0",
        "--name",
        "team",
    ]);
    assert!(
        taken.contains("index 0 of project 1 is already \"company\""),
        "{taken}"
    );
    let named = ctl.err(&[
        "create-group-type",
        "--project",
        &id,
        "--index",
        "1",
        "--name",
        "company",
    ]);
    assert!(
        named.contains("\"company\" of project 1 already has index 0"),
        "{named}"
    );
    let range = ctl.run(&[
        "create-group-type",
        "--project",
        &id,
        "--index",
        "5",
        "--name",
        "x",
    ]);
    assert_eq!(range.status.code(), Some(2));
    let missing = ctl.err(&[
        "create-group-type",
        "--project",
        "99",
        "--index",
        "1",
        "--name",
        "x",
    ]);
    assert!(missing.contains("no project with id 99"), "{missing}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let ctl = Ctl::new();
    let org = ctl.ok(&["create-org", "--name", "Acme"]);
    let org_id = org["id"].as_str().unwrap();
    ctl.ok(&["create-user", "--org", org_id, "--email", "ada@example.com"]);

    assert!(
        ctl.err(&["create-project", "--org", "nope", "--name", "X"])
            .contains("no organization")
    );
    assert!(
        ctl.err(&["create-user", "--org", org_id, "--email", "not-an-email"])
            .contains("email")
    );
    assert!(
        ctl.err(&["create-key", "--user", "1", "--scopes", "flags"])
            .contains("invalid scope")
    );
    assert!(
        ctl.err(&["create-key", "--user", "99", "--scopes", "*"])
            .contains("no user")
    );
    assert!(
        ctl.err(&[
            "create-key",
            "--user",
            "1",
            "--scopes",
            "*",
            "--projects",
            "42"
        ])
        .contains("no project")
    );
    assert!(ctl.err(&["list-keys", "--user", "99"]).contains("no user"));
    ctl.err(&["create-org"]);
    ctl.err(&["frobnicate"]);
    ctl.err(&["create-key", "--user", "one", "--scopes", "*"]);
}

#[test]
fn seed_dev_is_idempotent_and_recovers_lost_data() {
    let ctl = Ctl::new();
    let out = temp_path("dev-credentials.json");
    let out_arg = out.to_str().unwrap();
    let seed = |ctl: &Ctl| {
        let printed = ctl.ok(&[
            "seed-dev",
            "--out",
            out_arg,
            "--api-url",
            "http://127.0.0.1:9999",
        ]);
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(printed, written);
        printed
    };
    let first = seed(&ctl);
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "api_url",
            "project_id",
            "personal_api_key",
            "project_api_token",
            "project_secret_key"
        ]
    );
    assert_eq!(first["api_url"], "http://127.0.0.1:9999");
    assert!(
        first["personal_api_key"]
            .as_str()
            .unwrap()
            .starts_with("phx_")
    );

    // Same tables: everything is reused.
    assert_eq!(seed(&ctl), first);

    // The key was revoked: a new one for the same project.
    let user_keys = ctl.ok(&["list-keys", "--user", "1"]);
    let key_id = user_keys["results"][0]["id"].as_str().unwrap().to_string();
    ctl.ok(&["revoke-key", "--id", &key_id]);
    let after_revoke = seed(&ctl);
    assert_eq!(after_revoke["project_id"], first["project_id"]);
    assert_eq!(
        after_revoke["project_secret_key"],
        first["project_secret_key"]
    );
    assert_ne!(after_revoke["personal_api_key"], first["personal_api_key"]);

    // Fresh tables (the file outlived them): everything is created again.
    let fresh = Ctl::new();
    let recreated = seed(&fresh);
    assert_ne!(recreated["project_api_token"], first["project_api_token"]);
    assert_ne!(recreated["personal_api_key"], first["personal_api_key"]);
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

#[test]
fn unreachable_dynamodb_is_a_one_line_error() {
    let ctl = Ctl {
        // Port 9 (discard) on loopback: nothing listens there.
        endpoint: "http://127.0.0.1:9".into(),
        prefix: "unused-".into(),
    };
    assert!(ctl.err(&["create-org", "--name", "X"]).contains("DynamoDB"));
}
