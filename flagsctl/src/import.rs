//! `flagsctl import`: copies a project from any PostHog-compatible host (PostHog Cloud,
//! self-hosted PostHog, another deployment of ours) into a project of this deployment through
//! both sides' public management APIs (docs/importing.md).
//!
//! Why the target is our HTTP API rather than the services over DynamoDB: the API applies every
//! rule a user's own request would (validation, activity log, `FlagService`'s one update path),
//! and encrypted payloads are re-encrypted by the functions that hold this deployment's payload
//! key (Secrets Manager), which flagsctl does not have. The target is reached with a personal API
//! key of the target deployment (`--to-host`, `--to-key`).
//!
//! Order: cohorts (a cohort's references to other cohorts rewritten), then flags in dependency
//! order (cohort and flag references rewritten to the target's ids), then early access features
//! (their linked flag by key). Keys stay the same. Matching for re-runs: flags by key, cohorts and
//! early access features by name; a match is updated only where it differs, so a re-run
//! (including one after an interruption) continues where the last stopped without duplicating.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

/// Page size asked of both APIs.
const PAGE: usize = 100;

pub struct Options {
    pub from_host: String,
    pub from_key: String,
    pub from_project: String,
    pub to_host: String,
    pub to_key: String,
    pub to_project: String,
    pub dry_run: bool,
}

struct Api {
    http: reqwest::Client,
    host: String,
    key: String,
    project: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/projects/{}/{path}",
            self.host.trim_end_matches('/'),
            self.project
        )
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        if !status.is_success() {
            let detail: String = text.chars().take(400).collect();
            return Err(format!("{method} {url}: {status}: {detail}"));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("{method} {url}: not JSON ({e})"))
    }

    /// Every result of a paginated list, following `next`.
    async fn list(&self, path: &str) -> Result<Vec<Value>, String> {
        let mut url = format!("{}?limit={PAGE}", self.url(path));
        let mut out = Vec::new();
        loop {
            let page = self.send(reqwest::Method::GET, &url, None).await?;
            match &page {
                Value::Array(items) => {
                    out.extend(items.iter().cloned());
                    return Ok(out);
                }
                _ => out.extend(page["results"].as_array().cloned().unwrap_or_default()),
            }
            match page["next"].as_str() {
                Some(next) if !next.is_empty() => url = next.to_string(),
                _ => return Ok(out),
            }
        }
    }
}

#[derive(Default)]
struct Summary {
    created: BTreeMap<&'static str, usize>,
    updated: BTreeMap<&'static str, usize>,
    unchanged: BTreeMap<&'static str, usize>,
    skipped: Vec<Value>,
    members: usize,
}

impl Summary {
    fn count(&mut self, kind: &'static str, outcome: Outcome) {
        let map = match outcome {
            Outcome::Created => &mut self.created,
            Outcome::Updated => &mut self.updated,
            Outcome::Unchanged => &mut self.unchanged,
        };
        *map.entry(kind).or_default() += 1;
    }

    fn skip(&mut self, kind: &str, name: &str, reason: String) {
        eprintln!("import: skipping {kind} {name}: {reason}");
        self.skipped
            .push(json!({"kind": kind, "name": name, "reason": reason}));
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Outcome {
    fn word(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Created, false) => "created",
            (Outcome::Created, true) => "would create",
            (Outcome::Updated, false) => "updated",
            (Outcome::Updated, true) => "would update",
            (Outcome::Unchanged, _) => "unchanged",
        }
    }
}

