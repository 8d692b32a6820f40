//! The activity log: entries written with every flag change, and the field diff (§6.3).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::identity::UserSummary;
use crate::time::{self, Timestamp, serde_ts};

/// One activity-log entry as stored. `seq`/`item_seq` are assigned by the store inside the
/// write transaction (1-based positions in the project's and the flag's logs) so pages can be
/// read by key range without counting.
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
    #[serde(with = "detail_text")]
    pub detail: Value,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
    #[serde(default)]
    pub seq: i64,
    #[serde(default)]
    pub item_seq: i64,
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

mod detail_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}
