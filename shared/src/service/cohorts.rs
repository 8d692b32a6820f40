//! Cohort rules (flag-management-rules.md §8, PostHog's CohortSerializer): creating, updating and
//! soft-deleting cohorts with their static members, and which persons a cohort holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value};

use super::persons::walk_persons;
use super::retry_lost_races;
use crate::cohort::{self, Cohort, CohortUpdate};
use crate::error::{ApiError, ApiResult};
use crate::evaluation::snapshot::CohortProbe;
use crate::identity::UserSummary;
use crate::person::Person;
use crate::store::{FlagStore, PersonStore, WriteError};
use crate::time::Timestamp;

/// Persons a filtered page (a property cohort's persons, a persons search) reads at most (a
/// handful of Queries).
pub const MAX_SCANNED: usize = 5000;

/// `add_persons_to_static_cohort` takes at most this many uuids (PostHog's
/// `DEFAULT_COHORT_INSERT_BATCH_SIZE`).
pub const MAX_ADDED_PERSONS: usize = 1000;

/// Membership lookups in flight while deleted persons are taken out of static cohorts.
const MEMBERSHIP_LOOKUPS_IN_FLIGHT: usize = 8;

/// Cohort writes and member listings of any caller, over the store traits they need.
pub struct CohortService<'a, S> {
    store: &'a S,
}

pub use super::persons::PersonsPage;

impl<'a, S: FlagStore + PersonStore> CohortService<'a, S> {
    pub fn new(store: &'a S) -> Self {
        CohortService { store }
    }

