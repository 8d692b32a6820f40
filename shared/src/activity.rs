//! The activity log: entries written with every flag change, and the field diff (§6.3).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::flag::Flag;
use crate::identity::UserSummary;
use crate::time::{self, Timestamp, serde_ts};

/// The activity-log scope of flag entries.
pub const FLAG_SCOPE: &str = "FeatureFlag";

/// One activity-log entry as stored. `seq`/`item_seq` are assigned by the store inside the
/// write transaction (1-based positions in the project's and the flag's logs) so pages can be
/// read by key range without counting. The store then replaces `id` with
/// [`positioned_entry_id`], so an id alone locates its entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: String,
    pub project_id: i64,
    pub scope: String,
    pub item_id: String,
    /// `created`, `updated`, `deleted`, `restored`.
    pub activity: String,
    /// `None` for system actions.
    pub user: Option<UserSummary>,
    /// `{"changes", "trigger", "type", "name", "short_id"}`, stored as JSON text.
    #[serde(with = "crate::json_text")]
    pub detail: Value,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
    #[serde(default)]
    pub seq: i64,
    #[serde(default)]
    pub item_seq: i64,
    /// The item's editable fields right after this change, as JSON text (see
    /// [`flag_snapshot`]): what a revert to this entry restores. Absent on entries written
    /// before snapshots existed and on entries too large to carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

impl ActivityEntry {
    /// The §6.2 response shape (plus `id`, as newer PostHog returns).
    pub fn to_json(&self) -> Value {
        let user = match &self.user {
            Some(u) => json!({"first_name": u.first_name, "email": u.email}),
            None => json!({"first_name": "System", "email": null, "is_system": true}),
        };
        json!({
            "id": self.id,
            "user": user,
            "activity": self.activity,
            "scope": self.scope,
            "item_id": self.item_id,
            "detail": self.detail,
            "created_at": time::format(&self.created_at),
        })
    }
}

/// The fields a user edits through PATCH/PUT, in the body shape those accept, so a revert can
/// send them back through the same validation. Usage data (`last_called_at`), `version`,
/// authors, timestamps and `creation_context` are not the user's configuration. `filters` are
/// as stored: payloads stay encrypted when the flag encrypts them.
pub fn flag_snapshot(flag: &Flag) -> Value {
    json!({
        "key": flag.key,
        "name": flag.name,
        "filters": flag.filters,
        "deleted": flag.deleted,
        "active": flag.active,
        "archived": flag.archived,
        "ensure_experience_continuity": flag.ensure_experience_continuity,
        "rollback_conditions": flag.rollback_conditions,
        "performed_rollback": flag.performed_rollback,
        "tags": flag.tags,
        "evaluation_tags": flag.evaluation_tags,
        "analytics_dashboards": flag.analytics_dashboards,
        "has_enriched_analytics": flag.has_enriched_analytics,
        "is_remote_configuration": flag.is_remote_configuration,
        "has_encrypted_payloads": flag.has_encrypted_payloads,
        "evaluation_runtime": flag.evaluation_runtime,
        "bucketing_identifier": flag.bucketing_identifier,
    })
}

/// `detail.trigger` of an entry written by reverting to entry `reverted_id`.
pub fn revert_trigger(reverted_id: &str) -> Value {
    json!({"job_type": "revert", "job_id": reverted_id, "payload": {}})
}