pub async fn run(options: Options) -> Result<Value, String> {
    let http = reqwest::Client::new();
    let source = Api {
        http: http.clone(),
        host: options.from_host,
        key: options.from_key,
        project: options.from_project,
    };
    let target = Api {
        http,
        host: options.to_host,
        key: options.to_key,
        project: options.to_project,
    };
    let dry_run = options.dry_run;
    let mut summary = Summary::default();

    eprintln!("import: reading the source project");
    let cohorts = live(source.list("cohorts/").await?);
    let flags = live(source.list("feature_flags/").await?);
    let features = live(source.list("early_access_feature/").await?);
    eprintln!(
        "import: {} cohorts, {} flags, {} early access features in the source",
        cohorts.len(),
        flags.len(),
        features.len()
    );
    let target_cohorts = by(&live(target.list("cohorts/").await?), "name");
    let target_flags = by(&live(target.list("feature_flags/").await?), "key");
    let target_features = by(&live(target.list("early_access_feature/").await?), "name");

    // Cohorts: source id → target id (a placeholder id in a dry run for new ones).
    let mut cohort_ids: HashMap<i64, i64> = HashMap::new();
    let mut skipped_cohorts: HashMap<i64, String> = HashMap::new();
    let ordered = dependency_order(&cohorts, |c| cohort_refs(&c["filters"]));
    for (i, cohort) in ordered.iter().enumerate() {
        let id = cohort["id"].as_i64().unwrap_or_default();
        let name = cohort["name"].as_str().unwrap_or("").to_string();
        let progress = format!("[{}/{}] cohort {name}", i + 1, ordered.len());
        if let Some(reason) = behavioural(&cohort["filters"]) {
            skipped_cohorts.insert(id, reason.clone());
            summary.skip("cohort", &name, reason);
            continue;
        }
        if let Some(missing) = cohort_refs(&cohort["filters"])
            .into_iter()
            .find(|r| !cohort_ids.contains_key(r))
        {
            let reason = format!("it uses cohort {missing}, which was not copied");
            skipped_cohorts.insert(id, reason.clone());
            summary.skip("cohort", &name, reason);
            continue;
        }
        let is_static = cohort["is_static"] == true;
        let mut body = json!({"name": name, "description": cohort["description"],
            "is_static": is_static});
        if !is_static {
            body["filters"] = rewrite(&cohort["filters"], &cohort_ids, &HashMap::new());
        }
        let existing = target_cohorts.get(&name);
        let members = match is_static {
            true => static_members(&source, id).await?,
            false => Vec::new(),
        };
        if existing.is_none() && !members.is_empty() {
            body["distinct_ids"] = json!(members);
        }
        let (outcome, target_id) = upsert(
            &target,
            "cohorts/",
            existing,
            &body,
            dry_run,
            -(i as i64) - 1,
        )
        .await?;
        let target_id = target_id.as_i64().unwrap_or_default();
        cohort_ids.insert(id, target_id);
        summary.count("cohorts", outcome);
        eprintln!("import: {progress}: {}", outcome.word(dry_run));
        if is_static {
            // A re-run adds the members again (adding a member twice is harmless).
            if existing.is_some() && !members.is_empty() && !dry_run {
                target
                    .send(
                        reqwest::Method::PATCH,
                        &target.url(&format!("cohorts/{target_id}/")),
                        Some(&json!({"distinct_ids": members})),
                    )
                    .await?;
            }
            summary.members += members.len();
            eprintln!(
                "import: {progress}: {} members listed by the source",
                members.len()
            );
        }
    }

    // Flags, dependencies first.
    let source_keys: HashMap<i64, String> = flags
        .iter()
        .filter_map(|f| Some((f["id"].as_i64()?, f["key"].as_str()?.to_string())))
        .collect();
    let mut flag_ids: HashMap<i64, i64> = HashMap::new();
    let ordered = dependency_order(&flags, |f| flag_refs(&f["filters"]));
    for (i, flag) in ordered.iter().enumerate() {
        let id = flag["id"].as_i64().unwrap_or_default();
        let key = flag["key"].as_str().unwrap_or("").to_string();
        let progress = format!("[{}/{}] flag {key}", i + 1, ordered.len());
        if let Some(reason) = cohort_refs(&flag["filters"]).into_iter().find_map(|c| {
            (!cohort_ids.contains_key(&c)).then(|| match skipped_cohorts.get(&c) {
                Some(why) => format!("it targets cohort {c}, skipped: {why}"),
                None => format!("it targets cohort {c}, which the source does not list"),
            })
        }) {
            summary.skip("flag", &key, reason);
            continue;
        }
        if let Some(missing) = flag_refs(&flag["filters"])
            .into_iter()
            .find(|r| !flag_ids.contains_key(r))
        {
            let name = source_keys
                .get(&missing)
                .cloned()
                .unwrap_or(missing.to_string());
            summary.skip(
                "flag",
                &key,
                format!("it depends on flag {name}, which was not copied"),
            );
            continue;
        }
        let mut filters = rewrite(&flag["filters"], &cohort_ids, &flag_ids);
        let encrypted = flag["has_encrypted_payloads"] == true;
        if encrypted {
            // The source shows ciphertext or a placeholder; its remote_config endpoint gives the
            // decrypted payload, which the target encrypts again with its own key.
            let payload = source
                .send(
                    reqwest::Method::GET,
                    &source.url(&format!("feature_flags/{id}/remote_config/")),
                    None,
                )
                .await?;
            let text = match payload {
                Value::String(text) => text,
                Value::Null => {
                    summary.skip(
                        "flag",
                        &key,
                        "its encrypted payload could not be read".into(),
                    );
                    continue;
                }
                other => other.to_string(),
            };
            filters["payloads"] = json!({"true": text});
        }
        let mut body = json!({"key": key, "name": flag["name"], "filters": filters,
            "active": flag["active"], "tags": flag["tags"]});
        for field in [
            "ensure_experience_continuity",
            "evaluation_runtime",
            "evaluation_tags",
            "is_remote_configuration",
            "has_encrypted_payloads",
            "bucketing_identifier",
        ] {
            if let Some(v) = flag.get(field).filter(|v| !v.is_null()) {
                body[field] = v.clone();
            }
        }
        let existing = target_flags.get(&key);
        let (outcome, target_id) = upsert(
            &target,
            "feature_flags/",
            existing,
            &body,
            dry_run,
            -(i as i64) - 1,
        )
        .await?;
        flag_ids.insert(id, target_id.as_i64().unwrap_or_default());
        summary.count("flags", outcome);
        eprintln!("import: {progress}: {}", outcome.word(dry_run));
    }

    // Early access features, linked by their flag's key.
    for (i, feature) in features.iter().enumerate() {
        let name = feature["name"].as_str().unwrap_or("").to_string();
        let progress = format!("[{}/{}] early access feature {name}", i + 1, features.len());
        let source_flag = feature["feature_flag"]["id"]
            .as_i64()
            .or_else(|| feature["feature_flag_id"].as_i64());
        let flag_id = match source_flag {
            Some(f) => match flag_ids.get(&f) {
                Some(id) => Some(*id),
                None => {
                    summary.skip(
                        "early access feature",
                        &name,
                        format!("its flag {f} was not copied"),
                    );
                    continue;
                }
            },
            None => None,
        };
        let mut body = json!({"name": name, "description": feature["description"],
            "stage": feature["stage"], "documentation_url": feature["documentation_url"]});
        let existing = target_features.get(&name);
        if existing.is_none()
            && let Some(id) = flag_id
        {
            body["feature_flag_id"] = json!(id);
        }
        let (outcome, _) = upsert(
            &target,
            "early_access_feature/",
            existing,
            &body,
            dry_run,
            -(i as i64) - 1,
        )
        .await?;
        summary.count("early_access_features", outcome);
        eprintln!("import: {progress}: {}", outcome.word(dry_run));
    }

    Ok(json!({
        "dry_run": dry_run,
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "static_cohort_members": summary.members,
        "skipped": summary.skipped,
    }))
}

