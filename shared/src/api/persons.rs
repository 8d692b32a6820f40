//! `/api/projects/{project_id}/persons/…` (PostHog's PersonViewSet): the persons capture
//! built. Rules live in [`PersonService`]; this module routes, authorizes and shows.
//!
//! * `GET persons/` (`person:read`): `?distinct_id=…` → the person holding that distinct id
//!   (0 or 1 result, two GetItems); otherwise the project's persons in creation order (UUIDv7
//!   sort keys), `limit` per page (default 100, at most 1000, as PostHog's
//!   `PersonCursorPagination`), one Query each. Like PostHog's cursor pagination there is no
//!   `count`; `next` is an absolute URL carrying an opaque `cursor`, and `previous` is always
//!   `null` (pages only go forward). `email` (exact) and `search` (part of the email or name
//!   property, a distinct id or the uuid) filter while walking, at most 5,000 persons a page.
//! * `GET persons/{id}/` (`person:read`): one person by uuid (an integer id finds nobody:
//!   persons have no integer key here).
//! * `GET persons/cohorts/?person_id=` (`person:read` and `cohort:read`): `{"results": [cohort]}`.
//! * `GET persons/values/?key=&value=` (`person:read`): `[{"name", "count"}]`.
//! * `POST persons/{id}/update_property/` (`{key, value}`) → 202, no body;
//!   `POST persons/{id}/delete_property/` (`{"$unset": key or [keys]}`) → 201
//!   `{"success": true}`; `POST persons/bulk_delete/` (`{ids}` or `{distinct_ids}`, at most
//!   1000) → 202, no body (`person:write`).

use serde_json::{Map, Value, json};

use super::{Authorized, Context, authorized_route};
use crate::auth::Accepts;
use crate::cohort::Cohort;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::identity::Project;
use crate::person::Person;
use crate::service::PersonService;
use crate::service::persons::{DeleteTarget, MAX_BULK_DELETE, MAX_UNSET_KEYS, PersonFilter};
use crate::store::{FlagStore, IdentityStore, PersonStore};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub async fn handle<S: PersonStore + FlagStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

