//! How captured events change persons, as PostHog's ingestion does (plugin-server
//! `person-state.ts`), folded over a whole batch in memory so capture reads and writes each
//! person once:
//!
//! * `$set` overwrites, `$set_once` only fills absent keys, `$unset` (a list of keys, or an
//!   object whose keys count) removes; applied in that order per event: `$set_once`, `$set`,
//!   `$unset`. Top-level `$set`/`$set_once` on the event were merged over the ones in
//!   `properties` when parsing (PostHog's event normalisation).
//! * `$identify` with `$anon_distinct_id`, and `$create_alias`/`$merge_dangerously` with
//!   `alias`, merge the other id into the event's `distinct_id` person: if only one of them has
//!   a person, the other id joins it; if neither has, one person with both ids is created; if
//!   both have different persons, the other person is merged in (properties of the
//!   `distinct_id` person win, the older `created_at` stays, the other person is deleted)
//!   unless it is already identified (only `$merge_dangerously` merges those). Either way the
//!   `distinct_id` person becomes identified. Ids PostHog deems illegal (`anonymous`, `null`,
//!   `0`, …) never merge.
//! * `$groupidentify` events describe groups, not persons, and events with
//!   `$process_person_profile: false` are personless: neither touches persons.
//!
//! Limits (see [`crate::person`]): properties past [`MAX_PROPERTIES_BYTES`] and distinct ids
//! past [`MAX_DISTINCT_IDS`] are skipped with a warning.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::Event;
use crate::person::{
    ClaimedDistinctId, MAX_DISTINCT_ID_CHARS, MAX_DISTINCT_IDS, MAX_PROPERTIES_BYTES, Person,
    PersonWrite,
};
use crate::time::Timestamp;

/// What one event asks of persons.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonUpdate {
    pub distinct_id: String,
    /// The id to merge into `distinct_id`'s person (`$anon_distinct_id` or `alias`).
    pub merge_from: Option<String>,
    /// `$merge_dangerously`: merges even an identified person.
    pub force_merge: bool,
    pub set: Map<String, Value>,
    pub set_once: Map<String, Value>,
    pub unset: Vec<String>,
    pub timestamp: Option<Timestamp>,
}

