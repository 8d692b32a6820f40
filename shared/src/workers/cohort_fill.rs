//! The static-cohort fill (flag-management-rules.md §8): fills a cohort created by
//! `create_static_cohort_for_flag` with every person of the project for whom the flag is
//! enabled, in bounded steps.
//!
//! The cohort item carries the job (`is_calculating`, `fill`: flag id, persons cursor, matched
//! count, step). The cohorts table's stream triggers this worker for images with
//! `is_calculating = true` (template.yaml). Each invocation, per cohort named by its records:
//! 1. reads the cohort as stored now (the record only names it: an old record must not rewind
//!    the job);
//! 2. walks persons pages from the stored cursor for a bounded budget, evaluating the flag with
//!    each person's stored properties (and static memberships, when flags name static cohorts),
//!    and writes the members with idempotent BatchWriteItem puts;
//! 3. writes the new cursor and count conditionally on the revision it read. That write is the
//!    next stream record, hence the next step; the last step sets `is_calculating: false`,
//!    `count` and `last_calculation`, which the stream filter drops. A lost race means another
//!    invocation advanced the job: its step covered the same persons and wrote the same members.
//!
//! A worker that dies mid-step has written some members but not the cursor: the stream retries
//! the record (up to `MaximumRetryAttempts`) and the retry redoes the step, idempotently. If the
//! retries run out, the job is idle with `is_calculating: true`; reading the cohort
//! (`GET /cohorts/{id}/`) re-kicks a job idle for [`STALE_AFTER`] by rewriting its item, which
//! is a fresh stream record.

use std::time::{Duration, Instant};

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;

use crate::cohort::{self, Cohort};
use crate::error::ApiResult;
use crate::evaluation::FlagSet;
use crate::evaluation::snapshot::{EvaluationSnapshot, cohorts_for};
use crate::flag::Flag;
use crate::person::Person;
use crate::store::dynamo::{self, DynamoStore};
use crate::store::{CohortStore, FlagStore, PersonStore};
use crate::time::Timestamp;

/// A job whose last progress is older than this is considered dead and re-kicked on read.
/// Well above the worker's budget, so a running step is never kicked.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// How much one invocation does per cohort.
#[derive(Debug, Clone, Copy)]
pub struct FillOptions {
    /// Persons per page (one Query each).
    pub page_size: usize,
    /// Pages per step at most.
    pub max_pages: usize,
    /// Wall time per step; checked between pages, so a step overshoots by at most a page.
    /// Far below the function's 60 s timeout.
    pub budget: Duration,
}

impl Default for FillOptions {
    fn default() -> Self {
        FillOptions {
            page_size: 500,
            max_pages: 400,
            budget: Duration::from_secs(20),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: no such cohort, or not calculating.
    Idle,
    /// Progress written; the job continues with the next stream record.
    Advanced { matched: i64 },
    /// The job finished with `count`.
    Done { count: Option<i64> },
    /// Someone else wrote the cohort first; nothing of ours was recorded.
    LostRace,
}

/// The Lambda: a DynamoDB stream batch in, one step per cohort named.
pub async fn serve() -> Result<(), lambda_http::Error> {
    crate::api::tracing_subscriber_init();
    let store = DynamoStore::from_env().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let store = &store;
        async move {
            // Boxed: the step's future nests deep enough (store calls inside the engine's
            // loop) to overflow rustc's layout query depth in the binary's `main`.
            Box::pin(handle_event(store, &event.payload, FillOptions::default()))
                .await
                .map_err(|e| lambda_http::Error::from(format!("cohort fill failed: {e:?}")))?;
            Ok::<Value, lambda_http::Error>(Value::Null)
        }
    }))
    .await
}

/// Runs one step for each cohort a stream event names (the records' keys are read by the
/// DynamoDB adapter, which owns their layout). An error fails the whole batch, so the event
/// source retries it (the steps are idempotent).
pub async fn handle_event<S: CohortStore + PersonStore + FlagStore>(
    store: &S,
    event: &Value,
    options: FillOptions,
) -> ApiResult<Vec<Step>> {
    let mut steps = Vec::new();
    for (project_id, cohort_id) in dynamo::stream_cohorts(event) {
        let step = run_step(store, project_id, cohort_id, options).await?;
        tracing::info!(project_id, cohort_id, ?step, "cohort fill step");
        steps.push(step);
    }
    Ok(steps)
}

