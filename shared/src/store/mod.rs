//! Narrow persistence traits; `dynamo` is the DynamoDB adapter, `tables` creates tables from
//! template.yaml. Request paths only use GetItem, Query, BatchGetItem and TransactWriteItems.

pub mod dynamo;
pub mod tables;
pub mod testing;

use std::collections::HashMap;
use std::future::Future;

use crate::activity::ActivityEntry;
use crate::early_access::Feature;
use crate::error::ApiError;
use crate::flag::Flag;
use crate::identity::{Organization, PersonalApiKey, Project, User};
use crate::time::Timestamp;

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

pub trait FlagStore: Sync {
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

    /// Id of the non-deleted flag holding `key`, if any.
    fn key_owner(
        &self,
        project_id: i64,
        key: &str,
    ) -> impl Future<Output = Result<Option<i64>, ApiError>> + Send;

    /// Globally unique, increasing flag ids.
    fn next_flag_id(&self) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// Returns the flag as stored (its `revision` advanced), to chain further writes from.
    fn write_flag(&self, write: FlagWrite)
    -> impl Future<Output = Result<Flag, WriteError>> + Send;
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
}

/// Admin operations (flagsctl, dev seeding, tests); never on a request path.
pub trait IdentityAdmin: IdentityStore {
    fn put_organization(
        &self,
        org: &Organization,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn organization(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Organization>, ApiError>> + Send;
    /// Allocates the next integer id of a sequence (`project`, `user`).
    fn next_id(&self, sequence: &str) -> impl Future<Output = Result<i64, ApiError>> + Send;
    /// Writes the project with its token and secret-key lookup items.
    fn put_project(&self, project: &Project) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn put_user(&self, user: &User) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn put_api_key(
        &self,
        key: &PersonalApiKey,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn user_api_keys(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<Vec<PersonalApiKey>, ApiError>> + Send;
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

/// Experience continuity (evaluation.md §2.11): per person, the hash key each continuity flag
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
