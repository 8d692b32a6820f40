//! `/api/projects/{project_id}/feature_flags/…`: list, create, retrieve, update, soft delete and
//! restore, status, dependent flags and remote config (management-api.md §5, §7, §10).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Authorized, Context, authorize, project_route};
use crate::activity;
use crate::auth::{Accepts, Caller};
use crate::cohort::{self, Cohort};
use crate::dashboard;
use crate::early_access::{self, Feature};
use crate::error::{ApiError, ApiResult};
use crate::filters::{self, CohortRef, FilterContext};
use crate::flag::input::{self, Mode};
use crate::flag::{self, Flag, list, status};
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::{Project, UserSummary};
use crate::store::{FeatureStore, FeatureWrite, FlagStore, FlagWrite, IdentityStore, WriteError};

/// Optimistic writes retry when another writer got in first; past this many tries the
/// request answers 409 rather than spin.
const MAX_WRITE_ATTEMPTS: u32 = 40;

pub async fn handle<S: FlagStore + IdentityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    match route(ctx, req).await {
        Ok(response) => response,
        Err(e) => e.into(),
    }
}

async fn route<S: FlagStore + IdentityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let segments = req.segments();
    let (project_segment, rest) =
        project_route(&segments, "feature_flags").ok_or_else(ApiError::not_found)?;
    let (scope, accepts) = match (req.method.as_str(), rest.as_slice()) {
        (_, [_, "remote_config"]) => ("feature_flag:read", Accepts::PersonalKeysOrProjectSecret),
        ("GET", [] | [_] | [_, "status" | "dependent_flags"]) => {
            ("feature_flag:read", Accepts::PersonalKeys)
        }
        (_, [] | [_]) => ("feature_flag:write", Accepts::PersonalKeys),
        (_, [_, "status" | "dependent_flags"]) => ("feature_flag:read", Accepts::PersonalKeys),
        ("POST", [_, "dashboard"]) => ("feature_flag:write", Accepts::PersonalKeys),
        ("POST", [_, "create_static_cohort_for_flag"]) => {
            ("feature_flag:write", Accepts::PersonalKeys)
        }
        _ => return Err(ApiError::not_found()),
    };
    let Authorized {
        body,
        caller,
        project,
    } = authorize(ctx.store, req, project_segment, scope, accepts).await?;
    let flags = FlagsEndpoint {
        ctx,
        caller: &caller,
        project: &project,
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", []) => flags.list(req).await,
        ("POST", []) => flags.create(&body?).await,
        ("GET", [id]) => flags.retrieve(id).await,
        ("PATCH", [id]) => flags.update(id, &body?, Mode::Patch).await,
        ("PUT", [id]) => flags.update(id, &body?, Mode::Replace).await,
        // PostHog forbids hard deletes without looking the flag up: 405 and nothing else.
        ("DELETE", [_]) => Err(ApiError::Bodiless(405)),
        ("GET", [id, "status"]) => flags.status(id).await,
        ("GET", [id, "dependent_flags"]) => flags.dependent_flags(id).await,
        ("GET", [id_or_key, "remote_config"]) => flags.remote_config(id_or_key).await,
        ("POST", [id, "dashboard"]) => flags.generate_usage_dashboard(id).await,
        ("POST", [id, "create_static_cohort_for_flag"]) => {
            flags.create_static_cohort_for_flag(id).await
        }
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

/// What another endpoint changes together with a flag, in the same transaction.
#[derive(Debug, Default)]
pub struct Alongside {
    /// Recorded in the activity entry's `detail.trigger` (null for plain API writes).
    pub trigger: Value,
    /// An early access feature change; on create its `feature_flag_id` is set to the new flag.
    pub feature: Option<FeatureWrite>,
}

/// An update of flag `id` made on the caller's behalf by another endpoint (revert, early access
/// stage changes): exactly PATCH's validation, guards, versioning and activity entry.
/// `body_for` builds the PATCH body from the flag as currently stored (called again on every
/// optimistic retry). Answers like PATCH.
pub async fn update_flag<S, F>(
    ctx: &Context<'_, S>,
    caller: &Caller,
    project: &Project,
    id: i64,
    body_for: F,
    alongside: Alongside,
) -> ApiResult<ApiResponse>
where
    S: FlagStore + IdentityStore + FeatureStore,
    F: Fn(&Flag) -> ApiResult<Map<String, Value>> + Sync,
{
    let flags = FlagsEndpoint {
        ctx,
        caller,
        project,
    };
    flags.update_id(id, body_for, Mode::Patch, &alongside).await
}

/// A flag created on the caller's behalf (early access features): the create rules exactly.
pub async fn create_flag<S>(
    ctx: &Context<'_, S>,
    caller: &Caller,
    project: &Project,
    body: &Map<String, Value>,
    alongside: Alongside,
) -> ApiResult<Flag>
where
    S: FlagStore + IdentityStore + FeatureStore,
{
    let flags = FlagsEndpoint {
        ctx,
        caller,
        project,
    };
    flags.create_with(body, &alongside).await
}

/// PostHog's "direct save" that drops the early access enrollment gate: no validation and no
/// version bump, but an activity entry, all in one transaction with `feature`.
pub async fn remove_enrollment<S>(
    ctx: &Context<'_, S>,
    caller: &Caller,
    project: &Project,
    flag_id: i64,
    feature: FeatureWrite,
) -> ApiResult<()>
where
    S: FlagStore + IdentityStore + FeatureStore,
{
    let actor = caller.user().map(UserSummary::from);
    for attempt in 0..MAX_WRITE_ATTEMPTS {
        let current = ctx.store.get_flag(project.id, flag_id).await?;
        let result = match current.filter(|f| early_access::has_enrollment(&f.filters)) {
            None => ctx.store.write_feature(feature.clone()).await,
            Some(current) => {
                let mut after = current.clone();
                after.filters = early_access::without_enrollment(&current.filters);
                after.updated_at = ctx.now;
                let write = FlagWrite {
                    activity: activity::flag_entry(Some(&current), &after, actor.as_ref(), ctx.now),
                    before: Some(current),
                    after,
                    purge: Vec::new(),
                    feature: Some(feature.clone()),
                    dashboard: None,
                };
                ctx.store.write_flag(write).await.map(drop)
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(WriteError::Retry) => backoff(attempt).await,
            Err(WriteError::KeyTaken) => return Err(input::key_taken()),
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Err(busy())
}

/// Links a new early access feature to its flag without changing the flag (a stage that does
/// not enrol), re-checking §11.3 on every attempt. The flag row is still rewritten, unchanged,
/// in the same transaction: that advances its hidden revision, so a concurrent soft delete or
/// switch to group-based (conditional on the revision it read) retries and then meets the
/// link (E29/E27), and if that change landed first this write retries and refuses the link.
/// Without it a feature could end up linked to a deleted or group-based flag. Version,
/// `updated_at` and the activity log stay as they were: nothing a user sees changes (only the
/// definitions counter moves, so SDK caches revalidate once).
pub async fn link_unchanged<S>(
    ctx: &Context<'_, S>,
    project: &Project,
    feature: Feature,
) -> ApiResult<()>
where
    S: FlagStore + IdentityStore + FeatureStore,
{
    let flag_id = feature
        .feature_flag_id
        .ok_or_else(|| ApiError::internal("link without a flag"))?;
    for attempt in 0..MAX_WRITE_ATTEMPTS {
        let current = ctx.store.get_flag(project.id, flag_id).await?;
        let linked = ctx
            .store
            .project_features(project.id)
            .await?
            .iter()
            .any(|f| f.feature_flag_id == Some(flag_id));
        let current = early_access::check_linkable(current.as_ref(), linked)?.clone();
        let write = FlagWrite {
            before: Some(current.clone()),
            after: current,
            purge: Vec::new(),
            activity: None,
            feature: Some(FeatureWrite::Create(feature.clone())),
            dashboard: None,
        };
        match ctx.store.write_flag(write).await {
            Ok(_) => return Ok(()),
            Err(WriteError::Retry) => backoff(attempt).await,
            Err(WriteError::KeyTaken) => return Err(input::key_taken()),
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Err(busy())
}

/// Early access features linked to `flag_id`, in PostHog's short form.
fn linked_summaries(features: &[Feature], flag: &Flag) -> Vec<Value> {
    features
        .iter()
        .filter(|f| f.feature_flag_id == Some(flag.id))
        .map(|f| f.summary(&flag.key))
        .collect()
}

struct FlagsEndpoint<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    project: &'a Project,
}

impl<S: FlagStore + IdentityStore + FeatureStore> FlagsEndpoint<'_, S> {
    fn store(&self) -> &S {
        self.ctx.store
    }

    fn actor(&self) -> Option<UserSummary> {
        self.caller.user().map(UserSummary::from)
    }

    /// The PostHog representation, payloads decrypted only for personal API keys.
    fn show(&self, flag: &Flag, features: &[Feature]) -> Value {
        let linked = linked_summaries(features, flag);
        flag::representation(flag, self.visible_filters(flag), &linked, self.ctx.now)
    }

    async fn features(&self) -> ApiResult<Vec<Feature>> {
        self.store().project_features(self.project.id).await
    }

    fn visible_filters(&self, flag: &Flag) -> Value {
        let filters = flag.effective_filters();
        if flag.has_encrypted_payloads == Some(true) {
            self.ctx
                .cipher
                .reveal(&filters, self.caller.sees_decrypted_payloads())
        } else {
            filters
        }
    }

    async fn find(&self, id: &str) -> ApiResult<Flag> {
        let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
        self.store()
            .get_flag(self.project.id, id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    async fn list(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let query = list::parse(&req.query)?;
        let flags = self.store().project_flags(self.project.id).await?;
        let features = self.features().await?;
        let listed = list::apply(flags, &query, self.ctx.now);
        let names = self.cohort_names(listed.iter()).await?;
        let shown = listed
            .iter()
            .map(|f| with_cohort_names(self.show(f, &features), &names))
            .collect();
        Ok(ApiResponse::ok(paginate(req, shown)))
    }

    async fn retrieve(&self, id: &str) -> ApiResult<ApiResponse> {
        let flag = self.find(id).await?;
        self.shown(&flag, &self.features().await?)
            .await
            .map(ApiResponse::ok)
    }

    async fn create(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let flag = self.create_with(body, &Alongside::default()).await?;
        let features = self.features().await?;
        let shown = self.shown(&flag, &features).await?;
        Ok(ApiResponse::json(201, shown))
    }

    async fn create_with(
        &self,
        body: &Map<String, Value>,
        alongside: &Alongside,
    ) -> ApiResult<Flag> {
        let actor = self
            .actor()
            .ok_or_else(|| ApiError::internal("create without a user"))?;
        let id = self.store().next_flag_id().await?;
        let dashboard_ids = self.usage_dashboard_ids(body).await?;
        let cohorts = self.cohort_refs(body).await?;
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let project_flags = self.store().project_flags(self.project.id).await?;
            let mut flag = Flag::new(
                id,
                self.project.id,
                String::new(),
                actor.clone(),
                self.ctx.now,
            );
            let fctx = FilterContext {
                is_create: true,
                flag_key: "",
                flag_id: None,
                linked_to_early_access: false,
                project_flags: &project_flags,
                cohorts: &cohorts,
            };
            input::apply(body, Mode::Create, &mut flag, &fctx)?;
            self.check_dashboards(body).await?;
            // The client's version and timestamps of its own are not the server's.
            flag.version = 1;
            flag.updated_at = self.ctx.now;
            if body.get("active").and_then(input::parse_boolean) == Some(true) {
                flag.performed_rollback = Some(false);
            }
            filters::check_evaluable(&flag.filters)?;
            if flag.has_encrypted_payloads == Some(true) {
                self.ctx.cipher.encrypt_payloads(&mut flag.filters, None)?;
            }
            let purge = project_flags
                .iter()
                .filter(|f| f.deleted && f.key == flag.key)
                .cloned()
                .collect();
            let feature = alongside.feature.clone().map(|write| match write {
                FeatureWrite::Create(mut feature) => {
                    feature.feature_flag_id = Some(flag.id);
                    FeatureWrite::Create(feature)
                }
                other => other,
            });
            let dashboard = dashboard_ids.map(|ids| self.usage_dashboard(ids, &mut flag, &actor));
            let write = FlagWrite {
                before: None,
                activity: activity::flag_entry(None, &flag, Some(&actor), self.ctx.now)
                    .map(|entry| with_trigger(entry, &alongside.trigger)),
                dashboard,
                after: flag.clone(),
                purge,
                feature,
            };
            match self.store().write_flag(write).await {
                Ok(stored) => return Ok(stored),
                Err(WriteError::KeyTaken) => return Err(input::key_taken()),
                Err(WriteError::Retry) => backoff(attempt).await,
                Err(WriteError::Api(e)) => return Err(e),
            }
        }
        Err(busy())
    }

    async fn update(
        &self,
        id: &str,
        body: &Map<String, Value>,
        mode: Mode,
    ) -> ApiResult<ApiResponse> {
        let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
        self.update_id(id, |_| Ok(body.clone()), mode, &Alongside::default())
            .await
    }

    /// PATCH/PUT of flag `id` with the body `body_for` makes from the stored flag; `trigger`
    /// goes into the activity entry's `detail.trigger`.
    async fn update_id<F>(
        &self,
        id: i64,
        body_for: F,
        mode: Mode,
        alongside: &Alongside,
    ) -> ApiResult<ApiResponse>
    where
        F: Fn(&Flag) -> ApiResult<Map<String, Value>> + Sync,
    {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let project_flags = self.store().project_flags(self.project.id).await?;
            let current = project_flags
                .iter()
                .find(|f| f.id == id)
                .cloned()
                .ok_or_else(ApiError::not_found)?;
            let features = self.features().await?;
            // A feature created alongside claims this flag. Check on every attempt, not only
            // before the first: a retry means someone else wrote first, and they may have
            // linked, soft-deleted or regrouped the flag (without this, the losers of parallel
            // links retried until `busy`, and a link could land on a just-deleted flag).
            if let Some(FeatureWrite::Create(feature)) = &alongside.feature
                && feature.feature_flag_id == Some(id)
            {
                let linked = features.iter().any(|f| f.feature_flag_id == Some(id));
                early_access::check_linkable(Some(&current), linked)?;
            }
            let body = body_for(&current)?;
            let cohorts = self.cohort_refs(&body).await?;
            let flag = self.updated(&current, &body, mode, &project_flags, &features, &cohorts)?;
            self.check_dashboards(&body).await?;
            let entry =
                activity::flag_entry(Some(&current), &flag, self.actor().as_ref(), self.ctx.now)
                    .map(|entry| with_trigger(entry, &alongside.trigger));
            let write = FlagWrite {
                activity: entry,
                before: Some(current),
                after: flag.clone(),
                purge: Vec::new(),
                feature: alongside.feature.clone(),
                dashboard: None,
            };
            match self.store().write_flag(write).await {
                Ok(stored) => return self.shown(&stored, &features).await.map(ApiResponse::ok),
                Err(WriteError::KeyTaken) => return Err(input::key_taken()),
                Err(WriteError::Retry) => backoff(attempt).await,
                Err(WriteError::Api(e)) => return Err(e),
            }
        }
        Err(busy())
    }

    /// The flag after this request, with every PostHog rule applied (pure but for the cipher).
    fn updated(
        &self,
        current: &Flag,
        body: &Map<String, Value>,
        mode: Mode,
        project_flags: &[Flag],
        features: &[Feature],
        cohorts: &[CohortRef],
    ) -> ApiResult<Flag> {
        let mut flag = current.clone();
        let linked = features
            .iter()
            .any(|f| f.feature_flag_id == Some(current.id));
        let fctx = FilterContext {
            is_create: false,
            flag_key: &current.key,
            flag_id: Some(current.id),
            linked_to_early_access: linked,
            project_flags,
            cohorts,
        };
        let extras = input::apply(body, mode, &mut flag, &fctx)?;
        // Whether the body replaced the filters (plain text or echoed sentinels) rather than
        // the stored ciphertext being carried over. Comparing filters can't tell: a key rename
        // rewrites the stored super groups, and re-encrypting stored ciphertext corrupts it.
        let filters_sent = body
            .get("filters")
            .is_some_and(|f| mode != Mode::Patch || f.get("groups").is_some());
        if let Some(version) = extras.version {
            self.check_conflict(current, version, body, extras.original_flag.as_ref())?;
        }
        guard_lifecycle(current, &flag, project_flags, linked)?;
        if body.get("active").and_then(input::parse_boolean) == Some(true) {
            flag.performed_rollback = Some(false);
        }
        if flag.key != current.key {
            rename_enrollment(&mut flag.filters, &flag.key);
        }
        self.protect_payloads(current, &mut flag, filters_sent)?;
        flag.version = current.version + 1;
        flag.last_modified_by = self.actor();
        flag.updated_at = self.ctx.now;
        Ok(flag)
    }

    /// Keeps stored payloads encrypted exactly when the flag says so. Filters that came in the
    /// body hold plain text (or echoed sentinels); stored ones already hold ciphertext.
    fn protect_payloads(
        &self,
        current: &Flag,
        flag: &mut Flag,
        filters_sent: bool,
    ) -> ApiResult<()> {
        let was = current.has_encrypted_payloads == Some(true);
        let now = flag.has_encrypted_payloads == Some(true);
        match (filters_sent, was, now) {
            (true, _, true) => self
                .ctx
                .cipher
                .encrypt_payloads(&mut flag.filters, was.then_some(&current.filters)),
            (false, false, true) => self.ctx.cipher.encrypt_payloads(&mut flag.filters, None),
            (_, true, false) => {
                // Turning encryption off: store what the owner can read, not dead ciphertext.
                let stored = if filters_sent {
                    None
                } else {
                    Some(&current.filters)
                };
                if let Some(stored) = stored {
                    let clear = self.ctx.cipher.reveal(stored, true);
                    flag.filters = clear;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// PostHog's rule: a stale `version` is only a conflict when a field this client changes
    /// was also changed by someone else, to something else.
    fn check_conflict(
        &self,
        current: &Flag,
        version: i64,
        body: &Map<String, Value>,
        original: Option<&Map<String, Value>>,
    ) -> ApiResult<()> {
        if version == current.version {
            return Ok(());
        }
        let Some(original) = original.filter(|o| !o.is_empty()) else {
            return Ok(());
        };
        let now = self.show(current, &[]);
        let conflict = body.iter().any(|(field, new)| {
            if matches!(field.as_str(), "version" | "original_flag") {
                return false;
            }
            let (Some(before), Some(stored)) = (original.get(field), now.get(field)) else {
                return false;
            };
            new != before && before != stored && new != stored
        });
        if !conflict {
            return Ok(());
        }
        let who = current
            .last_modified_by
            .as_ref()
            .map(|u| u.email.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "another user".into());
        Err(ApiError::Conflict(format!(
            "The feature flag was updated by {who} since you started editing it. Please refresh and try again."
        )))
    }

    async fn status(&self, id: &str) -> ApiResult<ApiResponse> {
        let found = match id.parse::<i64>() {
            Ok(id) => self.store().get_flag(self.project.id, id).await?,
            Err(_) => None,
        };
        Ok(match found {
            Some(flag) => {
                let (state, reason) = status::status_detail(&flag, self.ctx.now);
                ApiResponse::ok(json!({"status": state, "reason": reason}))
            }
            None => ApiResponse::json(
                404,
                json!({"status": "unknown", "reason": "Flag could not be found"}),
            ),
        })
    }

    async fn dependent_flags(&self, id: &str) -> ApiResult<ApiResponse> {
        let target = self.find(id).await?;
        let flags = self.store().project_flags(self.project.id).await?;
        let shown: Vec<Value> = filters::dependents(target.id, &flags)
            .into_iter()
            .map(|f| {
                let name = if f.name.is_empty() { &f.key } else { &f.name };
                json!({"id": f.id, "key": f.key, "name": name})
            })
            .collect();
        Ok(ApiResponse::ok(Value::Array(shown)))
    }

    /// The `"true"` payload of a remote-config flag, decrypted: both credentials accepted here
    /// (personal key, project secret key) are server-side, which is what encryption is for.
    async fn remote_config(&self, id_or_key: &str) -> ApiResult<ApiResponse> {
        let id = match id_or_key.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => self.store().key_owner(self.project.id, id_or_key).await?,
        };
        let flag = match id {
            Some(id) => self.store().get_flag(self.project.id, id).await?,
            None => None,
        };
        let flag = flag
            .filter(|f| !f.deleted && f.is_remote_configuration == Some(true))
            .ok_or(ApiError::Bodiless(404))?;
        let mut filters = flag.filters.clone();
        if flag.has_encrypted_payloads == Some(true) {
            filters = self.ctx.cipher.reveal(&filters, true);
        }
        let payload = filters
            .get("payloads")
            .and_then(|p| p.get("true"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(ApiResponse::ok(payload))
    }
}

/// Soft delete, restore, disable and enable each have a guard (§5.4).
fn guard_lifecycle(
    current: &Flag,
    flag: &Flag,
    project_flags: &[Flag],
    linked_to_early_access: bool,
) -> ApiResult<()> {
    let dependents = || filters::dependents(current.id, project_flags);
    if flag.deleted && !current.deleted && linked_to_early_access {
        return Err(ApiError::object(
            "Cannot delete a feature flag that is in use with early access features. Please delete the early access feature before deleting the flag.",
        ));
    }
    if flag.deleted && !current.deleted {
        let deps = dependents();
        if !deps.is_empty() {
            return Err(ApiError::object(format!(
                "Cannot delete this feature flag because other flags depend on it: {}. Please update or delete the dependent flags first.",
                filters::describe_flags(&deps, 5)
            )));
        }
    }
    if !flag.deleted
        && current.deleted
        && project_flags
            .iter()
            .any(|f| !f.deleted && f.key == flag.key && f.id != flag.id)
    {
        // PostHog answers 500 here (unique constraint); the key is simply taken.
        return Err(input::key_taken());
    }
    if !flag.active && current.active {
        let deps = dependents();
        if !deps.is_empty() {
            return Err(ApiError::object(format!(
                "Cannot disable this feature flag because other flags depend on it: {}. Please update or disable the dependent flags first.",
                filters::describe_flags(&deps, 5)
            )));
        }
    }
    if flag.active && !current.active {
        let disabled = filters::disabled_dependencies(&flag.filters, project_flags);
        if !disabled.is_empty() {
            return Err(ApiError::object(format!(
                "Cannot enable this feature flag because it depends on disabled flags: {}. Please enable the dependency flags first.",
                filters::describe_flags(&disabled, 5)
            )));
        }
    }
    Ok(())
}

/// Early-access enrollment conditions name the flag key; a rename must follow.
fn rename_enrollment(filters: &mut Value, new_key: &str) {
    let Some(Value::Array(groups)) = filters.get_mut("super_groups") else {
        return;
    };
    for group in groups {
        let Some(Value::Array(props)) = group.get_mut("properties") else {
            continue;
        };
        for prop in props {
            let renamed = prop
                .get("key")
                .and_then(Value::as_str)
                .filter(|k| k.starts_with("$feature_enrollment/"))
                .map(|_| format!("$feature_enrollment/{new_key}"));
            if let (Some(key), Some(obj)) = (renamed, prop.as_object_mut()) {
                obj.insert("key".into(), Value::String(key));
            }
        }
    }
}

fn with_trigger(mut entry: activity::ActivityEntry, trigger: &Value) -> activity::ActivityEntry {
    if let Some(detail) = entry.detail.as_object_mut() {
        detail.insert("trigger".into(), trigger.clone());
    }
    entry
}

fn busy() -> ApiError {
    ApiError::Conflict(
        "The feature flag is being changed by many requests at once. Please retry.".into(),
    )
}

/// The crate's one retry policy (`crate::retry`), at the pace of single-item write races.
pub(super) async fn backoff(attempt: u32) {
    let pause: Duration = crate::retry::Backoff::WRITE_RACE.jittered(attempt);
    tokio::time::sleep(pause).await;
}

/// Usage dashboards (management-api.md §5.2, §9) and `analytics_dashboards` links.
impl<S: FlagStore + IdentityStore + FeatureStore> FlagsEndpoint<'_, S> {
    /// Ids for the usage dashboard a create makes, unless the body opts out with a falsy
    /// `_should_create_usage_dashboard` (PostHog reads it with Python truthiness).
    async fn usage_dashboard_ids(
        &self,
        body: &Map<String, Value>,
    ) -> ApiResult<Option<dashboard::DashboardIds>> {
        let wanted = body
            .get("_should_create_usage_dashboard")
            .is_none_or(crate::python::truthy);
        if !wanted {
            return Ok(None);
        }
        Ok(Some(self.store().next_dashboard_ids().await?))
    }

    /// The flag's new usage dashboard, and the flag pointed at it.
    fn usage_dashboard(
        &self,
        ids: dashboard::DashboardIds,
        flag: &mut Flag,
        actor: &UserSummary,
    ) -> dashboard::Dashboard {
        flag.usage_dashboard = Some(ids.dashboard);
        dashboard::usage_dashboard(
            ids,
            self.project.id,
            flag.id,
            &flag.key,
            Some(actor.clone()),
            self.ctx.now,
        )
    }

    /// Every id of the body's `analytics_dashboards` must be a dashboard of this project; the
    /// first one that is not is reported, as DRF's primary-key list does.
    async fn check_dashboards(&self, body: &Map<String, Value>) -> ApiResult<()> {
        let Some(listed) = body.get("analytics_dashboards") else {
            return Ok(());
        };
        let ids = input::dashboard_ids(listed)?;
        for (id, raw) in ids.iter().zip(listed.as_array().into_iter().flatten()) {
            if self
                .store()
                .dashboard(self.project.id, *id)
                .await?
                .is_none()
            {
                return Err(input::dashboard_missing(raw));
            }
        }
        Ok(())
    }

    /// `POST /feature_flags/{id}/dashboard/`: a new usage dashboard, `usage_dashboard` pointed
    /// at it. A direct save as PostHog's: conditional on the flag's revision, no version bump,
    /// no activity entry (the field is excluded from diffs). Failures answer PostHog's
    /// `{"success": false}` body rather than the error envelope.
    async fn generate_usage_dashboard(&self, id: &str) -> ApiResult<ApiResponse> {
        let flag = self.find(id).await?;
        match self.regenerate(flag.id).await {
            Ok(()) => Ok(ApiResponse::ok(json!({"success": true}))),
            Err(e) if e.status() == 404 => Err(e),
            Err(e) => {
                tracing::error!(error = ?e, flag = flag.id, "usage dashboard generation failed");
                Ok(ApiResponse::json(
                    400,
                    json!({"success": false, "error": "Unable to generate usage dashboard"}),
                ))
            }
        }
    }

    async fn regenerate(&self, flag_id: i64) -> ApiResult<()> {
        let ids = self.store().next_dashboard_ids().await?;
        let actor = self.actor();
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let current = self
                .store()
                .get_flag(self.project.id, flag_id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let mut after = current.clone();
            after.usage_dashboard = Some(ids.dashboard);
            let made = dashboard::usage_dashboard(
                ids,
                self.project.id,
                current.id,
                &current.key,
                actor.clone(),
                self.ctx.now,
            );
            let write = FlagWrite {
                before: Some(current),
                after,
                purge: Vec::new(),
                activity: None,
                feature: None,
                dashboard: Some(made),
            };
            match self.store().write_flag(write).await {
                Ok(_) => return Ok(()),
                Err(WriteError::Retry) => backoff(attempt).await,
                Err(WriteError::KeyTaken) => return Err(input::key_taken()),
                Err(WriteError::Api(e)) => return Err(e),
            }
        }
        Err(busy())
    }
}

/// Cohorts in flag validation and responses (management-api.md §3.2, §4.1 rule 6), and the
/// static cohort from a flag (§8).
impl<S: FlagStore + IdentityStore + FeatureStore> FlagsEndpoint<'_, S> {
    /// The project's cohorts as validation needs them; only read when the body's filters name
    /// a cohort (without cohorts every reference fails with E13 anyway).
    async fn cohort_refs(&self, body: &Map<String, Value>) -> ApiResult<Vec<CohortRef>> {
        let names_cohort = body
            .get("filters")
            .is_some_and(|f| !cohort::flag_cohort_ids(f).is_empty());
        if !names_cohort {
            return Ok(Vec::new());
        }
        let cohorts = self.store().project_cohorts(self.project.id).await?;
        Ok(cohort::refs(&cohorts))
    }

    /// Name of every cohort the flags' conditions name (`None` for a missing or deleted one);
    /// no read when none does.
    async fn cohort_names<'f>(
        &self,
        flags: impl Iterator<Item = &'f Flag>,
    ) -> ApiResult<HashMap<i64, Option<String>>> {
        let wanted: Vec<i64> = flags
            .flat_map(|f| cohort::flag_cohort_ids(&f.filters))
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let cohorts = self.store().project_cohorts(self.project.id).await?;
        Ok(cohorts
            .into_iter()
            .filter(|c| !c.deleted)
            .map(|c| (c.id, c.name))
            .collect())
    }

    /// [`Self::show`] with `cohort_name` on cohort properties.
    async fn shown(&self, flag: &Flag, features: &[Feature]) -> ApiResult<Value> {
        let names = self.cohort_names(std::iter::once(flag)).await?;
        Ok(with_cohort_names(self.show(flag, features), &names))
    }

    /// `POST /feature_flags/{id}/create_static_cohort_for_flag/` (§8): a static cohort, filled
    /// in the background by the cohort-jobs worker (its `is_calculating` item is the job). A
    /// flag that can't be filled from (deleted, inactive, group-based) gets an empty cohort with
    /// `count: null` and no job. Soft-deleted flags are found, as in PostHog.
    async fn create_static_cohort_for_flag(&self, id: &str) -> ApiResult<ApiResponse> {
        let flag = self.find(id).await?;
        let cohort_id = self.store().next_cohort_id().await?;
        let mut created = Cohort::new(cohort_id, self.project.id, self.actor(), self.ctx.now);
        created.name = Some(cohort::flag_cohort_name(&flag.key, self.ctx.now));
        created.is_static = true;
        if super::cohort_jobs::fillable(&flag) {
            created.is_calculating = true;
            created.fill = Some(cohort::Fill {
                flag_id: flag.id,
                cursor: None,
                matched: 0,
                step: 0,
                updated_at: self.ctx.now,
            });
        }
        let stored = self
            .store()
            .write_cohort(&created, true)
            .await?
            .ok_or_else(|| ApiError::internal("a new cohort id was already taken"))?;
        Ok(ApiResponse::json(
            201,
            json!({"cohort": stored.representation()}),
        ))
    }
}

/// `value` (a flag's representation) with `cohort_name` on its cohort properties.
fn with_cohort_names(mut value: Value, names: &HashMap<i64, Option<String>>) -> Value {
    if let Some(filters) = value.get_mut("filters") {
        cohort::add_cohort_names(filters, names);
    }
    value
}
