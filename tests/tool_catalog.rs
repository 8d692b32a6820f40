//! PostHog's own tooling against the server `make test` started (issue 13).
//!
//! The MCP tool catalog, as shipped in the `posthog-cli` crate 0.19.0
//! (`node_modules/.posthog-cli/posthog-api-cli.mjs`, fetched from crates.io by `make setup`), is
//! run the way a user runs it: `node posthog-api-cli.mjs call --json --confirm <tool> '<json>'`
//! with `POSTHOG_HOST`, `POSTHOG_API_KEY` and `POSTHOG_PROJECT_ID`. Every feature-flag,
//! early-access, cohort, persons, project, organization and user tool is called, and each call's
//! effect is then checked through the HTTP API directly (a disabled flag reads `active: false`
//! and has its activity entry, a set person property is on the person, a created project is
//! listed, …); read-only tools are checked against what the API answers for the same question.
//! The scheduled-changes tools are left out: scheduled changes are issue 14, tested by
//! tests/scheduled_changes.rs.
//!
//! Each test reports every tool it called as passed or failed, with the tool's error (the CLI
//! prints the failing request, status and body) or the effect that was missing, and fails if any
//! did. Prerequisites (flags, persons) are made through the API, so one tool's failure does not
//! hide another's result.
//!
//! Last, `@posthog/agent-toolkit`'s `getTools()` (tests/tools/agent_toolkit.mjs) must list the
//! tools a key's scopes allow, for keys of different scopes made with `flagsctl`.

use std::future::Future;
use std::path::{Path, PathBuf};

use e2e::{Server, unique_key};
use serde_json::{Value, json};

/// A tool's or a check's outcome: the error says what went wrong, for the report.
type Check<T = ()> = Result<T, String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// Running the catalog

/// The tool catalog for one key. The CLI keeps its state (the key's scopes, the user, the
/// organization and project it resolved) in memory for one invocation only (`MemoryCache`
/// scoped by a random session id; `posthog-cli login` state belongs to the Rust binary, which is
/// not used here), so runs are independent; it still gets a private HOME and XDG directories,
/// so nothing of the user's environment is read or written.
struct Catalog<'a> {
    s: &'a Server,
    key: String,
    /// `POSTHOG_PROJECT_ID`; None runs it as a user who has not chosen one.
    project: Option<i64>,
    home: PathBuf,
}

impl<'a> Catalog<'a> {
    fn new(s: &'a Server) -> Self {
        let home = std::env::temp_dir().join(unique_key("posthog-cli-home"));
        std::fs::create_dir_all(&home).expect("private HOME for the CLI");
        Catalog {
            s,
            key: s.personal_api_key.clone(),
            project: Some(s.project_id),
            home,
        }
    }

    fn unpinned(&self) -> Catalog<'a> {
        let mut other = Catalog::new(self.s);
        other.project = None;
        other
    }

    /// `call --json --confirm <tool> '<input>'`: the tool's JSON answer (a string if it printed
    /// text), or its exit status and everything it printed on stderr.
    async fn call(&self, tool: &str, input: Value) -> Check<Value> {
        let script = checkout().join("node_modules/.posthog-cli/posthog-api-cli.mjs");
        ensure!(
            script.exists(),
            "{} is missing: run `make setup`",
            script.display()
        );
        let mut command = tokio::process::Command::new("node");
        // Larger heap spaces from the start: the bundle builds ~800 tool schemas each time it
        // starts, and with V8's defaults half of that is garbage collection (about 2.9 s of
        // CPU a call instead of 2.2 s; the tools behave the same).
        command
            .args(["--max-semi-space-size=64", "--initial-old-space-size=1024"])
            .arg(&script)
            .args(["call", "--json", "--confirm", tool])
            .arg(input.to_string())
            .current_dir(&self.home);
        for (name, _) in std::env::vars() {
            if name.starts_with("POSTHOG_") {
                command.env_remove(name);
            }
        }
        command
            .env("POSTHOG_HOST", &self.s.url)
            .env("POSTHOG_API_KEY", &self.key)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_STATE_HOME", self.home.join(".local/state"));
        if let Some(project) = self.project {
            command.env("POSTHOG_PROJECT_ID", project.to_string());
        }
        let output = command
            .output()
            .await
            .map_err(|e| format!("running node {} (run `make setup`): {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "`call {tool} {input}` failed ({}):\n{}{}",
                output.status,
                indent(&String::from_utf8_lossy(&output.stderr)),
                indent(&stdout)
            ));
        }
        Ok(serde_json::from_str(&stdout).unwrap_or_else(|_| Value::String(stdout.to_string())))
    }
}

impl Drop for Catalog<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    {l}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report

/// Every tool call of a test with its outcome; `finish` prints them and fails on any failure.
struct Report {
    name: &'static str,
    rows: Vec<(String, Option<String>)>,
}

impl Report {
    fn new(name: &'static str) -> Self {
        Report {
            name,
            rows: Vec::new(),
        }
    }

    /// Runs one tool's check (the call and its effect through the API).
    async fn tool<T>(&mut self, tool: &str, check: impl Future<Output = Check<T>>) -> Option<T> {
        match check.await {
            Ok(value) => {
                self.rows.push((tool.to_string(), None));
                Some(value)
            }
            Err(e) => {
                self.rows.push((tool.to_string(), Some(e)));
                None
            }
        }
    }

    /// Something the following tools need, made or read through the API.
    async fn need<T>(&mut self, what: &str, check: impl Future<Output = Check<T>>) -> Option<T> {
        self.tool(&format!("(needed) {what}"), check).await
    }

    fn not_run(&mut self, tools: &[&str], why: &str) {
        for tool in tools {
            self.rows
                .push((tool.to_string(), Some(format!("not run: {why}"))));
        }
    }

    fn finish(self) {
        let failed: Vec<&(String, Option<String>)> =
            self.rows.iter().filter(|(_, e)| e.is_some()).collect();
        let mut table = format!(
            "{}: {} of {} checks passed\n",
            self.name,
            self.rows.len() - failed.len(),
            self.rows.len()
        );
        for (tool, error) in &self.rows {
            let mark = if error.is_some() { "FAIL" } else { "ok  " };
            table.push_str(&format!("  {mark} {tool}\n"));
        }
        println!("{table}");
        let details: String = failed
            .iter()
            .map(|(tool, error)| {
                format!("\n--- {tool}\n{}\n", error.as_deref().unwrap_or_default())
            })
            .collect();
        assert!(failed.is_empty(), "{table}{details}");
    }
}

// ---------------------------------------------------------------------------------------------
// The API, directly

async fn api(s: &Server, method: &str, path: &str, body: Option<&Value>) -> Check<Value> {
    let reply = s.call(method, path, body).await;
    ensure!(
        (200..300).contains(&reply.status),
        "{method} {path} -> {}: {}",
        reply.status,
        reply.text
    );
    if reply.text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&reply.text)
        .map_err(|e| format!("{method} {path}: not JSON ({e}): {}", reply.text))
}

async fn get(s: &Server, path: &str) -> Check<Value> {
    api(s, "GET", path, None).await
}

fn project_path(s: &Server, rest: &str) -> String {
    format!("/api/projects/{}/{rest}", s.project_id)
}

async fn new_flag(s: &Server, key: &str, filters: Value) -> Check<i64> {
    let flag = api(
        s,
        "POST",
        &s.flags_path(""),
        Some(
            &json!({"key": key, "name": format!("{key} (tool catalog test)"), "filters": filters}),
        ),
    )
    .await?;
    flag["id"]
        .as_i64()
        .ok_or_else(|| format!("created flag has no id: {flag}"))
}

async fn flag(s: &Server, id: i64) -> Check<Value> {
    get(s, &s.flags_path(&format!("{id}/"))).await
}