/// Not deleted.
fn live(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter(|i| i["deleted"] != true).collect()
}

fn by(items: &[Value], field: &str) -> HashMap<String, Value> {
    items
        .iter()
        .filter_map(|i| Some((i[field].as_str()?.to_string(), i.clone())))
        .collect()
}

/// Creates `body`, or updates the match where one of `body`'s fields differs. Returns the
/// target id (an integer, or a UUID string for early access features; `placeholder` for what a
/// dry run would create).
async fn upsert(
    target: &Api,
    path: &str,
    existing: Option<&Value>,
    body: &Value,
    dry_run: bool,
    placeholder: i64,
) -> Result<(Outcome, Value), String> {
    match existing {
        None if dry_run => Ok((Outcome::Created, json!(placeholder))),
        None => {
            let created = target
                .send(reqwest::Method::POST, &target.url(path), Some(body))
                .await?;
            let id = created["id"].clone();
            if id.is_null() {
                return Err(format!("the target answered no id: {created}"));
            }
            Ok((Outcome::Created, id))
        }
        Some(current) => {
            let id = current["id"].clone();
            let changed: Map<String, Value> = body
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| !same(&current[k.as_str()], v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if changed.is_empty() {
                return Ok((Outcome::Unchanged, id));
            }
            if !dry_run {
                target
                    .send(
                        reqwest::Method::PATCH,
                        &target.url(&format!("{path}{id}/")),
                        Some(&Value::Object(changed)),
                    )
                    .await?;
            }
            Ok((Outcome::Updated, id))
        }
    }
}

/// Equal, where an absent field, `null`, `{}` and `[]` are the same (the target fills in
/// defaults the source left out). Encrypted payloads (ciphertext on the target) always differ
/// from the plaintext to send, so such flags are always updated.
fn same(current: &Value, wanted: &Value) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match (current, wanted) {
        (a, b) if empty(a) && empty(b) => true,
        (Value::Object(a), Value::Object(b)) => {
            b.iter()
                .all(|(k, v)| same(a.get(k).unwrap_or(&Value::Null), v))
                && a.iter().all(|(k, v)| b.contains_key(k) || empty(v))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        _ => current == wanted,
    }
}

/// Every property filter in a flag's or cohort's filters (nested property groups included).
fn properties(filters: &Value) -> Vec<&Value> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                if map.contains_key("type") && map.contains_key("key") {
                    out.push(v);
                }
                for (k, child) in map {
                    if matches!(
                        k.as_str(),
                        "groups" | "properties" | "values" | "super_groups"
                    ) {
                        walk(child, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(filters, &mut out);
    out
}

fn as_id(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn cohort_refs(filters: &Value) -> Vec<i64> {
    properties(filters)
        .into_iter()
        .filter(|p| p["type"] == "cohort")
        .filter_map(|p| as_id(&p["value"]))
        .collect()
}

fn flag_refs(filters: &Value) -> Vec<i64> {
    properties(filters)
        .into_iter()
        .filter(|p| p["type"] == "flag")
        .filter_map(|p| as_id(&p["key"]))
        .collect()
}

/// Why a cohort cannot be copied: its filters use events (behavioural), which this service does
/// not evaluate.
fn behavioural(filters: &Value) -> Option<String> {
    properties(filters)
        .into_iter()
        .find(|p| p["type"] == "behavioral" || p["type"] == "event")
        .map(|p| {
            format!(
                "behavioural cohorts are not supported (filter on {} {})",
                p["type"].as_str().unwrap_or(""),
                p["key"]
            )
        })
}

/// The filters with cohort ids (`value` of `type: cohort`) and flag ids (`key` of `type: flag`)
/// replaced by the target's; references without a mapping are left (the caller skipped them).
fn rewrite(filters: &Value, cohorts: &HashMap<i64, i64>, flags: &HashMap<i64, i64>) -> Value {
    let mut out = filters.clone();
    fn walk(v: &mut Value, cohorts: &HashMap<i64, i64>, flags: &HashMap<i64, i64>) {
        match v {
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, cohorts, flags)),
            Value::Object(map) => {
                if map.get("type") == Some(&json!("cohort"))
                    && let Some(new) = map
                        .get("value")
                        .and_then(as_id)
                        .and_then(|id| cohorts.get(&id))
                {
                    map.insert("value".into(), json!(new));
                }
                if map.get("type") == Some(&json!("flag"))
                    && let Some(new) = map.get("key").and_then(as_id).and_then(|id| flags.get(&id))
                {
                    map.insert("key".into(), json!(new.to_string()));
                }
                for (k, child) in map.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "groups" | "properties" | "values" | "super_groups"
                    ) {
                        walk(child, cohorts, flags);
                    }
                }
            }
            _ => {}
        }
    }
    walk(&mut out, cohorts, flags);
    out
}

