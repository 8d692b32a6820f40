//! `/api/projects/{project_id}/cohorts/…`: list, create (static and property cohorts),
//! retrieve, update (PATCH/PUT, soft delete with `{"deleted": true}`), and the persons of a
//! cohort (flag-management-rules.md §8, PostHog's CohortViewSet). DELETE is PostHog's
//! `ForbidDestroyModel`: 405 with an empty body.
//!
//! Create body (PostHog's CohortSerializer fields): `name`, `description`, `is_static`,
//! `filters` (`{"properties": <property group>}`) or legacy `groups`, and for static cohorts
//! PostHog's `_create_static_person_ids` (person uuids) and our `distinct_ids` (a JSON list of
//! distinct ids; PostHog takes those as a CSV upload). Unknown persons are skipped, as
//! PostHog's import does.
//!
//! `PATCH /cohorts/{id}/add_persons_to_static_cohort/` (`{"person_ids": [uuids]}`, at most
//! 1000) and `PATCH /cohorts/{id}/remove_person_from_static_cohort/` (`{"person_id": uuid}`)
//! change a static cohort's members (`cohort:write`), answering `{"success": true}`.
//!
//! `GET /cohorts/{id}/persons/?limit=&cursor=` pages with an opaque cursor (`next` carries it)
//! rather than PostHog's offset: persons are read by Query in key order, never counted or
//! skipped over. A property cohort's page evaluates persons as it walks them and stops after
//! [`MAX_SCANNED`](crate::service::cohorts::MAX_SCANNED) persons, so a page may hold fewer
//! than `limit` results and still have `next`.

use serde_json::{Map, Value, json};

use super::{Authorized, Context, authorized_route};
use crate::auth::{Accepts, Caller};
use crate::cohort::Cohort;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::{Project, UserSummary};
use crate::person::Person;
use crate::service::CohortService;
use crate::store::{FlagStore, IdentityStore, PersonStore};
use crate::workers::cohort_fill;

/// Default and largest `limit` of the persons listing.
const DEFAULT_PERSONS_LIMIT: usize = 100;
const MAX_PERSONS_LIMIT: usize = 1000;

pub async fn handle<S: FlagStore + PersonStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

async fn route<S: FlagStore + PersonStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let access = |method: &str, rest: &[&str]| {
        let scope = match (method, rest) {
            ("GET", [] | [_] | [_, "persons"]) => "cohort:read",
            (_, [] | [_]) => "cohort:write",
            (_, [_, "persons"]) => "cohort:read",
            (
                _,
                [
                    _,
                    "add_persons_to_static_cohort" | "remove_person_from_static_cohort",
                ],
            ) => "cohort:write",
            _ => return None,
        };
        Some((scope, Accepts::PersonalKeys))
    };
    let (
        Authorized {
            body,
            caller,
            project,
        },
        rest,
    ) = authorized_route(ctx.store, req, "cohorts", access).await?;
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
        ("PATCH", [id, "add_persons_to_static_cohort"]) => endpoint.add_persons(id, &body?).await,
        ("PATCH", [id, "remove_person_from_static_cohort"]) => {
            endpoint.remove_person(id, &body?).await
        }
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

    fn service(&self) -> CohortService<'_, S> {
        CohortService::new(self.ctx.store)
    }

    async fn create(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let creator = self.caller.user().map(UserSummary::from);
        let stored = self
            .service()
            .create(self.project.id, creator.as_ref(), body, self.ctx.now)
            .await?;
        Ok(ApiResponse::json(201, stored.representation()))
    }

    async fn update(&self, id: &str, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let id: i64 = id.trim().parse().map_err(|_| ApiError::not_found())?;
        let stored = self
            .service()
            .update(self.project.id, id, body, self.ctx.now)
            .await?;
        Ok(ApiResponse::ok(stored.representation()))
    }

    /// PostHog answers both static-membership actions with `{"success": true}`.
    async fn add_persons(&self, id: &str, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let id: i64 = id.trim().parse().map_err(|_| ApiError::not_found())?;
        self.service()
            .add_persons(self.project.id, id, body, self.ctx.now)
            .await?;
        Ok(ApiResponse::ok(json!({"success": true})))
    }

    async fn remove_person(&self, id: &str, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let id: i64 = id.trim().parse().map_err(|_| ApiError::not_found())?;
        self.service()
            .remove_person(self.project.id, id, body, self.ctx.now)
            .await?;
        Ok(ApiResponse::ok(json!({"success": true})))
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
        let (persons, next) = self
            .service()
            .persons(self.project.id, &cohort, cursor, limit, self.ctx.now)
            .await?;
        let next = next.map(|c| req.url_with(&[("cursor", c), ("limit", limit.to_string())], &[]));
        Ok(ApiResponse::ok(json!({
            "results": persons.iter().map(Person::representation).collect::<Vec<_>>(),
            "next": next,
            "previous": null,
        })))
    }
}
