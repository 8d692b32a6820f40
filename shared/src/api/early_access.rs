//! `/api/projects/{project_id}/early_access_feature/…` (management, §11.1–§11.7) and the public
//! SDK endpoint `/api/early_access_features/` (§11.8).
//!
//! What a feature does to its flag is [`FeatureService`]'s: the flag rules, written in the same
//! DynamoDB transaction as the feature itself.

use serde_json::{Map, Value, json};

use super::{Authorized, Context, authorized_route};
use crate::auth::{Accepts, Caller};
use crate::early_access::{self, Feature};
use crate::error::{ApiError, ApiResult};
use crate::flag::{self, Flag};
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::{Project, UserSummary};
use crate::service::FeatureService;
use crate::store::{FeatureStore, FlagStore, IdentityStore};

pub async fn handle<S: FlagStore + IdentityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    let segments = req.segments();
    if segments.ends_with(&["api", "early_access_features"]) {
        return public_endpoint(ctx, req).await;
    }
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

/// PostHog wraps every answer of the public endpoint, its 401s included, in `cors_response`:
/// a browser SDK must be able to read why it was refused.
async fn public_endpoint<S: FlagStore + IdentityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResponse {
    let mut response = public_list(ctx, req)
        .await
        .unwrap_or_else(ApiResponse::from);
    if let Some(origin) = req.header("origin") {
        response
            .headers
            .push(("access-control-allow-origin".into(), origin.to_string()));
    }
    response
}

async fn route<S: FlagStore + IdentityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let access = |method: &str, rest: &[&str]| {
        let scope = match (method, rest) {
            ("GET", [] | [_]) => "early_access_feature:read",
            (_, [] | [_]) => "early_access_feature:write",
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
    ) = authorized_route(ctx.store, req, "early_access_feature", access).await?;
    let features = FeaturesEndpoint {
        ctx,
        caller: &caller,
        project: &project,
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", []) => features.list(req).await,
        ("POST", []) => features.create(&body?).await,
        ("GET", [id]) => features.retrieve(id).await,
        ("PATCH", [id]) => features.update(id, &body?, true).await,
        ("PUT", [id]) => features.update(id, &body?, false).await,
        ("DELETE", [id]) => features.delete(id).await,
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

struct FeaturesEndpoint<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    project: &'a Project,
}

impl<S: FlagStore + IdentityStore + FeatureStore> FeaturesEndpoint<'_, S> {
    fn store(&self) -> &S {
        self.ctx.store
    }

    /// The feature with its flag in the minimal shape (payloads as this caller may see them).
    fn show(&self, feature: &Feature, flag: Option<&Flag>) -> Value {
        let flag = flag.map(|f| {
            let mut filters = f.effective_filters();
            if f.has_encrypted_payloads == Some(true) {
                filters = self
                    .ctx
                    .cipher
                    .reveal(&filters, self.caller.sees_decrypted_payloads());
            }
            flag::minimal_representation(f, filters)
        });
        feature.to_json(flag)
    }

    async fn show_one(&self, feature: &Feature) -> ApiResult<Value> {
        let flag = match feature.feature_flag_id {
            Some(id) => self.store().get_flag(self.project.id, id).await?,
            None => None,
        };
        Ok(self.show(feature, flag.as_ref()))
    }

    /// Unknown ids and ids that are not UUIDs are both "not found".
    async fn find(&self, id: &str) -> ApiResult<Feature> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::not_found());
        }
        self.store()
            .feature(self.project.id, id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    async fn list(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let features = self.store().project_features(self.project.id).await?;
        let flags = self.store().project_flags(self.project.id).await?;
        let shown = features
            .iter()
            .map(|feature| {
                let flag = flags.iter().find(|f| Some(f.id) == feature.feature_flag_id);
                self.show(feature, flag)
            })
            .collect();
        Ok(ApiResponse::ok(paginate(req, shown)))
    }

    async fn retrieve(&self, id: &str) -> ApiResult<ApiResponse> {
        let feature = self.find(id).await?;
        Ok(ApiResponse::ok(self.show_one(&feature).await?))
    }

    fn service(&self) -> FeatureService<'_, S> {
        FeatureService::new(self.store(), self.ctx.cipher)
    }

    fn actor(&self) -> Option<UserSummary> {
        self.caller.user().map(UserSummary::from)
    }

    async fn create(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let input = early_access::parse(body, false, true)?;
        let actor = self.actor();
        let created = self
            .service()
            .create(self.project.id, actor.as_ref(), &input, self.ctx.now)
            .await?;
        let shown = match &created.new_flag {
            Some(flag) => self.show(&created.feature, Some(flag)),
            None => self.show_one(&created.feature).await?,
        };
        Ok(ApiResponse::json(201, shown))
    }

    async fn update(
        &self,
        id: &str,
        body: &Map<String, Value>,
        partial: bool,
    ) -> ApiResult<ApiResponse> {
        let before = self.find(id).await?;
        let input = early_access::parse(body, partial, false)?;
        let actor = self.actor();
        let after = self
            .service()
            .update(
                self.project.id,
                actor.as_ref(),
                &before,
                &input,
                self.ctx.now,
            )
            .await?;
        Ok(ApiResponse::ok(self.show_one(&after).await?))
    }

    async fn delete(&self, id: &str) -> ApiResult<ApiResponse> {
        let feature = self.find(id).await?;
        let actor = self.actor();
        self.service()
            .delete(self.project.id, actor.as_ref(), &feature, self.ctx.now)
            .await?;
        Ok(ApiResponse::empty(204))
    }
}

/// `GET /api/early_access_features/?token=<phc_…>&stage=…` for posthog-js: the project's
/// features in the requested stages (default `beta`), with PostHog's 401 bodies.
async fn public_list<S: FlagStore + IdentityStore + FeatureStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    if req.method != "GET" {
        return Err(ApiError::MethodNotAllowed(req.method.clone()));
    }
    let token = req
        .query_value("token")
        .or_else(|| req.query_value("api_key"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized {
            code: "missing_api_key",
            detail: "API key not provided. You can find your project API key in PostHog project settings.".into(),
        })?;
    let project = ctx
        .store
        .project_by_token(token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized {
            code: "invalid_api_key",
            detail: "Project API key invalid. You can find your project API key in PostHog project settings.".into(),
        })?;
    let mut stages: Vec<&str> = req
        .query
        .iter()
        .filter(|(k, _)| k == "stage")
        .map(|(_, v)| v.as_str())
        .collect();
    if stages.is_empty() {
        stages.push("beta");
    }
    let flags = ctx.store.project_flags(project.id).await?;
    let shown: Vec<Value> = ctx
        .store
        .project_features(project.id)
        .await?
        .iter()
        .filter(|f| stages.contains(&f.stage.as_str()))
        .map(|feature| {
            let key = flags
                .iter()
                .find(|f| Some(f.id) == feature.feature_flag_id)
                .map(|f| f.key.as_str());
            let mut summary = feature.summary(key.unwrap_or_default());
            if key.is_none() {
                summary["flagKey"] = Value::Null;
            }
            summary
        })
        .collect();
    Ok(ApiResponse::ok(json!({"earlyAccessFeatures": shown})))
}
