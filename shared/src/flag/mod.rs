//! The feature flag: what is stored, and how PostHog shows it.

pub mod filters;
pub mod input;
pub mod list;
pub mod status;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::identity::UserSummary;
use crate::time::{self, Timestamp, serde_ts};
use filters::Filters;

/// Keys may hold letters, digits, `-` and `_` only.
pub const KEY_MAX_CHARS: usize = 400;

/// A flag as stored. `filters` is kept exactly as validated (payload values as JSON text,
/// encrypted when `has_encrypted_payloads`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub id: i64,
    pub project_id: i64,
    pub key: String,
    pub name: String,
    /// `{}` when nothing was ever stored (shown as PostHog's legacy default group).
    #[serde(with = "crate::json_text")]
    pub filters: Value,
    pub deleted: bool,
    pub active: bool,
    /// "Done for good": hidden from the default list and always disabled. Absent on items
    /// written before the field existed.
    #[serde(default)]
    pub archived: bool,
    pub created_by: Option<UserSummary>,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
    pub version: i64,
    pub last_modified_by: Option<UserSummary>,
    #[serde(with = "crate::json_text")]
    pub rollback_conditions: Value,
    pub performed_rollback: Option<bool>,
    pub ensure_experience_continuity: Option<bool>,
    pub usage_dashboard: Option<i64>,
    pub analytics_dashboards: Vec<i64>,
    pub has_enriched_analytics: Option<bool>,
    pub is_remote_configuration: Option<bool>,
    pub has_encrypted_payloads: Option<bool>,
    pub evaluation_runtime: String,
    pub bucketing_identifier: String,
    #[serde(with = "serde_ts::option", default)]
    pub last_called_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub evaluation_tags: Vec<String>,
    pub creation_context: String,
    /// Bumped by every stored write, which is conditional on it. `version` follows PostHog's
    /// rules (direct saves don't bump it); this never skips, so no write is lost.
    #[serde(default)]
    pub revision: i64,
}

impl Flag {
    /// A new flag with PostHog's defaults; the caller fills in what the request sets.
    pub fn new(
        id: i64,
        project_id: i64,
        key: String,
        creator: UserSummary,
        now: Timestamp,
    ) -> Self {
        Flag {
            id,
            project_id,
            key,
            name: String::new(),
            filters: json!({}),
            deleted: false,
            active: true,
            archived: false,
            created_by: Some(creator.clone()),
            created_at: now,
            updated_at: now,
            version: 1,
            last_modified_by: Some(creator),
            rollback_conditions: Value::Null,
            performed_rollback: None,
            ensure_experience_continuity: Some(false),
            usage_dashboard: None,
            analytics_dashboards: Vec::new(),
            has_enriched_analytics: Some(false),
            is_remote_configuration: Some(false),
            has_encrypted_payloads: Some(false),
            evaluation_runtime: "all".into(),
            bucketing_identifier: "distinct_id".into(),
            last_called_at: None,
            tags: Vec::new(),
            evaluation_tags: Vec::new(),
            creation_context: "feature_flags".into(),
            revision: 0,
        }
    }

    /// Filters as evaluators and readers see them: legacy rows without `groups` become one
    /// group holding everyone (PostHog's `get_filters`).
    pub fn effective_filters(&self) -> Value {
        match &self.filters {
            Value::Object(_) if Filters::of(&self.filters).has_groups() => self.filters.clone(),
            Value::Object(map) => json!({"groups": [{
                "properties": map.get("properties").cloned().unwrap_or_else(|| json!([])),
                "rollout_percentage": null,
            }]}),
            _ => json!({"groups": [{"properties": [], "rollout_percentage": null}]}),
        }
    }

    pub fn groups(&self) -> Vec<Value> {
        Filters::of(&self.filters)
            .groups()
            .map(|g| g.raw().clone())
            .collect()
    }

