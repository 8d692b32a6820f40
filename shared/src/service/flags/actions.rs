//! PostHog's single-purpose flag actions (flag-management-rules.md §5.9): enable, disable,
//! archive, unarchive, roll out to everyone and one condition's rollout. Each builds a PATCH
//! body from the flag as stored and writes it through [`FlagService::update`], so guards,
//! activity entry, version bump and retries are those of every other write. A body that
//! changes nothing writes nothing.

use serde_json::{Map, Value, json};

use super::{Changes, Expected, FlagService};
use crate::cohort;
use crate::crypto::PayloadCipher;
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::flag::filters::{CohortRef, Filters};
use crate::identity::UserSummary;
use crate::store::{FeatureStore, FlagStore};
use crate::time::Timestamp;

/// The state actions: each changes `active` and/or `archived` and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Enable,
    Disable,
    Archive,
    Unarchive,
}

impl Lifecycle {
    pub fn from_segment(segment: &str) -> Option<Lifecycle> {
        Some(match segment {
            "enable" => Lifecycle::Enable,
            "disable" => Lifecycle::Disable,
            "archive" => Lifecycle::Archive,
            "unarchive" => Lifecycle::Unarchive,
            _ => return None,
        })
    }

    /// PostHog's wording for the refusal of a soft-deleted flag ("… Restore it before …").
    pub fn gerund(self) -> &'static str {
        match self {
            Lifecycle::Enable => "enabling it",
            Lifecycle::Disable => "disabling it",
            Lifecycle::Archive => "archiving it",
            Lifecycle::Unarchive => "unarchiving it",
        }
    }

    /// The PATCH body that puts `flag` in this state; empty when it already is.
    fn body(self, flag: &Flag) -> Map<String, Value> {
        let fields: &[(&str, bool)] = match self {
            Lifecycle::Enable if !flag.active => &[("active", true)],
            Lifecycle::Disable if flag.active => &[("active", false)],
            // An archived flag must be disabled: an enabled one is turned off in the same write.
            Lifecycle::Archive if !flag.archived && flag.active => {
                &[("archived", true), ("active", false)]
            }
            Lifecycle::Archive if !flag.archived => &[("archived", true)],
            Lifecycle::Unarchive if flag.archived => &[("archived", false)],
            _ => &[],
        };
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Bool(*v)))
            .collect()
    }

    /// Enabling or unarchiving brings the flag's conditions back into use, so each cohort
    /// they name must still exist (the catalog's "release condition targets a deleted cohort").
    fn revives(self) -> bool {
        matches!(self, Lifecycle::Enable | Lifecycle::Unarchive)
    }
}

/// `set_release_condition_rollout`'s request: which condition (counted from 0), what percentage.
#[derive(Clone, Copy, Debug)]
pub struct ConditionRollout {
    pub index: usize,
    pub percentage: f64,
}

/// The message PostHog gives a flag action on a soft-deleted flag.
pub fn deleted_flag_message(restore_hint: &str) -> String {
    format!("This feature flag has been deleted. Restore it before {restore_hint}.")
}

impl<S: FlagStore + FeatureStore> FlagService<'_, S> {
    /// `POST /feature_flags/{id}/enable|disable|archive|unarchive/`.
    pub async fn set_state(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        action: Lifecycle,
        expected: Option<Expected>,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let cohorts = if action.revives() {
            self.live_cohorts(project_id, flag_id).await?
        } else {
            Vec::new()
        };
        let changes = Changes::action_from_stored(move |stored: &Flag| {
            refuse_deleted(stored, action.gerund())?;
            let body = action.body(stored);
            if !body.is_empty() && action.revives() {
                check_cohorts_exist(stored, &cohorts)?;
            }
            Ok(body)
        })
        .expecting(expected);
        self.update(project_id, actor, flag_id, changes, now).await
    }

    /// `POST /feature_flags/{id}/roll_out_to_everyone/`.
    pub async fn roll_out_to_everyone(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        variant_key: Option<&str>,
        expected: Expected,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let changes = filters_change(self.cipher, "rolling it out", expected, move |filters| {
            rolled_out_to_everyone(filters, variant_key)
        });
        self.update(project_id, actor, flag_id, changes, now).await
    }

    /// `POST /feature_flags/{id}/set_release_condition_rollout/`.
    pub async fn set_release_condition_rollout(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        rollout: ConditionRollout,
        expected: Expected,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let changes = filters_change(
            self.cipher,
            "changing its rollout",
            expected,
            move |filters| with_condition_rollout(filters, rollout),
        );
        self.update(project_id, actor, flag_id, changes, now).await
    }

    /// The project's live cohorts, read only when the stored flag names one.
    async fn live_cohorts(&self, project_id: i64, flag_id: i64) -> ApiResult<Vec<CohortRef>> {
        let Some(flag) = self.store.get_flag(project_id, flag_id).await? else {
            return Ok(Vec::new());
        };
        if cohort::flag_cohort_ids(&flag.filters).is_empty() {
            return Ok(Vec::new());
        }
        Ok(cohort::refs(&self.store.project_cohorts(project_id).await?))
    }
}