/// The diffed flag fields in PostHog's model field order, tags last (they are a relation
/// there). Excluded: id, timestamps, authors, dashboards, project and creation context.
fn diffed_fields(flag: &Flag) -> [(&'static str, Value); 18] {
    let ts = |t: &Option<Timestamp>| json!(t.as_ref().map(time::format));
    [
        ("key", json!(flag.key)),
        ("name", json!(flag.name)),
        ("filters", flag.filters.clone()),
        ("deleted", json!(flag.deleted)),
        ("active", json!(flag.active)),
        ("archived", json!(flag.archived)),
        ("version", json!(flag.version)),
        ("rollback_conditions", flag.rollback_conditions.clone()),
        ("performed_rollback", json!(flag.performed_rollback)),
        (
            "ensure_experience_continuity",
            json!(flag.ensure_experience_continuity),
        ),
        ("has_enriched_analytics", json!(flag.has_enriched_analytics)),
        (
            "is_remote_configuration",
            json!(flag.is_remote_configuration),
        ),
        ("has_encrypted_payloads", json!(flag.has_encrypted_payloads)),
        ("evaluation_runtime", json!(flag.evaluation_runtime)),
        ("bucketing_identifier", json!(flag.bucketing_identifier)),
        ("last_called_at", ts(&flag.last_called_at)),
        ("tags", sorted(&flag.tags)),
        ("evaluation_tags", sorted(&flag.evaluation_tags)),
    ]
}

/// Tags are a set: reordering them is not a change.
fn sorted(tags: &[String]) -> Value {
    let mut tags = tags.to_vec();
    tags.sort();
    json!(tags)
}

/// PostHog treats empty values as absent, so filling an empty field is "created".
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn change(field: &str, action: &str, before: Value, after: Value) -> Value {
    json!({"type": FLAG_SCOPE, "action": action, "field": field, "before": before, "after": after})
}

/// Changes between two stored versions, in model field order, as
/// `{"type":"FeatureFlag","action","field","before","after"}` objects.
pub fn flag_changes(before: &Flag, after: &Flag) -> Vec<Value> {
    diffed_fields(before)
        .into_iter()
        .zip(diffed_fields(after))
        .filter_map(
            |((field, left), (_, right))| match (is_empty(&left), is_empty(&right)) {
                (true, true) => None,
                (true, false) => Some(change(field, "created", Value::Null, right)),
                (false, true) => Some(change(field, "deleted", left, Value::Null)),
                (false, false) if left != right => Some(change(field, "changed", left, right)),
                (false, false) => None,
            },
        )
        .collect()
}

/// What a write did, from the soft-delete switch; anything else is an update.
fn flag_activity(before: Option<&Flag>, after: &Flag) -> &'static str {
    match before {
        None => "created",
        Some(b) if !b.deleted && after.deleted => "deleted",
        Some(b) if b.deleted && !after.deleted => "restored",
        Some(_) => "updated",
    }
}

/// The entry for a flag write (`before` is `None` on create). `None` for an update that
/// changed nothing, because PostHog never logs empty updates. `seq`/`item_seq` are left 0 for
/// the store to assign.
pub fn flag_entry(
    before: Option<&Flag>,
    after: &Flag,
    user: Option<&UserSummary>,
    now: Timestamp,
) -> Option<ActivityEntry> {
    let activity = flag_activity(before, after);
    let changes = before.map(|b| flag_changes(b, after)).unwrap_or_default();
    if activity == "updated" && changes.is_empty() {
        return None;
    }
    Some(ActivityEntry {
        id: entry_id(now),
        project_id: after.project_id,
        scope: FLAG_SCOPE.into(),
        item_id: after.id.to_string(),
        activity: activity.into(),
        user: user.cloned(),
        detail: json!({
            "changes": changes,
            "trigger": null,
            "type": null,
            "name": after.key,
            "short_id": null,
        }),
        created_at: now,
        seq: 0,
        item_seq: 0,
        snapshot: Some(flag_snapshot(after).to_string()),
    })
}