impl PersonUpdate {
    /// `None` for events that do not touch persons (no usable distinct id, `$groupidentify`,
    /// personless events).
    pub fn of(event: &Event) -> Option<PersonUpdate> {
        let distinct_id = event.distinct_id.as_deref().filter(|d| usable(d))?;
        if event.event == "$groupidentify"
            || event.properties.get("$process_person_profile") == Some(&Value::Bool(false))
        {
            return None;
        }
        let props = &event.properties;
        let (merge_from, force_merge) = match event.event.as_str() {
            "$identify" => (props.get("$anon_distinct_id").and_then(id_text), false),
            "$create_alias" => (props.get("alias").and_then(id_text), false),
            "$merge_dangerously" => (props.get("alias").and_then(id_text), true),
            _ => (None, false),
        };
        let object = |v: Option<&Value>| match v {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let set = object(props.get("$set"));
        let set_once = object(props.get("$set_once"));
        let unset = match props.get("$unset") {
            Some(Value::Array(keys)) => keys
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        Some(PersonUpdate {
            distinct_id: distinct_id.to_string(),
            merge_from: merge_from.filter(|m| usable(m)),
            force_merge,
            set,
            set_once,
            unset,
            timestamp: event.timestamp.as_deref().and_then(crate::time::parse),
        })
    }

    /// The distinct ids whose persons the update reads.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.distinct_id.as_str()).chain(self.merge_from.as_deref())
    }
}

fn usable(id: &str) -> bool {
    !id.trim().is_empty() && id.chars().count() <= MAX_DISTINCT_ID_CHARS
}

/// PostHog takes `String(value)` of the other id; strings and numbers are what SDKs send.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// PostHog's `isDistinctIdIllegal`: ids that stem from bugs never merge persons.
pub fn is_illegal_id(id: &str) -> bool {
    const INSENSITIVE: [&str; 10] = [
        "anonymous",
        "guest",
        "distinctid",
        "distinct_id",
        "id",
        "not_authenticated",
        "email",
        "undefined",
        "true",
        "false",
    ];
    const SENSITIVE: [&str; 7] = [
        "[object Object]",
        "NaN",
        "None",
        "none",
        "null",
        "0",
        "undefined",
    ];
    let quoted = |bare: &str, id: &str| {
        id == bare || id == format!("'{bare}'") || id == format!("\"{bare}\"")
    };
    let lower = id.to_lowercase();
    id.trim().is_empty()
        || INSENSITIVE.iter().any(|b| quoted(b, &lower))
        || SENSITIVE.iter().any(|b| quoted(b, id))
}

/// One person during the fold.
#[derive(Debug)]
struct Slot {
    person: Person,
    /// As read; `None` for a person created by this batch.
    stored: Option<Person>,
    /// The slot this one was merged into.
    merged_into: Option<usize>,
    /// Serialized size of `person.properties`, kept up to date by each change.
    size: usize,
}

/// The persons a batch touches: read state in, writes out.
#[derive(Debug)]
pub struct Fold {
    project_id: i64,
    now: Timestamp,
    slots: Vec<Slot>,
    /// Distinct id → slot currently holding it.
    links: HashMap<String, usize>,
    /// Distinct id → person uuid its stored item points at (as read).
    stored_owner: HashMap<String, String>,
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map(|t| t.len()).unwrap_or(0)
}

/// A `"key":value,` entry's bytes in the stored JSON text.
fn entry_len(key: &str, value: &Value) -> usize {
    json_len(&Value::String(key.to_string())) + json_len(value) + 2
}

impl Fold {
    /// Starts from the persons read for the batch's distinct ids (distinct id → person).
    pub fn new(project_id: i64, now: Timestamp, read: HashMap<String, Person>) -> Fold {
        let mut fold = Fold {
            project_id,
            now,
            slots: Vec::new(),
            links: HashMap::new(),
            stored_owner: HashMap::new(),
        };
        let mut by_uuid: HashMap<String, usize> = HashMap::new();
        for person in read.into_values() {
            if by_uuid.contains_key(&person.uuid) {
                continue;
            }
            let slot = fold.slots.len();
            by_uuid.insert(person.uuid.clone(), slot);
            for d in &person.distinct_ids {
                fold.links.insert(d.clone(), slot);
                fold.stored_owner.insert(d.clone(), person.uuid.clone());
            }
            fold.slots.push(Slot {
                size: json_len(&Value::Object(person.properties.clone())),
                stored: Some(person.clone()),
                person,
                merged_into: None,
            });
        }
        fold
    }

    fn create(&mut self, ids: &[&str], at: Timestamp) -> usize {
        let mut person = Person::new(self.project_id, ids[0], at);
        person.distinct_ids = ids.iter().map(|d| d.to_string()).collect();
        let slot = self.slots.len();
        for d in ids {
            self.links.insert(d.to_string(), slot);
        }
        self.slots.push(Slot {
            person,
            stored: None,
            merged_into: None,
            size: 2,
        });
        slot
    }

    /// Adds `id` to the slot's person unless it is full; returns whether it did.
    fn attach(&mut self, slot: usize, id: &str) -> bool {
        let person = &mut self.slots[slot].person;
        if person.distinct_ids.len() >= MAX_DISTINCT_IDS {
            tracing::warn!(
                person = %person.uuid,
                "person has {MAX_DISTINCT_IDS} distinct ids; not adding another"
            );
            return false;
        }
        person.distinct_ids.push(id.to_string());
        self.links.insert(id.to_string(), slot);
        true
    }