/// One bounded step of a cohort's fill.
pub async fn run_step<S: CohortStore + PersonStore + FlagStore>(
    store: &S,
    project_id: i64,
    cohort_id: i64,
    options: FillOptions,
) -> ApiResult<Step> {
    let Some(current) = store.cohort(project_id, cohort_id).await? else {
        return Ok(Step::Idle);
    };
    let Some(fill) = current.fill.clone().filter(|_| current.is_calculating) else {
        return Ok(Step::Idle);
    };
    let flags = store.project_flags(project_id).await?;
    let Some(flag) = flags
        .iter()
        .find(|f| f.id == fill.flag_id)
        .filter(|f| fillable(f))
    else {
        // The flag went away (deleted, disabled, group-based) while the job ran: stop where
        // it stands, as PostHog skips such flags.
        return finish(store, current, fill.matched).await;
    };
    let cohorts = cohorts_for(store, project_id, &flags).await?;
    let evaluator = Evaluator::new(&flags, &cohorts, flag);
    let started = Instant::now();
    let mut cursor = fill.cursor.clone();
    let mut matched = fill.matched;
    let mut done = false;
    for _ in 0..options.max_pages.max(1) {
        let (persons, next) = store
            .persons_page(project_id, cursor.as_deref(), options.page_size.max(1))
            .await?;
        let members = evaluator.members(store, project_id, &persons).await?;
        store
            .add_cohort_members(project_id, cohort_id, &members)
            .await?;
        matched += members.len() as i64;
        done = next.is_none();
        cursor = next;
        if done || started.elapsed() >= options.budget {
            break;
        }
    }
    if done {
        return finish(store, current, matched).await;
    }
    let mut after = current.clone();
    after.fill = Some(cohort::Fill {
        cursor,
        matched,
        step: fill.step + 1,
        updated_at: chrono::Utc::now(),
        ..fill
    });
    Ok(match store.write_cohort(&after, false).await? {
        Some(_) => Step::Advanced { matched },
        None => Step::LostRace,
    })
}

/// PostHog only fills from person flags that are live and enabled.
pub fn fillable(flag: &Flag) -> bool {
    !flag.deleted
        && flag.active
        && flag
            .filters
            .get("aggregation_group_type_index")
            .is_none_or(Value::is_null)
}

async fn finish<S: CohortStore>(store: &S, current: Cohort, matched: i64) -> ApiResult<Step> {
    let mut after = current;
    let now = chrono::Utc::now();
    after.is_calculating = false;
    after.count = Some(matched);
    after.last_calculation = Some(now);
    after.fill = None;
    Ok(match store.write_cohort(&after, false).await? {
        Some(_) => Step::Done { count: after.count },
        None => Step::LostRace,
    })
}

/// The flag prepared once per step, with what each person needs looked up.
struct Evaluator {
    set: FlagSet,
    key: [String; 1],
    static_ids: Vec<i64>,
}

impl Evaluator {
    fn new(flags: &[Flag], cohorts: &[Cohort], flag: &Flag) -> Self {
        // All flags, not just this one: its dependencies are evaluated too.
        let EvaluationSnapshot {
            set,
            static_cohort_ids,
        } = EvaluationSnapshot::build(flags, cohorts);
        Evaluator {
            set,
            key: [flag.key.clone()],
            static_ids: static_cohort_ids,
        }
    }

    /// Uuids of the persons of `page` for whom the flag is enabled (any variant).
    async fn members<S: CohortStore>(
        &self,
        store: &S,
        project_id: i64,
        page: &[Person],
    ) -> ApiResult<Vec<String>> {
        let memberships = if self.static_ids.is_empty() || page.is_empty() {
            Default::default()
        } else {
            let uuids: Vec<String> = page.iter().map(|p| p.uuid.clone()).collect();
            store
                .static_memberships(project_id, &self.static_ids, &uuids)
                .await?
        };
        let now = chrono::Utc::now();
        Ok(page
            .iter()
            .filter(|p| {
                let statics = memberships.get(&p.uuid).map_or(&[][..], Vec::as_slice);
                self.enabled_for(p, statics, now)
            })
            .map(|p| p.uuid.clone())
            .collect())
    }

    fn enabled_for(&self, person: &Person, static_ids: &[i64], now: Timestamp) -> bool {
        person.flag_enabled(&self.set, &self.key[0], static_ids, now)
    }
}

/// A fill idle past [`STALE_AFTER`] is re-kicked: its item is rewritten (same state, new
/// `updated_at`), which the stream delivers as a new record. Conditional on the revision read,
/// so concurrent readers kick once. Returns the cohort as it now stands.
pub async fn kick_if_stale<S: CohortStore>(store: &S, cohort: Cohort) -> ApiResult<Cohort> {
    let Some(fill) = cohort.fill.clone().filter(|_| cohort.is_calculating) else {
        return Ok(cohort);
    };
    let idle = chrono::Utc::now() - fill.updated_at;
    if idle.to_std().unwrap_or_default() < STALE_AFTER {
        return Ok(cohort);
    }
    let mut after = cohort.clone();
    after.fill = Some(cohort::Fill {
        updated_at: chrono::Utc::now(),
        ..fill
    });
    tracing::warn!(cohort_id = cohort.id, "re-kicking an idle cohort fill");
    Ok(store.write_cohort(&after, false).await?.unwrap_or(cohort))
}
