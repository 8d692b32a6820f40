//! Scheduled flag changes (docs/scheduled-changes.md): the API's create, update, delete and
//! reads with PostHog's rules, and the executor that applies due changes.
//!
//! A run is one [`FlagService::update`] of the flag (the one flag write path: guards, activity
//! entry attributed to the change's author, version and definitions bumps) carrying the
//! change's own transition ([`Changes::with_schedule`]): both land in one DynamoDB transaction
//! that is conditional on the change's revision as read. So a change runs at most once however
//! many executors race (the losers' transactions fail on that condition and write nothing),
//! and at least once (an executor dying before the commit leaves the change due, unchanged;
//! after it, everything is written).

use serde_json::{Map, Value, json};

use super::{FlagService, retry_lost_races};
use crate::crypto::PayloadCipher;
use crate::error::{ApiError, ApiResult};
use crate::identity::UserSummary;
use crate::schedule::{self, FEATURE_FLAG, Input, ScheduledChange};
use crate::service::Changes;
use crate::store::{FeatureStore, FlagStore, ScheduleStore, ScheduleWrite, WriteError};
use crate::time::Timestamp;

/// Changes one executor run takes on at most (the rest wait for the next tick, a minute later
/// on AWS; a tick that works through them all stays well inside the function's timeout).
pub const RUN_LIMIT: usize = 100;

/// Pending (not yet finished) changes a project may hold: every list and create reads the
/// project's changes with one Query, and a tick takes at most [`RUN_LIMIT`] of them.
pub const MAX_PENDING: usize = 1000;

/// What happened to one due change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The flag was changed (and the change moved on) in one transaction.
    Applied,
    /// The change failed; `failure_reason` says why and whether it will be retried.
    Failed,
    /// A recurring change whose end date passed before it ran: finished without running.
    Closed,
    /// Nothing to do: no longer due (run, edited, paused or deleted meanwhile, possibly by a
    /// parallel executor).
    Skipped,
}

pub struct ScheduleService<'a, S> {
    store: &'a S,
    cipher: &'a PayloadCipher,
}

impl<'a, S: FlagStore + FeatureStore + ScheduleStore> ScheduleService<'a, S> {
    pub fn new(store: &'a S, cipher: &'a PayloadCipher) -> Self {
        ScheduleService { store, cipher }
    }