async fn patch_flag(s: &Server, id: i64, body: Value) -> Check<Value> {
    api(s, "PATCH", &s.flags_path(&format!("{id}/")), Some(&body)).await
}

/// Soft-deletes a flag a test made, at its end; a failure here is not the tools' to report.
async fn discard_flag(s: &Server, id: i64) {
    let _ = patch_flag(s, id, json!({"deleted": true})).await;
}

/// The flag's activity entries so far (`total_count`).
async fn activity_count(s: &Server, id: i64) -> Check<i64> {
    let page = get(s, &s.flags_path(&format!("{id}/activity/?limit=1"))).await?;
    page["total_count"]
        .as_i64()
        .ok_or_else(|| format!("activity page has no total_count: {page}"))
}

/// Exactly one activity entry more than `before`, the newest a `verb` changing `field` (when
/// given).
async fn logged(s: &Server, id: i64, before: i64, verb: &str, field: Option<&str>) -> Check {
    let page = get(s, &s.flags_path(&format!("{id}/activity/?limit=1"))).await?;
    let total = page["total_count"].as_i64().unwrap_or(-1);
    ensure!(
        total == before + 1,
        "flag {id}: {total} activity entries, expected {} (one for this change): {page}",
        before + 1
    );
    let newest = &page["results"][0];
    ensure!(
        newest["activity"] == verb,
        "flag {id}: newest activity entry is not `{verb}`: {newest}"
    );
    if let Some(field) = field {
        let changes = newest["detail"]["changes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            changes.iter().any(|c| c["field"] == field),
            "flag {id}: newest activity entry changes no `{field}`: {newest}"
        );
    }
    Ok(())
}

/// `input` with the flag's current `version`, which the state and rollout tools require.
async fn with_version(s: &Server, id: i64, mut input: Value) -> Check<Value> {
    input["version"] = flag(s, id).await?["version"].clone();
    Ok(input)
}

/// Calls `tool` with `input` to change flag `id`, then checks the change: `check` judges the
/// tool's answer and the flag as a GET then shows it, and exactly one activity entry more must
/// have been written, a `logged_as.0` changing `logged_as.1` (when given).
async fn change_flag(
    cat: &Catalog<'_>,
    id: i64,
    tool: &str,
    input: Value,
    logged_as: (&str, Option<&str>),
    check: impl FnOnce(&Value, &Value) -> Check,
) -> Check {
    let s = cat.s;
    let before = activity_count(s, id).await?;
    let out = cat.call(tool, input).await?;
    let stored = flag(s, id).await?;
    check(&out, &stored)?;
    logged(s, id, before, logged_as.0, logged_as.1).await
}

/// `feature-flag-enable` or `feature-flag-disable` on flag `id`: the answer and the stored flag
/// must show the new `active`, logged as an update of `active`.
async fn switch_flag(cat: &Catalog<'_>, id: i64, active: bool) -> Check {
    let action = if active { "enable" } else { "disable" };
    let input = with_version(cat.s, id, json!({"id": id})).await?;
    change_flag(
        cat,
        id,
        &format!("feature-flag-{action}"),
        input,
        ("updated", Some("active")),
        |out, stored| {
            ensure!(out["active"] == active, "the tool's answer: {out}");
            ensure!(stored["active"] == active, "GET after {action}: {stored}");
            Ok(())
        },
    )
    .await
}

fn everyone(rollout: u32) -> Value {
    json!({"groups": [{"properties": [], "rollout_percentage": rollout}]})
}

fn plan_is(plan: &str) -> Value {
    json!({"groups": [{"properties": [
        {"key": "plan", "type": "person", "operator": "exact", "value": [plan]}
    ], "rollout_percentage": 100}]})
}

/// Persons made the way an SDK makes them: `$set` through `/batch/` (stored synchronously).
async fn capture_persons(s: &Server, people: &[(String, Value)]) -> Check {
    let batch: Vec<Value> = people
        .iter()
        .map(|(id, props)| {
            json!({"event": "$pageview", "distinct_id": id, "properties": {"$set": props}})
        })
        .collect();
    let reply = s.capture_batch(&batch).await;
    ensure!(
        reply.status == 200,
        "POST /batch/ -> {}: {}",
        reply.status,
        reply.text
    );
    Ok(())
}

/// The person holding `distinct_id`, or None.
async fn person(s: &Server, distinct_id: &str) -> Check<Option<Value>> {
    let found = get(
        s,
        &project_path(s, &format!("persons/?distinct_id={distinct_id}")),
    )
    .await?;
    Ok(found["results"].get(0).cloned())
}

async fn person_uuid(s: &Server, distinct_id: &str) -> Check<String> {
    let found = person(s, distinct_id)
        .await?
        .ok_or_else(|| format!("no person for {distinct_id}"))?;
    found["uuid"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("person without uuid: {found}"))
}

/// What `/flags` answers for `key` and this person: the engine's answer to compare read-only
/// evaluation tools with.
async fn flags_value(s: &Server, distinct_id: &str, key: &str) -> Check<Value> {
    let reply = s.flags_for(distinct_id).await;
    ensure!(
        reply.status == 200,
        "POST /flags/ -> {}: {}",
        reply.status,
        reply.text
    );
    let body: Value = serde_json::from_str(&reply.text).map_err(|e| e.to_string())?;
    let answer = &body["flags"][key];
    ensure!(answer.is_object(), "/flags has no {key}: {}", reply.text);
    // The value as PostHog's API tools show it: the variant, else whether it is enabled.
    Ok(match &answer["variant"] {
        Value::String(variant) => json!(variant),
        _ => answer["enabled"].clone(),
    })
}

/// The items of a list answer: `results` of a page, or a bare array (which the CLI's `--json`
/// output wraps in `{"results": [...]}`).
fn items(list: &Value) -> Vec<Value> {
    list["results"]
        .as_array()
        .or_else(|| list.as_array())
        .cloned()
        .unwrap_or_default()
}

