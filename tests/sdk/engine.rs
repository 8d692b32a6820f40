//! The engine's answers for the SDK tests (`sdk.rs`, `sdk_rust.rs`): the definitions as the
//! SDKs load them, evaluated by `shared::evaluation` for a server-side SDK.

use std::collections::BTreeMap;
use std::io::Read;

use e2e::Server;
use serde_json::{Map, Value, json};
use shared::evaluation::{EvaluationInput, GroupTypeMapping, Runtime, evaluate_all};
use shared::flag::Flag;
use shared::identity::UserSummary;

/// (value, payload) per person, per flag key.
pub type Answers = BTreeMap<String, BTreeMap<String, (Value, Value)>>;

/// The definitions as the SDKs fetch them, gzip accepted.
pub async fn definitions(s: &Server) -> Value {
    let url = format!(
        "{}/flags/definitions?token={}&send_cohorts",
        s.url, s.project_api_token
    );
    let resp = s
        .http
        .get(url)
        .bearer_auth(&s.project_secret_key)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("definitions request");
    assert_eq!(resp.status().as_u16(), 200);
    let gzipped = resp
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let bytes = resp.bytes().await.expect("definitions body");
    let mut text = Vec::new();
    if gzipped {
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .expect("gzip body");
    } else {
        text = bytes.to_vec();
    }
    serde_json::from_slice(&text).expect("definitions JSON")
}

/// The engine's answers on the definitions the SDKs load, for a server-side SDK.
pub async fn engine_answers(s: &Server, keys: &[String], users: &[Value]) -> Answers {
    let definitions = definitions(s).await;
    let flags: Vec<Flag> = definitions["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(flag_of)
        .collect();
    let mapping = GroupTypeMapping::from_json(&definitions["group_type_mapping"]);
    let now = chrono::Utc::now();
    let mut out = Answers::new();
    for user in users {
        let id = user["id"].as_str().expect("id");
        let (person, groups, group_properties) = (
            object(&user["person"]),
            object(&user["groups"]),
            object(&user["group_properties"]),
        );
        let mut input = EvaluationInput::new(id, now);
        input.person_properties = &person;
        input.groups = &groups;
        input.group_properties = &group_properties;
        input.group_type_mapping = &mapping;
        input.runtime = Some(Runtime::Server);
        let answers = evaluate_all(&flags, &[], &input);
        let row = keys
            .iter()
            .map(|k| {
                let found = answers.get(k);
                let value = found.map_or(json!(false), |f| f.value());
                let payload = found
                    .and_then(|f| f.payload.as_ref())
                    .map_or(Value::Null, parse_payload);
                (k.clone(), (value, payload))
            })
            .collect();
        out.insert(id.to_string(), row);
    }
    out
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Payloads travel as JSON text.
pub fn parse_payload(p: &Value) -> Value {
    p.as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| p.clone())
}

/// A definitions flag as the engine's input.
fn flag_of(d: &Value) -> Flag {
    let creator = UserSummary {
        id: 0,
        uuid: String::new(),
        distinct_id: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        email: String::new(),
    };
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    let mut flag = Flag::new(
        d["id"].as_i64().expect("id"),
        d["team_id"].as_i64().expect("team_id"),
        text("key"),
        creator,
        chrono::Utc::now(),
    );
    flag.filters = d["filters"].clone();
    flag.active = d["active"].as_bool().unwrap_or(false);
    flag.version = d["version"].as_i64().unwrap_or(1);
    flag.ensure_experience_continuity = d["ensure_experience_continuity"].as_bool();
    flag.evaluation_runtime = text("evaluation_runtime");
    flag.bucketing_identifier = text("bucketing_identifier");
    flag
}
