//! Captured events as the SDKs send them (evaluation-rules.md §5): the body forms of `/batch/`, `/e/`,
//! `/i/v0/e/` and `/capture/`, and the facts this service takes from them so far, namely group
//! types named by `$groupidentify`, flags named by `$feature_flag_called`, and the person
//! changes of [`persons`]. Events themselves are not stored.

use serde_json::{Map, Value};

pub mod persons;

/// PostHog's group type names are at most this long.
pub const GROUP_TYPE_MAX_CHARS: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub distinct_id: Option<String>,
    pub properties: Map<String, Value>,
    /// The event's own top-level `timestamp` (RFC 3339 as the SDKs send it), if a string.
    pub timestamp: Option<String>,
}

/// One capture request: the project token and its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub token: Option<String>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "the body must be a JSON object with a `batch` list, one event object, or a list of events"
    )]
    Shape,
    #[error("event {0} is not an object with a string `event`")]
    BadEvent(usize),
}

impl Batch {
    /// Reads `{"api_key", "batch": [...]}`, a single event `{"event", "properties", ...}`, or a
    /// bare list of events. The token is the body's `api_key`/`token`/`$token`, else the first
    /// event's (`api_key`, `token`, or `properties.token`, as browsers send it).
    pub fn parse(body: &Value) -> Result<Batch, CaptureError> {
        let (envelope, raw_events): (Option<&Map<String, Value>>, Vec<&Value>) = match body {
            Value::Object(map) => match map.get("batch").or_else(|| map.get("data")) {
                Some(Value::Array(list)) => (Some(map), list.iter().collect()),
                Some(_) => return Err(CaptureError::Shape),
                None => (None, vec![body]),
            },
            Value::Array(list) => (None, list.iter().collect()),
            _ => return Err(CaptureError::Shape),
        };
        let events = raw_events
            .iter()
            .enumerate()
            .map(|(i, e)| event(e).ok_or(CaptureError::BadEvent(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let token = envelope.and_then(token_of).or_else(|| {
            raw_events
                .iter()
                .find_map(|e| e.as_object().and_then(token_of))
        });
        Ok(Batch { token, events })
    }

    /// Group type names announced by `$groupidentify` events, first-seen order, no repeats.
    pub fn group_types(&self) -> Vec<&str> {
        let names = self
            .named("$groupidentify")
            .filter_map(|e| e.properties.get("$group_type")?.as_str())
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.chars().count() <= GROUP_TYPE_MAX_CHARS);
        unique(names)
    }

    /// Flag keys named by `$feature_flag_called` events, first-seen order, no repeats.
    pub fn flags_called(&self) -> Vec<&str> {
        let keys = self
            .named("$feature_flag_called")
            .filter_map(|e| e.properties.get("$feature_flag")?.as_str());
        unique(keys)
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Event> {
        self.events.iter().filter(move |e| e.event == name)
    }
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn token_of(map: &Map<String, Value>) -> Option<String> {
    let direct = ["api_key", "token", "$token"]
        .iter()
        .find_map(|k| map.get(*k)?.as_str());
    let nested = || map.get("properties")?.get("token")?.as_str();
    direct
        .or_else(nested)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// An event needs its name; `distinct_id` may sit at the top or in `properties` and may be a
/// number (its JSON text then).
fn event(raw: &Value) -> Option<Event> {
    let map = raw.as_object()?;
    let mut properties = match map.get("properties") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return None,
    };
    // PostHog's event normalisation: top-level `$set`/`$set_once` merge over the ones in
    // `properties`, so person rules only look at `properties`.
    for key in ["$set", "$set_once"] {
        if let Some(Value::Object(top)) = map.get(key) {
            let slot = properties
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(inner) => inner.extend(top.clone()),
                other => *other = Value::Object(top.clone()),
            }
        }
    }
    let distinct_id = map
        .get("distinct_id")
        .or_else(|| properties.get("distinct_id"))
        .and_then(|d| match d {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Some(Event {
        event: map.get("event")?.as_str()?.to_string(),
        distinct_id,
        properties,
        timestamp: map
            .get("timestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_form_with_api_key() {
        let batch = Batch::parse(&json!({"api_key": "phc_1", "batch": [
            {"event": "$feature_flag_called", "distinct_id": "u", "properties": {"$feature_flag": "beta"}},
            {"event": "$feature_flag_called", "distinct_id": 7, "properties": {"$feature_flag": "beta"}},
            {"event": "$groupidentify", "properties": {"$group_type": "company", "$group_key": "acme"}},
        ]}))
        .unwrap();
        assert_eq!(batch.token.as_deref(), Some("phc_1"));
        assert_eq!(batch.events[1].distinct_id.as_deref(), Some("7"));
        assert_eq!(batch.flags_called(), ["beta"]);
        assert_eq!(batch.group_types(), ["company"]);
    }

    #[test]
    fn single_event_and_list_forms_take_the_token_from_events() {
        let one = Batch::parse(
            &json!({"event": "x", "properties": {"token": "phc_2", "distinct_id": "d"}}),
        )
        .unwrap();
        assert_eq!(one.token.as_deref(), Some("phc_2"));
        assert_eq!(one.events[0].distinct_id.as_deref(), Some("d"));
        let list = Batch::parse(&json!([{"event": "y", "api_key": "phc_3"}])).unwrap();
        assert_eq!(list.token.as_deref(), Some("phc_3"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(Batch::parse(&json!("x")), Err(CaptureError::Shape));
        assert_eq!(
            Batch::parse(&json!({"batch": "nope"})),
            Err(CaptureError::Shape)
        );
        assert_eq!(
            Batch::parse(&json!({"batch": [{"event": 1}]})),
            Err(CaptureError::BadEvent(0))
        );
        assert_eq!(
            Batch::parse(&json!({"batch": [{"event": "e", "properties": []}]})),
            Err(CaptureError::BadEvent(0))
        );
    }

    #[test]
    fn blank_and_overlong_group_types_are_ignored() {
        let long = "x".repeat(GROUP_TYPE_MAX_CHARS + 1);
        let batch = Batch::parse(&json!({"batch": [
            {"event": "$groupidentify", "properties": {"$group_type": " "}},
            {"event": "$groupidentify", "properties": {"$group_type": long}},
            {"event": "$groupidentify", "properties": {"$group_type": 3}},
        ]}))
        .unwrap();
        assert!(batch.group_types().is_empty());
    }
}