    /// Merges `from` into `into` (PostHog's `mergePeople`): `into`'s properties win.
    fn merge(&mut self, from: usize, into: usize) -> bool {
        let (source, target) = (&self.slots[from].person, &self.slots[into].person);
        if source.distinct_ids.len() + target.distinct_ids.len() > MAX_DISTINCT_IDS {
            tracing::warn!(
                from = %source.uuid,
                into = %target.uuid,
                "merge would pass {MAX_DISTINCT_IDS} distinct ids; not merging"
            );
            return false;
        }
        let mut properties = source.properties.clone();
        properties.extend(target.properties.clone());
        let size = json_len(&Value::Object(properties.clone()));
        if size > MAX_PROPERTIES_BYTES {
            tracing::warn!(from = %source.uuid, into = %target.uuid, size, "merged properties too large; not merging");
            return false;
        }
        let moved = source.distinct_ids.clone();
        let created_at = source.created_at.min(target.created_at);
        self.slots[from].merged_into = Some(into);
        let target = &mut self.slots[into];
        target.person.properties = properties;
        target.size = size;
        target.person.created_at = created_at;
        target.person.distinct_ids.extend(moved.iter().cloned());
        for d in moved {
            self.links.insert(d, into);
        }
        true
    }

    /// Applies one event's update.
    pub fn apply(&mut self, update: &PersonUpdate) {
        let at = update.timestamp.unwrap_or(self.now);
        let d = update.distinct_id.as_str();
        let mut identified = false;
        let mut target = None;
        if let Some(other) = update.merge_from.as_deref()
            && other != d
            && !is_illegal_id(other)
            && !is_illegal_id(d)
        {
            identified = true;
            target = Some(
                match (self.links.get(other).copied(), self.links.get(d).copied()) {
                    (Some(o), None) if self.attach(o, d) => o,
                    (Some(_), None) => self.create(&[d], at),
                    (None, Some(t)) => {
                        self.attach(t, other);
                        t
                    }
                    (Some(o), Some(t)) if o != t => {
                        if self.slots[o].person.is_identified && !update.force_merge {
                            tracing::warn!(
                                other,
                                distinct_id = d,
                                "refusing to merge an already identified person"
                            );
                        } else {
                            self.merge(o, t);
                        }
                        t
                    }
                    (Some(_), Some(t)) => t,
                    (None, None) => self.create(&[d, other], at),
                },
            );
        }
        let slot = match target.or_else(|| self.links.get(d).copied()) {
            Some(slot) => slot,
            None => self.create(&[d], at),
        };
        self.apply_properties(slot, update);
        if identified {
            self.slots[slot].person.is_identified = true;
        }
    }

    fn apply_properties(&mut self, slot: usize, update: &PersonUpdate) {
        let slot = &mut self.slots[slot];
        let mut put = |key: &String, value: &Value, once: bool| {
            let old = slot.person.properties.get(key);
            if once && old.is_some() || old == Some(value) {
                return;
            }
            let size = slot.size - old.map_or(0, |v| entry_len(key, v)) + entry_len(key, value);
            if size > MAX_PROPERTIES_BYTES {
                tracing::warn!(
                    person = %slot.person.uuid,
                    key,
                    "person properties would pass {MAX_PROPERTIES_BYTES} bytes; skipping"
                );
                return;
            }
            slot.size = size;
            slot.person.properties.insert(key.clone(), value.clone());
        };
        for (key, value) in &update.set_once {
            put(key, value, true);
        }
        for (key, value) in &update.set {
            put(key, value, false);
        }
        for key in &update.unset {
            if let Some(old) = slot.person.properties.remove(key) {
                slot.size -= entry_len(key, &old).min(slot.size);
            }
        }
    }