/// Items ordered so that each comes after the items it references (by source id); items in a
/// cycle or referencing unknown ids come last, where the caller skips them with a reason.
fn dependency_order(items: &[Value], refs: impl Fn(&Value) -> Vec<i64>) -> Vec<Value> {
    let ids: HashSet<i64> = items.iter().filter_map(|i| i["id"].as_i64()).collect();
    let mut placed: HashSet<i64> = HashSet::new();
    let mut out = Vec::new();
    let mut rest: Vec<&Value> = items.iter().collect();
    loop {
        let (ready, waiting): (Vec<&Value>, Vec<&Value>) = rest.into_iter().partition(|i| {
            refs(i)
                .iter()
                .all(|r| placed.contains(r) || !ids.contains(r))
        });
        if ready.is_empty() {
            out.extend(waiting.into_iter().cloned());
            return out;
        }
        for item in ready {
            if let Some(id) = item["id"].as_i64() {
                placed.insert(id);
            }
            out.push(item.clone());
        }
        rest = waiting;
    }
}

/// The distinct ids of a static cohort's members, as the source's persons listing gives them.
async fn static_members(source: &Api, cohort: i64) -> Result<Vec<String>, String> {
    let persons = source.list(&format!("cohorts/{cohort}/persons/")).await?;
    Ok(persons
        .iter()
        .filter_map(|p| p["distinct_ids"].as_array())
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_rewritten() {
        let filters = json!({"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": 7},
            {"key": "12", "type": "flag", "value": true, "operator": "flag_evaluates_to"},
            {"key": "plan", "type": "person", "value": ["pro"], "operator": "exact"}]}]});
        assert_eq!(cohort_refs(&filters), vec![7]);
        assert_eq!(flag_refs(&filters), vec![12]);
        let out = rewrite(
            &filters,
            &HashMap::from([(7, 70)]),
            &HashMap::from([(12, 120)]),
        );
        assert_eq!(out["groups"][0]["properties"][0]["value"], 70);
        assert_eq!(out["groups"][0]["properties"][1]["key"], "120");
        assert_eq!(
            out["groups"][0]["properties"][2],
            filters["groups"][0]["properties"][2]
        );
        let cohort = json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            {"key": "$pageview", "type": "behavioral", "value": "performed_event"}]}]}});
        assert!(behavioural(&cohort).is_some());
        assert!(behavioural(&filters).is_none());
    }

    #[test]
    fn dependencies_come_first() {
        let items = vec![
            json!({"id": 1, "deps": [2]}),
            json!({"id": 2, "deps": [3]}),
            json!({"id": 3, "deps": []}),
            json!({"id": 4, "deps": [5]}),
            json!({"id": 5, "deps": [4]}),
        ];
        let refs = |i: &Value| -> Vec<i64> {
            i["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_i64)
                .collect()
        };
        let order: Vec<i64> = dependency_order(&items, refs)
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        assert_eq!(order, vec![3, 2, 1, 4, 5]);
    }

    #[test]
    fn unchanged_fields_are_not_sent() {
        assert!(same(&json!({"a": 1, "b": null}), &json!({"a": 1})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 2})));
        assert!(same(&Value::Null, &Value::Null));
    }
}
