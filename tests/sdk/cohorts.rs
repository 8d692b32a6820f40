//! Cohort targeting with the real SDKs (evaluation-rules.md §2.6, §4.2): a handful of persons
//! captured with `$set`, property cohorts (a plain one, one nesting it with a negated leaf, and
//! one reaching a static cohort), a static cohort made from distinct ids, and flags targeting
//! each with `in` and `not_in`, two of them behind a 50% rollout.
//!
//! Every answer is checked against values computed here from the seeded data (not only against
//! the server): the server's `/flags` for the stored persons, and both SDKs remotely (with and
//! without person properties), with local evaluation falling back to the server, and locally
//! only, where property cohorts must be decided and static cohorts must be left undecided.
//! One person is never captured: only the properties the SDK sends describe them, and no
//! static cohort holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e::{Server, unique_key};
use serde_json::{Value, json};
use shared::evaluation::hash;

use super::{Answers, answers, definitions, run_sdk};

/// One seeded person: `plan` (absent for one of them), email, static cohort member, and
/// whether the server stores them (captured with `$set`).
#[derive(Clone)]
struct Person {
    id: String,
    plan: Option<&'static str>,
    email: String,
    is_static: bool,
    stored: bool,
}

impl Person {
    /// What the server knows of them when a request sends no properties.
    fn as_stored(&self) -> Person {
        let mut p = self.clone();
        if !p.stored {
            (p.plan, p.email) = (None, String::new());
        }
        p
    }

    fn properties(&self) -> Value {
        let mut p = json!({"email": self.email});
        if let Some(plan) = self.plan {
            p["plan"] = json!(plan);
        }
        p
    }

    /// Every property a cohort here reads is present, so the SDKs can decide locally.
    fn complete(&self) -> bool {
        self.plan.is_some()
    }

    fn paid(&self) -> bool {
        matches!(self.plan, Some("pro" | "team"))
    }

    /// The nested cohort: paid and not an `@acme` address (a negated leaf).
    fn paid_outside_acme(&self) -> bool {
        self.paid() && !self.email.to_lowercase().contains("@acme")
    }

    /// The property cohort reaching the static one: static member or on `enterprise`.
    fn hybrid(&self) -> bool {
        self.is_static || self.plan == Some("enterprise")
    }
}

fn people(stem: &str) -> Vec<Person> {
    let rows: [(Option<&'static str>, &str, bool); 9] = [
        (Some("pro"), "acme.com", true),
        (Some("team"), "example.com", false),
        (Some("free"), "Acme.com", true),
        (Some("enterprise"), "example.com", false),
        (Some("pro"), "example.com", true),
        (Some("free"), "example.com", false),
        (None, "example.com", true),
        (Some("team"), "acme.com", false),
        (Some("pro"), "example.com", false), // never captured: see `stored`
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (plan, domain, is_static))| Person {
            id: format!("{stem}-p{i}"),
            plan: *plan,
            email: format!("p{i}@{domain}"),
            is_static: *is_static,
            stored: i != 8,
        })
        .collect()
}

/// What a flag targets: a membership test of the seeded data, and whether an SDK holding only
/// the definitions can decide it (static cohorts are never in them).
struct Target {
    key: String,
    filters: Value,
    expect: Box<dyn Fn(&Person) -> bool>,
    local: bool,
}

