//! Persons learnt from captured events (PostHog's person model): one person per set of distinct
//! ids, with properties set by `$set`/`$set_once`/`$unset` and merged by `$identify`/alias. The
//! folding rules live in [`crate::capture`]; this module holds the record and its limits.

use serde_json::{Map, Value, json};

use crate::evaluation::{EvaluationInput, FlagSet};
use crate::time::{self, Timestamp};

/// A person's properties are stored as one JSON text; past this many bytes further properties
/// are skipped (with a warning) so the item stays well under DynamoDB's 400 KB item limit,
/// leaving room for the distinct ids and the other attributes.
pub const MAX_PROPERTIES_BYTES: usize = 300 * 1024;

/// Distinct ids one person may hold. Merges and new ids beyond it are skipped (with a
/// warning): a merge writes every moved distinct item in one 100-item transaction, and the
/// list lives in the person item.
pub const MAX_DISTINCT_IDS: usize = 45;

/// Longest distinct id kept (PostHog's column is 400 characters); longer ones are ignored.
pub const MAX_DISTINCT_ID_CHARS: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub project_id: i64,
    /// UUIDv7, so the persons partition's sort order is creation order.
    pub uuid: String,
    /// First one first (the id the person was created with).
    pub distinct_ids: Vec<String>,
    pub properties: Map<String, Value>,
    pub created_at: Timestamp,
    pub is_identified: bool,
    /// Bumped by every write, which is conditional on the value read; 0 for a person not
    /// stored yet.
    pub revision: i64,
}

impl Person {
    /// A new, not yet stored person holding `distinct_id`.
    pub fn new(project_id: i64, distinct_id: &str, now: Timestamp) -> Person {
        Person {
            project_id,
            uuid: uuid::Uuid::now_v7().to_string(),
            distinct_ids: vec![distinct_id.to_string()],
            properties: Map::new(),
            created_at: now,
            is_identified: false,
            revision: 0,
        }
    }

    /// Whether flag `key` of `set` is enabled for this person, with their stored properties
    /// and the static cohorts they belong to. Hashed by their first distinct id, as PostHog's
    /// cohort fill does; a person without one matches nothing.
    pub fn flag_enabled(
        &self,
        set: &FlagSet,
        key: &String,
        static_cohort_ids: &[i64],
        now: Timestamp,
    ) -> bool {
        let Some(distinct_id) = self.distinct_ids.first() else {
            return false;
        };
        let mut input = EvaluationInput::new(distinct_id, now);
        input.person_properties = &self.properties;
        input.flag_keys = Some(std::slice::from_ref(key));
        input.static_cohort_ids = static_cohort_ids;
        set.evaluate(&input).get(key).is_some_and(|e| e.enabled)
    }

    /// PostHog's `PersonSerializer`: `id` (our persons have no integer key, so the uuid),
    /// `name` (the `email` property, else the first non-anonymous distinct id), `distinct_ids`
    /// (UUID-like, i.e. anonymous, ones last), `properties`, `created_at`, `uuid`, and
    /// `is_identified`.
    pub fn representation(&self) -> Value {
        let mut distinct_ids: Vec<&String> = self.distinct_ids.iter().collect();
        distinct_ids.sort_by_key(|d| is_anonymous_id(d));
        let name = match self.properties.get("email") {
            Some(Value::String(email)) if !email.is_empty() => email.clone(),
            _ => distinct_ids
                .first()
                .map_or_else(|| self.uuid.clone(), |d| d.to_string()),
        };
        json!({
            "id": self.uuid,
            "uuid": self.uuid,
            "name": name,
            "distinct_ids": distinct_ids,
            "properties": self.properties,
            "created_at": time::format(&self.created_at),
            "is_identified": self.is_identified,
        })
    }
}

/// One person's change from a capture, written atomically: the person (conditional on its
/// revision as read, or on not existing), its new distinct-id items, and the persons merged
/// into it by `$identify`/alias (deleted, conditional on their revision).
#[derive(Debug, Clone, PartialEq)]
pub struct PersonWrite {
    /// The person as it should be stored; `revision` is the one read (0 = create).
    pub person: Person,
    /// Distinct ids that must now point at `person` and did not before. An id with no item
    /// yet is created conditional on `attribute_not_exists`; one that pointed at a merged
    /// person is moved conditional on still pointing there.
    pub claimed_distinct_ids: Vec<ClaimedDistinctId>,
    /// Persons merged into `person`: deleted, conditional on their revision as read.
    pub merged: Vec<Person>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDistinctId {
    pub distinct_id: String,
    /// The person uuid it pointed at when read; `None` when it had no item.
    pub previous: Option<String>,
}

impl PersonWrite {
    /// DynamoDB items the write touches (one transaction may hold at most 100).
    pub fn item_count(&self) -> usize {
        1 + self.claimed_distinct_ids.len() + self.merged.len()
    }
}

/// A person uuid as stored (hyphenated, lowercase) from any form `uuid` parses; `None` when
/// the text is no uuid. Every API input naming persons by uuid goes through here.
pub fn canonical_uuid(text: &str) -> Option<String> {
    uuid::Uuid::try_parse(text)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// PostHog's `is_anonymous_id`: SDK-generated anonymous ids are UUIDs.
fn is_anonymous_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_prefers_email_then_identified_ids() {
        let mut p = Person::new(
            1,
            "0190d6c0-0000-7000-8000-000000000000",
            chrono::Utc::now(),
        );
        p.distinct_ids.push("user@x".into());
        let shown = p.representation();
        assert_eq!(shown["name"], "user@x");
        assert_eq!(shown["distinct_ids"][0], "user@x");
        p.properties.insert("email".into(), json!("e@x.com"));
        assert_eq!(p.representation()["name"], "e@x.com");
    }
}