/// The ids of a list answer.
fn ids(list: &Value) -> Vec<Value> {
    items(list).iter().map(|item| item["id"].clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Feature flags: one flag's life

#[tokio::test]
async fn feature_flag_create_read_and_delete_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("feature-flag create, read and delete tools");
    let stem = unique_key("catalog-flag");
    let s = &s;
    let cat = &cat;

    // create-feature-flag, then every read of it.
    let key = format!("{stem}-main");
    let mut created = None;
    r.tool("create-feature-flag", async {
        let out = cat
            .call(
                "create-feature-flag",
                json!({"key": key, "name": "made by the tool catalog",
                           "filters": everyone(30), "active": true, "tags": ["catalog"]}),
            )
            .await?;
        let id = out["id"]
            .as_i64()
            .ok_or_else(|| format!("no id in the tool's answer: {out}"))?;
        created = Some(id);
        let stored = flag(s, id).await?;
        ensure!(
            stored["key"] == key.as_str()
                && stored["active"] == true
                && stored["filters"]["groups"][0]["rollout_percentage"] == 30
                && stored["tags"] == json!(["catalog"]),
            "GET shows another flag than the tool created: {stored}"
        );
        ensure!(
            activity_count(s, id).await? == 1,
            "flag {id}: no single `created` activity entry"
        );
        Ok(())
    })
    .await;
    let id = match created {
        Some(id) => id,
        // Everything else runs on a flag made through the API.
        None => match r
            .need(
                "a flag (POST feature_flags/)",
                new_flag(s, &key, everyone(30)),
            )
            .await
        {
            Some(id) => id,
            None => return r.finish(),
        },
    };

    r.tool("feature-flag-get-all", async {
        let out = cat
            .call("feature-flag-get-all", json!({"search": key}))
            .await?;
        let listed = get(s, &s.flags_path(&format!("?search={key}"))).await?;
        ensure!(
            ids(&out) == vec![json!(id)] && ids(&listed) == vec![json!(id)],
            "searching {key}: the tool lists {:?}, the API {:?}",
            ids(&out),
            ids(&listed)
        );
        Ok(())
    })
    .await;

    r.tool("feature-flag-get-definition", async {
        let out = cat
            .call("feature-flag-get-definition", json!({"id": id}))
            .await?;
        let stored = flag(s, id).await?;
        ensure!(
            out["key"] == stored["key"]
                && out["version"] == stored["version"]
                && out["filters"]["groups"][0]["rollout_percentage"]
                    == stored["filters"]["groups"][0]["rollout_percentage"],
            "the tool's definition differs from GET:\n  tool {out}\n  GET  {stored}"
        );
        Ok(())
    })
    .await;

    r.tool("feature-flag-get-definition-by-key", async {
        let out = cat
            .call("feature-flag-get-definition-by-key", json!({"key": key}))
            .await?;
        ensure!(
            out["id"] == id && out["key"] == key.as_str(),
            "the tool did not find flag {id} by its key: {out}"
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-activity-retrieve", async {
        let out = cat
            .call(
                "feature-flags-activity-retrieve",
                json!({"id": id, "limit": 50}),
            )
            .await?;
        let page = get(s, &s.flags_path(&format!("{id}/activity/?limit=50"))).await?;
        ensure!(
            ids(&out) == ids(&page) && !ids(&page).is_empty(),
            "the tool's entries differ from GET …/activity/: {:?} vs {:?}",
            ids(&out),
            ids(&page)
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-status-retrieve", async {
        let out = cat
            .call("feature-flags-status-retrieve", json!({"id": id}))
            .await?;
        let status = get(s, &s.flags_path(&format!("{id}/status/"))).await?;
        ensure!(
            out["status"] == status["status"] && out["status"].is_string(),
            "the tool says {out}, GET …/status/ {status}"
        );
        Ok(())
    })
    .await;

    // A flag depending on the main one.
    let dependent_key = format!("{stem}-dependent");
    let dependent = r
        .need("a dependent flag (POST feature_flags/)", async {
            new_flag(
                s,
                &dependent_key,
                json!({"groups": [{"properties": [{"key": id.to_string(), "type": "flag",
                    "operator": "flag_evaluates_to", "value": true}], "rollout_percentage": 100}]}),
            )
            .await
        })
        .await;
    if let Some(dependent) = dependent {
        r.tool("feature-flags-dependent-flags-retrieve", async {
            let out = cat
                .call("feature-flags-dependent-flags-retrieve", json!({"id": id}))
                .await?;
            let direct = get(s, &s.flags_path(&format!("{id}/dependent_flags/"))).await?;
            let text = out.to_string();
            ensure!(
                text.contains(&dependent_key) && direct.to_string().contains(&dependent_key),
                "{dependent_key} is not listed as depending on flag {id}: tool {out}, API {direct}"
            );
            Ok(())
        })
        .await;
        // Dependents go first: a flag others depend on cannot be deleted.
        discard_flag(s, dependent).await;
    } else {
        r.not_run(
            &["feature-flags-dependent-flags-retrieve"],
            "no dependent flag",
        );
    }

    r.tool("delete-feature-flag", async {
        let before = activity_count(s, id).await?;
        let input = with_version(s, id, json!({"id": id})).await?;
        cat.call("delete-feature-flag", input).await?;
        let stored = flag(s, id).await?;
        ensure!(stored["deleted"] == true, "GET after delete: {stored}");
        let listed = get(s, &s.flags_path(&format!("?search={key}"))).await?;
        ensure!(
            ids(&listed).is_empty(),
            "the deleted flag is still listed: {listed}"
        );
        logged(s, id, before, "deleted", None).await
    })
    .await;

    r.finish();
}

// ---------------------------------------------------------------------------------------------
// Feature flags: the state and rollout actions

#[tokio::test]
async fn feature_flag_state_and_rollout_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("feature-flag state and rollout tools");
    let (s, cat) = (&s, &cat);
    let key = unique_key("catalog-state");
    let Some(id) = r
        .need(
            "a flag (POST feature_flags/)",
            new_flag(s, &key, everyone(30)),
        )
        .await
    else {
        return r.finish();
    };

    r.tool("update-feature-flag", async {
        let input = json!({"id": id, "name": "renamed by the tool catalog"});
        change_flag(
            cat,
            id,
            "update-feature-flag",
            input,
            ("updated", Some("name")),
            |_, stored| {
                ensure!(
                    stored["name"] == "renamed by the tool catalog",
                    "name not changed: {stored}"
                );
                Ok(())
            },
        )
        .await
    })
    .await;

    r.tool("feature-flag-disable", switch_flag(cat, id, false))
        .await;

    r.tool("feature-flag-enable", async {
        // Disabled through the API first, so the tool has something to change.
        patch_flag(s, id, json!({"active": false})).await?;
        switch_flag(cat, id, true).await
    })
    .await;

    r.tool("feature-flag-set-release-condition-rollout", async {
        let input = json!({"id": id, "condition_index": 0, "rollout_percentage": 55});
        change_flag(
            cat,
            id,
            "feature-flag-set-release-condition-rollout",
            with_version(s, id, input).await?,
            ("updated", Some("filters")),
            |_, stored| {
                ensure!(
                    stored["filters"]["groups"][0]["rollout_percentage"] == 55,
                    "condition 0 not at 55 %: {}",
                    stored["filters"]
                );
                Ok(())
            },
        )
        .await
    })
    .await;

    r.tool("feature-flag-roll-out-to-everyone", async {
        // Targeted first, so that rolling out adds a condition for everyone above it.
        patch_flag(s, id, json!({"filters": plan_is("catalog-nobody")})).await?;
        let before = activity_count(s, id).await?;
        let input = with_version(s, id, json!({"id": id})).await?;
        cat.call("feature-flag-roll-out-to-everyone", input).await?;
        let stored = flag(s, id).await?;
        let groups = stored["filters"]["groups"].clone();
        ensure!(
            groups[0]["rollout_percentage"] == 100
                && groups[0]["properties"].as_array().is_none_or(Vec::is_empty)
                && groups[1]["properties"][0]["value"] == json!(["catalog-nobody"]),
            "no 100 % condition for everyone above the old one: {groups}"
        );
        ensure!(
            flags_value(s, &unique_key("anyone"), &key).await? == true,
            "/flags does not serve the rolled-out flag to anyone"
        );
        logged(s, id, before, "updated", Some("filters")).await
    })
    .await;

    r.tool("feature-flag-archive", async {
        change_flag(
            cat,
            id,
            "feature-flag-archive",
            json!({"id": id}),
            ("updated", None),
            |out, stored| {
                ensure!(
                    out["archived"] == true && out["active"] == false,
                    "the tool's answer: {out}"
                );
                ensure!(
                    stored["archived"] == true && stored["active"] == false,
                    "GET after archive (an archived flag is also disabled): {stored}"
                );
                Ok(())
            },
        )
        .await
    })
    .await;

    r.tool("feature-flag-unarchive", async {
        change_flag(
            cat,
            id,
            "feature-flag-unarchive",
            json!({"id": id}),
            ("updated", None),
            |out, stored| {
                ensure!(out["archived"] == false, "the tool's answer: {out}");
                ensure!(stored["archived"] == false, "GET after unarchive: {stored}");
                Ok(())
            },
        )
        .await
    })
    .await;

    discard_flag(s, id).await;
    r.finish();
}

// ---------------------------------------------------------------------------------------------
// Feature flags: bulk actions and evaluation

#[tokio::test]
async fn feature_flag_bulk_and_evaluation_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("feature-flag bulk and evaluation tools");
    let (s, cat) = (&s, &cat);
    let stem = unique_key("catalog-bulk");
    let plan = format!("{stem}-plan");

    // Three persons on a plan no other test uses, one on another plan.
    let people: Vec<(String, Value)> = (0..4)
        .map(|i| {
            let p = if i < 3 {
                plan.clone()
            } else {
                format!("{plan}-other")
            };
            (format!("{stem}-person-{i}"), json!({"plan": p}))
        })
        .collect();
    if r.need("persons (POST /batch/)", capture_persons(s, &people))
        .await
        .is_none()
    {
        return r.finish();
    }
    let targeted_key = format!("{stem}-targeted");
    let everyone_key = format!("{stem}-everyone");
    let spare_key = format!("{stem}-spare");
    let made = r
        .need("three flags (POST feature_flags/)", async {
            Ok((
                new_flag(s, &targeted_key, plan_is(&plan)).await?,
                new_flag(s, &everyone_key, everyone(100)).await?,
                new_flag(s, &spare_key, everyone(0)).await?,
            ))
        })
        .await;
    let Some((targeted, all, spare)) = made else {
        return r.finish();
    };

    r.tool("feature-flags-bulk-keys-retrieve", async {
        let out = cat
            .call(
                "feature-flags-bulk-keys-retrieve",
                json!({"ids": [targeted, all, 2_000_000_000_i64]}),
            )
            .await?;
        let want = json!({targeted.to_string(): targeted_key, all.to_string(): everyone_key});
        ensure!(
            out["keys"] == want,
            "keys {}: expected {want} (the unknown id left out)",
            out["keys"]
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-bulk-update-tags-create", async {
        let tag = "catalog-bulk-tag";
        let before = (
            activity_count(s, targeted).await?,
            activity_count(s, all).await?,
        );
        let out = cat
            .call(
                "feature-flags-bulk-update-tags-create",
                json!({"ids": [targeted, all], "action": "add", "tags": [tag]}),
            )
            .await?;
        ensure!(
            out["updated"].as_array().map(Vec::len) == Some(2),
            "`updated` should list both flags: {out}"
        );
        for (id, before) in [(targeted, before.0), (all, before.1)] {
            let stored = flag(s, id).await?;
            ensure!(
                stored["tags"] == json!([tag]),
                "flag {id} tags after add: {}",
                stored["tags"]
            );
            logged(s, id, before, "updated", Some("tags")).await?;
        }
        cat.call(
            "feature-flags-bulk-update-tags-create",
            json!({"ids": [targeted], "action": "remove", "tags": [tag]}),
        )
        .await?;
        let stored = flag(s, targeted).await?;
        ensure!(
            stored["tags"] == json!([]),
            "flag {targeted} tags after remove: {}",
            stored["tags"]
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-user-blast-radius-create", async {
        let condition = plan_is(&plan)["groups"][0].clone();
        let out = cat
            .call(
                "feature-flags-user-blast-radius-create",
                json!({"condition": condition}),
            )
            .await?;
        ensure!(
            out["users_affected"] == 3 && out["total_users"].as_i64().is_some_and(|t| t >= 4),
            "expected the 3 persons on {plan} of at least 4: {out}"
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-evaluation-reasons-retrieve", async {
        let person = &people[0].0;
        let out = cat
            .call(
                "feature-flags-evaluation-reasons-retrieve",
                json!({"distinct_id": person, "flag_keys": [targeted_key]}),
            )
            .await?;
        let entry = &out[targeted_key.as_str()];
        ensure!(
            entry["value"] == true
                && entry["evaluation"]["reason"] == "condition_match"
                && entry["evaluation"]["condition_index"] == 0,
            "{targeted_key} for {person}: {out}"
        );
        ensure!(
            flags_value(s, person, &targeted_key).await? == entry["value"],
            "/flags disagrees with the tool"
        );
        let other = &people[3].0;
        let out = cat
            .call(
                "feature-flags-evaluation-reasons-retrieve",
                json!({"distinct_id": other, "flag_keys": [targeted_key]}),
            )
            .await?;
        ensure!(
            out[targeted_key.as_str()]["value"] == false
                && out[targeted_key.as_str()]["evaluation"]["reason"] == "no_condition_match",
            "{targeted_key} for {other} (another plan): {out}"
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-my-flags-retrieve", async {
        let out = cat
            .call(
                "feature-flags-my-flags-retrieve",
                json!({"flag_keys": [everyone_key, spare_key]}),
            )
            .await?;
        let listed = items(&out);
        let value_of = |key: &str| {
            listed
                .iter()
                .find(|i| i["feature_flag"]["key"] == key)
                .map(|i| i["value"].clone())
        };
        ensure!(
            value_of(&everyone_key) == Some(json!(true))
                && value_of(&spare_key) == Some(json!(false)),
            "expected {everyone_key}: true and {spare_key}: false: {out}"
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-test-evaluation-create", async {
        for (person, want) in [(&people[0].0, true), (&people[3].0, false)] {
            let out = cat
                .call(
                    "feature-flags-test-evaluation-create",
                    json!({"id": targeted, "distinct_id": person}),
                )
                .await?;
            ensure!(
                out["flag_key"] == targeted_key.as_str() && out["result"] == want,
                "{targeted_key} for {person}: expected {want}: {out}"
            );
            ensure!(
                flags_value(s, person, &targeted_key).await? == want,
                "/flags disagrees for {person}"
            );
        }
        // By person id too.
        let uuid = person_uuid(s, &people[1].0).await?;
        let out = cat
            .call(
                "feature-flags-test-evaluation-create",
                json!({"id": targeted, "person_id": uuid}),
            )
            .await?;
        ensure!(out["result"] == true, "by person_id {uuid}: {out}");
        Ok(())
    })
    .await;

    r.tool("feature-flags-bulk-delete-create", async {
        let before = activity_count(s, all).await?;
        let out = cat
            .call(
                "feature-flags-bulk-delete-create",
                json!({"ids": [all, spare]}),
            )
            .await?;
        ensure!(
            out["deleted"].as_array().map(Vec::len) == Some(2)
                && out["errors"].as_array().is_some_and(Vec::is_empty),
            "expected both deleted and no errors: {out}"
        );
        for id in [all, spare] {
            let stored = flag(s, id).await?;
            ensure!(
                stored["deleted"] == true,
                "flag {id} after bulk delete: {stored}"
            );
        }
        ensure!(
            flag(s, targeted).await?["deleted"] == false,
            "a flag not named was deleted"
        );
        logged(s, all, before, "deleted", None).await
    })
    .await;

    discard_flag(s, targeted).await;
    r.finish();
}

// ---------------------------------------------------------------------------------------------
// Organizations, projects, users; copying flags into another project

#[tokio::test]
async fn organization_and_user_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("organization, project and user tools");
    let (s, cat) = (&s, &cat);
    let stem = unique_key("catalog-org");

    let Some((project, org, me)) = context(s, &mut r).await else {
        return r.finish();
    };

    r.tool("organizations-list", async {
        let out = cat.call("organizations-list", json!({})).await?;
        let direct = get(s, "/api/organizations/").await?;
        ensure!(
            ids(&out).contains(&json!(org)) && ids(&direct).contains(&json!(org)),
            "organization {org} is not listed: tool {out}, API {direct}"
        );
        Ok(())
    })
    .await;

    r.tool("organizations-get", async {
        let out = cat.call("organizations-get", json!({})).await?;
        ensure!(
            ids(&out).contains(&json!(org)),
            "organization {org} is not listed: {out}"
        );
        Ok(())
    })
    .await;

    r.tool("organization-get", async {
        let out = cat.call("organization-get", json!({})).await?;
        let direct = get(s, &format!("/api/organizations/{org}/")).await?;
        ensure!(
            out["id"] == org.as_str() && out["name"] == direct["name"],
            "the active organization: tool {out}, API {direct}"
        );
        Ok(())
    })
    .await;

    r.tool("switch-organization", async {
        let out = cat
            .call("switch-organization", json!({"orgId": org}))
            .await?;
        ensure!(
            out.to_string()
                .contains(&format!("Switched to organization {org}")),
            "{out}"
        );
        Ok(())
    })
    .await;

    if let Some(me) = &me {
        r.tool("user-get", async {
            let out = cat.call("user-get", json!({})).await?;
            ensure!(
                out["email"] == me["email"] && out["uuid"] == me["uuid"],
                "the tool's user {out} is not GET /api/users/@me/ {me}"
            );
            Ok(())
        })
        .await;

        r.tool("org-members-list", async {
            let out = cat.call("org-members-list", json!({})).await?;
            ensure!(
                items(&out)
                    .iter()
                    .any(|m| m["user"]["email"] == me["email"]),
                "{} is not a member of {org}: {out}",
                me["email"]
            );
            Ok(())
        })
        .await;

        r.tool("user-settings-update", async {
            let original = me["first_name"].clone();
            let name = format!("Catalog {}", &stem[stem.len() - 6..]);
            cat.call(
                "user-settings-update",
                json!({"uuid": "@me", "first_name": name}),
            )
            .await?;
            let now = get(s, "/api/users/@me/").await?;
            // Put the seeded user's name back for the other tests.
            api(
                s,
                "PATCH",
                "/api/users/@me/",
                Some(&json!({"first_name": original})),
            )
            .await?;
            ensure!(
                now["first_name"] == name.as_str(),
                "first_name after the update: {now}"
            );
            Ok(())
        })
        .await;
    } else {
        r.not_run(
            &["user-get", "org-members-list", "user-settings-update"],
            "GET /api/users/@me/ failed",
        );
    }

    r.tool("user-home-settings-get", async {
        let out = cat
            .call("user-home-settings-get", json!({"uuid": "@me"}))
            .await?;
        let direct = get(s, "/api/user_home_settings/@me/").await?;
        ensure!(
            out["homepage"] == direct["homepage"] && out["tabs"] == direct["tabs"],
            "tool {out}, API {direct}"
        );
        Ok(())
    })
    .await;

    r.tool("user-home-settings-update", async {
        let pathname = format!("/project/{}/feature_flags", s.project_id);
        cat.call(
            "user-home-settings-update",
            json!({"uuid": "@me", "homepage": {"pathname": pathname, "search": "", "hash": "",
                   "title": "Feature flags", "iconType": "feature_flag"}}),
        )
        .await?;
        let direct = get(s, "/api/user_home_settings/@me/").await?;
        ensure!(
            direct["homepage"]["pathname"] == pathname.as_str(),
            "homepage after the update: {direct}"
        );
        Ok(())
    })
    .await;

    r.tool("project-get", async {
        let out = cat.call("project-get", json!({})).await?;
        ensure!(
            out["id"] == s.project_id && out["name"] == project["name"],
            "the active project: tool {out}, API {project}"
        );
        Ok(())
    })
    .await;

    r.tool("projects-get", async {
        let out = cat.call("projects-get", json!({})).await?;
        ensure!(
            ids(&out).contains(&json!(s.project_id)),
            "project {} is not listed: {out}",
            s.project_id
        );
        Ok(())
    })
    .await;

    r.tool("switch-project", async {
        let out = cat
            .call("switch-project", json!({"projectId": s.project_id}))
            .await?;
        // The context it reports comes from the project and its organization.
        let text = out.to_string();
        ensure!(
            text.contains(&format!("Switched to project {}", s.project_id))
                && text.contains(&format!("(id: {org})")),
            "{out}"
        );
        Ok(())
    })
    .await;

    r.finish();
}

/// The seeded project, its organization and the user (the latter None if unreadable), through
/// the API.
async fn context(s: &Server, r: &mut Report) -> Option<(Value, String, Option<Value>)> {
    let project = r
        .need(
            "GET /api/projects/{id}/",
            get(s, &format!("/api/projects/{}/", s.project_id)),
        )
        .await?;
    let org = r
        .need("the project's organization", async {
            project["organization"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("GET /api/projects/{{id}}/ has no organization: {project}"))
        })
        .await?;
    let me = r
        .need("GET /api/users/@me/", get(s, "/api/users/@me/"))
        .await;
    Some((project, org, me))
}

#[tokio::test]
async fn project_create_and_copy_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("project creation and flag copy tools");
    let (s, cat) = (&s, &cat);
    let stem = unique_key("catalog-copy");
    let Some((_, org, me)) = context(s, &mut r).await else {
        return r.finish();
    };

    // A second project in the organization: made by project-create, then used to copy flags to.
    let name = format!("{stem}-second");
    let mut second = None;
    r.tool("project-create", async {
        let out = cat.call("project-create", json!({"name": name})).await?;
        let id = out["id"]
            .as_i64()
            .ok_or_else(|| format!("no id in the tool's answer: {out}"))?;
        second = Some(id);
        ensure!(out["organization"] == org.as_str(), "not in {org}: {out}");
        let stored = get(s, &format!("/api/projects/{id}/")).await?;
        ensure!(
            stored["name"] == name.as_str(),
            "GET the new project: {stored}"
        );
        let listed = get(s, &format!("/api/organizations/{org}/projects/")).await?;
        ensure!(
            ids(&listed).contains(&json!(id)),
            "the new project is not in the organization's list: {listed}"
        );
        let mine = get(s, "/api/projects/").await?;
        ensure!(
            ids(&mine).contains(&json!(id)),
            "the new project is not in GET /api/projects/: {mine}"
        );
        Ok(())
    })
    .await;

    let copy_tools = [
        "project-settings-update",
        "switch-project (unpinned, to the new project)",
        "feature-flags-copy-dependencies-check",
        "feature-flags-copy-flags-create",
    ];
    let Some(second) = second else {
        r.not_run(&copy_tools, "project-create failed");
        return r.finish();
    };

    if let Some(me) = &me {
        r.tool("projects-get with a key restricted to one project", async {
            let user = me["id"]
                .as_i64()
                .ok_or_else(|| format!("GET /api/users/@me/ has no id: {me}"))?;
            let mut restricted = Catalog::new(s);
            restricted.key = scoped_key(user, "*", Some(s.project_id))?;
            let out = restricted.call("projects-get", json!({})).await?;
            ensure!(
                ids(&out) == vec![json!(s.project_id)],
                "a key restricted to project {} lists {:?} (project {second} is in the \
                 organization too)",
                s.project_id,
                ids(&out)
            );
            Ok(())
        })
        .await;
    }

    r.tool("project-settings-update", async {
        let renamed = format!("{name} renamed");
        cat.call(
            "project-settings-update",
            json!({"id": second, "name": renamed, "product_description": "copies of flags"}),
        )
        .await?;
        let stored = get(s, &format!("/api/projects/{second}/")).await?;
        ensure!(
            stored["name"] == renamed.as_str(),
            "GET after the update: {stored}"
        );
        Ok(())
    })
    .await;

    r.tool("switch-project (unpinned, to the new project)", async {
        // Without POSTHOG_PROJECT_ID the CLI starts from the user's current project and may
        // switch to any project of theirs.
        let out = cat
            .unpinned()
            .call("switch-project", json!({"projectId": second}))
            .await?;
        ensure!(
            out.to_string()
                .contains(&format!("Switched to project {second}")),
            "{out}"
        );
        Ok(())
    })
    .await;

    // A flag with a dependency, to copy with it.
    let dep_key = format!("{stem}-dependency");
    let main_key = format!("{stem}-copied");
    let made = r
        .need(
            "a flag and the flag it depends on (POST feature_flags/)",
            async {
                let dep = new_flag(s, &dep_key, everyone(100)).await?;
                let main = new_flag(
                    s,
                    &main_key,
                    json!({"groups": [{"properties": [{"key": dep.to_string(), "type": "flag",
                    "operator": "flag_evaluates_to", "value": true}], "rollout_percentage": 40}]}),
                )
                .await?;
                Ok((dep, main))
            },
        )
        .await;
    if made.is_none() {
        r.not_run(&copy_tools[2..], "no flags to copy");
        return r.finish();
    }

    r.tool("feature-flags-copy-dependencies-check", async {
        let out = cat
            .call(
                "feature-flags-copy-dependencies-check",
                json!({"feature_flag_key": main_key, "from_project": s.project_id,
                       "target_project_ids": [second]}),
            )
            .await?;
        ensure!(
            out["dependency_count"] == 1 && out["copied_dependency_keys"] == json!([dep_key]),
            "expected one dependency ({dep_key}) to copy: {out}"
        );
        let listed = get(
            s,
            &format!("/api/projects/{second}/feature_flags/?search={stem}"),
        )
        .await?;
        ensure!(
            ids(&listed).is_empty(),
            "the check copied something: {listed}"
        );
        Ok(())
    })
    .await;

    r.tool("feature-flags-copy-flags-create", async {
        let out = cat
            .call(
                "feature-flags-copy-flags-create",
                json!({"feature_flag_key": main_key, "from_project": s.project_id,
                       "target_project_ids": [second], "copy_dependencies": true}),
            )
            .await?;
        ensure!(
            out["success"].as_array().map(Vec::len) == Some(1)
                && out["failed"].as_array().is_some_and(Vec::is_empty),
            "expected one copy and no failure: {out}"
        );
        let in_second = |key: String| async move {
            let listed = get(
                s,
                &format!("/api/projects/{second}/feature_flags/?key={key}"),
            )
            .await?;
            listed["results"]
                .get(0)
                .cloned()
                .ok_or_else(|| format!("{key} is not in project {second}: {listed}"))
        };
        let copy = in_second(main_key.clone()).await?;
        let dep_copy = in_second(dep_key.clone()).await?;
        // The copy depends on the dependency's copy, not on the source project's flag.
        let depends_on = copy["filters"]["groups"][0]["properties"][0]["key"].clone();
        ensure!(
            depends_on == dep_copy["id"].to_string().as_str()
                && copy["filters"]["groups"][0]["rollout_percentage"] == 40,
            "the copy's condition should point at {} (the copied dependency): {}",
            dep_copy["id"],
            copy["filters"]
        );
        let entries = get(
            s,
            &format!(
                "/api/projects/{second}/feature_flags/{}/activity/",
                copy["id"]
            ),
        )
        .await?;
        ensure!(
            entries["results"][0]["activity"] == "created",
            "the copy has no `created` activity entry: {entries}"
        );
        Ok(())
    })
    .await;

    r.finish();
}

// ---------------------------------------------------------------------------------------------
// Persons and cohorts

#[tokio::test]
async fn person_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("person tools");
    let (s, cat) = (&s, &cat);
    let stem = unique_key("catalog-person");
    let plan = format!("{stem}-plan");
    let Some((people, uuids)) = four_persons(s, &mut r, &stem, &plan).await else {
        return r.finish();
    };
    let first = &people[0].0;

    r.tool("persons-list", async {
        let out = cat
            .call("persons-list", json!({"distinct_id": first}))
            .await?;
        ensure!(
            out["results"].as_array().map(Vec::len) == Some(1)
                && out["results"][0]["uuid"] == uuids[0].as_str(),
            "expected just {first} ({}): {out}",
            uuids[0]
        );
        Ok(())
    })
    .await;

    r.tool("persons-retrieve", async {
        let out = cat
            .call("persons-retrieve", json!({"id": uuids[0]}))
            .await?;
        ensure!(
            out["uuid"] == uuids[0].as_str()
                && out["distinct_ids"] == json!([first])
                && out["properties"]["plan"] == plan.as_str(),
            "person {}: {out}",
            uuids[0]
        );
        Ok(())
    })
    .await;

    r.tool("persons-property-set", async {
        cat.call(
            "persons-property-set",
            json!({"id": uuids[0], "key": "tier", "value": "gold"}),
        )
        .await?;
        let stored = person(s, first).await?.unwrap_or_default();
        ensure!(
            stored["properties"]["tier"] == "gold" && stored["properties"]["plan"] == plan.as_str(),
            "{first} after setting tier: {stored}"
        );
        Ok(())
    })
    .await;

    r.tool("persons-property-delete", async {
        cat.call(
            "persons-property-delete",
            json!({"id": uuids[0], "unset": "email"}),
        )
        .await?;
        let stored = person(s, first).await?.unwrap_or_default();
        ensure!(
            stored["properties"].get("email").is_none()
                && stored["properties"]["plan"] == plan.as_str(),
            "{first} after deleting email: {stored}"
        );
        Ok(())
    })
    .await;

    r.tool("persons-values-retrieve", async {
        let out = cat
            .call(
                "persons-values-retrieve",
                json!({"key": "plan", "value": plan}),
            )
            .await?;
        ensure!(
            items(&out)
                .iter()
                .any(|v| v["name"] == plan.as_str() && v["count"] == 4),
            "expected {{\"name\": {plan}, \"count\": 4}}: {out}"
        );
        Ok(())
    })
    .await;

    r.tool("persons-bulk-delete", async {
        let (by_id, by_distinct_id) = (&people[2].0, &people[3].0);
        cat.call("persons-bulk-delete", json!({"ids": [uuids[2]]}))
            .await?;
        cat.call(
            "persons-bulk-delete",
            json!({"distinct_ids": [by_distinct_id]}),
        )
        .await?;
        for id in [by_id, by_distinct_id] {
            let left = person(s, id).await?;
            ensure!(left.is_none(), "{id} still exists: {left:?}");
        }
        ensure!(
            person(s, first).await?.is_some(),
            "{first}, not named, was deleted"
        );
        Ok(())
    })
    .await;

    r.finish();
}

/// Four persons on `plan` (with emails), captured as an SDK would; their distinct ids and
/// properties, and their uuids.
async fn four_persons(
    s: &Server,
    r: &mut Report,
    stem: &str,
    plan: &str,
) -> Option<(Vec<(String, Value)>, Vec<String>)> {
    let people: Vec<(String, Value)> = (0..4)
        .map(|i| {
            let id = format!("{stem}-{i}");
            (
                id.clone(),
                json!({"plan": plan, "email": format!("{id}@catalog.test")}),
            )
        })
        .collect();
    r.need("persons (POST /batch/)", capture_persons(s, &people))
        .await?;
    let uuids = r
        .need("their uuids (GET persons/?distinct_id=)", async {
            let mut uuids = Vec::new();
            for (id, _) in &people {
                uuids.push(person_uuid(s, id).await?);
            }
            Ok(uuids)
        })
        .await?;
    Some((people, uuids))
}

#[tokio::test]
async fn cohort_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("cohort tools");
    let (s, cat) = (&s, &cat);
    let stem = unique_key("catalog-cohort");
    let plan = format!("{stem}-plan");
    let Some((people, uuids)) = four_persons(s, &mut r, &stem, &plan).await else {
        return r.finish();
    };
    let first = &people[0].0;

    let cohort_name = format!("{stem} static");
    let mut cohort = None;
    r.tool("cohorts-create", async {
        let out = cat
            .call(
                "cohorts-create",
                json!({"name": cohort_name, "is_static": true}),
            )
            .await?;
        let id = out["id"]
            .as_i64()
            .ok_or_else(|| format!("no id in the tool's answer: {out}"))?;
        cohort = Some(id);
        let stored = get(s, &project_path(s, &format!("cohorts/{id}/"))).await?;
        ensure!(
            stored["name"] == cohort_name.as_str() && stored["is_static"] == true,
            "GET the new cohort: {stored}"
        );
        Ok(())
    })
    .await;

    // A property cohort too: its definition is stored as sent.
    r.tool("cohorts-create (property cohort)", async {
        let filters = json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            {"key": "plan", "type": "person", "operator": "exact", "value": [plan]}]}]}});
        let out = cat
            .call(
                "cohorts-create",
                json!({"name": format!("{stem} property"), "filters": filters}),
            )
            .await?;
        let id = out["id"]
            .as_i64()
            .ok_or_else(|| format!("no id in the tool's answer: {out}"))?;
        let stored = get(s, &project_path(s, &format!("cohorts/{id}/"))).await?;
        ensure!(
            stored["is_static"] == false
                && stored["filters"]["properties"]["values"][0]["values"][0]["value"]
                    == json!([plan]),
            "GET the new cohort: {stored}"
        );
        api(
            s,
            "PATCH",
            &project_path(s, &format!("cohorts/{id}/")),
            Some(&json!({"deleted": true})),
        )
        .await?;
        Ok(())
    })
    .await;

    let cohort_tools = [
        "cohorts-add-persons-to-static-cohort-partial-update",
        "persons-cohorts-retrieve",
        "cohorts-rm-person-from-static-cohort-partial-update",
        "cohorts-list",
        "cohorts-retrieve",
        "cohorts-partial-update",
    ];
    let cohort = match cohort {
        Some(id) => Some(id),
        None => {
            r.need("a static cohort (POST cohorts/)", async {
                let made = api(
                    s,
                    "POST",
                    &project_path(s, "cohorts/"),
                    Some(&json!({"name": cohort_name, "is_static": true})),
                )
                .await?;
                made["id"].as_i64().ok_or_else(|| format!("no id: {made}"))
            })
            .await
        }
    };
    if let Some(cohort) = cohort {
        let members = |cohort: i64| async move {
            let page = get(s, &project_path(s, &format!("cohorts/{cohort}/persons/"))).await?;
            let mut found: Vec<String> = page["results"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p["uuid"].as_str().map(str::to_string))
                .collect();
            found.sort();
            Ok::<_, String>(found)
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };

        r.tool(cohort_tools[0], async {
            cat.call(
                cohort_tools[0],
                json!({"id": cohort, "person_ids": [uuids[0], uuids[1]]}),
            )
            .await?;
            let found = members(cohort).await?;
            ensure!(
                found == sorted(vec![uuids[0].clone(), uuids[1].clone()]),
                "members after adding two: {found:?}"
            );
            Ok(())
        })
        .await;

        r.tool(cohort_tools[1], async {
            let out = cat
                .call(cohort_tools[1], json!({"person_id": uuids[0]}))
                .await?;
            ensure!(
                ids(&out).contains(&json!(cohort)),
                "cohort {cohort} is not among {first}'s cohorts: {out}"
            );
            Ok(())
        })
        .await;

        r.tool(cohort_tools[2], async {
            cat.call(
                cohort_tools[2],
                json!({"id": cohort, "person_id": uuids[1]}),
            )
            .await?;
            let found = members(cohort).await?;
            ensure!(
                found == vec![uuids[0].clone()],
                "members after removing one: {found:?}"
            );
            Ok(())
        })
        .await;

        r.tool(cohort_tools[3], async {
            let out = cat
                .call(cohort_tools[3], json!({"search": cohort_name}))
                .await?;
            ensure!(
                ids(&out).contains(&json!(cohort)),
                "cohort {cohort} is not listed: {out}"
            );
            Ok(())
        })
        .await;

        r.tool(cohort_tools[4], async {
            let out = cat.call(cohort_tools[4], json!({"id": cohort})).await?;
            ensure!(
                out["id"] == cohort && out["name"] == cohort_name.as_str(),
                "cohort {cohort}: {out}"
            );
            Ok(())
        })
        .await;

        r.tool(cohort_tools[5], async {
            let renamed = format!("{cohort_name} renamed");
            cat.call(cohort_tools[5], json!({"id": cohort, "name": renamed}))
                .await?;
            let stored = get(s, &project_path(s, &format!("cohorts/{cohort}/"))).await?;
            ensure!(
                stored["name"] == renamed.as_str(),
                "GET after rename: {stored}"
            );
            cat.call(cohort_tools[5], json!({"id": cohort, "deleted": true}))
                .await?;
            let stored = get(s, &project_path(s, &format!("cohorts/{cohort}/"))).await?;
            ensure!(stored["deleted"] == true, "GET after delete: {stored}");
            Ok(())
        })
        .await;
    } else {
        r.not_run(&cohort_tools, "no static cohort");
    }

    r.finish();
}