pub async fn cohort_targeting_with_both_sdks(s: &Server) {
    let started = Instant::now();
    let stem = unique_key("sdk-cohort");
    let persons = people(&stem);
    capture_persons(s, &persons).await;

    let paid = create_cohort(s, json!({"name": format!("{stem} paid"), "filters": {"properties": {"type": "OR", "values": [
        {"type": "AND", "values": [{"key": "plan", "type": "person", "operator": "exact", "value": ["pro", "team"]}]}]}}})).await;
    let nested = create_cohort(s, json!({"name": format!("{stem} paid outside acme"), "filters": {"properties": {"type": "OR", "values": [
        {"type": "AND", "values": [
            {"key": "id", "type": "cohort", "operator": "in", "value": paid},
            {"key": "email", "type": "person", "operator": "icontains", "value": "@acme", "negation": true}]}]}}})).await;
    let mut members: Vec<String> = persons
        .iter()
        .filter(|p| p.is_static)
        .map(|p| p.id.clone())
        .collect();
    // An unknown distinct id is skipped, as PostHog's import does.
    members.push(format!("{stem}-nobody"));
    let fixed = create_cohort(
        s,
        json!({"name": format!("{stem} fixed"), "is_static": true, "distinct_ids": members}),
    )
    .await;
    let hybrid = create_cohort(s, json!({"name": format!("{stem} fixed or enterprise"), "filters": {"properties": {"type": "OR", "values": [
        {"type": "AND", "values": [{"key": "id", "type": "cohort", "operator": "in", "value": fixed}]},
        {"type": "AND", "values": [{"key": "plan", "type": "person", "operator": "exact", "value": ["enterprise"]}]}]}}})).await;
    check_static_cohort(s, fixed, &persons).await;

    let targets = targets(&stem, &persons, paid, nested, fixed, hybrid);
    let mut ids = Vec::new();
    for t in &targets {
        let body = json!({"key": t.key, "name": "SDK cohort scenario", "filters": t.filters});
        let r = s.call("POST", &s.flags_path(""), Some(&body)).await;
        assert_eq!(r.status, 201, "creating {body}: {}", r.text);
        ids.push(r.json()["id"].as_i64().expect("id"));
    }
    check_definitions(s, &targets, [paid, nested, hybrid], fixed).await;

    let expect = |stored_only: bool| -> Answers {
        persons
            .iter()
            .map(|p| {
                let p = if stored_only {
                    p.as_stored()
                } else {
                    p.clone()
                };
                let row = targets
                    .iter()
                    .map(|t| (t.key.clone(), (json!((t.expect)(&p)), Value::Null)))
                    .collect();
                (p.id.clone(), row)
            })
            .collect()
    };
    // With the persons' properties in the request, and with none (the stored ones decide).
    let (expected, expected_stored) = (expect(false), expect(true));
    for t in &targets {
        let on = persons.iter().filter(|p| (t.expect)(p)).count();
        assert!(
            on > 0 && on < persons.len(),
            "{}: enabled for {on} of {}",
            t.key,
            persons.len()
        );
    }
    let undecidable: BTreeSet<&str> = targets
        .iter()
        .filter(|t| !t.local)
        .map(|t| t.key.as_str())
        .collect();
    let complete: BTreeSet<&str> = persons
        .iter()
        .filter(|p| p.complete())
        .map(|p| p.id.as_str())
        .collect();

    check_server(s, &persons, &expected_stored).await;

    let keys: Vec<&str> = targets.iter().map(|t| t.key.as_str()).collect();
    let users: Vec<Value> = persons
        .iter()
        .map(
            |p| json!({"id": p.id, "person": p.properties(), "groups": {}, "group_properties": {}}),
        )
        .collect();
    let spec = json!({
        "api_url": s.url, "token": s.project_api_token, "secret_key": s.project_secret_key,
        "keys": keys, "users": users, "single_users": 3, "stored_person": true,
    });
    for sdk in ["python", "node"] {
        let want = [&expected, &expected_stored];
        let (problems, log) = run_checked(sdk, &spec, want, &undecidable, &complete);
        assert!(
            problems.is_empty(),
            "{sdk} cohort scenario (stem {stem}): {} problems:\n{}\n{sdk} log:\n{log}",
            problems.len(),
            problems
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }

    for id in ids {
        let r = s
            .call(
                "PATCH",
                &s.flags_path(&format!("{id}/")),
                Some(&json!({"deleted": true})),
            )
            .await;
        assert_eq!(r.status, 200, "deleting {id}: {}", r.text);
    }
    eprintln!(
        "cohort scenario: {} persons, {} flags, in {:.1}s",
        persons.len(),
        targets.len(),
        started.elapsed().as_secs_f64()
    );
}

fn targets(
    stem: &str,
    persons: &[Person],
    paid: i64,
    nested: i64,
    fixed: i64,
    hybrid: i64,
) -> Vec<Target> {
    let cohort = |id: i64, operator: &str, rollout: f64| {
        json!({"groups": [{"properties": [{"key": "id", "type": "cohort", "value": id, "operator": operator}],
               "rollout_percentage": rollout}]})
    };
    let target = |name: &str, filters: Value, expect: Box<dyn Fn(&Person) -> bool>, local| Target {
        key: format!("{stem}-{name}"),
        filters,
        expect,
        local,
    };
    // The rollout flags' keys are picked so their cohort's members land on both sides of 50%.
    let paid_half = split_key(&format!("{stem}-paid-half"), persons, Person::paid);
    let fixed_half = split_key(&format!("{stem}-fixed-half"), persons, |p| p.is_static);
    let in_half = |key: &str, p: &Person| hash(&format!("{key}."), &p.id, "") <= 0.5;
    vec![
        target(
            "paid-in",
            cohort(paid, "in", 100.0),
            Box::new(Person::paid),
            true,
        ),
        target(
            "paid-not-in",
            cohort(paid, "not_in", 100.0),
            Box::new(|p| !p.paid()),
            true,
        ),
        target(
            "nested-in",
            cohort(nested, "in", 100.0),
            Box::new(Person::paid_outside_acme),
            true,
        ),
        target(
            "nested-not-in",
            cohort(nested, "not_in", 100.0),
            Box::new(|p| !p.paid_outside_acme()),
            true,
        ),
        target(
            "fixed-in",
            cohort(fixed, "in", 100.0),
            Box::new(|p| p.is_static),
            false,
        ),
        target(
            "fixed-not-in",
            cohort(fixed, "not_in", 100.0),
            Box::new(|p| !p.is_static),
            false,
        ),
        target(
            "hybrid-in",
            cohort(hybrid, "in", 100.0),
            Box::new(Person::hybrid),
            false,
        ),
        Target {
            filters: cohort(paid, "in", 50.0),
            expect: {
                let key = paid_half.clone();
                Box::new(move |p| p.paid() && in_half(&key, p))
            },
            key: paid_half,
            local: true,
        },
        Target {
            filters: cohort(fixed, "in", 50.0),
            expect: {
                let key = fixed_half.clone();
                Box::new(move |p| p.is_static && in_half(&key, p))
            },
            key: fixed_half,
            local: false,
        },
    ]
}

/// The first `<stem>-<n>` whose 50% rollout takes some members of `cohort` and leaves others.
fn split_key(stem: &str, persons: &[Person], cohort: fn(&Person) -> bool) -> String {
    (0..1000)
        .map(|n| format!("{stem}-{n}"))
        .find(|key| {
            let sides: BTreeSet<bool> = persons
                .iter()
                .filter(|p| cohort(p))
                .map(|p| hash(&format!("{key}."), &p.id, "") <= 0.5)
                .collect();
            sides.len() == 2
        })
        .expect("some key splits the cohort")
}

async fn capture_persons(s: &Server, persons: &[Person]) {
    let persons: Vec<&Person> = persons.iter().filter(|p| p.stored).collect();
    let batch: Vec<Value> = persons
        .iter()
        .map(|p| json!({"event": "$pageview", "distinct_id": p.id, "properties": {"$set": p.properties()}}))
        .collect();
    let r = s.capture_batch(&batch).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let started = Instant::now();
    for p in &persons {
        let path = format!(
            "/api/projects/{}/persons/?distinct_id={}",
            s.project_id, p.id
        );
        loop {
            let found = s.call("GET", &path, None).await;
            assert_eq!(found.status, 200, "{}", found.text);
            let results = found.json()["results"].clone();
            if results[0]["properties"] == p.properties() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "person {} not stored: {results}",
                p.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn create_cohort(s: &Server, body: Value) -> i64 {
    let path = format!("/api/projects/{}/cohorts/", s.project_id);
    let r = s.call("POST", &path, Some(&body)).await;
    assert_eq!(r.status, 201, "creating cohort {body}: {}", r.text);
    r.json()["id"].as_i64().expect("cohort id")
}

/// The static cohort holds exactly the seeded members, found by distinct id.
async fn check_static_cohort(s: &Server, id: i64, persons: &[Person]) {
    let path = format!("/api/projects/{}/cohorts/{id}/", s.project_id);
    let cohort = s.call("GET", &path, None).await;
    assert_eq!(cohort.status, 200, "{}", cohort.text);
    let want: BTreeSet<&str> = persons
        .iter()
        .filter(|p| p.is_static)
        .map(|p| p.id.as_str())
        .collect();
    let body = cohort.json();
    assert_eq!(
        (body["is_static"].clone(), body["count"].clone()),
        (json!(true), json!(want.len())),
        "{body}"
    );
    let listed = s
        .call("GET", &format!("{path}persons/?limit=100"), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let got: Vec<String> = listed.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|p| p["distinct_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let got: BTreeSet<&str> = got.iter().map(String::as_str).collect();
    assert_eq!(got, want, "members of static cohort {id}");
}

/// The definitions carry the property cohorts (the nested one's tree as created), never the
/// static one, and every flag here.
async fn check_definitions(s: &Server, targets: &[Target], property: [i64; 3], fixed: i64) {
    let defs = definitions(s).await;
    let cohorts = defs["cohorts"].as_object().expect("cohorts object");
    for id in property {
        let tree = &cohorts
            .get(&id.to_string())
            .unwrap_or_else(|| panic!("property cohort {id} not in definitions: {cohorts:?}"));
        assert!(
            tree["type"] == "OR" && tree["values"].is_array(),
            "{id}: {tree}"
        );
    }
    assert!(
        !cohorts.contains_key(&fixed.to_string()),
        "static cohort {fixed} in the definitions"
    );
    let keys: BTreeSet<&str> = defs["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f["key"].as_str())
        .collect();
    for t in targets {
        assert!(
            keys.contains(t.key.as_str()),
            "{} not in definitions",
            t.key
        );
    }
}

/// `/flags` for each stored person, sending no properties: the stored ones and the static
/// memberships decide.
async fn check_server(s: &Server, persons: &[Person], expected: &Answers) {
    let mut problems = Vec::new();
    for p in persons {
        let body = json!({"api_key": s.project_api_token, "distinct_id": p.id});
        let r = s.send("POST", "/flags/?v=4", None, Some(&body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let flags = r.json()["flags"].clone();
        for (key, (want, _)) in &expected[&p.id] {
            let got = &flags[key.as_str()]["enabled"];
            if got != want {
                problems.push(format!(
                    "/flags: {} {key}: enabled {got}, expected {want} ({})",
                    p.id,
                    flags[key.as_str()]["reason"]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs one SDK and compares every mode with the expected answers.
fn run_checked(
    sdk: &str,
    spec: &Value,
    [expected, expected_stored]: [&Answers; 2],
    undecidable: &BTreeSet<&str>,
    complete: &BTreeSet<&str>,
) -> (Vec<String>, String) {
    let out = run_sdk(sdk, spec);
    let mut problems = Vec::new();
    for mode in [
        "remote",
        "remote_stored",
        "local",
        "single",
        "single_local",
        "evaluate",
    ] {
        exact(
            if mode == "remote_stored" {
                expected_stored
            } else {
                expected
            },
            &answers(&out[mode]),
            &format!("{sdk} {mode}"),
            &mut problems,
        );
    }
    for mode in ["local_only", "single_local_only"] {
        let label = format!("{sdk} {mode}");
        let got = decided(&answers(&out[mode]));
        local_only(expected, &got, undecidable, complete, &label, &mut problems);
    }
    let log = out["log"].as_str().unwrap_or_default().to_string();
    (problems, log)
}

/// Answers without the undecided ones (`null`: the SDK would have asked the server).
fn decided(got: &Answers) -> Answers {
    got.iter()
        .map(|(user, row)| {
            let row = row
                .iter()
                .filter(|(_, (value, _))| !value.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (user.clone(), row)
        })
        .collect()
}

/// Every expected answer present and equal (a missing one is a failure, not `false`).
fn exact(expected: &Answers, got: &Answers, label: &str, problems: &mut Vec<String>) {
    assert!(!got.is_empty(), "{label}: no answers");
    for (user, row) in got {
        for (key, want) in &expected[user] {
            match row.get(key) {
                Some(have) if have == want => {}
                have => problems.push(format!(
                    "{label}: {user} {key}: got {have:?}, expected {want:?}"
                )),
            }
        }
    }
}

/// Locally only: static cohorts stay undecided for everyone; property cohorts are decided, and
/// right, for every person whose properties they read were passed.
fn local_only(
    expected: &Answers,
    got: &Answers,
    undecidable: &BTreeSet<&str>,
    complete: &BTreeSet<&str>,
    label: &str,
    problems: &mut Vec<String>,
) {
    let none = BTreeMap::new();
    for (user, want_row) in expected {
        let row = got.get(user).unwrap_or(&none);
        for (key, want) in want_row {
            let have = row.get(key);
            let wrong = match have {
                Some(_) if undecidable.contains(key.as_str()) => true,
                Some(have) => have != want,
                None => !undecidable.contains(key.as_str()) && complete.contains(user.as_str()),
            };
            if wrong {
                let expect = if undecidable.contains(key.as_str()) {
                    "undecided".to_string()
                } else {
                    format!("{want:?}")
                };
                problems.push(format!(
                    "{label}: {user} {key}: got {have:?}, expected {expect}"
                ));
            }
        }
    }
}
