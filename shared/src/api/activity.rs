//! The flag activity log (flag-management-rules.md §6): `GET /api/projects/{project_id}/feature_flags/activity/`
//! (the project's flag log) and `GET …/feature_flags/{id}/activity/` (one flag's), plus, beyond
//! PostHog, `POST …/feature_flags/{id}/activity/{activity_id}/revert/`.

use serde_json::json;

use super::flag_view::FlagView;
use super::{Authorized, Context, authorized_route};
use crate::activity::{self, ActivityEntry, FLAG_SCOPE};
use crate::auth::{Accepts, Caller};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::identity::{Project, UserSummary};
use crate::service::FlagService;
use crate::store::{ActivityStore, FeatureStore, FlagStore, IdentityStore};

/// PostHog's defaults for `limit` and `page`.
const DEFAULT_LIMIT: i64 = 10;
const DEFAULT_PAGE: i64 = 1;

pub async fn handle<S: FlagStore + IdentityStore + ActivityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    // Boxed: a flag write's future is large in debug builds (~1.8 MB), too large for a 2 MB
    // thread stack when a caller keeps it there (tests' block_on); on the heap it costs nothing.
    Box::pin(route(ctx, req))
        .await
        .unwrap_or_else(ApiResponse::from)
}

async fn route<S: FlagStore + IdentityStore + ActivityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let access = |_: &str, rest: &[&str]| {
        let scope = match rest {
            // A revert is a flag write; reading the log is not needed to make one.
            [_, "activity", _, "revert"] => "feature_flag:write",
            ["activity"] | [_, "activity"] => "activity_log:read",
            _ => return None,
        };
        Some((scope, Accepts::PersonalKeys))
    };
    let (
        Authorized {
            caller, project, ..
        },
        rest,
    ) = authorized_route(ctx.store, req, "feature_flags", access).await?;
    let log = ActivityEndpoint {
        ctx,
        caller: &caller,
        project: &project,
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["activity"]) => log.page(req, None).await,
        ("GET", [id, "activity"]) => log.flag_page(req, id).await,
        ("POST", [id, "activity", entry_id, "revert"]) => log.revert(id, entry_id).await,
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

struct ActivityEndpoint<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    project: &'a Project,
}

/// Where a page sits in a log of `total` entries: the newest position it shows (positions
/// are 1..=total, newest highest) and how many entries it holds.
#[derive(Debug, PartialEq)]
struct PageRange {
    newest: i64,
    count: i64,
}

fn page_range(total: i64, page: i64, limit: i64) -> PageRange {
    let skipped = (page - 1).saturating_mul(limit);
    let newest = total.saturating_sub(skipped).max(0);
    PageRange {
        newest,
        count: limit.min(newest),
    }
}

impl<S: FlagStore + IdentityStore + ActivityStore + FeatureStore> ActivityEndpoint<'_, S> {
    fn store(&self) -> &S {
        self.ctx.store
    }

    /// One flag's log. A flag that does not exist in the project is a 404 with an empty
    /// body, as in PostHog; a soft-deleted flag still has its history.
    async fn flag_page(&self, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
        let query = PageQuery::parse(req)?;
        let id: i64 = id.parse().map_err(|_| ApiError::Bodiless(404))?;
        if self.store().get_flag(self.project.id, id).await?.is_none() {
            return Err(ApiError::Bodiless(404));
        }
        self.respond(req, query, Some(&id.to_string())).await
    }

    async fn page(&self, req: &ApiRequest, item: Option<&str>) -> ApiResult<ApiResponse> {
        let query = PageQuery::parse(req)?;
        self.respond(req, query, item).await
    }

    /// One counter read and one key-range Query, whatever the page number.
    async fn respond(
        &self,
        req: &ApiRequest,
        query: PageQuery,
        item: Option<&str>,
    ) -> ApiResult<ApiResponse> {
        let PageQuery { limit, page } = query;
        let total = self
            .store()
            .activity_count(self.project.id, FLAG_SCOPE, item)
            .await?;
        let range = page_range(total, page, limit);
        let entries = self
            .store()
            .activity_page(self.project.id, FLAG_SCOPE, item, range.newest, range.count)
            .await?;
        let link = |page: i64| {
            req.url_replacing(&[("page", page.to_string()), ("limit", limit.to_string())])
        };
        // Past the last page: PostHog fails (500); we answer an empty page (docs/reference/decisions.md).
        let has_next = page.saturating_mul(limit) < total;
        Ok(ApiResponse::ok(json!({
            "results": entries.iter().map(ActivityEntry::to_json).collect::<Vec<_>>(),
            "next": has_next.then(|| link(page + 1)),
            "previous": (page > 1).then(|| link(page - 1)),
            "total_count": total,
        })))
    }

    /// The flag as [`FlagService::revert`] leaves it, shown as PATCH shows it.
    async fn revert(&self, id: &str, entry_id: &str) -> ApiResult<ApiResponse> {
        let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
        let entry = self.flag_entry(id, entry_id).await?;
        let actor = self.caller.user().map(UserSummary::from);
        let flag = FlagService::new(self.store(), self.ctx.cipher)
            .revert(self.project.id, actor.as_ref(), id, &entry, self.ctx.now)
            .await?;
        let view = FlagView::new(self.ctx, self.caller, self.project);
        let features = view.features().await?;
        Ok(ApiResponse::ok(view.shown(&flag, &features).await?))
    }

    /// Entry `entry_id` of flag `id`; anything else (unknown id, another flag's entry) is 404.
    async fn flag_entry(&self, id: i64, entry_id: &str) -> ApiResult<ActivityEntry> {
        let Some(seq) = activity::entry_position(entry_id) else {
            return Err(ApiError::not_found());
        };
        let entry = self
            .store()
            .activity_entry(self.project.id, FLAG_SCOPE, seq)
            .await?;
        // The position came from the id; the stored id must match it too, or any UUIDv7
        // would name whatever entry sits at the position it happens to carry.
        entry
            .filter(|e| e.id.eq_ignore_ascii_case(entry_id) && e.item_id == id.to_string())
            .ok_or_else(ApiError::not_found)
    }
}

