//! `/api/projects/{project_id}/cohorts/…`: list, create (static and property cohorts),
//! retrieve, update (PATCH/PUT, soft delete with `{"deleted": true}`), and the persons of a
//! cohort (management-api.md §8, PostHog's CohortViewSet). DELETE is PostHog's
//! `ForbidDestroyModel`: 405 with an empty body.
//!
//! Create body (PostHog's CohortSerializer fields): `name`, `description`, `is_static`,
//! `filters` (`{"properties": <property group>}`) or legacy `groups`, and for static cohorts
//! PostHog's `_create_static_person_ids` (person uuids) and our `distinct_ids` (a JSON list of
//! distinct ids; PostHog takes those as a CSV upload). Unknown persons are skipped, as
//! PostHog's import does.
//!
//! `GET /cohorts/{id}/persons/?limit=&cursor=` pages with an opaque cursor (`next` carries it)
//! rather than PostHog's offset: persons are read by Query in key order, never counted or
//! skipped over. A property cohort's page evaluates persons as it walks them and stops after
//! [`MAX_SCANNED`] persons, so a page may hold fewer than `limit` results and still have `next`.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::{Authorized, Context, authorize, project_route};
use crate::auth::{Accepts, Caller};
use crate::cohort::{self, Cohort};
use crate::error::{ApiError, ApiResult};
use crate::evaluation::FlagSet;
use crate::flag::Flag;
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::{Project, UserSummary};
use crate::person::Person;
use crate::retry::Backoff;
use crate::store::{FlagStore, IdentityStore, PersonStore};
use crate::time;
use crate::workers::cohort_fill;

/// Default and largest `limit` of the persons listing.
const DEFAULT_PERSONS_LIMIT: usize = 100;
const MAX_PERSONS_LIMIT: usize = 1000;
/// Persons a property cohort's page evaluates at most (a handful of Queries).
pub const MAX_SCANNED: usize = 5000;
/// Optimistic write attempts of an update before answering 409 (as flag updates do).
const MAX_WRITE_ATTEMPTS: u32 = 40;

pub async fn handle<S: FlagStore + PersonStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    match route(ctx, req).await {
        Ok(response) => response,
        Err(e) => e.into(),
    }
}

async fn route<S: FlagStore + PersonStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let segments = req.segments();
    let (project_segment, rest) =
        project_route(&segments, "cohorts").ok_or_else(ApiError::not_found)?;
    let scope = match (req.method.as_str(), rest.as_slice()) {
        ("GET", [] | [_] | [_, "persons"]) => "cohort:read",
        (_, [] | [_]) => "cohort:write",
        (_, [_, "persons"]) => "cohort:read",
        _ => return Err(ApiError::not_found()),
    };
    let Authorized {
        body,
        caller,
        project,
    } = authorize(
        ctx.store,
        req,
        project_segment,
        scope,
        Accepts::PersonalKeys,
    )
    .await?;
    let endpoint = CohortsEndpoint {
        ctx,
        caller: &caller,
        project: &project,
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", []) => endpoint.list(req).await,
        ("POST", []) => endpoint.create(&body?).await,
        ("GET", [id]) => endpoint.retrieve(id).await,
        // DRF's PUT is not partial, but no field of CohortSerializer is required, so PUT and
        // PATCH both keep what the body leaves out.
        ("PATCH" | "PUT", [id]) => endpoint.update(id, &body?).await,
        // PostHog's ForbidDestroyModel answers before looking the cohort up: 405, no body.
        ("DELETE", [_]) => Err(ApiError::Bodiless(405)),
        ("GET", [id, "persons"]) => endpoint.persons(req, id).await,
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

struct CohortsEndpoint<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    project: &'a Project,
}

