//! `/api/projects/{project_id}/feature_flags/…`: list, create, retrieve, update, soft delete and
//! restore, status, dependent flags and remote config (flag-management-rules.md §5, §7, §10).

use serde_json::{Map, Value, json};

use super::copy_flags;
use super::flag_actions::{self, FlagActions};
use super::flag_blast_radius;
use super::flag_bulk::FlagBulk;
use super::flag_evaluation::{EvaluationStore, FlagEvaluations};
use super::flag_view::{FlagView, with_cohort_names};
use super::{Authorized, Context, authorized_route};
use crate::auth::{Accepts, Caller};
use crate::error::{ApiError, ApiResult};
use crate::flag::filters::{self, Filters};
use crate::flag::{Flag, list, status};
use crate::http::{ApiRequest, ApiResponse, Page};
use crate::identity::{Project, UserSummary};
use crate::service::flag_list::list_flags;
use crate::service::{Changes, FlagService};
use crate::store::{FeatureStore, FlagStore, IdentityStore, PersonStore};

/// PUT replaces, PATCH keeps what the body leaves out.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Replace,
    Patch,
}

pub async fn handle<S: EvaluationStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    // Boxed: a flag write's future is large in debug builds (~1.8 MB), too large for a 2 MB
    // thread stack when a caller keeps it there (tests' block_on); on the heap it costs nothing.
    Box::pin(route(ctx, req))
        .await
        .unwrap_or_else(ApiResponse::from)
}

async fn route<S: EvaluationStore + IdentityStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    // `/api/organizations/{organization_id}/feature_flags/copy_flags/…`: not under a project.
    if let Some((organization, rest)) = copy_flags::org_route(&req.segments()) {
        return copy_flags::handle(ctx, req, organization, &rest).await;
    }
    let access = |method: &str, rest: &[&str]| match (method, rest) {
        // Bulk operations (issue 13), before the `[_]` arms below that would take them for ids.
        ("POST", ["bulk_keys" | "user_blast_radius"]) => {
            Some(("feature_flag:read", Accepts::PersonalKeys))
        }
        ("POST", ["bulk_update_tags" | "bulk_delete"]) => {
            Some(("feature_flag:write", Accepts::PersonalKeys))
        }
        // Flag actions and evaluation explained (issue 13): PostHog's scopes for each.
        ("POST", [_, action]) if flag_actions::is_action(action) => {
            Some(("feature_flag:write", Accepts::PersonalKeys))
        }
        ("POST", [_, "test_evaluation"]) | ("GET", ["evaluation_reasons" | "my_flags"]) => {
            Some(("feature_flag:read", Accepts::PersonalKeys))
        }
        (_, [_, "remote_config"]) => {
            Some(("feature_flag:read", Accepts::PersonalKeysOrProjectSecret))
        }
        ("GET", [] | [_] | [_, "status" | "dependent_flags"]) => {
            Some(("feature_flag:read", Accepts::PersonalKeys))
        }
        (_, [] | [_]) => Some(("feature_flag:write", Accepts::PersonalKeys)),
        (_, [_, "status" | "dependent_flags"]) => {
            Some(("feature_flag:read", Accepts::PersonalKeys))
        }
        ("POST", [_, "dashboard"]) => Some(("feature_flag:write", Accepts::PersonalKeys)),
        ("POST", [_, "create_static_cohort_for_flag"]) => {
            Some(("feature_flag:write", Accepts::PersonalKeys))
        }
        _ => None,
    };
    let (
        Authorized {
            body,
            caller,
            project,
        },
        rest,
    ) = authorized_route(ctx.store, req, "feature_flags", access).await?;
    let flags = FlagsEndpoint {
        ctx,
        caller: &caller,
        project: &project,
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", []) => flags.list(req).await,
        ("POST", ["bulk_keys"]) => flags.bulk().bulk_keys(&body?).await,
        ("POST", ["bulk_update_tags"]) => flags.bulk().bulk_update_tags(&body?).await,
        ("POST", ["bulk_delete"]) => flags.bulk().bulk_delete(&body?).await,
        ("POST", ["user_blast_radius"]) => {
            flag_blast_radius::user_blast_radius(ctx, &project, &body?)
                .await
                .map(ApiResponse::ok)
        }
        ("POST", [id, action]) if flag_actions::is_action(action) => {
            flags.actions().run(id, action, &body?).await
        }
        ("POST", [id, "test_evaluation"]) => flags.explain().test_evaluation(id, &body?).await,
        ("GET", ["evaluation_reasons"]) => flags.explain().evaluation_reasons(req).await,
        ("GET", ["my_flags"]) => flags.explain().my_flags(req).await,
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

struct FlagsEndpoint<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    project: &'a Project,
}

