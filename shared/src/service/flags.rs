//! The flag service: every rule for writing a flag (flag-management-rules.md §4, §5, §11), whoever
//! writes it. Validation order, the 409 conflict rule, lifecycle guards, payload encryption,
//! enrollment renames and the activity entry live here, behind one optimistic retry loop.
//!
//! A new caller that changes a flag (a scheduled change, a CLI) calls [`FlagService::update`]
//! with [`Changes::patch`] and gets exactly what `PATCH /feature_flags/{id}/` does.

mod actions;
mod revert;
mod rules;
mod static_cohort;

pub use actions::{ConditionRollout, Lifecycle, deleted_flag_message};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::{flag_busy, retry_lost_races};
use crate::activity;
use crate::cohort;
use crate::crypto::PayloadCipher;
use crate::dashboard::{self, DashboardIds};
use crate::early_access::{self as ea, Feature};
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::flag::filters::{self, CohortRef, FilterContext, Filters};
use crate::flag::input::{self, Mode};
use crate::identity::UserSummary;
use crate::store::{FeatureStore, FeatureWrite, FlagStore, FlagWrite, ScheduleWrite, WriteError};
use crate::time::Timestamp;

/// Flag writes of any caller, over the store traits they need.
pub struct FlagService<'a, S> {
    store: &'a S,
    cipher: &'a PayloadCipher,
    /// Set for a batch ([`FlagService::batch`]).
    batch: Option<Mutex<Batch>>,
}

/// What a batch keeps between its writes.
#[derive(Default)]
struct Batch {
    /// Projects its writes changed so far: their definitions versions move at the end.
    written: BTreeSet<i64>,
}

/// An update of a flag: a PATCH/PUT body (or one built from the flag as stored, rebuilt on
/// every retry), what to record as its trigger, and a feature change written with it.
pub struct Changes<'b> {
    mode: Mode,
    body: Body<'b>,
    trigger: Value,
    feature: Option<FeatureWrite>,
    expected: Option<Expected>,
    empty_is_noop: bool,
    schedule: Option<ScheduleWrite>,
}

/// A caller's claim that it read the flag at `version`, and when a stale claim refuses the
/// write (the single-purpose flag actions; PATCH has PostHog's field-level rule instead).
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    pub version: i64,
    pub check: VersionCheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionCheck {
    /// 409 whenever the flag is no longer at that version, even if nothing would change.
    Always,
    /// 409 only when the call would change the flag (a no-op succeeds without the check).
    WhenChanging,
}

type BodyFn<'b> = dyn Fn(&Flag) -> ApiResult<Map<String, Value>> + Send + Sync + 'b;

enum Body<'b> {
    Given(&'b Map<String, Value>),
    /// Built from the stored flag, so a retry after a lost race builds it again from the
    /// winner's version (reverts and enrollment change "what is there now").
    FromStored(Box<BodyFn<'b>>),
}

impl<'b> Changes<'b> {
    /// PATCH semantics: fields the body leaves out are kept.
    pub fn patch(body: &'b Map<String, Value>) -> Self {
        Self::new(Mode::Patch, Body::Given(body))
    }

    /// PUT semantics: `key` is required and filters without `groups` still count.
    pub fn replace(body: &'b Map<String, Value>) -> Self {
        Self::new(Mode::Replace, Body::Given(body))
    }

    /// A PATCH whose body depends on the flag as stored when the write is attempted.
    pub fn patch_from_stored(
        body_for: impl Fn(&Flag) -> ApiResult<Map<String, Value>> + Send + Sync + 'b,
    ) -> Self {
        Self::new(Mode::Patch, Body::FromStored(Box::new(body_for)))
    }

    /// A single-purpose action (enable, archive, a rollout change) built from the flag as
    /// stored: an empty body means the flag is already as asked, so nothing is written (no
    /// version bump, no activity entry) and the stored flag is returned.
    pub fn action_from_stored(
        body_for: impl Fn(&Flag) -> ApiResult<Map<String, Value>> + Send + Sync + 'b,
    ) -> Self {
        Self {
            empty_is_noop: true,
            ..Self::patch_from_stored(body_for)
        }
    }

    /// Refuses the write with 409 when the flag is no longer at the version the caller read
    /// (checked against the flag as stored on every attempt, so a lost race re-checks).
    pub fn expecting(self, expected: Option<Expected>) -> Self {
        Self { expected, ..self }
    }

    /// Recorded in the activity entry's `detail.trigger` (null for plain API writes).
    pub fn triggered_by(self, trigger: Value) -> Self {
        Self { trigger, ..self }
    }

    /// The scheduled change this update carries out, moved on in the flag's transaction
    /// (conditional on its revision), so the change runs exactly once. A change that moved
    /// since it was read fails the write, on every attempt.
    pub fn with_schedule(self, schedule: ScheduleWrite) -> Self {
        Self {
            schedule: Some(schedule),
            ..self
        }
    }

    /// An early access feature change written in the same transaction as the flag.
    pub fn with_feature(self, feature: FeatureWrite) -> Self {
        Self {
            feature: Some(feature),
            ..self
        }
    }

    fn new(mode: Mode, body: Body<'b>) -> Self {
        Changes {
            mode,
            body,
            trigger: Value::Null,
            feature: None,
            expected: None,
            empty_is_noop: false,
            schedule: None,
        }
    }

    fn body_for(&self, stored: &Flag) -> ApiResult<Map<String, Value>> {
        match &self.body {
            Body::Given(body) => Ok((*body).clone()),
            Body::FromStored(body_for) => body_for(stored),
        }
    }
}

/// Who writes, in which project, at what time: the same for every attempt of one write.
#[derive(Clone, Copy)]
struct Edit<'e> {
    project_id: i64,
    actor: Option<&'e UserSummary>,
    now: Timestamp,
}