/// `limit` and `page`: integers ≥ 1, checked like DRF's `IntegerField(min_value=1)`.
#[derive(Debug, PartialEq)]
struct PageQuery {
    limit: i64,
    page: i64,
}

impl PageQuery {
    fn parse(req: &ApiRequest) -> ApiResult<Self> {
        Ok(PageQuery {
            limit: positive(req, "limit", DEFAULT_LIMIT)?,
            page: positive(req, "page", DEFAULT_PAGE)?,
        })
    }
}

fn positive(req: &ApiRequest, name: &str, default: i64) -> ApiResult<i64> {
    let Some(raw) = req.query_value(name) else {
        return Ok(default);
    };
    let value =
        drf_integer(raw).ok_or_else(|| ApiError::invalid(name, "A valid integer is required."))?;
    if value < 1 {
        return Err(ApiError::field(
            name,
            "min_value",
            "Ensure this value is greater than or equal to 1.",
        ));
    }
    Ok(value)
}

/// DRF reads `" 7 "`, `"+7"` and `"7.0"` as 7. Python integers have no upper bound, so
/// numbers past `i64` saturate (a page that far is simply past the end).
fn drf_integer(raw: &str) -> Option<i64> {
    let text = raw.trim();
    let text = match text.split_once('.') {
        Some((whole, zeros)) if zeros.chars().all(|c| c == '0') => whole,
        Some(_) => return None,
        None => text,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let value = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_position_ranges_counted_from_the_newest() {
        assert_eq!(
            page_range(25, 1, 10),
            PageRange {
                newest: 25,
                count: 10
            }
        );
        assert_eq!(
            page_range(25, 3, 10),
            PageRange {
                newest: 5,
                count: 5
            }
        );
        assert_eq!(
            page_range(25, 4, 10),
            PageRange {
                newest: 0,
                count: 0
            }
        );
        assert_eq!(
            page_range(0, 1, 10),
            PageRange {
                newest: 0,
                count: 0
            }
        );
        assert_eq!(
            page_range(10_000, 1_000, 10),
            PageRange {
                newest: 10,
                count: 10
            }
        );
        assert_eq!(
            page_range(5, i64::MAX, i64::MAX),
            PageRange {
                newest: 0,
                count: 0
            }
        );
    }

    #[test]
    fn integers_read_like_drf() {
        for (raw, want) in [
            ("7", Some(7)),
            (" 7 ", Some(7)),
            ("+7", Some(7)),
            ("7.0", Some(7)),
            ("7.", Some(7)),
            ("-2", Some(-2)),
            ("0", Some(0)),
            ("99999999999999999999999", Some(i64::MAX)),
            ("7.5", None),
            ("", None),
            ("abc", None),
            ("1e3", None),
            ("--1", None),
        ] {
            assert_eq!(drf_integer(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn bad_limit_and_page_are_field_errors_limit_first() {
        let req = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .fold(ApiRequest::new("GET", "/"), |r, (k, v)| r.with_query(k, v))
        };
        assert_eq!(
            PageQuery::parse(&req(&[])).unwrap(),
            PageQuery { limit: 10, page: 1 }
        );
        let err = PageQuery::parse(&req(&[("page", "x"), ("limit", "0")])).unwrap_err();
        assert_eq!(
            err.body().unwrap(),
            json!({"type": "validation_error", "code": "min_value", "detail": "Ensure this value is greater than or equal to 1.", "attr": "limit"})
        );
        let err = PageQuery::parse(&req(&[("page", "x")])).unwrap_err();
        assert_eq!(
            err.body().unwrap(),
            json!({"type": "validation_error", "code": "invalid_input", "detail": "A valid integer is required.", "attr": "page"})
        );
    }
}
