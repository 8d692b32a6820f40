//! Side-by-side timing of this engine and `unleash-yggdrasil` on one generated fixture; driven
//! by `scripts/bench-compare-python.py`, which also times posthog-python on the same fixture
//! and checks that this engine and posthog-python agree on every value:
//!
//! ```text
//! .venv/bin/python scripts/bench-compare-python.py
//! # which runs: cargo bench -p shared --features bench-compare --bench compare -- FIXTURE OUT
//! ```
//!
//! The fixture holds the flags twice: as PostHog definitions, and translated into Unleash
//! toggles with the nearest rules (flexible rollout on `userId`, constraints for the property
//! filters, weighted variants). Both engines get their definitions compiled before timing and
//! evaluate every flag for every user, repeatedly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};
use shared::evaluation::{EvaluationInput, FlagSet};
use shared::flag::Flag;
use shared::identity::UserSummary;
use unleash_yggdrasil::{ClientFeatures, Context, EngineState, UpdateMessage};

/// Each engine runs for at least this long (whole rounds over all users).
const MIN_TIME: Duration = Duration::from_secs(3);

fn main() {
    // `cargo bench` adds its own flags (`--bench`); the two paths are the only other arguments.
    let paths: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [fixture_path, out_path] = paths.as_slice() else {
        eprintln!("usage: compare FIXTURE.json OUT.json (run scripts/bench-compare-python.py)");
        return;
    };
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(fixture_path).unwrap())
        .expect("fixture is JSON");
    let users = users(&fixture);
    let flags = posthog_flags(&fixture);

    let (engine_ns, values) = time_engine(&flags, &users);
    let (unleash_ns, unleash_enabled) = time_unleash(&fixture, &users);
    println!(
        "engine: {:.2} µs per user ({} flags); unleash-yggdrasil: {:.2} µs per user; engine is {:.1}x faster",
        engine_ns / 1000.0,
        flags.len(),
        unleash_ns / 1000.0,
        unleash_ns / engine_ns
    );
    let out = json!({"engine_ns_per_user": engine_ns, "unleash_ns_per_user": unleash_ns,
                     "unleash_enabled": unleash_enabled,
                     "flags": flags.len(), "users": users.len(), "values": values});
    std::fs::write(out_path, out.to_string()).unwrap();
}

struct User {
    distinct_id: String,
    properties: Map<String, Value>,
}

fn users(fixture: &Value) -> Vec<User> {
    fixture["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| User {
            distinct_id: u["distinct_id"].as_str().unwrap().to_string(),
            properties: u["properties"].as_object().unwrap().clone(),
        })
        .collect()
}

fn posthog_flags(fixture: &Value) -> Vec<Flag> {
    let creator = UserSummary {
        id: 1,
        uuid: "u".into(),
        distinct_id: "d".into(),
        first_name: "Bench".into(),
        last_name: String::new(),
        email: "bench@example.com".into(),
    };
    fixture["posthog"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let key = f["key"].as_str().unwrap().to_string();
            let mut flag = Flag::new(
                f["id"].as_i64().unwrap(),
                1,
                key,
                creator.clone(),
                Utc::now(),
            );
            flag.filters = f["filters"].clone();
            flag
        })
        .collect()
}

/// Nanoseconds per user (all flags), and the values of one round for the agreement check.
fn time_engine(flags: &[Flag], users: &[User]) -> (f64, Vec<Map<String, Value>>) {
    let set = FlagSet::new(flags, &[]);
    // A fixed clock: the fixture has no relative dates, and reading it is the caller's job.
    let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let evaluate = |user: &User| {
        let mut input = EvaluationInput::new(&user.distinct_id, now);
        input.person_properties = &user.properties;
        set.evaluate(&input)
    };
    let values = users
        .iter()
        .map(|u| {
            let answer = evaluate(u);
            answer
                .flags
                .iter()
                .map(|f| (f.key.to_string(), f.value()))
                .collect()
        })
        .collect();
    let ns = per_user(users.len(), || {
        for user in users {
            std::hint::black_box(evaluate(user));
        }
    });
    (ns, values)
}

/// Nanoseconds per user (all toggles), and how many toggle values came out enabled.
fn time_unleash(fixture: &Value, users: &[User]) -> (f64, usize) {
    let features: ClientFeatures =
        serde_json::from_value(fixture["unleash"].clone()).expect("Unleash toggles");
    let engine = EngineState::initial_state(Utc::now());
    let warnings = engine.take_state(UpdateMessage::FullResponse(features));
    assert!(
        warnings.as_ref().is_none_or(Vec::is_empty),
        "Unleash refused toggles: {:?}",
        warnings.map(|w| w.iter().map(|w| w.message.clone()).collect::<Vec<_>>())
    );
    let contexts: Vec<Context> = users
        .iter()
        .map(|u| Context {
            user_id: Some(u.distinct_id.clone()),
            properties: Some(string_properties(&u.properties)),
            ..Context::default()
        })
        .collect();
    let enabled = contexts
        .iter()
        .map(|c| {
            engine
                .resolve_all(c, &None)
                .unwrap()
                .values()
                .filter(|t| t.enabled)
                .count()
        })
        .sum::<usize>();
    assert!(
        enabled > 0,
        "Unleash enabled nothing: the translation is wrong"
    );
    let ns = per_user(users.len(), || {
        for context in &contexts {
            std::hint::black_box(engine.resolve_all(context, &None));
        }
    });
    (ns, enabled)
}

/// Unleash context properties are strings.
fn string_properties(properties: &Map<String, Value>) -> HashMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Runs `round` (one pass over all users) until `MIN_TIME` has passed, after one warm-up round.
fn per_user(users: usize, mut round: impl FnMut()) -> f64 {
    round();
    let start = Instant::now();
    let mut rounds = 0_u32;
    while start.elapsed() < MIN_TIME {
        round();
        rounds += 1;
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds) / users as f64
}