    /// The writes that store the fold's result: one per surviving person that changed, with
    /// the distinct ids it gained and the stored persons merged into it.
    pub fn writes(&self) -> Vec<PersonWrite> {
        let root = |mut i: usize| {
            while let Some(next) = self.slots[i].merged_into {
                i = next;
            }
            i
        };
        let mut merged: HashMap<usize, Vec<Person>> = HashMap::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if let (Some(_), Some(stored)) = (slot.merged_into, &slot.stored) {
                merged.entry(root(i)).or_default().push(stored.clone());
            }
        }
        let mut writes = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.merged_into.is_some() {
                continue;
            }
            let merged = merged.remove(&i).unwrap_or_default();
            let claimed: Vec<ClaimedDistinctId> = slot
                .person
                .distinct_ids
                .iter()
                .filter(|d| self.stored_owner.get(*d) != Some(&slot.person.uuid))
                .map(|d| ClaimedDistinctId {
                    distinct_id: d.clone(),
                    previous: self.stored_owner.get(d).cloned(),
                })
                .collect();
            if slot.stored.as_ref() == Some(&slot.person) && merged.is_empty() {
                continue;
            }
            writes.push(PersonWrite {
                person: slot.person.clone(),
                claimed_distinct_ids: claimed,
                merged,
            });
        }
        writes
    }
}

