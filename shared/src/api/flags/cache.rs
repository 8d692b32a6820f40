//! What a warm `flags` instance keeps between requests.
//!
//! * Per project, a [`Snapshot`] of its flags (compiled for the engine), group types and the
//!   rendered definitions payload, tagged with the definitions version it was read at. Each
//!   request reads the version (one small GetItem) and reuses the snapshot when it matches, so
//!   the flags table is only queried after a change, and a change is seen by the next request.
//! * Project tokens → projects, for a few minutes: tokens never change today, and this keeps
//!   `/flags` at one DynamoDB read per request.
//! * When each flag's `last_called_at` was last written, so a busy flag costs DynamoDB at most
//!   one conditional write a minute per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cohort::Cohort;
use crate::definitions;
use crate::error::ApiResult;
use crate::evaluation::snapshot::{EvaluationSnapshot, cohorts_for};
use crate::evaluation::{FlagSet, GroupTypeMapping};
use crate::flag::Flag;
use crate::identity::Project;
use crate::store::{DefinitionsStore, FlagStore, GroupType, IdentityStore};

/// How long a token → project lookup is trusted.
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Per-instance pause between `last_called_at` writes of one flag.
const CALLED_INTERVAL: Duration = Duration::from_secs(60);
/// Projects kept per instance; beyond that an arbitrary one is dropped (an instance serving
/// more projects re-reads now and then instead of outgrowing its memory: a project of 1,000
/// flags takes a few MB prepared).
const MAX_PROJECTS: usize = 64;
/// Tokens and called flags kept per instance (small entries).
const MAX_ENTRIES: usize = 1024;

/// A project's definitions at one version, prepared for evaluation.
#[derive(Debug)]
pub struct Snapshot {
    pub version: i64,
    /// Every flag of the project, soft-deleted ones included (the engine skips them).
    pub flags: Vec<Flag>,
    pub set: FlagSet,
    pub group_types: Vec<GroupType>,
    pub mapping: GroupTypeMapping,
    /// Every cohort of the project (deleted ones included; the engine and the definitions
    /// skip them).
    pub cohorts: Vec<Cohort>,
    /// Static cohorts the live flags reach: `/flags` looks up the person's memberships of
    /// these (none: no lookup).
    pub static_cohort_ids: Vec<i64>,
    definitions: OnceLock<Value>,
}

impl Snapshot {
    pub fn new(
        version: i64,
        flags: Vec<Flag>,
        group_types: Vec<GroupType>,
        cohorts: Vec<Cohort>,
    ) -> Snapshot {
        let mapping = GroupTypeMapping::new(group_types.iter().map(|g| (g.index, g.name.clone())));
        let EvaluationSnapshot {
            set,
            static_cohort_ids,
        } = EvaluationSnapshot::build(&flags, &cohorts);
        Snapshot {
            version,
            set,
            static_cohort_ids,
            flags,
            group_types,
            mapping,
            cohorts,
            definitions: OnceLock::new(),
        }
    }

    /// The local-evaluation payload, rendered once per snapshot.
    pub fn definitions(&self) -> &Value {
        self.definitions
            .get_or_init(|| definitions::payload(&self.flags, &self.group_types, &self.cohorts))
    }

    /// The live flag holding `key`.
    pub fn flag(&self, key: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| !f.deleted && f.key == key)
    }
}

#[derive(Debug, Default)]
pub struct DefinitionsCache {
    projects: Mutex<HashMap<i64, Arc<Snapshot>>>,
    tokens: Mutex<HashMap<String, (Project, Instant)>>,
    called: Mutex<HashMap<(i64, i64), Instant>>,
}

impl DefinitionsCache {
    /// The project's definitions as of now: one version read, plus a reload if it moved.
    pub async fn snapshot<S: FlagStore + DefinitionsStore>(
        &self,
        store: &S,
        project_id: i64,
    ) -> ApiResult<Arc<Snapshot>> {
        let version = store.definitions_version(project_id).await?;
        self.snapshot_at(store, project_id, version).await
    }

    /// The snapshot for `version`, read from the store unless cached. Reading after the
    /// version was read means the data is at least that new; if it is newer, the next
    /// request sees a higher version and reloads, so nothing stale sticks.
    pub async fn snapshot_at<S: FlagStore + DefinitionsStore>(
        &self,
        store: &S,
        project_id: i64,
        version: i64,
    ) -> ApiResult<Arc<Snapshot>> {
        if let Some(hit) = lock(&self.projects).get(&project_id)
            && hit.version == version
        {
            return Ok(hit.clone());
        }
        let flags = store.project_flags(project_id).await?;
        let group_types = store.group_types(project_id).await?;
        let cohorts = cohorts_for(store, project_id, &flags).await?;
        let snapshot = Arc::new(Snapshot::new(version, flags, group_types, cohorts));
        insert(&self.projects, MAX_PROJECTS, project_id, snapshot.clone());
        Ok(snapshot)
    }

    /// The project of a public token, `None` for an unknown one (never cached, so a project
    /// created a moment ago is found).
    pub async fn project_by_token<S: IdentityStore>(
        &self,
        store: &S,
        token: &str,
    ) -> ApiResult<Option<Project>> {
        if let Some((project, at)) = lock(&self.tokens).get(token)
            && at.elapsed() < TOKEN_TTL
        {
            crate::request_log::note_project(project.id);
            return Ok(Some(project.clone()));
        }
        let found = store.project_by_token(token).await?;
        if let Some(project) = &found {
            crate::request_log::note_project(project.id);
            insert(
                &self.tokens,
                MAX_ENTRIES,
                token.to_string(),
                (project.clone(), Instant::now()),
            );
        }
        Ok(found)
    }

    /// True (and remembered) when this instance has not written the flag's `last_called_at`
    /// in the last minute; the store's conditional write then guards across instances.
    pub fn claim_called_write(&self, project_id: i64, flag_id: i64) -> bool {
        let mut called = lock(&self.called);
        let recent = called
            .get(&(project_id, flag_id))
            .is_some_and(|at| at.elapsed() < CALLED_INTERVAL);
        if recent {
            return false;
        }
        if called.len() >= MAX_ENTRIES {
            called.retain(|_, at| at.elapsed() < CALLED_INTERVAL);
        }
        called.insert((project_id, flag_id), Instant::now());
        true
    }

    /// Forgets a claim whose write failed, so the next call tries again.
    pub fn release_called_write(&self, project_id: i64, flag_id: i64) {
        lock(&self.called).remove(&(project_id, flag_id));
    }
}

/// A poisoned lock only means another request panicked mid-update of a plain map; the map is
/// still a valid cache, so keep using it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn insert<K: std::hash::Hash + Eq + Clone, V>(
    map: &Mutex<HashMap<K, V>>,
    cap: usize,
    key: K,
    value: V,
) {
    let mut map = lock(map);
    if map.len() >= cap && !map.contains_key(&key) {
        let victim = map.keys().next().cloned();
        if let Some(victim) = victim {
            map.remove(&victim);
        }
    }
    map.insert(key, value);
}
