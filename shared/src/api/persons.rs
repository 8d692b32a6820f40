//! `GET /api/projects/{project_id}/persons/` (PostHog's PersonViewSet list): the persons
//! capture built, scope `person:read`.
//!
//! * `?distinct_id=…` → the person holding that distinct id: 0 or 1 result (two GetItems).
//! * otherwise the project's persons in creation order (UUIDv7 sort keys), `limit` per page
//!   (default 100, at most 1000, as PostHog's `PersonCursorPagination`), one Query each. Like
//!   PostHog's cursor pagination there is no `count`; `next` is an absolute URL carrying an
//!   opaque `cursor`, and `previous` is always `null` (pages only go forward).

use serde_json::{Value, json};

use super::{Authorized, Context, authorized_route};
use crate::auth::Accepts;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::person::Person;
use crate::store::{IdentityStore, PersonStore};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub async fn handle<S: PersonStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

async fn route<S: PersonStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    // Only reads exist here; other methods still need a valid key before they hear 405.
    let access = |method: &str, rest: &[&str]| match (method, rest) {
        ("GET", []) => Some(("person:read", Accepts::PersonalKeys)),
        (_, []) => Some(("person:write", Accepts::PersonalKeys)),
        _ => None,
    };
    let (Authorized { project, .. }, _) =
        authorized_route(ctx.store, req, "persons", access).await?;
    if req.method != "GET" {
        return Err(ApiError::MethodNotAllowed(req.method.clone()));
    }
    if let Some(distinct_id) = req.query_value("distinct_id") {
        let found = ctx
            .store
            .person_by_distinct_id(project.id, distinct_id)
            .await?;
        let results: Vec<Value> = found.iter().map(Person::representation).collect();
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
    let (persons, next) = ctx.store.persons_page(project.id, cursor, limit).await?;
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