    /// Variant definitions, `[]` for boolean flags (tolerates `multivariate: null`).
    pub fn variants(&self) -> Vec<Value> {
        Filters::of(&self.filters)
            .variants()
            .map(|v| v.raw().clone())
            .collect()
    }

    pub fn is_group_based(&self) -> bool {
        self.filters
            .get("aggregation_group_type_index")
            .is_some_and(|v| !v.is_null())
    }
}

/// How a reader sees payloads: the decrypted text, or PostHog's sentinel.
pub const ENCRYPTED_SENTINEL: &str = "\"********* (encrypted)\"";

/// Early access features linked to a flag, in PostHog's minimal form.
pub type LinkedFeatures = Vec<Value>;

/// Renders the PostHog JSON for a flag. `filters` must already have payloads as the caller may
/// see them (see `crypto`).
pub fn representation(
    flag: &Flag,
    filters: Value,
    features: &LinkedFeatures,
    now: Timestamp,
) -> Value {
    let user =
        |u: &Option<UserSummary>| u.as_ref().map(UserSummary::to_json).unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("id".into(), json!(flag.id));
    out.insert("name".into(), json!(flag.name));
    out.insert("key".into(), json!(flag.key));
    out.insert("filters".into(), filters);
    out.insert("deleted".into(), json!(flag.deleted));
    out.insert("active".into(), json!(flag.active));
    out.insert("archived".into(), json!(flag.archived));
    out.insert("created_by".into(), user(&flag.created_by));
    out.insert("created_at".into(), json!(time::format(&flag.created_at)));
    out.insert("updated_at".into(), json!(time::format(&flag.updated_at)));
    out.insert("version".into(), json!(flag.version));
    out.insert("last_modified_by".into(), user(&flag.last_modified_by));
    out.insert(
        "ensure_experience_continuity".into(),
        json!(flag.ensure_experience_continuity),
    );
    out.insert("experiment_set".into(), json!([]));
    out.insert("surveys".into(), json!([]));
    out.insert("features".into(), json!(features));
    out.insert(
        "rollback_conditions".into(),
        flag.rollback_conditions.clone(),
    );
    out.insert("performed_rollback".into(), json!(flag.performed_rollback));
    out.insert("can_edit".into(), json!(true));
    out.insert("tags".into(), json!(flag.tags));
    out.insert("evaluation_tags".into(), json!(flag.evaluation_tags));
    out.insert("usage_dashboard".into(), json!(flag.usage_dashboard));
    out.insert(
        "analytics_dashboards".into(),
        json!(flag.analytics_dashboards),
    );
    out.insert(
        "has_enriched_analytics".into(),
        json!(flag.has_enriched_analytics),
    );
    out.insert("user_access_level".into(), json!("editor"));
    out.insert(
        "is_remote_configuration".into(),
        json!(flag.is_remote_configuration),
    );
    out.insert(
        "has_encrypted_payloads".into(),
        json!(flag.has_encrypted_payloads),
    );
    out.insert("status".into(), json!(status::status_name(flag, now)));
    out.insert("evaluation_runtime".into(), json!(flag.evaluation_runtime));
    out.insert(
        "bucketing_identifier".into(),
        json!(flag.bucketing_identifier),
    );
    out.insert(
        "last_called_at".into(),
        json!(flag.last_called_at.as_ref().map(time::format)),
    );
    Value::Object(out)
}

/// The minimal flag shape of local evaluation and early access features.
pub fn minimal_representation(flag: &Flag, filters: Value) -> Value {
    json!({
        "id": flag.id,
        "team_id": flag.project_id,
        "name": flag.name,
        "key": flag.key,
        "filters": filters,
        "deleted": flag.deleted,
        "active": flag.active,
        "ensure_experience_continuity": flag.ensure_experience_continuity,
        "has_encrypted_payloads": flag.has_encrypted_payloads,
        "version": flag.version,
        "evaluation_runtime": flag.evaluation_runtime,
        "bucketing_identifier": flag.bucketing_identifier,
        "evaluation_tags": flag.evaluation_tags,
    })
}