impl<S: FlagStore + PersonStore + IdentityStore> CohortsEndpoint<'_, S> {
    /// Non-deleted cohorts, newest first (PostHog orders by `-created_at`). `?search=` keeps
    /// names containing it, case-insensitively (Django's `name__icontains`, under which a
    /// cohort without a name never matches, even a blank search).
    async fn list(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let search = req.query_value("search").map(crate::python::sql_upper);
        let mut cohorts: Vec<Cohort> = self
            .ctx
            .store
            .project_cohorts(self.project.id)
            .await?
            .into_iter()
            .filter(|c| !c.deleted)
            .filter(|c| {
                search.as_deref().is_none_or(|needle| {
                    c.name
                        .as_deref()
                        .is_some_and(|name| crate::python::sql_upper(name).contains(needle))
                })
            })
            .collect();
        cohorts.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let items = cohorts.iter().map(Cohort::representation).collect();
        Ok(ApiResponse::ok(paginate(req, items)))
    }

    async fn find(&self, id: &str) -> ApiResult<Cohort> {
        let id: i64 = id.trim().parse().map_err(|_| ApiError::not_found())?;
        self.ctx
            .store
            .cohort(self.project.id, id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    async fn retrieve(&self, id: &str) -> ApiResult<ApiResponse> {
        let cohort = self.find(id).await?;
        // Reading is how a dead fill gets noticed (see `workers::cohort_fill`).
        let cohort = cohort_fill::kick_if_stale(self.ctx.store, cohort).await?;
        Ok(ApiResponse::ok(cohort.representation()))
    }

    async fn create(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let existing = self.ctx.store.project_cohorts(self.project.id).await?;
        let request = cohort::parse_create(body, &existing)?;
        let id = self.ctx.store.next_cohort_id().await?;
        let creator = self.caller.user().map(UserSummary::from);
        let mut cohort = Cohort::new(id, self.project.id, creator, self.ctx.now);
        cohort.name = request.name.clone();
        cohort.description = request.description.clone();
        cohort.groups = request.groups.clone();
        cohort.filters = request.filters.clone();
        cohort.is_static = request.is_static;
        if request.is_static {
            // Members first: if the cohort write then fails, the orphans are invisible.
            let members = self
                .resolve_members(&request.person_ids, &request.distinct_ids)
                .await?;
            self.ctx
                .store
                .add_cohort_members(self.project.id, id, &members)
                .await?;
            cohort.count = Some(members.len() as i64);
            cohort.last_calculation = Some(self.ctx.now);
        }
        let stored = self
            .ctx
            .store
            .write_cohort(&cohort, true)
            .await?
            .ok_or_else(|| ApiError::internal("a new cohort id was already taken"))?;
        Ok(ApiResponse::json(201, stored.representation()))
    }

    /// Person uuids of the persons named by uuid or distinct id that exist, once each.
    async fn resolve_members(
        &self,
        person_ids: &[String],
        distinct_ids: &[String],
    ) -> ApiResult<Vec<String>> {
        let store = self.ctx.store;
        let mut uuids = BTreeSet::new();
        if !person_ids.is_empty() {
            let found = store.persons_by_ids(self.project.id, person_ids).await?;
            uuids.extend(found.into_iter().map(|p| p.uuid));
        }
        if !distinct_ids.is_empty() {
            let found = store
                .persons_by_distinct_ids(self.project.id, distinct_ids)
                .await?;
            uuids.extend(found.into_values().map(|p| p.uuid));
        }
        Ok(uuids.into_iter().collect())
    }

    /// PATCH/PUT: PostHog's `CohortSerializer.update`, written conditionally on the revision
    /// read and retried on a lost race (re-reading and re-validating), so concurrent updates
    /// never lose one another's fields.
    async fn update(&self, id: &str, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let id: i64 = id.trim().parse().map_err(|_| ApiError::not_found())?;
        let store = self.ctx.store;
        // Members are added once, before the first write; retries only redo the count.
        let mut added: Option<i64> = None;
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let cohorts = store.project_cohorts(self.project.id).await?;
            let current = cohorts
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(ApiError::not_found)?;
            let mut update = cohort::apply_update(body, current, &cohorts)?;
            if update.cohort.deleted && !current.deleted {
                self.check_unused(current, &cohorts).await?;
            }
            if update.has_members() {
                let new = match added {
                    Some(new) => new,
                    None => {
                        let new = self.add_members(current, &update).await?;
                        added = Some(new);
                        new
                    }
                };
                update.cohort.count = Some(current.count.unwrap_or(0) + new);
                update.cohort.last_calculation = Some(self.ctx.now);
            }
            match store
                .write_cohort(&update.cohort, update.changes_evaluation)
                .await?
            {
                Some(stored) => return Ok(ApiResponse::ok(stored.representation())),
                None => Backoff::WRITE_RACE.pause(attempt).await,
            }
        }
        Err(ApiError::Conflict(
            "The cohort is being changed by many requests at once. Please retry.".into(),
        ))
    }

    /// PostHog refuses to delete a cohort that active, non-deleted flags use, directly or
    /// through other cohorts (inactive flags don't block it).
    async fn check_unused(&self, cohort: &Cohort, cohorts: &[Cohort]) -> ApiResult<()> {
        let flags = self.ctx.store.project_flags(self.project.id).await?;
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
    async fn add_members(&self, cohort: &Cohort, update: &cohort::CohortUpdate) -> ApiResult<i64> {
        // A fill's last step sets `count` from its own tally, which would drop these.
        if cohort.is_calculating {
            return Err(ApiError::object(
                "This cohort is still being calculated; add members once it is done.",
            ));
        }
        let store = self.ctx.store;
        let uuids = self
            .resolve_members(&update.person_ids, &update.distinct_ids)
            .await?;
        let held = store
            .static_memberships(self.project.id, &[cohort.id], &uuids)
            .await?;
        store
            .add_cohort_members(self.project.id, cohort.id, &uuids)
            .await?;
        Ok(uuids.iter().filter(|u| !held.contains_key(*u)).count() as i64)
    }

    async fn persons(&self, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
        let cohort = self.find(id).await?;
        let limit = req
            .query_value("limit")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&l| l > 0)
            .unwrap_or(DEFAULT_PERSONS_LIMIT)
            .min(MAX_PERSONS_LIMIT);
        let cursor = req.query_value("cursor").filter(|c| !c.is_empty());
        let (persons, next) = if cohort.is_static {
            self.static_members(&cohort, cursor, limit).await?
        } else {
            self.matching_persons(&cohort, cursor, limit).await?
        };
        let next = next.map(|c| req.url_with(&[("cursor", c), ("limit", limit.to_string())], &[]));
        Ok(ApiResponse::ok(json!({
            "results": persons.iter().map(super::persons::person_json).collect::<Vec<_>>(),
            "next": next,
            "previous": null,
        })))
    }

    async fn static_members(
        &self,
        cohort: &Cohort,
        cursor: Option<&str>,
        limit: usize,
    ) -> ApiResult<(Vec<Person>, Option<String>)> {
        let store = self.ctx.store;
        let (uuids, next) = store
            .cohort_members_page(self.project.id, cohort.id, cursor, limit)
            .await?;
        let mut persons = store.persons_by_ids(self.project.id, &uuids).await?;
        // BatchGetItem answers in no order; keep the memberships' (uuid) order.
        let rank: HashMap<&str, usize> = uuids
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        persons.sort_by_key(|p| rank.get(p.uuid.as_str()).copied().unwrap_or(usize::MAX));
        Ok((persons, next))
    }

    /// Walks the project's persons from `cursor`, evaluating the cohort, until `limit` match or
    /// [`MAX_SCANNED`] were read. Pages never ask for more persons than free result slots, so
    /// the persons cursor is exact.
    async fn matching_persons(
        &self,
        cohort: &Cohort,
        cursor: Option<&str>,
        limit: usize,
    ) -> ApiResult<(Vec<Person>, Option<String>)> {
        let store = self.ctx.store;
        let cohorts = store.project_cohorts(self.project.id).await?;
        let probe = CohortProbe::new(cohort.id, &cohorts);
        let statics = probe.static_ids.clone();
        let mut cursor = cursor.map(str::to_string);
        let (mut found, mut scanned) = (Vec::new(), 0);
        while found.len() < limit && scanned < MAX_SCANNED {
            let (page, next) = store
                .persons_page(self.project.id, cursor.as_deref(), limit - found.len())
                .await?;
            scanned += page.len().max(1);
            let memberships = if statics.is_empty() || page.is_empty() {
                HashMap::new()
            } else {
                let uuids: Vec<String> = page.iter().map(|p| p.uuid.clone()).collect();
                store
                    .static_memberships(self.project.id, &statics, &uuids)
                    .await?
            };
            for person in page {
                let member_of = memberships.get(&person.uuid).map_or(&[][..], Vec::as_slice);
                if probe.matches(&person, member_of, self.ctx.now) {
                    found.push(person);
                }
            }
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        Ok((found, cursor))
    }
}

/// Evaluates one cohort for a person through the engine: a synthetic flag whose only
/// condition is "in cohort", so nested cohorts, negation and operators behave exactly as in
/// `/flags`.
pub struct CohortProbe {
    set: FlagSet,
    key: [String; 1],
    /// Static cohorts the tree reaches, whose memberships the caller looks up.
    pub static_ids: Vec<i64>,
}

impl CohortProbe {
    pub fn new(cohort_id: i64, cohorts: &[Cohort]) -> CohortProbe {
        let key = format!("$cohort-{cohort_id}");
        let mut flag = Flag::new(0, 0, key.clone(), probe_user(), chrono::Utc::now());
        flag.filters = json!({"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": cohort_id, "operator": "in"}
        ], "rollout_percentage": 100}]});
        let defs: Vec<_> = cohorts.iter().map(Cohort::for_evaluation).collect();
        let filters = [&flag.filters];
        CohortProbe {
            static_ids: cohort::referenced_static_ids(&filters, cohorts),
            set: FlagSet::new(std::slice::from_ref(&flag), &defs),
            key: [key],
        }
    }

    pub fn matches(&self, person: &Person, static_ids: &[i64], now: time::Timestamp) -> bool {
        person.flag_enabled(&self.set, &self.key[0], static_ids, now)
    }
}

fn probe_user() -> UserSummary {
    UserSummary {
        id: 0,
        uuid: String::new(),
        distinct_id: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        email: String::new(),
    }
}