// ---------------------------------------------------------------------------------------------
// Early access features

#[tokio::test]
async fn early_access_tools() {
    let s = Server::from_env();
    let cat = Catalog::new(&s);
    let mut r = Report::new("early access tools");
    let (s, cat) = (&s, &cat);
    let name = unique_key("Catalog beta");
    let path = |id: &str| project_path(s, &format!("early_access_feature/{id}/"));

    let mut created = None;
    r.tool("early-access-feature-create", async {
        let out = cat
            .call(
                "early-access-feature-create",
                json!({"name": name, "stage": "beta", "description": "made by the tool catalog"}),
            )
            .await?;
        let id = out["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no id in the tool's answer: {out}"))?;
        created = Some(id.clone());
        let stored = get(s, &path(&id)).await?;
        ensure!(
            stored["name"] == name.as_str() && stored["stage"] == "beta",
            "GET the new feature: {stored}"
        );
        // Its flag was made with it, served to those who opt in.
        let flag_id = stored["feature_flag"]["id"]
            .as_i64()
            .ok_or_else(|| format!("no linked flag: {stored}"))?;
        let linked = flag(s, flag_id).await?;
        let gate = &linked["filters"]["super_groups"][0]["properties"][0]["key"];
        ensure!(
            gate.as_str()
                .is_some_and(|k| k.starts_with("$feature_enrollment/")),
            "the linked flag is not served to those who opt in: {linked}"
        );
        Ok(())
    })
    .await;
    let id = match created {
        Some(id) => id,
        None => match r
            .need(
                "an early access feature (POST early_access_feature/)",
                async {
                    let made = api(
                        s,
                        "POST",
                        &project_path(s, "early_access_feature/"),
                        Some(&json!({"name": name, "stage": "beta"})),
                    )
                    .await?;
                    made["id"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("no id: {made}"))
                },
            )
            .await
        {
            Some(id) => id,
            None => return r.finish(),
        },
    };

    r.tool("early-access-feature-list", async {
        let out = cat.call("early-access-feature-list", json!({})).await?;
        ensure!(ids(&out).contains(&json!(id)), "{id} is not listed: {out}");
        Ok(())
    })
    .await;

    r.tool("early-access-feature-retrieve", async {
        let out = cat
            .call("early-access-feature-retrieve", json!({"id": id}))
            .await?;
        ensure!(
            out["id"] == id.as_str() && out["name"] == name.as_str(),
            "{out}"
        );
        Ok(())
    })
    .await;

    r.tool("early-access-feature-partial-update", async {
        cat.call(
            "early-access-feature-partial-update",
            json!({"id": id, "stage": "alpha", "description": "changed by the tool catalog"}),
        )
        .await?;
        let stored = get(s, &path(&id)).await?;
        ensure!(
            stored["stage"] == "alpha" && stored["description"] == "changed by the tool catalog",
            "GET after the update: {stored}"
        );
        Ok(())
    })
    .await;

    r.tool("early-access-feature-destroy", async {
        cat.call("early-access-feature-destroy", json!({"id": id}))
            .await?;
        let reply = s.call("GET", &path(&id), None).await;
        ensure!(
            reply.status == 404,
            "GET after destroy -> {}: {}",
            reply.status,
            reply.text
        );
        Ok(())
    })
    .await;

    r.finish();
}