/// A rollout action: `transform` of the stored filters (in plain text), on a live flag, with
/// PostHog's strict version check.
fn filters_change<'c>(
    cipher: &'c PayloadCipher,
    restore_hint: &'static str,
    expected: Expected,
    transform: impl Fn(&Value) -> ApiResult<Value> + Send + Sync + 'c,
) -> Changes<'c> {
    Changes::action_from_stored(move |stored: &Flag| {
        refuse_deleted(stored, restore_hint)?;
        let filters = transform(&plain_filters(cipher, stored))?;
        Ok(filters_body(stored, cipher, filters))
    })
    .expecting(Some(expected))
}

fn refuse_deleted(stored: &Flag, hint: &str) -> ApiResult<()> {
    if stored.deleted {
        return Err(ApiError::object(deleted_flag_message(hint)));
    }
    Ok(())
}

/// E13 for a stored condition: the same error a PATCH naming that cohort gets.
fn check_cohorts_exist(stored: &Flag, live: &[CohortRef]) -> ApiResult<()> {
    match cohort::flag_cohort_ids(&stored.filters)
        .into_iter()
        .find(|id| !live.iter().any(|c| c.id == *id))
    {
        Some(id) => Err(ApiError::field(
            "filters",
            "cohort_does_not_exist",
            format!("Cohort with id {id} does not exist"),
        )),
        None => Ok(()),
    }
}

/// The stored filters as a PATCH must send them: encrypted payloads in plain text (the write
/// encrypts what it is sent, so sending ciphertext would encrypt it twice).
fn plain_filters(cipher: &PayloadCipher, stored: &Flag) -> Value {
    let filters = stored.effective_filters();
    if stored.has_encrypted_payloads == Some(true) {
        cipher.reveal(&filters, true)
    } else {
        filters
    }
}

/// `{"filters": new}`, or nothing when the filters would not change.
fn filters_body(stored: &Flag, cipher: &PayloadCipher, new: Value) -> Map<String, Value> {
    if new == plain_filters(cipher, stored) {
        return Map::new();
    }
    Map::from_iter([("filters".to_string(), new)])
}

/// A condition with no property filters at 100 %: everyone the flag aggregates by.
fn is_catch_all(condition: &Value) -> bool {
    let no_properties = condition
        .get("properties")
        .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty));
    let everyone = condition
        .get("rollout_percentage")
        .is_none_or(|r| r.is_null() || r.as_f64() == Some(100.0));
    let no_variant = condition.get("variant").is_none_or(Value::is_null);
    no_properties && everyone && no_variant
}

/// The filters with a catch-all condition first (unless one leads already) and, on a
/// multivariate flag, `variant_key` at 100 % of the distribution and every other variant at 0.
pub fn rolled_out_to_everyone(filters: &Value, variant_key: Option<&str>) -> ApiResult<Value> {
    let view = Filters::of(filters);
    if filters.get("feature_enrollment").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::object(
            "This flag is gated on early access enrollment, which is evaluated before its release conditions, so a rollout to everyone would not reach everyone. Move the early access feature to general availability with its roll out to everyone option instead.",
        ));
    }
    let variants: Vec<String> = view
        .variants()
        .filter_map(|v| v.raw().get("key").and_then(Value::as_str).map(String::from))
        .collect();
    match (variants.is_empty(), variant_key) {
        (true, Some(_)) => {
            return Err(ApiError::invalid(
                "variant_key",
                "This flag has no variants, so variant_key does not apply. Leave it out.",
            ));
        }
        (false, None) => {
            return Err(ApiError::invalid(
                "variant_key",
                format!(
                    "This flag is multivariate: name the variant everyone gets in variant_key, one of {}.",
                    variants.join(", ")
                ),
            ));
        }
        (false, Some(key)) if !variants.iter().any(|v| v == key) => {
            return Err(ApiError::invalid(
                "variant_key",
                format!(
                    "This flag has no variant '{key}'. Its variants are {}.",
                    variants.join(", ")
                ),
            ));
        }
        _ => {}
    }
    let mut out = filters.clone();
    let Some(map) = out.as_object_mut() else {
        return Err(ApiError::internal("filters are not an object"));
    };
    let mut groups = map
        .get("groups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !groups.first().is_some_and(is_catch_all) {
        groups.insert(0, json!({"properties": [], "rollout_percentage": 100}));
    }
    map.insert("groups".into(), Value::Array(groups));
    if let Some(key) = variant_key
        && let Some(variants) = map
            .get_mut("multivariate")
            .and_then(|m| m.get_mut("variants"))
            .and_then(Value::as_array_mut)
    {
        for variant in variants.iter_mut().filter_map(Value::as_object_mut) {
            let share = if variant.get("key").and_then(Value::as_str) == Some(key) {
                100
            } else {
                0
            };
            variant.insert("rollout_percentage".into(), json!(share));
        }
    }
    Ok(out)
}