/// A UUIDv7 whose time part is the entry's own timestamp, so ids sort like `created_at`.
fn entry_id(now: Timestamp) -> String {
    let secs = u64::try_from(now.timestamp()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

/// Low 62 bits of a UUIDv7: the "random" part below the variant bits.
const POSITION_MASK: u64 = (1 << 62) - 1;

/// The id the store gives an entry once its position `seq` in the project's log is known: a
/// UUIDv7 with the entry's time (ids still sort like `created_at`) whose 62 low bits hold
/// `seq` instead of randomness. Ids stay unique within a project's log because positions are,
/// and `POST …/activity/{id}/revert/` finds the entry with one GetItem instead of a search.
pub fn positioned_entry_id(created_at: Timestamp, seq: i64) -> String {
    let millis = u64::try_from(created_at.timestamp_millis()).unwrap_or(0);
    let position = u64::try_from(seq).unwrap_or(0) & POSITION_MASK;
    let mut tail = [0u8; 10];
    tail[..2].copy_from_slice(&rand::random::<[u8; 2]>());
    tail[2..].copy_from_slice(&position.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

/// The log position carried by an id from [`positioned_entry_id`]; `None` for text that is not
/// a UUIDv7. Callers must still compare the stored entry's id: a random UUIDv7 decodes too.
pub fn entry_position(id: &str) -> Option<i64> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let low = u64::from_be_bytes(uuid.as_bytes()[8..].try_into().ok()?);
    i64::try_from(low & POSITION_MASK).ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn now() -> Timestamp {
        time::parse("2025-06-30T12:00:00.123456Z").unwrap()
    }

    fn user() -> UserSummary {
        UserSummary {
            id: 7,
            uuid: "u".into(),
            distinct_id: "d".into(),
            first_name: "Ann".into(),
            last_name: "B".into(),
            email: "ann@example.com".into(),
        }
    }

    fn flag() -> Flag {
        let mut f = Flag::new(42, 3, "k".into(), user(), now() - TimeDelta::days(1));
        f.name = "original name".into();
        f
    }

    /// `before` with one API update applied by `edit` (version bumped like the API does).
    fn updated(before: &Flag, edit: impl FnOnce(&mut Flag)) -> Flag {
        let mut after = before.clone();
        after.version += 1;
        edit(&mut after);
        after
    }

    fn fields(changes: &[Value]) -> Vec<&str> {
        changes.iter().filter_map(|c| c["field"].as_str()).collect()
    }

    #[test]
    fn create_entry_has_no_changes_and_the_full_detail() {
        let f = flag();
        let entry = flag_entry(None, &f, Some(&user()), now()).unwrap();
        assert_eq!(entry.activity, "created");
        assert_eq!(entry.scope, "FeatureFlag");
        assert_eq!(entry.item_id, "42");
        assert_eq!(entry.project_id, 3);
        assert_eq!(entry.user, Some(user()));
        assert_eq!(entry.created_at, now());
        assert_eq!((entry.seq, entry.item_seq), (0, 0));
        assert_eq!(
            entry.detail,
            json!({"changes": [], "trigger": null, "type": null, "name": "k", "short_id": null})
        );
    }

    #[test]
    fn entry_id_is_a_uuid_v7_carrying_the_entry_time() {
        let entry = flag_entry(None, &flag(), None, now()).unwrap();
        let id = uuid::Uuid::parse_str(&entry.id).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, now().timestamp() as u64);
        let other = flag_entry(None, &flag(), None, now()).unwrap();
        assert_ne!(entry.id, other.id);
    }

    #[test]
    fn spec_example_name_filters_and_version() {
        let before = flag();
        let after = updated(&before, |f| {
            f.name = "Updated name".into();
            f.filters = json!({"groups": [{"properties": [], "rollout_percentage": 74}]});
            f.updated_at = now();
            f.last_modified_by = Some(user());
        });
        let entry = flag_entry(Some(&before), &after, Some(&user()), now()).unwrap();
        assert_eq!(entry.activity, "updated");
        assert_eq!(
            entry.detail["changes"],
            json!([
                {"type": "FeatureFlag", "action": "changed", "field": "name", "before": "original name", "after": "Updated name"},
                {"type": "FeatureFlag", "action": "created", "field": "filters", "before": null,
                 "after": {"groups": [{"properties": [], "rollout_percentage": 74}]}},
                {"type": "FeatureFlag", "action": "changed", "field": "version", "before": 1, "after": 2}
            ])
        );
    }

    #[test]
    fn update_without_changes_is_not_logged() {
        let before = flag();
        let mut after = before.clone();
        // Only excluded fields move.
        after.updated_at = now();
        after.created_at = now();
        after.last_modified_by = None;
        after.created_by = None;
        after.usage_dashboard = Some(9);
        after.analytics_dashboards = vec![1, 2];
        after.creation_context = "surveys".into();
        after.project_id = 99;
        after.id = 43;
        assert!(flag_changes(&before, &after).is_empty());
        assert!(flag_entry(Some(&before), &after, Some(&user()), now()).is_none());
    }

    #[test]
    fn soft_delete_and_restore() {
        let live = flag();
        let gone = updated(&live, |f| f.deleted = true);
        let entry = flag_entry(Some(&live), &gone, Some(&user()), now()).unwrap();
        assert_eq!(entry.activity, "deleted");
        assert_eq!(
            entry.detail["changes"][0],
            json!({"type": "FeatureFlag", "action": "changed", "field": "deleted", "before": false, "after": true})
        );
        let back = updated(&gone, |f| f.deleted = false);
        let entry = flag_entry(Some(&gone), &back, None, now()).unwrap();
        assert_eq!(entry.activity, "restored");
        assert_eq!(entry.user, None);
        assert_eq!(entry.to_json()["user"]["first_name"], "System");
    }

    #[test]
    fn emptied_values_are_deleted_and_filled_ones_created() {
        let before = flag();
        let after = updated(&before, |f| {
            f.name = String::new();
            f.rollback_conditions = json!([{"threshold": 5}]);
        });
        let changes = flag_changes(&before, &after);
        assert_eq!(
            changes[0],
            json!({"type": "FeatureFlag", "action": "deleted", "field": "name", "before": "original name", "after": null})
        );
        assert_eq!(
            changes[2],
            json!({"type": "FeatureFlag", "action": "created", "field": "rollback_conditions", "before": null, "after": [{"threshold": 5}]})
        );
    }

    #[test]
    fn empty_to_empty_of_another_kind_is_no_change() {
        let before = flag();
        let mut after = before.clone();
        after.rollback_conditions = json!([]);
        after.filters = Value::Null;
        assert!(flag_changes(&before, &after).is_empty());
    }

    #[test]
    fn false_is_a_value_not_an_absence() {
        let before = flag();
        let after = updated(&before, |f| {
            f.performed_rollback = Some(false);
            f.ensure_experience_continuity = None;
        });
        let changes = flag_changes(&before, &after);
        assert_eq!(
            changes[1],
            json!({"type": "FeatureFlag", "action": "created", "field": "performed_rollback", "before": null, "after": false})
        );
        assert_eq!(
            changes[2],
            json!({"type": "FeatureFlag", "action": "deleted", "field": "ensure_experience_continuity", "before": false, "after": null})
        );
    }

    #[test]
    fn every_diffed_field_in_model_order() {
        let before = flag();
        let after = updated(&before, |f| {
            f.key = "k2".into();
            f.name = "n2".into();
            f.filters = json!({"groups": []});
            f.deleted = true;
            f.active = false;
            f.archived = true;
            f.rollback_conditions = json!([1]);
            f.performed_rollback = Some(true);
            f.ensure_experience_continuity = Some(true);
            f.has_enriched_analytics = Some(true);
            f.is_remote_configuration = Some(true);
            f.has_encrypted_payloads = Some(true);
            f.evaluation_runtime = "server".into();
            f.bucketing_identifier = "device_id".into();
            f.last_called_at = Some(now());
            f.tags = vec!["a".into()];
            f.evaluation_tags = vec!["a".into()];
        });
        let changes = flag_changes(&before, &after);
        assert_eq!(
            fields(&changes),
            [
                "key",
                "name",
                "filters",
                "deleted",
                "active",
                "archived",
                "version",
                "rollback_conditions",
                "performed_rollback",
                "ensure_experience_continuity",
                "has_enriched_analytics",
                "is_remote_configuration",
                "has_encrypted_payloads",
                "evaluation_runtime",
                "bucketing_identifier",
                "last_called_at",
                "tags",
                "evaluation_tags",
            ]
        );
        assert_eq!(changes[15]["after"], "2025-06-30T12:00:00.123456Z");
        assert_eq!(changes[15]["action"], "created");
        assert_eq!(
            changes[5],
            json!({"type": "FeatureFlag", "action": "changed", "field": "archived", "before": false, "after": true})
        );
        // The entry is named after the key the flag has now.
        let entry = flag_entry(Some(&before), &after, None, now()).unwrap();
        assert_eq!(entry.detail["name"], "k2");
        assert_eq!(entry.activity, "deleted");
    }

    #[test]
    fn tag_order_is_not_a_change_but_membership_is() {
        let mut before = flag();
        before.tags = vec!["b".into(), "a".into()];
        let mut after = before.clone();
        after.tags = vec!["a".into(), "b".into()];
        assert!(flag_changes(&before, &after).is_empty());
        after.tags = vec!["a".into(), "c".into()];
        assert_eq!(
            flag_changes(&before, &after),
            [
                json!({"type": "FeatureFlag", "action": "changed", "field": "tags", "before": ["a", "b"], "after": ["a", "c"]})
            ]
        );
    }

    #[test]
    fn entries_round_trip_through_storage_serde() {
        let before = flag();
        let after = updated(&before, |f| f.active = false);
        let entry = flag_entry(Some(&before), &after, Some(&user()), now()).unwrap();
        let text = serde_json::to_string(&entry).unwrap();
        let back: ActivityEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entry);
        let shown = entry.to_json();
        assert_eq!(
            shown["user"],
            json!({"first_name": "Ann", "email": "ann@example.com"})
        );
        assert_eq!(shown["created_at"], "2025-06-30T12:00:00.123456Z");
    }

    #[test]
    fn positioned_ids_are_time_ordered_v7_carrying_their_position() {
        for seq in [1, 2, 10_000, (1 << 62) - 1] {
            let id = positioned_entry_id(now(), seq);
            let uuid = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
            assert_eq!(secs, now().timestamp() as u64);
            assert_eq!(nanos / 1_000_000, 123);
            assert_eq!(entry_position(&id), Some(seq));
        }
        let later = now() + chrono::TimeDelta::milliseconds(1);
        assert!(positioned_entry_id(now(), 9) < positioned_entry_id(later, 1));
    }

    #[test]
    fn only_uuid_v7_text_has_a_position() {
        assert_eq!(entry_position("nope"), None);
        assert_eq!(entry_position(&uuid::Uuid::new_v4().to_string()), None);
        assert_eq!(entry_position(&positioned_entry_id(now(), 0)), None);
    }

    #[test]
    fn every_entry_carries_the_editable_fields_after_the_change() {
        let before = flag();
        let after = updated(&before, |f| {
            f.name = "new".into();
            f.tags = vec!["t".into()];
            f.last_called_at = Some(now());
        });
        let entry = flag_entry(Some(&before), &after, None, now()).unwrap();
        let snapshot: Value = serde_json::from_str(entry.snapshot.as_deref().unwrap()).unwrap();
        assert_eq!(snapshot, flag_snapshot(&after));
        assert_eq!(snapshot["name"], "new");
        assert_eq!(snapshot["tags"], json!(["t"]));
        for not_configuration in ["version", "last_called_at", "created_at", "id"] {
            assert!(
                snapshot.get(not_configuration).is_none(),
                "{not_configuration}"
            );
        }
        // Not part of the §6.2 shape.
        assert!(entry.to_json().get("snapshot").is_none());
        let created = flag_entry(None, &before, None, now()).unwrap();
        assert!(created.snapshot.is_some());
    }

    #[test]
    fn entries_without_a_snapshot_still_load() {
        let entry = flag_entry(None, &flag(), None, now()).unwrap();
        let mut stored = serde_json::to_value(&entry).unwrap();
        stored.as_object_mut().unwrap().remove("snapshot");
        let back: ActivityEntry = serde_json::from_value(stored).unwrap();
        assert_eq!(back.snapshot, None);
    }
}
