//! The reads around the engine for one person (evaluation-rules.md §2.4, §2.6, §2.11): the stored
//! person and its properties, its static cohort memberships and its experience-continuity hash
//! keys. `/flags` and the management endpoints that explain an evaluation
//! (`evaluation_reasons`, `my_flags`, `test_evaluation`) all answer through [`evaluate`], so
//! they agree on what a person is served.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{EvaluationInput, Evaluations, FlagEvaluation, FlagSet};
use crate::flag::Flag;
use crate::person::Person;
use crate::store::{CohortStore, HashKeyOverrideStore, PersonStore};

const OVERRIDE_ERROR: &str = "hash_key_override_error";
const OVERRIDE_ERROR_DESCRIPTION: &str =
    "Failed to fetch hash key override for experience continuity";

/// A project's flags prepared for evaluation (a `/flags` snapshot, or one built per request
/// with [`super::snapshot::EvaluationSnapshot`]).
#[derive(Clone, Copy)]
pub struct Prepared<'p> {
    pub set: &'p FlagSet,
    /// Every flag of the project, soft-deleted ones included.
    pub flags: &'p [Flag],
    /// Static cohorts the live flags reach.
    pub static_cohort_ids: &'p [i64],
}

/// The engine's answer, and the stored person it was given (if any).
pub struct Answer {
    pub evaluations: Evaluations,
    pub person: Option<Person>,
    /// The properties the engine saw: stored ones under the request's.
    pub person_properties: Map<String, Value>,
}

/// Evaluates `request` (the asker's own fields; its person properties, static cohorts and hash
/// keys are replaced by what is stored, merged as PostHog's server does) with continuity flags
/// failed when their overrides could not be read. With `$anon_distinct_id`, the anonymous id
/// is first stored as the hash key of every continuity flag lacking one (PostHog's order).
pub async fn evaluate<S: PersonStore + CohortStore + HashKeyOverrideStore>(
    store: &S,
    project_id: i64,
    prepared: Prepared<'_>,
    request: &EvaluationInput<'_>,
) -> Answer {
    // Independent reads: continuity overrides and the stored person go out together.
    let (overrides, person) = tokio::join!(
        continuity_overrides(store, project_id, prepared, request),
        stored_person(store, project_id, prepared, request.distinct_id),
    );
    let person_properties = merged_person_properties(person.as_ref(), request.person_properties);
    let static_cohort_ids = static_memberships(store, project_id, prepared, person.as_ref()).await;
    let empty = HashMap::new();
    let input = EvaluationInput {
        person_properties: &person_properties,
        hash_key_overrides: overrides.as_ref().unwrap_or(&empty),
        static_cohort_ids: &static_cohort_ids,
        ..request.clone()
    };
    let mut evaluations = prepared.set.evaluate(&input);
    if overrides.is_none() {
        fail_continuity_flags(prepared.flags, &mut evaluations);
    }
    Answer {
        evaluations,
        person,
        person_properties,
    }
}

/// The person capture stored for `distinct_id` (two GetItems), `None` when there is none, no
/// live flag could use it, or reading failed (then the request's properties alone decide, and
/// the failure is logged).
async fn stored_person<S: PersonStore>(
    store: &S,
    project_id: i64,
    prepared: Prepared<'_>,
    distinct_id: &str,
) -> Option<Person> {
    // An over-long id cannot have been stored: capture never keeps one.
    if prepared.flags.iter().all(|f| f.deleted) || !crate::limits::is_identifier(distinct_id) {
        return None;
    }
    match store.person_by_distinct_id(project_id, distinct_id).await {
        Ok(person) => person,
        Err(e) => {
            tracing::error!(error = %e, "reading the stored person failed");
            None
        }
    }
}

/// The static cohorts (of those the project's flags reach) the stored person belongs to: one
/// BatchGetItem of their membership items, only when flags reach static cohorts. A failed read
/// counts as no memberships (logged), like a person without any.
async fn static_memberships<S: CohortStore>(
    store: &S,
    project_id: i64,
    prepared: Prepared<'_>,
    person: Option<&Person>,
) -> Vec<i64> {
    let Some(person) = person.filter(|_| !prepared.static_cohort_ids.is_empty()) else {
        return Vec::new();
    };
    let uuids = [person.uuid.clone()];
    match store
        .static_memberships(project_id, prepared.static_cohort_ids, &uuids)
        .await
    {
        Ok(mut found) => found.remove(&person.uuid).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "reading static cohort memberships failed");
            Vec::new()
        }
    }
}

/// Stored person properties under the request's `person_properties` (request wins), as
/// PostHog's server merges them (evaluation-rules.md §2.4).
fn merged_person_properties(
    person: Option<&Person>,
    request: &Map<String, Value>,
) -> Map<String, Value> {
    let Some(person) = person else {
        return request.clone();
    };
    let mut merged = person.properties.clone();
    merged.extend(request.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

/// `None` when reading failed; a failed write only loses the new overrides.
async fn continuity_overrides<S: HashKeyOverrideStore>(
    store: &S,
    project_id: i64,
    prepared: Prepared<'_>,
    request: &EvaluationInput<'_>,
) -> Option<HashMap<String, String>> {
    let keys = prepared.set.experience_continuity_keys();
    if let Some(anon) = request.anon_distinct_id.filter(|_| !keys.is_empty()) {
        let people = [request.distinct_id, anon];
        if let Err(e) = store
            .add_hash_key_overrides(project_id, &people, &keys, anon)
            .await
        {
            tracing::error!(error = %e, "storing hash key overrides failed");
        }
    }
    if !prepared.set.needs_hash_key_overrides() {
        return Some(HashMap::new());
    }
    match store
        .hash_key_overrides(project_id, request.distinct_id)
        .await
    {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::error!(error = %e, "reading hash key overrides failed");
            None
        }
    }
}

fn fail_continuity_flags(flags: &[Flag], answers: &mut Evaluations) {
    let continuity = flags
        .iter()
        .filter(|f| f.ensure_experience_continuity == Some(true) && !f.deleted);
    for flag in continuity {
        if answers.get(&flag.key).is_some() {
            answers.mark_failed(FlagEvaluation::failure(
                flag,
                OVERRIDE_ERROR,
                OVERRIDE_ERROR_DESCRIPTION,
            ));
        }
    }
}
