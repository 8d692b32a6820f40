//! Reverting a flag to an activity entry's snapshot: a PATCH of the fields that differ.

use serde_json::{Map, Value};

use super::{Changes, FlagService};
use crate::activity::{self, ActivityEntry};
use crate::crypto::PayloadCipher;
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::identity::UserSummary;
use crate::store::{FeatureStore, FlagStore};
use crate::time::Timestamp;

impl<S: FlagStore + FeatureStore> FlagService<'_, S> {
    /// Puts the flag's editable fields back to what they were right after `entry` (one of this
    /// flag's entries), as a PATCH of the fields that differ now, with all of PATCH's rules,
    /// logged with a trigger naming the entry.
    pub async fn revert(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        entry: &ActivityEntry,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let text = entry.snapshot.as_deref().ok_or_else(|| {
            ApiError::object(
                "This activity entry has no saved copy of the flag to revert to (it was too large to keep one).",
            )
        })?;
        let snapshot: Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| ApiError::internal(format!("snapshot of entry {}: {e}", entry.id)))?;
        let cipher = self.cipher;
        let changes =
            Changes::patch_from_stored(|current| Ok(revert_body(cipher, &snapshot, current)))
                .triggered_by(activity::revert_trigger(&entry.id));
        self.update(project_id, actor, flag_id, changes, now).await
    }
}

/// The PATCH body taking `current` back to `snapshot`: only the fields that differ, so
/// untouched ones are neither re-validated nor re-encrypted nor side-effected (`active`
/// resets `performed_rollback`).
fn revert_body(
    cipher: &PayloadCipher,
    snapshot: &Map<String, Value>,
    current: &Flag,
) -> Map<String, Value> {
    let now = activity::flag_snapshot(current);
    // Snapshots taken before flags could be archived describe a flag that was not.
    let mut snapshot = snapshot.clone();
    snapshot.entry("archived").or_insert(Value::Bool(false));
    let mut body: Map<String, Value> = snapshot
        .iter()
        .filter(|(field, wanted)| now.get(field.as_str()) != Some(*wanted))
        .map(|(field, wanted)| (field.clone(), wanted.clone()))
        .collect();
    // Evaluation tags are checked against the tags of the same body.
    if body.contains_key("evaluation_tags")
        && let Some(tags) = snapshot.get("tags")
    {
        body.insert("tags".into(), tags.clone());
    }
    if let Some(filters) = body.get_mut("filters") {
        *filters = sendable_filters(cipher, filters, &snapshot, current);
    }
    body
}

/// Stored filters as a client would send them: flags created without filters store `{}`
/// (which PATCH ignores), so send the one everyone-group readers are shown; payloads of
/// encrypting flags are stored as ciphertext, so send the plain text the update path
/// validates and encrypts again.
fn sendable_filters(
    cipher: &PayloadCipher,
    filters: &Value,
    snapshot: &Map<String, Value>,
    current: &Flag,
) -> Value {
    let mut shape = current.clone();
    shape.filters = filters.clone();
    let shown = shape.effective_filters();
    if snapshot.get("has_encrypted_payloads") == Some(&Value::Bool(true)) {
        cipher.reveal(&shown, true)
    } else {
        shown
    }
}
