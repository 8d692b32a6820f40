//! Narrow persistence traits; `dynamo` is the DynamoDB adapter, `tables` creates tables from
//! template.yaml. Request paths only use GetItem, Query, BatchGetItem and TransactWriteItems, plus
//! single-item UpdateItem/PutItem where one item changes alone (counters, a user's own settings).

pub mod dynamo;
pub mod tables;
pub mod testing;

use std::collections::HashMap;
use std::future::Future;

use crate::activity::ActivityEntry;
use crate::dashboard::{Dashboard, DashboardIds};
use crate::early_access::Feature;
use crate::error::ApiError;
use crate::flag::Flag;
use crate::flag::list::ListEntry;
use crate::identity::{Organization, PersonalApiKey, Project, User};
use crate::person::{Person, PersonWrite};
use crate::schedule::ScheduledChange;
use crate::time::Timestamp;
use crate::usage::{UsageDelta, UsageKey, UsageRow};

/// Table names, read once from the environment (defaults match template.yaml's local names).
#[derive(Debug, Clone)]
pub struct Tables {
    pub flags: String,
    pub activity: String,
    pub identity: String,
    pub early_access: String,
    pub hash_key_overrides: String,
    pub persons: String,
    pub cohorts: String,
    pub usage: String,
}

impl Tables {
    /// Each name from its variable (`FLAGS_TABLE`, …, as the deployed template sets them),
    /// else `TABLE_PREFIX` + the local default, so local setups only choose a prefix.
    pub fn from_env() -> Self {
        let prefix = std::env::var("TABLE_PREFIX").unwrap_or_default();
        let defaults = Tables::prefixed(&prefix);
        let var = |name: &str, default: String| std::env::var(name).unwrap_or(default);
        Tables {
            flags: var("FLAGS_TABLE", defaults.flags),
            activity: var("ACTIVITY_TABLE", defaults.activity),
            identity: var("IDENTITY_TABLE", defaults.identity),
            early_access: var("EARLY_ACCESS_TABLE", defaults.early_access),
            hash_key_overrides: var("HASH_KEY_OVERRIDES_TABLE", defaults.hash_key_overrides),
            persons: var("PERSONS_TABLE", defaults.persons),
            cohorts: var("COHORTS_TABLE", defaults.cohorts),
            usage: var("USAGE_TABLE", defaults.usage),
        }
    }

    /// Same tables under a prefix, so parallel tests never share data.
    pub fn prefixed(prefix: &str) -> Self {
        Tables {
            flags: format!("{prefix}flags"),
            activity: format!("{prefix}activity"),
            identity: format!("{prefix}identity"),
            early_access: format!("{prefix}early_access"),
            hash_key_overrides: format!("{prefix}hash_key_overrides"),
            persons: format!("{prefix}persons"),
            cohorts: format!("{prefix}cohorts"),
            usage: format!("{prefix}usage"),
        }
    }
}

/// One flag change, written atomically with its key-uniqueness item, activity entry and the
/// project's definitions-version bump.
#[derive(Debug, Clone)]
pub struct FlagWrite {
    /// The flag as it was read; `None` for a create. The write is conditional on its version.
    pub before: Option<Flag>,
    pub after: Flag,
    /// Soft-deleted flags holding the same key, hard-deleted so the key can be reused.
    pub purge: Vec<Flag>,
    /// `None` when nothing changed (PostHog writes no empty "updated" entries).
    pub activity: Option<ActivityEntry>,
    /// An early access feature changed together with the flag (never one without the other).
    pub feature: Option<FeatureWrite>,
    /// A new usage dashboard, put together with the flag that points at it.
    pub dashboard: Option<Dashboard>,
    /// The scheduled change this write carries out, moved on in the same transaction and
    /// conditional on its revision as read: the flag change and the change's new state land
    /// together or not at all, so a change runs exactly once (docs/scheduled-changes.md).
    pub schedule: Option<ScheduleWrite>,
}

