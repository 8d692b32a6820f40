//! Capture's person step: every event with a distinct id upserts its person (rules in
//! [`crate::capture::persons`]). A whole batch costs a few BatchGetItem calls (100 distinct
//! ids, then 100 persons each) and one TransactWriteItems per ~100 changed items, whatever
//! the number of events per person.

use std::collections::HashSet;

use super::{Context, Store};
use crate::capture::Batch;
use crate::capture::persons::{Fold, PersonUpdate, write_ids};
use crate::error::ApiError;
use crate::person::PersonWrite;
use crate::retry::Backoff;

/// Rounds of read–fold–write when other captures keep changing the same persons. Past them
/// the capture answers 503 so the SDK sends the batch again (the rules are idempotent, so
/// events already stored apply as no-ops).
const ATTEMPTS: u32 = 5;

/// Reads the persons the batch names, applies its events in order, and writes the changed
/// persons conditionally. Writes that lost a race are redone from a fresh read with only the
/// events that touch them, so no update is lost and none applied twice out of order.
pub(super) async fn upsert_persons<S: Store>(
    ctx: &Context<'_, S>,
    project_id: i64,
    batch: &Batch,
) -> Result<(), ApiError> {
    let mut pending: Vec<PersonUpdate> = batch.events.iter().filter_map(PersonUpdate::of).collect();
    for attempt in 0..ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            Backoff::BATCH.pause(attempt - 1).await;
        }
        let mut ids: Vec<String> = pending
            .iter()
            .flat_map(PersonUpdate::ids)
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        let read = ctx.store.persons_by_distinct_ids(project_id, &ids).await?;
        let mut fold = Fold::new(project_id, ctx.now, read);
        for update in &pending {
            fold.apply(update);
        }
        let writes = fold.writes();
        let failed = ctx.store.write_persons(&writes).await?;
        let landed = writes
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(_, w)| w);
        carry_static_memberships(ctx, project_id, landed).await?;
        if failed.is_empty() {
            return Ok(());
        }
        let touched: HashSet<String> = failed
            .iter()
            .flat_map(|i| write_ids(&writes[*i]))
            .map(str::to_string)
            .collect();
        pending.retain(|u| u.ids().any(|d| touched.contains(d)));
        tracing::info!(
            attempt,
            writes = failed.len(),
            events = pending.len(),
            "person writes lost a race; retrying"
        );
    }
    tracing::warn!(
        events = pending.len(),
        "person writes kept losing races; asking the SDK to retry"
    );
    Err(ApiError::Bodiless(503))
}

/// A person merged away by `$identify` or an alias leaves the static cohorts it was in to the
/// person it was merged into, as PostHog moves cohort rows on merge. Only merges pay for this
/// (one Query of the project's cohorts, one BatchGetItem); the old membership items stay behind
/// harmlessly, since nothing reads a deleted person's memberships.
async fn carry_static_memberships<'a, S: Store>(
    ctx: &Context<'_, S>,
    project_id: i64,
    landed: impl Iterator<Item = &'a PersonWrite>,
) -> Result<(), ApiError> {
    let merges: Vec<(&str, &str)> = landed
        .flat_map(|w| {
            w.merged
                .iter()
                .map(|gone| (gone.uuid.as_str(), w.person.uuid.as_str()))
        })
        .collect();
    if merges.is_empty() {
        return Ok(());
    }
    let statics: Vec<i64> = ctx
        .store
        .project_cohorts(project_id)
        .await?
        .iter()
        .filter(|c| c.is_static && !c.deleted)
        .map(|c| c.id)
        .collect();
    if statics.is_empty() {
        return Ok(());
    }
    let gone: Vec<String> = merges.iter().map(|(g, _)| g.to_string()).collect();
    let held = ctx
        .store
        .static_memberships(project_id, &statics, &gone)
        .await?;
    for (gone, survivor) in merges {
        for cohort in held.get(gone).into_iter().flatten() {
            ctx.store
                .add_cohort_members(project_id, *cohort, &[survivor.to_string()])
                .await?;
        }
    }
    Ok(())
}