// ---------------------------------------------------------------------------------------------
// @posthog/agent-toolkit

/// Tools of @posthog/agent-toolkit 0.2.4 and the scopes each needs (its tool-definitions.json):
/// a key is offered a tool when it has every scope listed (`*` has all; `x:write` implies
/// `x:read`). `docs-search` needs none but is offered only with an Inkeep key, which
/// `PostHogAgentToolkit` never has, so a `*` key gets the other 42.
const TOOLKIT_ALL: usize = 42;
const TOOLKIT_FLAG_READ: &[&str] = &["feature-flag-get-all", "feature-flag-get-definition"];
const TOOLKIT_FLAG_WRITE: &[&str] = &[
    "create-feature-flag",
    "delete-feature-flag",
    "update-feature-flag",
];
const TOOLKIT_TENANCY: &[&str] = &[
    // organization:read
    "organization-details-get",
    "switch-organization",
    "projects-get",
    // user:read
    "organizations-get",
    // project:read
    "switch-project",
];

/// A personal API key with these scopes for the seeded user (restricted to `project` if given),
/// made with `flagsctl` as an operator would: the API has no endpoint that creates keys (PostHog
/// makes them in its web app). `make test` passes the DynamoDB endpoint and the table prefix of
/// the served tables (DYNAMODB_ENDPOINT, E2E_TABLE_PREFIX; against `make dev` the prefix is
/// empty).
fn scoped_key(user_id: i64, scopes: &str, project: Option<i64>) -> Check<String> {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .map_err(|_| "DYNAMODB_ENDPOINT is not set: run with `make test`".to_string())?;
    let prefix = std::env::var("E2E_TABLE_PREFIX").unwrap_or_default();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| checkout().join("target"));
    let flagsctl = target.join("debug/flagsctl");
    let mut command = std::process::Command::new(&flagsctl);
    for name in [
        "FLAGSCTL_AWS",
        "FLAGS_TABLE",
        "ACTIVITY_TABLE",
        "IDENTITY_TABLE",
        "EARLY_ACCESS_TABLE",
        "HASH_KEY_OVERRIDES_TABLE",
    ] {
        command.env_remove(name);
    }
    let output = command
        .args([
            "create-key",
            "--user",
            &user_id.to_string(),
            "--scopes",
            scopes,
        ])
        .args(["--label", "tool catalog test"])
        .args(project.map(|p| format!("--projects={p}")))
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("TABLE_PREFIX", prefix)
        .output()
        .map_err(|e| format!("running {} (built by `make test`): {e}", flagsctl.display()))?;
    ensure!(
        output.status.success(),
        "flagsctl create-key --scopes {scopes}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let made: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    made["key"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("flagsctl printed no key: {made}"))
}

