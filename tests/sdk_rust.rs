//! End to end with the real posthog-rs 0.30.0 (crates.io, default features: the async client)
//! against the server `make test` started, with the client's default settings.
//!
//! A few flags (a boolean rollout, a property-targeted flag, a multivariate flag with a payload
//! per variant, a nested JSON payload; `sdk/captured.rs`) and a few persons: posthog-rs must give
//! the engine's values and exactly its payloads remotely (`POST /flags/?v=2`: the
//! `evaluate_flags` snapshot, `get_feature_flags` and `get_feature_flag`), locally (definitions
//! from `GET /flags/definitions/?send_cohorts` with the project secret key or a personal API key)
//! and, after it captured the persons' `$set` (plain and gzipped `/batch/`), from the stored
//! properties alone (`get_feature_flag_payload` sends none). A payload the client silently drops,
//! as it does when `/flags` fails, shows up as a difference.

#[path = "sdk/captured.rs"]
mod captured;
#[path = "sdk/engine.rs"]
mod engine;

use std::collections::HashMap;

use e2e::{Server, unique_key};
use engine::{Answers, engine_answers, parse_payload};
use posthog_rs::{
    CaptureCompression, ClientOptions, ClientOptionsBuilder, EvaluateFlagsOptions, Event,
    FeatureFlagEvaluations, FlagValue,
};
use serde_json::{Value, json};

/// One test: every part reads the same flags and the engine's answers for them.
/// Multi-threaded: posthog-rs joins its blocking capture worker on `shutdown`.
#[tokio::test(flavor = "multi_thread")]
async fn posthog_rs_against_the_server() {
    let s = Server::from_env();
    let stem = unique_key("rs");
    let created = captured::create_flags(&s, &stem).await;
    let keys: Vec<String> = created.iter().map(|(_, k)| k.clone()).collect();
    let people = captured::people(&stem);
    let expected = engine_answers(&s, &keys, &people).await;
    assert_variety(&expected);

    remote_evaluation(&s, &keys, &people, &expected).await;
    for (label, key) in [
        ("project secret key", &s.project_secret_key),
        ("personal API key", &s.personal_api_key),
    ] {
        let options = ClientOptionsBuilder::default()
            .api_key(s.project_api_token.clone())
            .host(s.url.clone())
            .secret_key(key.clone())
            .enable_local_evaluation(true)
            .build()
            .expect("options");
        local_evaluation(label, options, &keys, &people, &expected).await;
    }
    let defaults = ClientOptions::from((s.project_api_token.as_str(), s.url.as_str()));
    capture_then_stored_properties(&s, "default capture", defaults, &keys, &stem).await;
    let gzip = ClientOptionsBuilder::default()
        .api_key(s.project_api_token.clone())
        .host(s.url.clone())
        .capture_compression(CaptureCompression::Gzip)
        .build()
        .expect("options");
    let stem = format!("{stem}-gzip");
    capture_then_stored_properties(&s, "gzip capture", gzip, &keys, &stem).await;

    captured::delete_flags(&s, &created).await;
}

/// Remote evaluation with the person properties sent: the snapshot's values and parsed
/// payloads, `get_feature_flags`' raw payloads (the JSON text of `/flags`' `metadata.payload`,
/// compared with the server's own answer), and `get_feature_flag` per flag.
#[allow(deprecated)] // get_feature_flag(s): still public API, and what older code calls
async fn remote_evaluation(s: &Server, keys: &[String], people: &[Value], expected: &Answers) {
    let client = posthog_rs::client((s.project_api_token.as_str(), s.url.as_str())).await;
    let mut problems = Vec::new();
    for person in people {
        let (id, properties) = (id(person), properties(person));
        let want = &expected[id];
        let options = EvaluateFlagsOptions {
            person_properties: Some(properties.clone()),
            ..Default::default()
        };
        let snapshot = client
            .evaluate_flags(id, options)
            .await
            .expect("evaluate_flags");
        for key in keys {
            check(
                &mut problems,
                "remote evaluate_flags",
                id,
                key,
                answer(&snapshot, key),
                &want[key],
            );
        }

        let (values, payloads) = client
            .get_feature_flags(id, None, Some(properties.clone()), None)
            .await
            .expect("get_feature_flags");
        let body = json!({"api_key": s.project_api_token, "distinct_id": id, "person_properties": properties});
        let server = s.send("POST", "/flags/?v=2", None, Some(&body)).await;
        assert_eq!(server.status, 200, "{}", server.text);
        let server = server.json();
        for key in keys {
            let raw = payloads.get(key).cloned().unwrap_or(Value::Null);
            let served = &server["flags"][key.as_str()]["metadata"]["payload"];
            if &raw != served {
                problems.push(format!(
                    "get_feature_flags: {id} {key}: raw payload {raw}, the server's {served}"
                ));
            }
            let got = (value(values.get(key).cloned()), parse_payload(&raw));
            check(&mut problems, "get_feature_flags", id, key, got, &want[key]);
        }

        for key in keys {
            let flag = client
                .get_feature_flag(key.as_str(), id, None, Some(properties.clone()), None)
                .await
                .expect("get_feature_flag");
            let got = (value(flag), want[key].1.clone());
            check(&mut problems, "get_feature_flag", id, key, got, &want[key]);
        }
    }
    client.shutdown().await;
    assert_agreement("posthog-rs remote", &problems);
}