/// What a create keeps across its attempts: ids and reads that a retry must not redo.
struct NewFlag<'n> {
    edit: Edit<'n>,
    actor: &'n UserSummary,
    id: i64,
    body: &'n Map<String, Value>,
    cohorts: &'n [CohortRef],
    dashboard_ids: Option<DashboardIds>,
    feature: Option<&'n Feature>,
}

impl<'a, S: FlagStore + FeatureStore> FlagService<'a, S> {
    pub fn new(store: &'a S, cipher: &'a PayloadCipher) -> Self {
        FlagService {
            store,
            cipher,
            batch: None,
        }
    }

    /// A service for one request that writes many flags (bulk actions, copies): each write
    /// keeps its own transaction, conditions and activity entry, but the definitions version
    /// of a project moves once, in [`FlagService::finish_batch`], which the caller must await
    /// after its last write. Until then SDK caches keep the definitions they hold; were the
    /// request to die in between, they would pick the changes up at the project's next write.
    pub fn batch(store: &'a S, cipher: &'a PayloadCipher) -> Self {
        FlagService {
            batch: Some(Mutex::new(Batch::default())),
            ..Self::new(store, cipher)
        }
    }

    /// Bumps the definitions version once for every project the batch wrote to (nothing for
    /// a service made with [`FlagService::new`], whose writes bumped it themselves).
    pub async fn finish_batch(&self) -> ApiResult<()> {
        let projects = match &self.batch {
            Some(batch) => std::mem::take(&mut lock(batch).written),
            None => return Ok(()),
        };
        for project_id in projects {
            self.store.bump_definitions_version(project_id).await?;
        }
        Ok(())
    }

    /// Every flag write of this service: with the definitions bump in its transaction, or in a
    /// batch, recorded for [`FlagService::finish_batch`].
    async fn write(&self, write: FlagWrite) -> Result<Flag, WriteError> {
        let Some(batch) = &self.batch else {
            return self.store.write_flag(write).await;
        };
        let project_id = write.after.project_id;
        let stored = self.store.write_flag_unbumped(write).await?;
        lock(batch).written.insert(project_id);
        Ok(stored)
    }