#[tokio::test]
async fn agent_toolkit_lists_the_tools_of_the_key_scopes() {
    let s = Server::from_env();
    let mut r = Report::new("@posthog/agent-toolkit getTools()");
    let s = &s;
    let Some(me) = r
        .need("GET /api/users/@me/", get(s, "/api/users/@me/"))
        .await
    else {
        return r.finish();
    };
    let Some(user_id) = me["id"].as_i64() else {
        r.not_run(
            &["getTools()"],
            &format!("GET /api/users/@me/ has no id: {me}"),
        );
        return r.finish();
    };
    let cases: [(&str, &str); 4] = [
        ("flag-read", "feature_flag:read"),
        ("flag-write", "feature_flag:write"),
        ("tenancy", "organization:read,project:read,user:read"),
        ("unrelated", "insight:read"),
    ];
    let mut keys = serde_json::Map::new();
    keys.insert("star".into(), json!(s.personal_api_key));
    for (label, scopes) in cases {
        match scoped_key(user_id, scopes, None) {
            Ok(key) => {
                keys.insert(label.into(), json!(key));
            }
            Err(e) => {
                r.not_run(&[&format!("getTools() for a {scopes} key")], &e);
            }
        }
    }
    let flag_key = unique_key("catalog-toolkit");
    let made = r
        .need(
            "a flag (POST feature_flags/)",
            new_flag(s, &flag_key, everyone(100)),
        )
        .await;

    let spec = json!({"url": s.url, "keys": keys,
        "run": made.map(|_| json!({"label": "star", "flag_key": flag_key}))});
    let out = match run_toolkit(&spec) {
        Ok(out) => out,
        Err(e) => {
            r.not_run(&["getTools()"], &e);
            return r.finish();
        }
    };
    let current = get(s, "/api/personal_api_keys/@current").await;
    let listed = |label: &str| -> Vec<String> {
        out["tools"][label]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    };
    let exactly = |label: &str, want: Vec<&str>| -> Check {
        let mut want: Vec<String> = want.into_iter().map(str::to_string).collect();
        want.sort();
        let got = listed(label);
        ensure!(
            got == want,
            "the {label} key: getTools() lists {got:?}, expected {want:?} \
             (GET /api/personal_api_keys/@current with the * key: {current:?})"
        );
        Ok(())
    };

    r.tool("getTools() for a * key", async {
        let got = listed("star");
        let missing: Vec<&&str> = TOOLKIT_FLAG_READ
            .iter()
            .chain(TOOLKIT_FLAG_WRITE)
            .chain(TOOLKIT_TENANCY)
            .filter(|t| !got.iter().any(|g| g == **t))
            .collect();
        ensure!(
            missing.is_empty() && got.len() == TOOLKIT_ALL,
            "getTools() lacks {missing:?} ({} tools: {got:?}); \
             GET /api/personal_api_keys/@current: {current:?}",
            got.len()
        );
        Ok(())
    })
    .await;
    for (label, scopes) in cases {
        if !keys.contains_key(label) {
            continue;
        }
        let want: Vec<&str> = match label {
            "flag-read" => TOOLKIT_FLAG_READ.to_vec(),
            "flag-write" => TOOLKIT_FLAG_READ
                .iter()
                .chain(TOOLKIT_FLAG_WRITE)
                .copied()
                .collect(),
            "tenancy" => TOOLKIT_TENANCY.to_vec(),
            // insight:read: the insight tools, none of the flag or tenancy ones.
            _ => vec!["insight-get", "insights-get-all"],
        };
        r.tool(&format!("getTools() for a {scopes} key"), async {
            exactly(label, want)
        })
        .await;
    }

    if made.is_some() {
        r.tool("the toolkit's feature-flag-get-definition tool", async {
            let run = &out["run"];
            let text = run["result"].to_string();
            ensure!(
                run["error"].is_null() && text.contains(&flag_key),
                "executing it for {flag_key}: {run}"
            );
            Ok(())
        })
        .await;
    }

    // The same scopes hold for the tool catalog: a read-only key's write is refused.
    if let (Some(id), Some(read_key)) = (made, keys.get("flag-read").and_then(Value::as_str)) {
        r.tool(
            "the catalog with a feature_flag:read key: feature-flag-disable refused",
            async {
                let mut cat = Catalog::new(s);
                cat.key = read_key.to_string();
                let input = with_version(s, id, json!({"id": id})).await?;
                match cat.call("feature-flag-disable", input).await {
                    Ok(out) => Err(format!("a feature_flag:read key disabled flag {id}: {out}")),
                    Err(e) => {
                        // The CLI turns the 403 into "Permission denied" with the server's detail.
                        ensure!(
                            e.contains("missing required scope 'feature_flag:write'"),
                            "expected a 403 naming the missing scope: {e}"
                        );
                        ensure!(
                            flag(s, id).await?["active"] == true,
                            "the flag was disabled anyway"
                        );
                        Ok(())
                    }
                }
            },
        )
        .await;
    }
    if let Some(id) = made {
        discard_flag(s, id).await;
    }
    r.finish();
}

fn run_toolkit(spec: &Value) -> Check<Value> {
    let dir = std::env::temp_dir().join(unique_key("agent-toolkit"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
    let output = std::process::Command::new("node")
        .arg(checkout().join("tests/tools/agent_toolkit.mjs"))
        .arg(&spec_path)
        .env("HOME", &dir)
        .output()
        .map_err(|e| format!("running node (run `make setup`): {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    ensure!(
        output.status.success(),
        "agent_toolkit.mjs failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "agent_toolkit.mjs printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