/// A scheduled change as read (`before_revision`) and as it must be after the write.
#[derive(Debug, Clone)]
pub struct ScheduleWrite {
    pub before_revision: i64,
    pub after: ScheduledChange,
}

/// Scheduled flag changes (`crate::schedule`): a project's changes, and the due index the
/// executor Queries (only changes that still have to run are in it; never a Scan).
pub trait ScheduleStore: Sync {
    /// Globally unique, increasing change ids.
    fn next_schedule_id(&self) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// One change, read consistently.
    fn schedule(
        &self,
        project_id: i64,
        id: i64,
    ) -> impl Future<Output = Result<Option<ScheduledChange>, ApiError>> + Send;

    /// Every change of the project, oldest first.
    fn project_schedules(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<Vec<ScheduledChange>, ApiError>> + Send;

    /// Puts a new change (revision 1).
    fn create_schedule(
        &self,
        change: &ScheduledChange,
    ) -> impl Future<Output = Result<ScheduledChange, ApiError>> + Send;

    /// Replaces the change as read; [`WriteError::Retry`] when it changed since (or is gone).
    fn replace_schedule(
        &self,
        write: ScheduleWrite,
    ) -> impl Future<Output = Result<ScheduledChange, WriteError>> + Send;

    /// Deletes a change; false when there was none.
    fn delete_schedule(
        &self,
        project_id: i64,
        id: i64,
    ) -> impl Future<Output = Result<bool, ApiError>> + Send;

    /// `(project_id, id)` of up to `limit` changes due at or before `now`, earliest first.
    fn due_schedules(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(i64, i64)>, ApiError>> + Send;
}

/// A change to an early access feature. Creating or deleting a linked feature also claims or
/// releases the flag's link item, so a flag backs at most one feature even under races.
#[derive(Debug, Clone)]
pub enum FeatureWrite {
    Create(Feature),
    /// Conditional on `version` of the feature as read.
    Update {
        before: Box<Feature>,
        after: Box<Feature>,
    },
    Delete(Feature),
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another non-deleted flag of the project already holds the key.
    #[error("key taken")]
    KeyTaken,
    /// Someone wrote first (version or counter moved, or DynamoDB saw a conflicting
    /// transaction): read again and retry.
    #[error("concurrent write")]
    Retry,
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Flag writes may put a usage dashboard ([`FlagWrite::dashboard`]), and flag validation reads
/// dashboards (`analytics_dashboards`), so a flag store is a dashboard store too. Flag
/// validation and responses also read the project's cohorts (E13/E14, `cohort_name`), so it
/// is a cohort store as well.
pub trait FlagStore: DashboardStore + CohortStore {
    fn get_flag(
        &self,
        project_id: i64,
        id: i64,
    ) -> impl Future<Output = Result<Option<Flag>, ApiError>> + Send;

    /// Every flag of the project, soft-deleted ones included.
    fn project_flags(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<Vec<Flag>, ApiError>> + Send;

    /// The list entry of every non-deleted flag of the project (kept in every flag's
    /// transaction), in no particular order: what `GET /feature_flags/` filters and sorts.
    fn flag_list_entries(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<Vec<ListEntry>, ApiError>> + Send;

    /// Id of the non-deleted flag holding `key`, if any.
    fn key_owner(
        &self,
        project_id: i64,
        key: &str,
    ) -> impl Future<Output = Result<Option<i64>, ApiError>> + Send;

    /// The flags of the project with these ids (soft-deleted ones included), by consistent
    /// reads; ids without a flag are left out. One BatchGetItem per 100 ids.
    fn flags_by_ids(
        &self,
        project_id: i64,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<Flag>, ApiError>> + Send;

    /// Ids of the flags whose stored filters reference flag `target` (the dependency index kept
    /// in every flag's transaction): a superset of its dependents, to be read and checked.
    fn dependent_ids(
        &self,
        project_id: i64,
        target: i64,
    ) -> impl Future<Output = Result<Vec<i64>, ApiError>> + Send;

    /// Ids of the soft-deleted flags holding `key` (an index kept in every flag's transaction).
    fn deleted_key_holders(
        &self,
        project_id: i64,
        key: &str,
    ) -> impl Future<Output = Result<Vec<i64>, ApiError>> + Send;

    /// Globally unique, increasing flag ids.
    fn next_flag_id(&self) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// Returns the flag as stored (its `revision` advanced), to chain further writes from.
    fn write_flag(&self, write: FlagWrite)
    -> impl Future<Output = Result<Flag, WriteError>> + Send;

    /// [`FlagStore::write_flag`] without its definitions-version bump: for a batch of writes
    /// that bumps once, after its last write ([`FlagStore::bump_definitions_version`]).
    fn write_flag_unbumped(
        &self,
        write: FlagWrite,
    ) -> impl Future<Output = Result<Flag, WriteError>> + Send;

    /// Moves the project's definitions version by one, so SDK caches revalidate.
    fn bump_definitions_version(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Reading an activity log: the project's log of one scope (`item: None`) or one item's
/// (`Some(flag id)`). Entries hold dense 1-based positions, so page `p` of size `l` is the
/// position range ending at `count - (p - 1) * l`: one Query, no offset to skip over.
pub trait ActivityStore: Sync {
    /// Entries in the log so far (a counter kept in the same transactions as the entries).
    fn activity_count(
        &self,
        project_id: i64,
        scope: &str,
        item: Option<&str>,
    ) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// Up to `count` entries, newest first, starting at position `newest` (inclusive) and
    /// going down.
    fn activity_page(
        &self,
        project_id: i64,
        scope: &str,
        item: Option<&str>,
        newest: i64,
        count: i64,
    ) -> impl Future<Output = Result<Vec<ActivityEntry>, ApiError>> + Send;

    /// The entry at position `seq` of the project's log of `scope`.
    fn activity_entry(
        &self,
        project_id: i64,
        scope: &str,
        seq: i64,
    ) -> impl Future<Output = Result<Option<ActivityEntry>, ApiError>> + Send;
}

pub trait IdentityStore: Sync {
    /// Looks a personal API key up by the SHA-256 hex of its value.
    fn api_key_by_hash(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<PersonalApiKey>, ApiError>> + Send;
    fn user(&self, id: i64) -> impl Future<Output = Result<Option<User>, ApiError>> + Send;
    fn project(&self, id: i64) -> impl Future<Output = Result<Option<Project>, ApiError>> + Send;
    /// Looks a project up by the SHA-256 hex of its secret key (`phs_…`).
    fn project_by_secret_hash(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<Project>, ApiError>> + Send;
    /// Looks a project up by its public token (`phc_…`).
    fn project_by_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<Project>, ApiError>> + Send;
    /// Projects of an organization, lowest id first.
    fn organization_projects(
        &self,
        organization_id: &str,
    ) -> impl Future<Output = Result<Vec<Project>, ApiError>> + Send;
    fn organization(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Organization>, ApiError>> + Send;
    /// The organization's members (its `MEMBER#` items, then the users by BatchGetItem), lowest
    /// user id first.
    fn organization_members(
        &self,
        organization_id: &str,
    ) -> impl Future<Output = Result<Vec<User>, ApiError>> + Send;
    /// The user's keys, oldest first (one Query).
    fn user_api_keys(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<Vec<PersonalApiKey>, ApiError>> + Send;
    /// The user's home settings (pinned tabs, homepage) in one project, as stored.
    fn home_settings(
        &self,
        user_id: i64,
        project_id: i64,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, ApiError>> + Send;
}

/// What a user changes of their own record through the API; `None` leaves a field alone, except
/// that a new `current_organization_id` without a `current_project_id` clears the current
/// project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub current_organization_id: Option<String>,
    pub current_project_id: Option<i64>,
}

/// Identity writes the API makes: projects created and renamed in an organization, a user's
/// own settings. Multi-item writes are one transaction each.
pub trait IdentityWrites: IdentityStore {
    /// Allocates the next integer id of a sequence (`project`, `user`).
    fn next_id(&self, sequence: &str) -> impl Future<Output = Result<i64, ApiError>> + Send;
    /// Creates the project with its token and secret pointers and the claim on its name in the
    /// organization (case-insensitive): [`WriteError::KeyTaken`] when another project holds the
    /// name.
    fn create_project(
        &self,
        project: &Project,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// Renames the project as read (`before`); [`WriteError::Retry`] when it changed since,
    /// [`WriteError::KeyTaken`] when another project of the organization holds the name.
    fn rename_project(
        &self,
        before: &Project,
        name: &str,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// Sets only the attributes `changes` names (so two updates of different fields both land).
    fn update_user(
        &self,
        user_id: i64,
        changes: &UserChanges,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn put_home_settings(
        &self,
        user_id: i64,
        project_id: i64,
        settings: &serde_json::Value,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Admin operations (flagsctl, dev seeding, tests); never on a request path.
pub trait IdentityAdmin: IdentityWrites {
    fn put_organization(
        &self,
        org: &Organization,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Writes the project with its token and secret-key lookup items (no name claim: seeding
    /// and tests may reuse names).
    fn put_project(&self, project: &Project) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Writes the user with one `MEMBER#` item per organization it belongs to.
    fn put_user(&self, user: &User) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn put_api_key(
        &self,
        key: &PersonalApiKey,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Returns false when no key has that id.
    fn revoke_api_key(&self, id: &str) -> impl Future<Output = Result<bool, ApiError>> + Send;
}

pub trait FeatureStore: Sync {
    /// Early access features of the project, oldest first.
    fn project_features(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<Vec<Feature>, ApiError>> + Send;

    fn feature(
        &self,
        project_id: i64,
        id: &str,
    ) -> impl Future<Output = Result<Option<Feature>, ApiError>> + Send;

    /// A feature change that touches no flag.
    fn write_feature(
        &self,
        write: FeatureWrite,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// One of a project's group types (PostHog's group type mapping): `index` 0–4 → `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupType {
    pub project_id: i64,
    pub index: i32,
    pub name: String,
}

/// Group type indexes run from 0 to this, exclusive (PostHog's `GROUP_TYPES_LIMIT`).
pub const GROUP_TYPES_LIMIT: i32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum GroupTypeError {
    /// Another group type holds the index.
    #[error("group type index {0} is already taken")]
    IndexTaken(i32),
    /// The name already has an index.
    #[error("group type {0:?} already exists")]
    NameTaken(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What the SDK endpoints (`flags` function) keep besides the flags: the project's definitions
/// version, its group types, and flag usage.
pub trait DefinitionsStore: Sync {
    /// The project's definitions version, bumped by every flag write and group type change
    /// (0 before the first). One small consistent GetItem: warm instances revalidate their
    /// cached definitions with it, and it is the local-evaluation ETag.
    fn definitions_version(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// The project's group types, lowest index first.
    fn group_types(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<Vec<GroupType>, ApiError>> + Send;

    /// Claims `group.index` for `group.name` (each unique in the project) and bumps the
    /// definitions version, in one transaction.
    fn create_group_type(
        &self,
        group: &GroupType,
    ) -> impl Future<Output = Result<(), GroupTypeError>> + Send;

    /// Sets the flag's `last_called_at` to `now` unless it is already within a minute of it,
    /// so a flag costs at most one write a minute however often it is called. Touches nothing
    /// else: no activity entry, no definitions version, no `revision`. Returns whether it wrote.
    fn record_flag_called(
        &self,
        project_id: i64,
        flag_id: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, ApiError>> + Send;
}

/// Experience continuity (evaluation-rules.md §2.11): per person, the hash key each continuity flag
/// buckets on. There are no persons yet, so a person is one distinct id.
pub trait HashKeyOverrideStore: Sync {
    /// Flag key → hash key for `distinct_id`.
    fn hash_key_overrides(
        &self,
        project_id: i64,
        distinct_id: &str,
    ) -> impl Future<Output = Result<HashMap<String, String>, ApiError>> + Send;

    /// For each distinct id, stores `hash_key` for every flag in `flag_keys` that has no
    /// override yet (existing ones are kept, as PostHog's insert-if-absent does).
    fn add_hash_key_overrides(
        &self,
        project_id: i64,
        distinct_ids: &[&str],
        flag_keys: &[&str],
        hash_key: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Persons learnt from captured events (layout in `dynamo`'s docs). Reads are GetItem, Query
/// and BatchGetItem; writes are conditional transactions, so concurrent captures never lose an
/// update.
pub trait PersonStore: Sync {
    /// The person holding `distinct_id` (GetItem of the distinct item, then of the person).
    fn person_by_distinct_id(
        &self,
        project_id: i64,
        distinct_id: &str,
    ) -> impl Future<Output = Result<Option<Person>, ApiError>> + Send;

    /// The person with this uuid (GetItem).
    fn person(
        &self,
        project_id: i64,
        uuid: &str,
    ) -> impl Future<Output = Result<Option<Person>, ApiError>> + Send;

    /// Up to `limit` persons of the project in uuid (= creation) order, starting after the
    /// opaque cursor `after` (`None`: from the first). One Query. Returns the cursor of the next
    /// page, `None` after the last one; cursors stay valid across writes (resumable walks).
    fn persons_page(
        &self,
        project_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<Person>, Option<String>), ApiError>> + Send;

    /// [`PersonStore::persons_page`] walking the other way: newest first.
    fn persons_page_newest_first(
        &self,
        project_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<Person>, Option<String>), ApiError>> + Send;

    /// The persons with these uuids that exist, in no particular order (BatchGetItem, 100 keys
    /// a call, unprocessed keys retried).
    fn persons_by_ids(
        &self,
        project_id: i64,
        uuids: &[String],
    ) -> impl Future<Output = Result<Vec<Person>, ApiError>> + Send;

    /// Capture's read: distinct id → its person, for those of `distinct_ids` that have one
    /// (two rounds of BatchGetItem: distinct items, then persons).
    fn persons_by_distinct_ids(
        &self,
        project_id: i64,
        distinct_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Person>, ApiError>> + Send;

    /// Capture's write: each [`PersonWrite`] atomically, several per TransactWriteItems (up to
    /// 100 items). Returns the indexes of the writes that lost a race (a condition failed, so
    /// nothing of theirs was written): the caller reads those persons again and retries.
    fn write_persons(
        &self,
        writes: &[PersonWrite],
    ) -> impl Future<Output = Result<Vec<usize>, ApiError>> + Send;

    /// Deletes the person as read, its distinct-id items and their hash key overrides in one
    /// transaction, conditional on the person's `revision` (so a capture or merge in between
    /// wins). Returns false when it lost that race and nothing was deleted. Static cohort
    /// memberships are the caller's ([`CohortStore::remove_cohort_members`]).
    fn delete_person(&self, person: &Person)
    -> impl Future<Output = Result<bool, ApiError>> + Send;
}

/// Flag usage counters (layout in `dynamo`'s docs; rules in [`crate::usage`]).
pub trait UsageStore: Sync {
    /// Adds each delta to its counter item with one atomic `ADD` (set unions for the users),
    /// several items at a time. Never lost under concurrent captures; a retried capture counts
    /// its calls again but never its users.
    fn add_usage(
        &self,
        project_id: i64,
        deltas: &[(UsageKey, UsageDelta)],
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// The flag's counter items for the days `from..=to`: one Query.
    fn usage_rows(
        &self,
        project_id: i64,
        flag_id: i64,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> impl Future<Output = Result<Vec<UsageRow>, ApiError>> + Send;
}

/// Dashboards (so far: flags' usage dashboards), written only together with their flag
/// ([`FlagWrite::dashboard`]).
pub trait DashboardStore: Sync {
    /// A new dashboard id and its two insight ids, from one atomic counter update.
    fn next_dashboard_ids(&self) -> impl Future<Output = Result<DashboardIds, ApiError>> + Send;

    fn dashboard(
        &self,
        project_id: i64,
        id: i64,
    ) -> impl Future<Output = Result<Option<Dashboard>, ApiError>> + Send;
}

/// Cohorts and static cohort memberships (layout in `dynamo`'s docs). Memberships live in the
/// persons table, keyed by person uuid, so the fill's many writes stay off the cohorts table's
/// stream.
pub trait CohortStore: Sync {
    /// Globally unique, increasing cohort ids (an atomic counter).
    fn next_cohort_id(&self) -> impl Future<Output = Result<i64, ApiError>> + Send;

    fn cohort(
        &self,
        project_id: i64,
        id: i64,
    ) -> impl Future<Output = Result<Option<crate::cohort::Cohort>, ApiError>> + Send;

    /// Every cohort of the project, deleted ones included, lowest id first (one Query).
    fn project_cohorts(
        &self,
        project_id: i64,
    ) -> impl Future<Output = Result<Vec<crate::cohort::Cohort>, ApiError>> + Send;

    /// Stores `cohort` conditionally on its `revision` as read (0 = must not exist yet) and
    /// returns it as stored (revision advanced), or `None` when someone else wrote first.
    /// With `bump_definitions` the project's definitions version moves in the same
    /// transaction (a change SDK caches must see).
    fn write_cohort(
        &self,
        cohort: &crate::cohort::Cohort,
        bump_definitions: bool,
    ) -> impl Future<Output = Result<Option<crate::cohort::Cohort>, ApiError>> + Send;

    /// Adds persons (uuids) to a static cohort. Idempotent puts (BatchWriteItem, unprocessed
    /// items retried), so a repeated page writes nothing new.
    fn add_cohort_members(
        &self,
        project_id: i64,
        cohort_id: i64,
        person_uuids: &[String],
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Removes persons (uuids) from a static cohort; returns those that were members, each
    /// reported to one caller only however many remove it at once (DeleteItem conditional on
    /// the item existing), so counts stay right.
    fn remove_cohort_members(
        &self,
        project_id: i64,
        cohort_id: i64,
        person_uuids: &[String],
    ) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;

    /// Up to `limit` member uuids of a static cohort in uuid order after the opaque cursor;
    /// returns the next cursor, `None` after the last page. One Query.
    fn cohort_members_page(
        &self,
        project_id: i64,
        cohort_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<String>, Option<String>), ApiError>> + Send;

    /// For each person uuid, which of `cohort_ids` (static cohorts) hold it: BatchGetItem of
    /// the membership items, 100 keys a call.
    fn static_memberships(
        &self,
        project_id: i64,
        cohort_ids: &[i64],
        person_uuids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Vec<i64>>, ApiError>> + Send;
}

/// Request counters shared by every instance, one item per scope, project and window
/// ([`crate::rate_limit`]).
pub trait RateLimitStore: Sync {
    /// Adds this request to the window's counter with one conditional UpdateItem, unless the
    /// window already holds `limit` requests: `false` then, and nothing is counted.
    fn count_request(
        &self,
        scope: &str,
        project_id: i64,
        window: &crate::rate_limit::Window,
        limit: u32,
    ) -> impl Future<Output = Result<bool, ApiError>> + Send;
}