/// The filters with condition `index`'s `rollout_percentage` set; 400 when there is none.
pub fn with_condition_rollout(filters: &Value, rollout: ConditionRollout) -> ApiResult<Value> {
    let ConditionRollout {
        index,
        percentage: rollout,
    } = rollout;
    let mut out = filters.clone();
    let groups = out
        .get_mut("groups")
        .and_then(Value::as_array_mut)
        .filter(|g| !g.is_empty());
    let Some(groups) = groups else {
        return Err(ApiError::invalid(
            "condition_index",
            "This flag has no release conditions, so there is no rollout to set. Add a condition with update-feature-flag first.",
        ));
    };
    let count = groups.len();
    let Some(condition) = groups.get_mut(index).and_then(Value::as_object_mut) else {
        return Err(ApiError::invalid(
            "condition_index",
            format!(
                "There is no release condition at index {index}. It has {count}, counted from 0."
            ),
        ));
    };
    // A whole percentage stays the integer a client sent and reads back.
    let value = if rollout.fract() == 0.0 {
        json!(rollout as i64)
    } else {
        json!(rollout)
    };
    condition.insert("rollout_percentage".into(), value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multivariate() -> Value {
        json!({
            "groups": [{"properties": [{"key": "email", "type": "person", "value": "x"}], "rollout_percentage": 10}],
            "multivariate": {"variants": [
                {"key": "control", "rollout_percentage": 60, "name": "Control"},
                {"key": "test", "rollout_percentage": 40}
            ]},
            "payloads": {"control": "{\"copy\": \"a\"}"}
        })
    }

    #[test]
    fn everyone_leads_and_the_named_variant_takes_the_whole_split() {
        let out = rolled_out_to_everyone(&multivariate(), Some("test")).unwrap();
        assert_eq!(
            out["groups"][0],
            json!({"properties": [], "rollout_percentage": 100})
        );
        assert_eq!(out["groups"][1], multivariate()["groups"][0]);
        assert_eq!(
            out["multivariate"]["variants"],
            json!([
                {"key": "control", "rollout_percentage": 0, "name": "Control"},
                {"key": "test", "rollout_percentage": 100}
            ])
        );
        assert_eq!(out["payloads"], multivariate()["payloads"]);
        // Again: nothing changes, no second catch-all.
        assert_eq!(rolled_out_to_everyone(&out, Some("test")).unwrap(), out);
    }

    #[test]
    fn variant_key_must_fit_the_flag() {
        let detail = |r: ApiResult<Value>| r.unwrap_err().to_string();
        assert!(detail(rolled_out_to_everyone(&multivariate(), None)).contains("control, test"));
        assert!(
            detail(rolled_out_to_everyone(&multivariate(), Some("green")))
                .contains("has no variant 'green'")
        );
        let boolean = json!({"groups": [{"properties": [], "rollout_percentage": 10}]});
        assert!(detail(rolled_out_to_everyone(&boolean, Some("x"))).contains("has no variants"));
        let gated = json!({"groups": [], "feature_enrollment": true});
        assert!(detail(rolled_out_to_everyone(&gated, None)).contains("early access enrollment"));
    }

    fn at(index: usize, percentage: f64) -> ConditionRollout {
        ConditionRollout { index, percentage }
    }

    #[test]
    fn a_condition_rollout_changes_that_condition_only() {
        let f = json!({"groups": [{"properties": [], "rollout_percentage": 10}, {"properties": [], "rollout_percentage": 5}]});
        let out = with_condition_rollout(&f, at(1, 0.5)).unwrap();
        assert_eq!(out["groups"][1]["rollout_percentage"], json!(0.5));
        assert_eq!(out["groups"][0], f["groups"][0]);
        assert_eq!(
            with_condition_rollout(&f, at(0, 25.0)).unwrap()["groups"][0]["rollout_percentage"],
            json!(25)
        );
        assert!(
            with_condition_rollout(&f, at(2, 1.0))
                .unwrap_err()
                .to_string()
                .contains("It has 2")
        );
        assert!(
            with_condition_rollout(&json!({"groups": []}), at(0, 1.0))
                .unwrap_err()
                .to_string()
                .contains("no release conditions")
        );
    }
}