/// Local evaluation: every one of these flags is decidable from the definitions, so the
/// local-only snapshot must hold them all, with the engine's values and payloads; and
/// `get_feature_flag` (local first, `/flags` for what it can't decide) agrees too.
#[allow(deprecated)] // get_feature_flag, as in remote_evaluation
async fn local_evaluation(
    label: &str,
    options: ClientOptions,
    keys: &[String],
    people: &[Value],
    expected: &Answers,
) {
    // The client loads the definitions before it returns (then polls every 30 s).
    let client = posthog_rs::client(options).await;
    let mut problems = Vec::new();
    for person in people {
        let (id, properties) = (id(person), properties(person));
        let want = &expected[id];
        let options = EvaluateFlagsOptions {
            person_properties: Some(properties.clone()),
            only_evaluate_locally: true,
            ..Default::default()
        };
        let snapshot = client
            .evaluate_flags(id, options)
            .await
            .expect("evaluate_flags");
        for key in keys {
            check(
                &mut problems,
                "local-only evaluate_flags",
                id,
                key,
                answer(&snapshot, key),
                &want[key],
            );
            let flag = client
                .get_feature_flag(key.as_str(), id, None, Some(properties.clone()), None)
                .await
                .expect("get_feature_flag");
            let got = (value(flag), want[key].1.clone());
            check(
                &mut problems,
                "local get_feature_flag",
                id,
                key,
                got,
                &want[key],
            );
        }
    }
    client.shutdown().await;
    assert_agreement(&format!("posthog-rs local evaluation ({label})"), &problems);
}

/// Captures `$set` for new persons through the client's background worker; the persons API
/// must show them, and then the stored properties alone must decide: `get_feature_flag_payload`
/// and an `evaluate_flags` snapshot without person properties.
#[allow(deprecated)] // get_feature_flag_payload, as in remote_evaluation
async fn capture_then_stored_properties(
    s: &Server,
    label: &str,
    options: ClientOptions,
    keys: &[String],
    stem: &str,
) {
    let people = captured::people(stem);
    let expected = engine_answers(s, keys, &people).await;
    let client = posthog_rs::client(options).await;
    for person in &people {
        let mut event = Event::new("$pageview", id(person));
        event
            .insert_prop("$set", &person["person"])
            .expect("$set is JSON");
        client.capture(event);
    }
    client.flush().await;
    captured::assert_stored(s, &format!("posthog-rs {label}"), &people).await;

    let mut problems = Vec::new();
    for person in &people {
        let id = id(person);
        let want = &expected[id];
        for key in keys {
            let raw = client
                .get_feature_flag_payload(key.as_str(), id)
                .await
                .expect("get_feature_flag_payload");
            let got = (
                want[key].0.clone(),
                raw.as_ref().map_or(Value::Null, parse_payload),
            );
            check(
                &mut problems,
                "get_feature_flag_payload",
                id,
                key,
                got,
                &want[key],
            );
        }
        let snapshot = client
            .evaluate_flags(id, EvaluateFlagsOptions::default())
            .await
            .expect("evaluate_flags");
        for key in keys {
            check(
                &mut problems,
                "stored evaluate_flags",
                id,
                key,
                answer(&snapshot, key),
                &want[key],
            );
        }
    }
    client.shutdown().await;
    assert_agreement(&format!("posthog-rs after {label}"), &problems);
}

fn id(person: &Value) -> &str {
    person["id"].as_str().expect("id")
}

fn properties(person: &Value) -> HashMap<String, Value> {
    person["person"]
        .as_object()
        .expect("person properties")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A flag's (value, payload) from an `evaluate_flags` snapshot, as the engine's answers hold it.
fn answer(snapshot: &FeatureFlagEvaluations, key: &str) -> (Value, Value) {
    let payload = snapshot.get_flag_payload(key).unwrap_or(Value::Null);
    (value(snapshot.get_flag(key)), payload)
}

/// A flag's value as the engine's answers hold it; a flag the client did not return is null,
/// which no answer is.
fn value(flag: Option<FlagValue>) -> Value {
    match flag {
        Some(FlagValue::Boolean(on)) => json!(on),
        Some(FlagValue::String(variant)) => json!(variant),
        None => Value::Null,
    }
}

fn check(
    problems: &mut Vec<String>,
    how: &str,
    id: &str,
    key: &str,
    got: (Value, Value),
    want: &(Value, Value),
) {
    if &got != want {
        problems.push(format!("{how}: {id} {key}: got {got:?}, engine {want:?}"));
    }
}

fn assert_agreement(label: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{label}: {} disagreements with the engine:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The persons must see both outcomes, variants and payloads, or the comparisons prove little.
fn assert_variety(expected: &Answers) {
    let all: Vec<&(Value, Value)> = expected.values().flat_map(|row| row.values()).collect();
    let on = all.iter().filter(|(v, _)| *v != json!(false)).count();
    let variants = all.iter().filter(|(v, _)| v.is_string()).count();
    let payloads = all.iter().filter(|(_, p)| p.is_object()).count();
    assert!(
        on > 0 && on < all.len() && variants > 0 && payloads > 0,
        "{on} of {} answers on, {variants} variants, {payloads} object payloads: {expected:?}",
        all.len()
    );
}