    /// The flags one write's checks look at, read by id (consistent reads) instead of reading
    /// the project, so a write costs the same in a project of 10 or 10,000 flags:
    /// * the live holders of the keys involved (the body's key; the flag's own when restoring
    ///   it), for the uniqueness rule (the key item claimed in the write's transaction decides
    ///   races; this read only gives PostHog's error order);
    /// * every flag reachable from the dependencies the new and the stored filters name, for
    ///   the missing, disabled, self and cycle rules (a cycle through the flag being saved can
    ///   only run through flags reachable from it);
    /// * when the body may delete or disable the flag, the flags that reference it (the
    ///   dependency index), for the dependents guards.
    ///
    /// The checks are the same pure functions as over the whole project: on these flags they
    /// decide exactly as on all of them.
    async fn related_flags(
        &self,
        project_id: i64,
        current: Option<&Flag>,
        body: &Map<String, Value>,
    ) -> ApiResult<Vec<Flag>> {
        let mut keys: Vec<String> = body.get("key").and_then(body_key).into_iter().collect();
        if let Some(current) = current.filter(|c| c.deleted) {
            keys.push(current.key.clone());
        }
        let mut to_fetch: Vec<i64> = Vec::new();
        for key in keys.iter().filter(|k| plausible_key(k)) {
            to_fetch.extend(self.store.key_owner(project_id, key).await?);
        }
        let mut seeds: Vec<i64> = current
            .map(|c| filters::reference_ids(&c.filters))
            .unwrap_or_default();
        if let Some(sent) = body.get("filters") {
            seeds.extend(filters::reference_ids(sent));
        }
        if let Some(current) = current
            && (body.contains_key("deleted") || body.contains_key("active"))
        {
            to_fetch.extend(self.store.dependent_ids(project_id, current.id).await?);
        }
        let own_id = current.map(|c| c.id);
        let mut found: HashMap<i64, Flag> = HashMap::new();
        if let Some(current) = current {
            found.insert(current.id, current.clone());
        }
        let mut tried: HashSet<i64> = found.keys().copied().collect();
        let mut expanded: HashSet<i64> = HashSet::new();
        to_fetch.extend(&seeds);
        let mut to_expand = seeds;
        loop {
            let need: Vec<i64> = to_fetch.drain(..).filter(|id| tried.insert(*id)).collect();
            if !need.is_empty() {
                for flag in self.store.flags_by_ids(project_id, &need).await? {
                    found.insert(flag.id, flag);
                }
            }
            let mut next = Vec::new();
            for id in to_expand.drain(..) {
                if Some(id) == own_id || !expanded.insert(id) {
                    continue;
                }
                if let Some(flag) = found.get(&id).filter(|f| !f.deleted) {
                    next.extend(filters::reference_ids(&flag.filters));
                }
            }
            if next.is_empty() {
                break;
            }
            to_fetch.extend(&next);
            to_expand = next;
        }
        let mut flags: Vec<Flag> = found.into_values().collect();
        flags.sort_by_key(|f| f.id);
        Ok(flags)
    }

    /// POST `/feature_flags/`: a new flag from a create body, with its usage dashboard unless
    /// the body opts out; `feature` (a new early access feature) is linked to it in the same
    /// transaction. Soft-deleted flags holding the key are purged so it can be reused.
    pub async fn create(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        body: &Map<String, Value>,
        feature: Option<&Feature>,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let actor = actor.ok_or_else(|| ApiError::internal("create without a user"))?;
        let id = self.store.next_flag_id().await?;
        let dashboard_ids = self.usage_dashboard_ids(body).await?;
        let cohorts = self.cohort_refs(project_id, body).await?;
        let new = NewFlag {
            edit: Edit {
                project_id,
                actor: Some(actor),
                now,
            },
            actor,
            id,
            body,
            cohorts: &cohorts,
            dashboard_ids,
            feature,
        };
        // Boxed, as is `update`'s: a write's future is large in debug builds (~1.8 MB) and
        // would overflow a 2 MB thread stack wherever a caller keeps it on the stack.
        retry_lost_races(flag_busy, || Box::pin(self.try_create(&new))).await
    }