    pub async fn get(&self, project_id: i64, id: i64) -> ApiResult<ScheduledChange> {
        self.store
            .schedule(project_id, id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// The project's changes, oldest first, filtered as PostHog's `?model_name=` and
    /// `?record_id=` do (exact text).
    pub async fn list(
        &self,
        project_id: i64,
        model_name: Option<&str>,
        record_id: Option<&str>,
    ) -> ApiResult<Vec<ScheduledChange>> {
        let mut changes = self.store.project_schedules(project_id).await?;
        changes.retain(|c| model_name.is_none_or(|m| c.model_name == m));
        changes.retain(|c| record_id.is_none_or(|r| c.record_id == r));
        Ok(changes)
    }

    /// POST: a new change by `actor`, whose flag must be a live flag of the project; its
    /// `record_id` is stored as the flag's id and `timezone` is the project's (UTC).
    pub async fn create(
        &self,
        project_id: i64,
        actor: &UserSummary,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> ApiResult<ScheduledChange> {
        let input = schedule::parse(body, true)?;
        schedule::validate(&input, None)?;
        let record_id = input.record_id.clone().unwrap_or_default();
        let flag_id = self.live_flag(project_id, &record_id).await?;
        let stored = self.store.project_schedules(project_id).await?;
        if stored.iter().filter(|c| c.due_at().is_some()).count() >= MAX_PENDING {
            return Err(ApiError::object(format!(
                "This project already has {MAX_PENDING} pending scheduled changes, the most it can have. Delete some, or wait until they have run."
            )));
        }
        let id = self.store.next_schedule_id().await?;
        let change = ScheduledChange {
            id,
            project_id,
            record_id: flag_id.to_string(),
            model_name: FEATURE_FLAG.into(),
            payload: Value::Null,
            scheduled_at: now,
            executed_at: None,
            failure_reason: None,
            failure_count: 0,
            is_recurring: false,
            recurrence_interval: None,
            cron_expression: None,
            last_executed_at: None,
            end_date: None,
            timezone: Some("UTC".into()),
            created_at: now,
            created_by: Some(actor.clone()),
            updated_at: now,
            revision: 0,
        };
        let change = schedule::apply(input, change, now);
        self.store.create_schedule(&change).await
    }

    /// PATCH (`partial`) or PUT: PostHog's rules against the change as stored, written
    /// conditionally on its revision (a lost race re-reads and re-validates).
    pub async fn update(
        &self,
        project_id: i64,
        id: i64,
        body: &Map<String, Value>,
        partial: bool,
        now: Timestamp,
    ) -> ApiResult<ScheduledChange> {
        let input = schedule::parse(body, !partial)?;
        retry_lost_races(busy, || self.try_update(project_id, id, &input, now)).await
    }

    async fn try_update(
        &self,
        project_id: i64,
        id: i64,
        input: &Input,
        now: Timestamp,
    ) -> Result<ScheduledChange, WriteError> {
        let stored = self.get(project_id, id).await?;
        schedule::validate(input, Some(&stored))?;
        self.live_flag(project_id, &stored.record_id).await?;
        let fields = Input {
            record_id: None,
            model_name: None,
            payload: input.payload.clone(),
            scheduled_at: input.scheduled_at,
            is_recurring: input.is_recurring,
            recurrence_interval: input.recurrence_interval.clone(),
            cron_expression: input.cron_expression.clone(),
            end_date: input.end_date,
        };
        let after = schedule::apply(fields, stored.clone(), now);
        self.store
            .replace_schedule(ScheduleWrite {
                before_revision: stored.revision,
                after,
            })
            .await
    }

    /// DELETE: the change is gone and will not run (an orphaned one, whose flag was deleted,
    /// can be deleted too).
    pub async fn delete(&self, project_id: i64, id: i64) -> ApiResult<()> {
        if self.store.delete_schedule(project_id, id).await? {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    /// The id of the live (not deleted) flag `record_id` names, else PostHog's error.
    async fn live_flag(&self, project_id: i64, record_id: &str) -> ApiResult<i64> {
        let not_found = || ApiError::object("Feature flag not found");
        let id: i64 = record_id.trim().parse().map_err(|_| not_found())?;
        match self.store.get_flag(project_id, id).await? {
            Some(flag) if !flag.deleted => Ok(flag.id),
            _ => Err(not_found()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // The executor

    /// One tick: every change due at `now` (up to [`RUN_LIMIT`], earliest first), each run
    /// on its own so one failure never holds the others back.
    pub async fn run_due(&self, now: Timestamp) -> ApiResult<Vec<(i64, i64, Outcome)>> {
        let due = self.store.due_schedules(now, RUN_LIMIT).await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for (project_id, id) in due {
            match self.run(project_id, id, now).await {
                Ok(outcome) => {
                    tracing::info!(project_id, id, ?outcome, "scheduled change");
                    outcomes.push((project_id, id, outcome));
                }
                // The store failed around the run (reading the change, recording a failure):
                // nothing was decided, the change stays due and the next tick tries again.
                Err(error) => tracing::error!(project_id, id, ?error, "scheduled change"),
            }
        }
        Ok(outcomes)
    }

    /// Runs one change if it is due at `now`, reading it consistently first (the due index
    /// is eventually consistent and may still list a change that ran).
    pub async fn run(&self, project_id: i64, id: i64, now: Timestamp) -> ApiResult<Outcome> {
        let Some(change) = self.store.schedule(project_id, id).await? else {
            return Ok(Outcome::Skipped);
        };
        if change.due_at().is_none_or(|due| due > now) {
            return Ok(Outcome::Skipped);
        }
        if change.expired(now) {
            return self
                .settle(&change, change.closed(now), Outcome::Closed)
                .await;
        }
        let error = match self.apply(&change, now).await {
            Ok(()) => return Ok(Outcome::Applied),
            Err(error) => error,
        };
        // Nothing was written. If the change moved meanwhile, whoever moved it decided.
        let current = self.store.schedule(project_id, id).await?;
        if current.as_ref().map(|c| c.revision) != Some(change.revision) {
            return Ok(Outcome::Skipped);
        }
        tracing::warn!(project_id, id, error = ?error, "scheduled change failed");
        let failed = change.after_failure(&error, now);
        self.settle(&change, failed, Outcome::Failed).await
    }

    /// The flag write with the change's transition in its transaction.
    async fn apply(&self, change: &ScheduledChange, now: Timestamp) -> ApiResult<()> {
        let flag_id: i64 = change
            .record_id
            .parse()
            .map_err(|_| flag_gone(&change.record_id))?;
        let after = change.after_run(now)?;
        let payload = change.payload.clone();
        let record_id = change.record_id.clone();
        let changes = Changes::patch_from_stored(move |flag| {
            if flag.deleted {
                return Err(flag_gone(&record_id));
            }
            schedule::flag_patch(&payload, flag)
        })
        .triggered_by(trigger(change.id))
        .with_schedule(ScheduleWrite {
            before_revision: change.revision,
            after,
        });
        let service = FlagService::new(self.store, self.cipher);
        let written = service
            .update(
                change.project_id,
                change.created_by.as_ref(),
                flag_id,
                changes,
                now,
            )
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(ApiError::NotFound(_)) => Err(flag_gone(&change.record_id)),
            Err(e) => Err(e),
        }
    }

    /// Writes the change's new state alone (a failure, an expiry); a change that moved since
    /// it was read is left to whoever moved it.
    async fn settle(
        &self,
        before: &ScheduledChange,
        after: ScheduledChange,
        outcome: Outcome,
    ) -> ApiResult<Outcome> {
        let write = ScheduleWrite {
            before_revision: before.revision,
            after,
        };
        match self.store.replace_schedule(write).await {
            Ok(_) => Ok(outcome),
            Err(WriteError::Retry | WriteError::KeyTaken) => Ok(Outcome::Skipped),
            Err(WriteError::Api(e)) => Err(e),
        }
    }
}

/// `detail.trigger` of the activity entry a run writes (PostHog's `Trigger`).
pub fn trigger(change_id: i64) -> Value {
    json!({
        "job_type": "scheduled_change",
        "job_id": change_id.to_string(),
        "payload": {"scheduled_change_id": change_id},
    })
}

/// The flag a change targets no longer exists (deleted after the change was scheduled).
fn flag_gone(record_id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Feature flag {record_id} no longer exists: it was deleted after this change was scheduled."
    ))
}

fn busy() -> ApiError {
    ApiError::Conflict(
        "The scheduled change is being changed by many requests at once. Please retry.".into(),
    )
}