/// Distinct ids of everything a write touches: an event naming none of them did not
/// contribute to it.
pub fn write_ids(write: &PersonWrite) -> HashSet<&str> {
    write
        .person
        .distinct_ids
        .iter()
        .chain(write.merged.iter().flat_map(|p| p.distinct_ids.iter()))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Batch;
    use serde_json::json;

    fn now() -> Timestamp {
        chrono::Utc::now()
    }

    fn updates(events: Value) -> Vec<PersonUpdate> {
        Batch::parse(&json!({ "batch": events }))
            .unwrap()
            .events
            .iter()
            .filter_map(PersonUpdate::of)
            .collect()
    }

    /// Folds `events` over `read` persons; returns the writes.
    fn fold(read: Vec<Person>, events: Value) -> Vec<PersonWrite> {
        let read = read
            .into_iter()
            .flat_map(|p| {
                p.distinct_ids
                    .clone()
                    .into_iter()
                    .map(move |d| (d, p.clone()))
            })
            .collect();
        let mut fold = Fold::new(1, now(), read);
        for update in updates(events) {
            fold.apply(&update);
        }
        fold.writes()
    }

    fn stored(ids: &[&str], properties: Value, identified: bool) -> Person {
        let mut p = Person::new(1, ids[0], now());
        p.distinct_ids = ids.iter().map(|d| d.to_string()).collect();
        p.properties = properties.as_object().unwrap().clone();
        p.is_identified = identified;
        p.revision = 3;
        p
    }

    fn props(w: &PersonWrite) -> Value {
        Value::Object(w.person.properties.clone())
    }

    #[test]
    fn set_overwrites_set_once_fills_unset_removes_in_event_order() {
        let writes = fold(
            vec![],
            json!([
                {"event": "a", "distinct_id": "u", "properties": {"$set": {"plan": "free", "x": 1}, "$set_once": {"first": "a"}}},
                {"event": "b", "distinct_id": "u", "properties": {"$set": {"plan": "pro"}, "$set_once": {"first": "b", "plan": "nope"}}},
                {"event": "c", "distinct_id": "u", "properties": {"$unset": ["x"]}},
                {"event": "d", "distinct_id": "u", "$set": {"top": true}, "$set_once": {"first": "c"}},
            ]),
        );
        assert_eq!(writes.len(), 1);
        assert_eq!(
            props(&writes[0]),
            json!({"plan": "pro", "first": "a", "top": true})
        );
        assert_eq!(writes[0].person.revision, 0);
        assert_eq!(writes[0].person.distinct_ids, ["u"]);
        assert_eq!(
            writes[0].claimed_distinct_ids,
            [ClaimedDistinctId {
                distinct_id: "u".into(),
                previous: None
            }]
        );
        assert!(!writes[0].person.is_identified);
    }

    #[test]
    fn top_level_set_wins_over_properties_set() {
        let writes = fold(
            vec![],
            json!([{"event": "e", "distinct_id": "u", "$set": {"a": 2}, "properties": {"$set": {"a": 1, "b": 1}}}]),
        );
        assert_eq!(props(&writes[0]), json!({"a": 2, "b": 1}));
    }

    #[test]
    fn existing_person_is_updated_and_unchanged_ones_not_written() {
        let p = stored(&["u"], json!({"plan": "free"}), false);
        let writes = fold(
            vec![p.clone()],
            json!([{"event": "e", "distinct_id": "u", "properties": {"$set": {"plan": "free"}, "$set_once": {"plan": "x"}}}]),
        );
        assert!(writes.is_empty());
        let writes = fold(
            vec![p.clone()],
            json!([{"event": "e", "distinct_id": "u", "properties": {"$set": {"plan": "pro"}}}]),
        );
        assert_eq!(writes[0].person.uuid, p.uuid);
        assert_eq!(writes[0].person.revision, 3);
        assert!(writes[0].claimed_distinct_ids.is_empty());
    }

    #[test]
    fn identify_gives_the_anonymous_person_the_new_id() {
        let anon = stored(&["anon"], json!({"a": 1}), false);
        let writes = fold(
            vec![anon.clone()],
            json!([{"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "anon", "$set": {"email": "e"}}}]),
        );
        assert_eq!(writes.len(), 1);
        let w = &writes[0];
        assert_eq!(w.person.uuid, anon.uuid);
        assert_eq!(w.person.distinct_ids, ["anon", "user"]);
        assert!(w.person.is_identified);
        assert_eq!(props(w), json!({"a": 1, "email": "e"}));
        assert_eq!(
            w.claimed_distinct_ids,
            [ClaimedDistinctId {
                distinct_id: "user".into(),
                previous: None
            }]
        );
    }

    #[test]
    fn identify_adds_the_anonymous_id_to_the_known_person() {
        let user = stored(&["user"], json!({}), true);
        let writes = fold(
            vec![user.clone()],
            json!([{"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "anon"}}]),
        );
        assert_eq!(writes[0].person.uuid, user.uuid);
        assert_eq!(writes[0].person.distinct_ids, ["user", "anon"]);
    }

    #[test]
    fn identify_with_neither_known_creates_one_identified_person() {
        let writes = fold(
            vec![],
            json!([
                {"event": "$pageview", "distinct_id": "anon", "properties": {"$set": {"a": 1}}},
                {"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "anon"}},
                {"event": "$pageview", "distinct_id": "user", "properties": {"$set": {"b": 2}}},
            ]),
        );
        // The anonymous person was created by the first event, so the id joins it.
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].person.distinct_ids, ["anon", "user"]);
        assert!(writes[0].person.is_identified);
        assert_eq!(props(&writes[0]), json!({"a": 1, "b": 2}));
        let fresh = fold(
            vec![],
            json!([{"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "anon"}}]),
        );
        assert_eq!(fresh[0].person.distinct_ids, ["user", "anon"]);
        assert_eq!(fresh[0].claimed_distinct_ids.len(), 2);
    }

    #[test]
    fn identify_merges_an_anonymous_person_into_the_identified_one() {
        let anon = stored(&["anon", "anon2"], json!({"a": 1, "shared": "anon"}), false);
        let mut user = stored(&["user"], json!({"shared": "user"}), false);
        user.created_at = anon.created_at + chrono::Duration::days(1);
        let writes = fold(
            vec![anon.clone(), user.clone()],
            json!([{"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "anon"}}]),
        );
        assert_eq!(writes.len(), 1);
        let w = &writes[0];
        assert_eq!(w.person.uuid, user.uuid);
        assert_eq!(w.person.distinct_ids, ["user", "anon", "anon2"]);
        assert_eq!(props(w), json!({"a": 1, "shared": "user"}));
        assert_eq!(w.person.created_at, anon.created_at);
        assert!(w.person.is_identified);
        assert_eq!(w.merged, std::slice::from_ref(&anon));
        assert_eq!(
            w.claimed_distinct_ids,
            [
                ClaimedDistinctId {
                    distinct_id: "anon".into(),
                    previous: Some(anon.uuid.clone())
                },
                ClaimedDistinctId {
                    distinct_id: "anon2".into(),
                    previous: Some(anon.uuid.clone())
                }
            ]
        );
    }

    #[test]
    fn an_identified_person_is_not_merged_except_dangerously() {
        let other = stored(&["other"], json!({"o": 1}), true);
        let user = stored(&["user"], json!({}), false);
        let writes = fold(
            vec![other.clone(), user.clone()],
            json!([{"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "other"}}]),
        );
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].person.uuid, user.uuid);
        assert!(writes[0].merged.is_empty());
        assert!(writes[0].person.is_identified);
        let writes = fold(
            vec![other.clone(), user.clone()],
            json!([{"event": "$merge_dangerously", "distinct_id": "user", "properties": {"alias": "other"}}]),
        );
        assert_eq!(writes[0].merged, [other]);
    }

    #[test]
    fn alias_links_like_identify() {
        let writes = fold(
            vec![],
            json!([
                {"event": "e", "distinct_id": "a"},
                {"event": "$create_alias", "distinct_id": "a", "properties": {"alias": "b"}},
            ]),
        );
        assert_eq!(writes[0].person.distinct_ids, ["a", "b"]);
    }

    #[test]
    fn illegal_and_equal_ids_never_merge() {
        let writes = fold(
            vec![],
            json!([
                {"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "null"}},
                {"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": "user"}},
                {"event": "$identify", "distinct_id": "Anonymous", "properties": {"$anon_distinct_id": "x"}},
            ]),
        );
        assert_eq!(writes.len(), 2);
        assert!(writes.iter().all(|w| w.person.distinct_ids.len() == 1));
        assert!(writes.iter().all(|w| !w.person.is_identified));
        assert!(is_illegal_id("\"undefined\""));
        assert!(is_illegal_id("NaN") && !is_illegal_id("nan"));
    }

    #[test]
    fn group_identify_and_personless_events_touch_no_person() {
        let writes = fold(
            vec![],
            json!([
                {"event": "$groupidentify", "distinct_id": "$company_acme", "properties": {"$group_type": "company", "$group_set": {"n": 1}}},
                {"event": "e", "distinct_id": "u", "properties": {"$process_person_profile": false, "$set": {"a": 1}}},
                {"event": "e", "properties": {"$set": {"a": 1}}},
            ]),
        );
        assert!(writes.is_empty());
    }

    #[test]
    fn properties_past_the_size_limit_are_skipped() {
        let big = "x".repeat(MAX_PROPERTIES_BYTES / 2);
        let writes = fold(
            vec![],
            json!([
                {"event": "e", "distinct_id": "u", "properties": {"$set": {"a": big}}},
                {"event": "e", "distinct_id": "u", "properties": {"$set": {"b": big}}},
                {"event": "e", "distinct_id": "u", "properties": {"$set": {"c": 1}}},
            ]),
        );
        let keys: Vec<&String> = writes[0].person.properties.keys().collect();
        assert_eq!(keys, ["a", "c"]);
    }

    #[test]
    fn distinct_ids_stop_at_the_limit() {
        let events: Vec<Value> = (0..MAX_DISTINCT_IDS + 5)
            .map(|i| json!({"event": "$identify", "distinct_id": "user", "properties": {"$anon_distinct_id": format!("anon{i}")}}))
            .collect();
        let writes = fold(vec![], Value::Array(events));
        assert_eq!(writes[0].person.distinct_ids.len(), MAX_DISTINCT_IDS);
        assert!(writes[0].item_count() <= 100);
    }
}