    /// PATCH/PUT of flag `flag_id`: validation, the conflict rule, lifecycle guards, payload
    /// encryption, enrollment renames, a version bump and the activity entry. Returns the flag
    /// as stored. The one function to call to change a flag.
    pub async fn update(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        changes: Changes<'_>,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let edit = Edit {
            project_id,
            actor,
            now,
        };
        retry_lost_races(flag_busy, || {
            Box::pin(self.try_update(edit, flag_id, &changes))
        })
        .await
    }

    /// Soft delete (`deleted: true`; flags are never hard-deleted) or its undoing (`false`,
    /// which fails if the key was taken since): PATCH `{"deleted": …}`, guards included.
    pub async fn set_deleted(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        deleted: bool,
        now: Timestamp,
    ) -> ApiResult<Flag> {
        let body = Map::from_iter([("deleted".to_string(), Value::Bool(deleted))]);
        let changes = Changes::patch(&body);
        self.update(project_id, actor, flag_id, changes, now).await
    }

    /// `POST /feature_flags/{id}/dashboard/`: a new usage dashboard, `usage_dashboard` pointed
    /// at it. A direct save as PostHog's: conditional on the flag's revision, no version bump,
    /// no activity entry (the field is excluded from diffs).
    pub async fn regenerate_usage_dashboard(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag_id: i64,
        now: Timestamp,
    ) -> ApiResult<()> {
        let ids = self.store.next_dashboard_ids().await?;
        let edit = Edit {
            project_id,
            actor,
            now,
        };
        retry_lost_races(flag_busy, || self.try_regenerate(edit, flag_id, ids)).await
    }

    async fn try_create(&self, new: &NewFlag<'_>) -> Result<Flag, WriteError> {
        let Edit {
            project_id, now, ..
        } = new.edit;
        let project_flags = self.related_flags(project_id, None, new.body).await?;
        let mut flag = Flag::new(new.id, project_id, String::new(), new.actor.clone(), now);
        let fctx = FilterContext {
            is_create: true,
            flag_key: "",
            flag_id: None,
            linked_to_early_access: false,
            project_flags: &project_flags,
            cohorts: new.cohorts,
        };
        input::apply(new.body, Mode::Create, &mut flag, &fctx)?;
        self.check_dashboards(project_id, new.body).await?;
        // The client's version and timestamps of its own are not the server's.
        flag.version = 1;
        flag.updated_at = now;
        if new.body.get("active").and_then(input::parse_boolean) == Some(true) {
            flag.performed_rollback = Some(false);
        }
        filters::check_evaluable(&flag.filters)?;
        if flag.has_encrypted_payloads == Some(true) {
            self.cipher.encrypt_payloads(&mut flag.filters, None)?;
        }
        let holders = self
            .store
            .deleted_key_holders(project_id, &flag.key)
            .await?;
        let purge = self
            .store
            .flags_by_ids(project_id, &holders)
            .await?
            .into_iter()
            .filter(|f| f.deleted && f.key == flag.key)
            .collect();
        let feature = new.feature.map(|feature| {
            FeatureWrite::Create(Feature {
                feature_flag_id: Some(flag.id),
                ..feature.clone()
            })
        });
        let dashboard = new
            .dashboard_ids
            .map(|ids| usage_dashboard(ids, &mut flag, new.edit));
        let write = FlagWrite {
            before: None,
            activity: activity::flag_entry(None, &flag, Some(new.actor), now)
                .map(|entry| rules::with_trigger(entry, &Value::Null)),
            dashboard,
            after: flag,
            purge,
            feature,
            schedule: None,
        };
        self.write(write).await
    }

    async fn try_update(
        &self,
        edit: Edit<'_>,
        flag_id: i64,
        changes: &Changes<'_>,
    ) -> Result<Flag, WriteError> {
        let current = self
            .store
            .get_flag(edit.project_id, flag_id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let features = self.store.project_features(edit.project_id).await?;
        let linked = features.iter().any(|f| f.feature_flag_id == Some(flag_id));
        // A feature created alongside claims this flag. Check on every attempt, not only
        // before the first: a retry means someone else wrote first, and they may have linked,
        // soft-deleted or regrouped the flag (without this, the losers of parallel links
        // retried until `busy`, and a link could land on a just-deleted flag).
        if let Some(FeatureWrite::Create(feature)) = &changes.feature
            && feature.feature_flag_id == Some(flag_id)
        {
            ea::check_linkable(Some(&current), linked)?;
        }
        let stale = changes.expected.filter(|e| e.version != current.version);
        if let Some(Expected {
            version,
            check: VersionCheck::Always,
        }) = stale
        {
            return Err(rules::changed_since(&current, version).into());
        }
        let body = changes.body_for(&current)?;
        if changes.empty_is_noop && body.is_empty() {
            return Ok(current);
        }
        if let Some(Expected { version, .. }) = stale {
            return Err(rules::changed_since(&current, version).into());
        }
        let cohorts = self.cohort_refs(edit.project_id, &body).await?;
        let project_flags = self
            .related_flags(edit.project_id, Some(&current), &body)
            .await?;
        let fctx = FilterContext {
            is_create: false,
            flag_key: &current.key,
            flag_id: Some(current.id),
            linked_to_early_access: linked,
            project_flags: &project_flags,
            cohorts: &cohorts,
        };
        let flag = self.updated(edit, &current, &body, changes.mode, &fctx)?;
        self.check_dashboards(edit.project_id, &body).await?;
        let entry = activity::flag_entry(Some(&current), &flag, edit.actor, edit.now)
            .map(|entry| rules::with_trigger(entry, &changes.trigger));
        let write = FlagWrite {
            activity: entry,
            before: Some(current),
            after: flag,
            purge: Vec::new(),
            feature: changes.feature.clone(),
            dashboard: None,
            schedule: changes.schedule.clone(),
        };
        self.write(write).await
    }

    /// The flag after this update, with every PostHog rule applied (pure but for the cipher).
    fn updated(
        &self,
        edit: Edit<'_>,
        current: &Flag,
        body: &Map<String, Value>,
        mode: Mode,
        fctx: &FilterContext<'_>,
    ) -> ApiResult<Flag> {
        let mut flag = current.clone();
        let extras = input::apply(body, mode, &mut flag, fctx)?;
        // Whether the body replaced the filters (plain text or echoed sentinels) rather than
        // the stored ciphertext being carried over. Comparing filters can't tell: a key rename
        // rewrites the stored super groups, and re-encrypting stored ciphertext corrupts it.
        let filters_sent = body
            .get("filters")
            .is_some_and(|f| mode != Mode::Patch || Filters::of(f).has_groups());
        if let Some(version) = extras.version {
            let as_read = rules::as_read_by(self.cipher, current, edit.actor.is_some(), edit.now);
            rules::check_conflict(
                current,
                &as_read,
                version,
                body,
                extras.original_flag.as_ref(),
            )?;
        }
        rules::guard_lifecycle(
            current,
            &flag,
            fctx.project_flags,
            fctx.linked_to_early_access,
        )?;
        if body.get("active").and_then(input::parse_boolean) == Some(true) {
            flag.performed_rollback = Some(false);
        }
        if flag.key != current.key {
            rules::rename_enrollment(&mut flag.filters, &flag.key);
        }
        rules::protect_payloads(self.cipher, current, &mut flag, filters_sent)?;
        flag.version = current.version + 1;
        flag.last_modified_by = edit.actor.cloned();
        flag.updated_at = edit.now;
        Ok(flag)
    }

    async fn try_regenerate(
        &self,
        edit: Edit<'_>,
        flag_id: i64,
        ids: DashboardIds,
    ) -> Result<(), WriteError> {
        let current = self
            .store
            .get_flag(edit.project_id, flag_id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let mut after = current.clone();
        let made = usage_dashboard(ids, &mut after, edit);
        let write = FlagWrite {
            before: Some(current),
            after,
            purge: Vec::new(),
            activity: None,
            feature: None,
            dashboard: Some(made),
            schedule: None,
        };
        self.write(write).await.map(drop)
    }

    /// Ids for the usage dashboard a create makes, unless the body opts out with a falsy
    /// `_should_create_usage_dashboard` (PostHog reads it with Python truthiness).
    async fn usage_dashboard_ids(
        &self,
        body: &Map<String, Value>,
    ) -> ApiResult<Option<DashboardIds>> {
        let wanted = body
            .get("_should_create_usage_dashboard")
            .is_none_or(crate::python::truthy);
        if !wanted {
            return Ok(None);
        }
        Ok(Some(self.store.next_dashboard_ids().await?))
    }

    /// Every id of the body's `analytics_dashboards` must be a dashboard of this project; the
    /// first one that is not is reported, as DRF's primary-key list does.
    async fn check_dashboards(&self, project_id: i64, body: &Map<String, Value>) -> ApiResult<()> {
        let Some(listed) = body.get("analytics_dashboards") else {
            return Ok(());
        };
        let ids = input::dashboard_ids(listed)?;
        for (id, raw) in ids.iter().zip(listed.as_array().into_iter().flatten()) {
            if self.store.dashboard(project_id, *id).await?.is_none() {
                return Err(input::dashboard_missing(raw));
            }
        }
        Ok(())
    }

    /// The project's cohorts as validation needs them; only read when the body's filters name
    /// a cohort (without cohorts every reference fails with E13 anyway).
    async fn cohort_refs(
        &self,
        project_id: i64,
        body: &Map<String, Value>,
    ) -> ApiResult<Vec<CohortRef>> {
        let names_cohort = body
            .get("filters")
            .is_some_and(|f| !cohort::flag_cohort_ids(f).is_empty());
        if !names_cohort {
            return Ok(Vec::new());
        }
        let cohorts = self.store.project_cohorts(project_id).await?;
        Ok(cohort::refs(&cohorts))
    }
}

/// The key a body asks for, read as the key rule reads it (text trimmed, numbers as text).
fn body_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a flag could hold this key at all (no lookup otherwise). Not the charset: flags
/// older than the charset rule hold keys it refuses, and uniqueness is checked first.
fn plausible_key(key: &str) -> bool {
    !key.is_empty() && crate::limits::is_identifier(key)
}

/// A poisoned lock only means another write panicked; what the batch recorded is still right.
fn lock(batch: &Mutex<Batch>) -> std::sync::MutexGuard<'_, Batch> {
    batch
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The flag's new usage dashboard, and the flag pointed at it.
fn usage_dashboard(ids: DashboardIds, flag: &mut Flag, edit: Edit<'_>) -> dashboard::Dashboard {
    flag.usage_dashboard = Some(ids.dashboard);
    dashboard::usage_dashboard(
        ids,
        edit.project_id,
        flag.id,
        &flag.key,
        edit.actor.cloned(),
        edit.now,
    )
}
