//! `POST /api/projects/{project_id}/feature_flags/user_blast_radius/` (issue 13): how many
//! persons a release condition would match, out of how many. Answered from the stored persons
//! (pages of one Query each) through the evaluation engine's own condition matching, cohorts
//! included, so the count agrees with what `/flags` would serve.
//!
//! The walk is bounded: at most [`MAX_BLAST_RADIUS_PERSONS`] persons, oldest first. Past that
//! both numbers are counted over those persons only, so `affected / total` is an estimate from
//! the oldest persons rather than an exact count (docs/differences-from-posthog.md).

use serde_json::{Map, Value, json};

use super::Context;
use crate::error::{ApiError, ApiResult};
use crate::evaluation::snapshot::{EvaluationSnapshot, cohorts_for};
use crate::flag::Flag;
use crate::flag::filters;
use crate::identity::{Project, UserSummary};
use crate::python;
use crate::store::{CohortStore, GROUP_TYPES_LIMIT, PersonStore};

/// The most persons one request reads (`performance.md`).
pub const MAX_BLAST_RADIUS_PERSONS: usize = 10_000;
/// Persons per Query.
const PAGE_SIZE: usize = 500;
/// The synthetic flag's key; never stored, never shown.
const PROBE_KEY: &str = "$user-blast-radius";

/// `affected` of `total` persons, under PostHog's current names and its former ones
/// (`users_affected`, `total_users`), which older clients read.
pub(super) async fn user_blast_radius<S: PersonStore + CohortStore>(
    ctx: &Context<'_, S>,
    project: &Project,
    body: &Map<String, Value>,
) -> ApiResult<Value> {
    let Some(condition) = body.get("condition") else {
        return Err(ApiError::object(
            "Missing condition for which to get blast radius",
        ));
    };
    let condition = match condition {
        Value::Object(map) => map.clone(),
        v if !python::truthy(v) => Map::new(),
        other => {
            return Err(ApiError::invalid(
                "condition",
                format!(
                    "Expected a release condition object but got type \"{}\".",
                    python::type_name(other)
                ),
            ));
        }
    };
    let group_type_index = group_type_index(body.get("group_type_index"))?;
    let filters = probe_filters(&condition)?;
    filters::check_evaluable(&filters)?;
    if group_type_index.is_some() {
        // Groups are not stored (only persons are), so no group can match and none is counted.
        return Ok(shown(0, 0));
    }
    let mut probe = Flag::new(
        0,
        project.id,
        PROBE_KEY.into(),
        UserSummary::default(),
        ctx.now,
    );
    probe.filters = filters;
    let flags = [probe];
    let cohorts = cohorts_for(ctx.store, project.id, &flags).await?;
    let snapshot = EvaluationSnapshot::build(&flags, &cohorts);
    let key = PROBE_KEY.to_string();
    let (mut affected, mut total) = (0usize, 0usize);
    let mut cursor: Option<String> = None;
    loop {
        let room = MAX_BLAST_RADIUS_PERSONS - total;
        let (persons, next) = ctx
            .store
            .persons_page(project.id, cursor.as_deref(), room.min(PAGE_SIZE))
            .await?;
        let memberships = if snapshot.static_cohort_ids.is_empty() || persons.is_empty() {
            Default::default()
        } else {
            let uuids: Vec<String> = persons.iter().map(|p| p.uuid.clone()).collect();
            ctx.store
                .static_memberships(project.id, &snapshot.static_cohort_ids, &uuids)
                .await?
        };
        for person in &persons {
            let statics = memberships.get(&person.uuid).map_or(&[][..], Vec::as_slice);
            if person.flag_enabled(&snapshot.set, &key, statics, ctx.now) {
                affected += 1;
            }
        }
        total += persons.len();
        cursor = next;
        if cursor.is_none() || total >= MAX_BLAST_RADIUS_PERSONS {
            break;
        }
    }
    Ok(shown(affected, total))
}

fn shown(affected: usize, total: usize) -> Value {
    json!({
        "affected": affected,
        "total": total,
        "users_affected": affected,
        "total_users": total,
    })
}

/// `null` or absent: persons; else a group type index PostHog accepts (0 to 4).
fn group_type_index(value: Option<&Value>) -> ApiResult<Option<i64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if (0..i64::from(GROUP_TYPES_LIMIT)).contains(&i) => Ok(Some(i)),
            _ => Err(bad_group_type_index()),
        },
        Some(_) => Err(bad_group_type_index()),
    }
}

fn bad_group_type_index() -> ApiError {
    ApiError::invalid(
        "group_type_index",
        format!(
            "group_type_index must be null or an integer from 0 to {}.",
            GROUP_TYPES_LIMIT - 1
        ),
    )
}

/// One condition set holding the condition's properties at 100%: rollout percentages are left
/// out, as PostHog's count leaves them to the caller. Flag dependencies are left out too, as
/// PostHog's count does not apply them either.
fn probe_filters(condition: &Map<String, Value>) -> ApiResult<Value> {
    let properties: Vec<Value> = match condition.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) != Some("flag"))
            .cloned()
            .collect(),
        Some(other) => {
            return Err(ApiError::invalid(
                "filters",
                format!(
                    "Expected a list of properties but got type \"{}\".",
                    python::type_name(other)
                ),
            ));
        }
    };
    Ok(json!({"groups": [{"properties": properties, "rollout_percentage": 100}]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_keeps_conditions_but_not_rollout_or_flag_dependencies() {
        let condition = json!({
            "properties": [
                {"key": "email", "type": "person", "value": "x", "operator": "icontains"},
                {"key": "12", "type": "flag", "value": true, "operator": "flag_evaluates_to"}
            ],
            "rollout_percentage": 10
        });
        let filters = probe_filters(condition.as_object().unwrap_or(&Map::new()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(filters["groups"][0]["rollout_percentage"], 100);
        assert_eq!(
            filters["groups"][0]["properties"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn group_type_index_is_null_or_zero_to_four() {
        assert_eq!(group_type_index(None).ok(), Some(None));
        assert_eq!(group_type_index(Some(&json!(null))).ok(), Some(None));
        assert_eq!(group_type_index(Some(&json!(4))).ok(), Some(Some(4)));
        assert!(group_type_index(Some(&json!(5))).is_err());
        assert!(group_type_index(Some(&json!("0"))).is_err());
    }
}