    /// POST `/cohorts/`: a property or static cohort; a static one's members (named by person
    /// uuid or distinct id; unknown ones skipped) are written first, so a failed cohort write
    /// leaves only invisible orphans.
    pub async fn create(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> ApiResult<Cohort> {
        let existing = self.store.project_cohorts(project_id).await?;
        let request = cohort::parse_create(body, &existing)?;
        let id = self.store.next_cohort_id().await?;
        let mut cohort = Cohort::new(id, project_id, actor.cloned(), now);
        cohort.name = request.name.clone();
        cohort.description = request.description.clone();
        cohort.groups = request.groups.clone();
        cohort.filters = request.filters.clone();
        cohort.is_static = request.is_static;
        if request.is_static {
            let members = self
                .resolve_members(project_id, &request.person_ids, &request.distinct_ids)
                .await?;
            self.store
                .add_cohort_members(project_id, id, &members)
                .await?;
            cohort.count = Some(members.len() as i64);
            cohort.last_calculation = Some(now);
        }
        self.store
            .write_cohort(&cohort, true)
            .await?
            .ok_or_else(|| ApiError::internal("a new cohort id was already taken"))
    }

    /// PATCH/PUT (and soft delete with `{"deleted": true}`): PostHog's
    /// `CohortSerializer.update`, written conditionally on the revision read and retried on a
    /// lost race (re-reading and re-validating), so concurrent updates never lose one another's
    /// fields. Members are added once, before the first write; retries only redo the count.
    pub async fn update(
        &self,
        project_id: i64,
        cohort_id: i64,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> ApiResult<Cohort> {
        let added = OnceLock::new();
        let change =
            |current: &Cohort, cohorts: &[Cohort]| cohort::apply_update(body, current, cohorts);
        let attempt = || self.try_update(project_id, cohort_id, &change, &added, now);
        retry_lost_races(busy, attempt).await
    }

    /// PATCH `add_persons_to_static_cohort/` (`{"person_ids": [uuids]}`): PostHog's checks in
    /// its order, then the members go through the same write as an update's (membership items,
    /// then `count` on the cohort, conditional and retried). Persons that don't exist are
    /// skipped; none existing at all is PostHog's 400.
    pub async fn add_persons(
        &self,
        project_id: i64,
        cohort_id: i64,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> ApiResult<Cohort> {
        let cohort = self.find(project_id, cohort_id).await?;
        if !cohort.is_static {
            return Err(ApiError::object("Can only add users to static cohorts"));
        }
        let person_ids = match body.get("person_ids") {
            Some(Value::Array(items)) => items,
            _ => return Err(ApiError::object("person_ids must be a list")),
        };
        if person_ids.is_empty() {
            return Err(ApiError::object("person_ids cannot be empty"));
        }
        if person_ids.len() > MAX_ADDED_PERSONS {
            return Err(ApiError::object(format!(
                "List size exceeds limit: at most {MAX_ADDED_PERSONS} person_ids per request."
            )));
        }
        let uuids = person_ids
            .iter()
            .map(|id| {
                id.as_str()
                    .and_then(crate::person::canonical_uuid)
                    .ok_or_else(|| {
                        ApiError::invalid("person_ids", format!("{id} is not a valid UUID."))
                    })
            })
            .collect::<ApiResult<Vec<String>>>()?;
        let found = self.resolve_members(project_id, &uuids, &[]).await?;
        if found.is_empty() {
            return Err(ApiError::object("No valid users to add to cohort"));
        }
        let added = OnceLock::new();
        let change = |current: &Cohort, _: &[Cohort]| {
            if !current.is_static {
                return Err(ApiError::object("Can only add users to static cohorts"));
            }
            Ok(CohortUpdate {
                cohort: current.clone(),
                person_ids: found.clone(),
                distinct_ids: Vec::new(),
                changes_evaluation: false,
            })
        };
        let attempt = || self.try_update(project_id, cohort_id, &change, &added, now);
        retry_lost_races(busy, attempt).await
    }

    /// PATCH `remove_person_from_static_cohort/` (`{"person_id": uuid}`): PostHog's checks in
    /// its order. A person who exists but is not a member is a silent success (as the tool
    /// catalog documents); `count` drops only for a membership this request removed.
    pub async fn remove_person(
        &self,
        project_id: i64,
        cohort_id: i64,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> ApiResult<()> {
        let cohort = self.find(project_id, cohort_id).await?;
        if !cohort.is_static {
            return Err(ApiError::object(
                "Can only remove users from static cohorts",
            ));
        }
        let person_id = match body.get("person_id") {
            Some(v) if crate::python::truthy(v) => v,
            _ => return Err(ApiError::object("person_id is required")),
        };
        let Some(person_id) = person_id.as_str() else {
            return Err(ApiError::object("person_id must be a string"));
        };
        let Some(uuid) = crate::person::canonical_uuid(person_id) else {
            return Err(ApiError::object("person_id must be a valid UUID"));
        };
        if self.store.person(project_id, &uuid).await?.is_none() {
            return Err(ApiError::NotFound(
                "Person with this UUID does not exist in the cohort's team".into(),
            ));
        }
        self.remove_members(project_id, cohort_id, &[uuid], now)
            .await
    }

    /// Takes deleted persons out of every static cohort of the project (deleted cohorts too:
    /// they can be restored), lowering each cohort's `count` by the memberships removed.
    pub async fn forget_persons(
        &self,
        project_id: i64,
        person_uuids: &[String],
        now: Timestamp,
    ) -> ApiResult<()> {
        if person_uuids.is_empty() {
            return Ok(());
        }
        let statics: Vec<i64> = self
            .store
            .project_cohorts(project_id)
            .await?
            .iter()
            .filter(|c| c.is_static)
            .map(|c| c.id)
            .collect();
        if statics.is_empty() {
            return Ok(());
        }
        // Every (person, static cohort) pair is one key; lookups of ~800 keys run side by side
        // so a 1,000-person delete in a project with many static cohorts stays quick.
        let per_lookup = (800 / statics.len()).max(1);
        let chunks: Vec<Vec<String>> = person_uuids
            .chunks(per_lookup)
            .map(<[String]>::to_vec)
            .collect();
        let statics = &statics;
        let held: Vec<HashMap<String, Vec<i64>>> = stream::iter(chunks)
            .map(|uuids: Vec<String>| async move {
                self.store
                    .static_memberships(project_id, statics, &uuids)
                    .await
            })
            .buffer_unordered(MEMBERSHIP_LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut members: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (uuid, cohorts) in held.into_iter().flatten() {
            for cohort in cohorts {
                members.entry(cohort).or_default().push(uuid.clone());
            }
        }
        for (cohort_id, uuids) in members {
            self.remove_members(project_id, cohort_id, &uuids, now)
                .await?;
        }
        Ok(())
    }

    /// Removes memberships, lowering `count` by those this call removed.
    async fn remove_members(
        &self,
        project_id: i64,
        cohort_id: i64,
        uuids: &[String],
        now: Timestamp,
    ) -> ApiResult<()> {
        let removed = self
            .store
            .remove_cohort_members(project_id, cohort_id, uuids)
            .await?;
        if !removed.is_empty() {
            self.adjust_count(project_id, cohort_id, -(removed.len() as i64), now)
                .await?;
        }
        Ok(())
    }

    async fn find(&self, project_id: i64, cohort_id: i64) -> ApiResult<Cohort> {
        self.store
            .cohort(project_id, cohort_id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// Moves a static cohort's `count` by `delta` (never below 0), conditionally on the
    /// revision read and retried, as member additions set it. Nothing SDKs cache changes.
    async fn adjust_count(
        &self,
        project_id: i64,
        cohort_id: i64,
        delta: i64,
        now: Timestamp,
    ) -> ApiResult<Cohort> {
        let attempt = || async move {
            let mut cohort = self.find(project_id, cohort_id).await?;
            cohort.count = Some((cohort.count.unwrap_or(0) + delta).max(0));
            cohort.last_calculation = Some(now);
            self.store
                .write_cohort(&cohort, false)
                .await?
                .ok_or(WriteError::Retry)
        };
        retry_lost_races(busy, attempt).await
    }

    /// A page of the cohort's persons from `cursor`: a static cohort's members, or the persons
    /// a property cohort matches, evaluated as they are walked.
    pub async fn persons(
        &self,
        project_id: i64,
        cohort: &Cohort,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> ApiResult<PersonsPage> {
        if cohort.is_static {
            self.static_members(project_id, cohort, cursor, limit).await
        } else {
            self.matching_persons(project_id, cohort, cursor, limit, now)
                .await
        }
    }

    /// One try of a cohort change: reads the project's cohorts, lets `change` make the update
    /// of the current cohort, adds its members (once over all tries) and writes the cohort
    /// conditionally on the revision read.
    async fn try_update(
        &self,
        project_id: i64,
        cohort_id: i64,
        change: &impl Fn(&Cohort, &[Cohort]) -> ApiResult<CohortUpdate>,
        added: &OnceLock<i64>,
        now: Timestamp,
    ) -> Result<Cohort, WriteError> {
        let cohorts = self.store.project_cohorts(project_id).await?;
        let current = cohorts
            .iter()
            .find(|c| c.id == cohort_id)
            .ok_or_else(ApiError::not_found)?;
        let mut update = change(current, &cohorts)?;
        if update.cohort.deleted && !current.deleted {
            self.check_unused(project_id, current, &cohorts).await?;
        }
        if update.has_members() {
            let new = match added.get() {
                Some(new) => *new,
                None => {
                    let new = self.add_members(project_id, current, &update).await?;
                    *added.get_or_init(|| new)
                }
            };
            update.cohort.count = Some(current.count.unwrap_or(0) + new);
            update.cohort.last_calculation = Some(now);
        }
        self.store
            .write_cohort(&update.cohort, update.changes_evaluation)
            .await?
            .ok_or(WriteError::Retry)
    }

    /// Person uuids of the persons named by uuid or distinct id that exist, once each.
    async fn resolve_members(
        &self,
        project_id: i64,
        person_ids: &[String],
        distinct_ids: &[String],
    ) -> ApiResult<Vec<String>> {
        let store = self.store;
        let mut uuids = BTreeSet::new();
        if !person_ids.is_empty() {
            let found = store.persons_by_ids(project_id, person_ids).await?;
            uuids.extend(found.into_iter().map(|p| p.uuid));
        }
        if !distinct_ids.is_empty() {
            let found = store
                .persons_by_distinct_ids(project_id, distinct_ids)
                .await?;
            uuids.extend(found.into_values().map(|p| p.uuid));
        }
        Ok(uuids.into_iter().collect())
    }

    /// PostHog refuses to delete a cohort that active, non-deleted flags use, directly or
    /// through other cohorts (inactive flags don't block it).
    async fn check_unused(
        &self,
        project_id: i64,
        cohort: &Cohort,
        cohorts: &[Cohort],
    ) -> ApiResult<()> {
        let flags = self.store.project_flags(project_id).await?;
        let names: Vec<&str> = flags
            .iter()
            .filter(|f| f.active && !f.deleted && cohort::flag_uses(&f.filters, cohort.id, cohorts))
            .map(|f| {
                if f.name.is_empty() {
                    f.key.as_str()
                } else {
                    f.name.as_str()
                }
            })
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        Err(ApiError::object(format!(
            "This cohort is used in {} active feature flag(s): {}. Please remove the cohort from these feature flags before deleting it.",
            names.len(),
            names.join(", ")
        )))
    }

    /// Adds a static cohort's new members; returns how many were not members yet, for `count`.
    async fn add_members(
        &self,
        project_id: i64,
        cohort: &Cohort,
        update: &CohortUpdate,
    ) -> ApiResult<i64> {
        // A fill's last step sets `count` from its own tally, which would drop these.
        if cohort.is_calculating {
            return Err(ApiError::object(
                "This cohort is still being calculated; add members once it is done.",
            ));
        }
        let store = self.store;
        let uuids = self
            .resolve_members(project_id, &update.person_ids, &update.distinct_ids)
            .await?;
        let held = store
            .static_memberships(project_id, &[cohort.id], &uuids)
            .await?;
        store
            .add_cohort_members(project_id, cohort.id, &uuids)
            .await?;
        Ok(uuids.iter().filter(|u| !held.contains_key(*u)).count() as i64)
    }

    async fn static_members(
        &self,
        project_id: i64,
        cohort: &Cohort,
        cursor: Option<&str>,
        limit: usize,
    ) -> ApiResult<PersonsPage> {
        let store = self.store;
        let (uuids, next) = store
            .cohort_members_page(project_id, cohort.id, cursor, limit)
            .await?;
        let mut persons = store.persons_by_ids(project_id, &uuids).await?;
        // BatchGetItem answers in no order; keep the memberships' (uuid) order.
        let rank: HashMap<&str, usize> = uuids
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        persons.sort_by_key(|p| rank.get(p.uuid.as_str()).copied().unwrap_or(usize::MAX));
        Ok((persons, next))
    }

    /// Walks the project's persons from `cursor`, evaluating the cohort ([`walk_persons`]:
    /// at most [`MAX_SCANNED`] read per page).
    async fn matching_persons(
        &self,
        project_id: i64,
        cohort: &Cohort,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> ApiResult<PersonsPage> {
        let store = self.store;
        let cohorts = store.project_cohorts(project_id).await?;
        let probe = &CohortProbe::new(cohort.id, &cohorts);
        let statics = &probe.static_ids;
        let keep = |page: Vec<Person>| async move {
            let memberships = if statics.is_empty() || page.is_empty() {
                HashMap::new()
            } else {
                let uuids: Vec<String> = page.iter().map(|p| p.uuid.clone()).collect();
                store
                    .static_memberships(project_id, statics, &uuids)
                    .await?
            };
            Ok(page
                .into_iter()
                .filter(|person| {
                    let member_of = memberships.get(&person.uuid).map_or(&[][..], Vec::as_slice);
                    probe.matches(person, member_of, now)
                })
                .collect())
        };
        walk_persons(store, project_id, cursor, limit, keep).await
    }
}

fn busy() -> ApiError {
    ApiError::Conflict("The cohort is being changed by many requests at once. Please retry.".into())
}