impl<S: FlagStore + IdentityStore + FeatureStore + PersonStore> FlagsEndpoint<'_, S> {
    fn store(&self) -> &S {
        self.ctx.store
    }

    fn actor(&self) -> Option<UserSummary> {
        self.caller.user().map(UserSummary::from)
    }

    fn view(&self) -> FlagView<'_, S> {
        FlagView::new(self.ctx, self.caller, self.project)
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
        let page = Page::of(req);
        let listed = list_flags(
            self.store(),
            self.project.id,
            &query,
            page.offset,
            page.limit,
            self.ctx.now,
        )
        .await?;
        let features = self.view().features().await?;
        let view = self.view();
        let names = view.cohort_names(listed.flags.iter()).await?;
        let shown = listed
            .flags
            .iter()
            .map(|f| with_cohort_names(view.show(f, &features), &names))
            .collect();
        Ok(ApiResponse::ok(page.body(req, listed.count, shown)))
    }

    async fn retrieve(&self, id: &str) -> ApiResult<ApiResponse> {
        let flag = self.find(id).await?;
        self.view()
            .shown(&flag, &self.view().features().await?)
            .await
            .map(ApiResponse::ok)
    }

    fn service(&self) -> FlagService<'_, S> {
        FlagService::new(self.store(), self.ctx.cipher)
    }

    fn bulk(&self) -> FlagBulk<'_, S> {
        FlagBulk {
            ctx: self.ctx,
            caller: self.caller,
            project: self.project,
        }
    }

    async fn create(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let actor = self.actor();
        let flag = self
            .service()
            .create(self.project.id, actor.as_ref(), body, None, self.ctx.now)
            .await?;
        let features = self.view().features().await?;
        let shown = self.view().shown(&flag, &features).await?;
        Ok(ApiResponse::json(201, shown))
    }

    async fn update(
        &self,
        id: &str,
        body: &Map<String, Value>,
        mode: Mode,
    ) -> ApiResult<ApiResponse> {
        let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
        let changes = match mode {
            Mode::Patch => Changes::patch(body),
            Mode::Replace => Changes::replace(body),
        };
        let actor = self.actor();
        let flag = self
            .service()
            .update(self.project.id, actor.as_ref(), id, changes, self.ctx.now)
            .await?;
        let features = self.view().features().await?;
        self.view()
            .shown(&flag, &features)
            .await
            .map(ApiResponse::ok)
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
        // The dependency index names every flag that references this one; reading those
        // (not the project) and checking them is the same answer at any project size.
        let referencing = self
            .store()
            .dependent_ids(self.project.id, target.id)
            .await?;
        let flags = self
            .store()
            .flags_by_ids(self.project.id, &referencing)
            .await?;
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
        let payload = Filters::of(&filters)
            .payloads()
            .and_then(|p| p.get("true"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(ApiResponse::ok(payload))
    }
}

/// Single-purpose actions and evaluations explained (§5.9, §5.10), in their own modules.
impl<S: EvaluationStore> FlagsEndpoint<'_, S> {
    fn actions(&self) -> FlagActions<'_, S> {
        FlagActions {
            ctx: self.ctx,
            caller: self.caller,
            project: self.project,
        }
    }

    fn explain(&self) -> FlagEvaluations<'_, S> {
        FlagEvaluations {
            ctx: self.ctx,
            caller: self.caller,
            project: self.project,
        }
    }
}

/// Usage dashboards (flag-management-rules.md §5.2, §9).
impl<S: FlagStore + IdentityStore + FeatureStore + PersonStore> FlagsEndpoint<'_, S> {
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
        let actor = self.actor();
        self.service()
            .regenerate_usage_dashboard(self.project.id, actor.as_ref(), flag_id, self.ctx.now)
            .await
    }
}

/// The static cohort from a flag (§8).
impl<S: FlagStore + IdentityStore + FeatureStore + PersonStore> FlagsEndpoint<'_, S> {
    /// `POST /feature_flags/{id}/create_static_cohort_for_flag/`: soft-deleted flags are found,
    /// as in PostHog.
    async fn create_static_cohort_for_flag(&self, id: &str) -> ApiResult<ApiResponse> {
        let flag = self.find(id).await?;
        let actor = self.actor();
        let stored = self
            .service()
            .create_static_cohort(self.project.id, actor.as_ref(), &flag, self.ctx.now)
            .await?;
        Ok(ApiResponse::json(
            201,
            json!({"cohort": stored.representation()}),
        ))
    }
}