async fn route<S: PersonStore + FlagStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    // Methods a path does not serve still need a valid key (with the write scope) before 405.
    let access = |method: &str, rest: &[&str]| {
        let scope = match (method, rest) {
            ("GET", [] | [_]) => "person:read",
            (_, [] | [_]) => "person:write",
            (_, [_, "update_property" | "delete_property"]) => "person:write",
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
    ) = authorized_route(ctx.store, req, "persons", access).await?;
    let service = PersonService::new(ctx.store);
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", []) => list(ctx, req, &project).await,
        ("GET", ["cohorts"]) => {
            // PostHog's action requires both scopes.
            caller.require_scope("cohort:read")?;
            cohorts(ctx, req, &project).await
        }
        ("GET", ["values"]) => values(&service, req, &project).await,
        ("POST", ["bulk_delete"]) => bulk_delete(ctx, &project, &body?).await,
        ("GET", [id]) if !is_action(id) => {
            let person = service.find(project.id, id).await?;
            Ok(ApiResponse::ok(person.representation()))
        }
        ("POST", [id, "update_property"]) => update_property(&service, &project, id, &body?).await,
        ("POST", [id, "delete_property"]) => delete_property(&service, &project, id, &body?).await,
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

/// The list-level actions, which a `{id}` segment never names.
fn is_action(segment: &str) -> bool {
    matches!(segment, "cohorts" | "values" | "bulk_delete")
}

async fn list<S: PersonStore + FlagStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    project: &Project,
) -> ApiResult<ApiResponse> {
    let given = |name: &str| {
        req.query_value(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let filter = PersonFilter {
        email: given("email"),
        search: given("search"),
    };
    if let Some(distinct_id) = req.query_value("distinct_id") {
        let found = ctx
            .store
            .person_by_distinct_id(project.id, distinct_id)
            .await?;
        let results: Vec<Value> = found
            .iter()
            .filter(|p| filter.keeps(p))
            .map(Person::representation)
            .collect();
        return Ok(ApiResponse::ok(
            json!({"next": null, "previous": null, "results": results}),
        ));
    }
    // DRF's cursor pagination falls back to the default on an unusable `limit`.
    let limit = req
        .query_value("limit")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .filter(|l| *l > 0)
        .map_or(DEFAULT_LIMIT, |l| l.min(MAX_LIMIT));
    let cursor = req
        .query_value("cursor")
        .filter(|c| !c.is_empty() && is_cursor(c));
    if req.query_value("cursor").is_some_and(|c| !c.is_empty()) && cursor.is_none() {
        // DRF answers an undecodable cursor with 404 "Invalid cursor".
        return Err(ApiError::NotFound("Invalid cursor".into()));
    }
    let (persons, next) = if filter == PersonFilter::default() {
        ctx.store.persons_page(project.id, cursor, limit).await?
    } else {
        PersonService::new(ctx.store)
            .filtered_page(project.id, &filter, cursor, limit)
            .await?
    };
    let next = next.map(|c| req.url_with(&[("cursor", c), ("limit", limit.to_string())], &[]));
    let results: Vec<Value> = persons.iter().map(Person::representation).collect();
    Ok(ApiResponse::ok(
        json!({"next": next, "previous": null, "results": results}),
    ))
}

/// Cursors are person uuids; anything else was not handed out by us.
fn is_cursor(c: &str) -> bool {
    uuid::Uuid::try_parse(c).is_ok()
}

async fn cohorts<S: PersonStore + FlagStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    project: &Project,
) -> ApiResult<ApiResponse> {
    // PostHog reads `request.GET["person_id"]` (a 500 when absent); say what is missing.
    let Some(person_id) = req.query_value("person_id") else {
        return Err(ApiError::field(
            "person_id",
            "required",
            "This field is required.",
        ));
    };
    let service = PersonService::new(ctx.store);
    let person = service.find(project.id, person_id).await?;
    let found = service.cohorts_of(&person, ctx.now).await?;
    let results: Vec<Value> = found.iter().map(Cohort::representation).collect();
    Ok(ApiResponse::ok(json!({ "results": results })))
}

async fn values<S: PersonStore + FlagStore>(
    service: &PersonService<'_, S>,
    req: &ApiRequest,
    project: &Project,
) -> ApiResult<ApiResponse> {
    // PostHog answers an empty list without a key, and for its virtual `$virt…` properties.
    let key = match req.query_value("key") {
        Some(key) if !key.is_empty() && !key.starts_with("$virt") => key,
        _ => return Ok(ApiResponse::ok(json!([]))),
    };
    crate::limits::identifier("key", key)?;
    let found = service
        .property_values(project.id, key, req.query_value("value"))
        .await?;
    let shown: Vec<Value> = found
        .into_iter()
        .map(|(name, count)| json!({"name": name, "count": count}))
        .collect();
    Ok(ApiResponse::ok(Value::Array(shown)))
}

async fn update_property<S: PersonStore + FlagStore>(
    service: &PersonService<'_, S>,
    project: &Project,
    id: &str,
    body: &Map<String, Value>,
) -> ApiResult<ApiResponse> {
    // PostHog checks `value` before `key`, both before looking the person up, and answers
    // with `code` and `detail` the other way round from DRF's usual envelope (sic).
    let required = |attr: &str| ApiError::field(attr, "This field is required.", "required");
    let value = match body.get("value") {
        None | Some(Value::Null) => return Err(required("value")),
        Some(value) => value,
    };
    let key = match body.get("key") {
        None | Some(Value::Null) => return Err(required("key")),
        Some(Value::String(key)) => crate::limits::identifier("key", key)?,
        Some(_) => return Err(ApiError::invalid("key", "Not a valid string.")),
    };
    let person = service.find(project.id, id).await?;
    service
        .set_property(project.id, &person.uuid, key, value)
        .await?;
    Ok(ApiResponse::empty(202))
}

async fn delete_property<S: PersonStore + FlagStore>(
    service: &PersonService<'_, S>,
    project: &Project,
    id: &str,
    body: &Map<String, Value>,
) -> ApiResult<ApiResponse> {
    // PostHog looks the person up first, then reads `$unset`.
    let person = service.find(project.id, id).await?;
    let keys = unset_keys(body.get("$unset"))?;
    service
        .unset_properties(project.id, &person.uuid, &keys)
        .await?;
    Ok(ApiResponse::json(201, json!({"success": true})))
}

/// `$unset`: a key, or a list of 1–[`MAX_UNSET_KEYS`] keys (the tool catalog's shape).
fn unset_keys(raw: Option<&Value>) -> ApiResult<Vec<String>> {
    const ATTR: &str = "$unset";
    let key = |v: &Value| match v {
        Value::String(k) if !k.is_empty() => crate::limits::identifier(ATTR, k).map(str::to_string),
        _ => Err(ApiError::invalid(
            ATTR,
            "Give a property key, or a list of property keys, as non-empty strings.",
        )),
    };
    match raw {
        None | Some(Value::Null) => {
            Err(ApiError::field(ATTR, "required", "This field is required."))
        }
        Some(Value::Array(items)) if items.is_empty() => Err(ApiError::invalid(
            ATTR,
            "Give at least one property key to remove.",
        )),
        Some(Value::Array(items)) if items.len() > MAX_UNSET_KEYS => Err(ApiError::invalid(
            ATTR,
            format!("At most {MAX_UNSET_KEYS} property keys can be removed in one request."),
        )),
        Some(Value::Array(items)) => items.iter().map(key).collect(),
        Some(other) => Ok(vec![key(other)?]),
    }
}

async fn bulk_delete<S: PersonStore + FlagStore + IdentityStore>(
    ctx: &Context<'_, S>,
    project: &Project,
    body: &Map<String, Value>,
) -> ApiResult<ApiResponse> {
    let target = delete_target(body)?;
    // `keep_person` keeps the persons and deletes only their events and recordings, which are
    // not stored here: nothing to do. `delete_events`/`delete_recordings` likewise.
    let keep = body.get("keep_person").is_some_and(crate::python::truthy);
    if !keep {
        PersonService::new(ctx.store)
            .delete(project.id, &target, ctx.now)
            .await?;
    }
    Ok(ApiResponse::empty(202))
}

/// PostHog's order: non-empty `distinct_ids` win over `ids`; neither is a 400; past 1000 too.
fn delete_target(body: &Map<String, Value>) -> ApiResult<DeleteTarget> {
    let list = |field: &str| -> ApiResult<Option<Vec<String>>> {
        let items = match body.get(field) {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(v) if !crate::python::truthy(v) => return Ok(None),
            None => return Ok(None),
            Some(v) => {
                return Err(ApiError::field(
                    field,
                    "not_a_list",
                    format!(
                        "Expected a list of items but got type \"{}\".",
                        crate::python::type_name(v)
                    ),
                ));
            }
        };
        if items.len() > MAX_BULK_DELETE {
            return Err(ApiError::object(format!(
                "You can only pass {MAX_BULK_DELETE} {field} in one call"
            )));
        }
        items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(ApiError::invalid(
                    field,
                    format!("Every entry must be a string, got {other}."),
                )),
            })
            .collect::<ApiResult<Vec<String>>>()
            .map(Some)
    };
    if let Some(distinct_ids) = list("distinct_ids")? {
        for d in &distinct_ids {
            crate::limits::identifier("distinct_ids", d)?;
        }
        return Ok(DeleteTarget::DistinctIds(distinct_ids));
    }
    if let Some(ids) = list("ids")? {
        let uuids = ids
            .iter()
            .map(|id| {
                crate::person::canonical_uuid(id).ok_or_else(|| {
                    ApiError::invalid("ids", format!("\"{id}\" is not a valid UUID."))
                })
            })
            .collect::<ApiResult<Vec<String>>>()?;
        return Ok(DeleteTarget::Ids(uuids));
    }
    Err(ApiError::object(
        "You need to specify either distinct_ids or ids",
    ))
}
