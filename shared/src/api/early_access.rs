//! `/api/projects/{project_id}/early_access_feature/…` (management, §11.1–§11.7) and the public
//! SDK endpoint `/api/early_access_features/` (§11.8).
//!
//! Every change a feature makes to its flag goes through the flag rules
//! (`feature_flags::update_flag`, `create_flag`, `remove_enrollment`) and is written in the same
//! DynamoDB transaction as the feature itself.

use serde_json::{Map, Value, json};

use super::feature_flags::{self, Alongside};
use super::{Authorized, Context, authorize, project_route};
use crate::auth::{Accepts, Caller};
use crate::early_access::{self, Feature, FeatureInput};
use crate::error::{ApiError, ApiResult};
use crate::flag::{self, Flag};
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::{Project, UserSummary};
use crate::store::{FeatureStore, FeatureWrite, FlagStore, IdentityStore, WriteError};

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
    let segments = req.segments();
    let (project_segment, rest) =
        project_route(&segments, "early_access_feature").ok_or_else(ApiError::not_found)?;
    let scope = match (req.method.as_str(), rest.as_slice()) {
        ("GET", [] | [_]) => "early_access_feature:read",
        (_, [] | [_]) => "early_access_feature:write",
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

    async fn create(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let input = early_access::parse(body, false, true)?;
        let mut feature = Feature {
            id: uuid::Uuid::now_v7().to_string(),
            project_id: self.project.id,
            feature_flag_id: None,
            name: String::new(),
            description: String::new(),
            stage: String::new(),
            documentation_url: String::new(),
            payload: json!({}),
            created_by: self.caller.user().map(UserSummary::from),
            created_at: self.ctx.now,
            version: 1,
        };
        feature.apply(&input);
        match input.feature_flag_id {
            Some(flag_id) => self.link_existing(feature, flag_id).await,
            None => self.create_with_new_flag(feature).await,
        }
    }

    /// §11.3 with `feature_flag_id`: validate the flag, then add the enrollment gate through
    /// the flag update path when the stage enrols people. Both paths check the flag again on
    /// every write attempt, so parallel links of one flag give one feature and 400s.
    async fn link_existing(&self, mut feature: Feature, flag_id: i64) -> ApiResult<ApiResponse> {
        let flag = self.store().get_flag(self.project.id, flag_id).await?;
        let linked = self
            .store()
            .project_features(self.project.id)
            .await?
            .iter()
            .any(|f| f.feature_flag_id == Some(flag_id));
        early_access::check_linkable(flag.as_ref(), linked)?;
        feature.feature_flag_id = Some(flag_id);
        let alongside = Alongside {
            trigger: Value::Null,
            feature: Some(FeatureWrite::Create(feature.clone())),
        };
        if early_access::enrols(&feature.stage) {
            let cipher = self.ctx.cipher;
            feature_flags::update_flag(
                self.ctx,
                self.caller,
                self.project,
                flag_id,
                |current| Ok(enrollment_body(current, cipher)),
                alongside,
            )
            .await?;
        } else {
            feature_flags::link_unchanged(self.ctx, self.project, feature.clone()).await?;
        }
        Ok(ApiResponse::json(201, self.show_one(&feature).await?))
    }

    /// §11.3 without `feature_flag_id`: a new flag through the flag create rules.
    async fn create_with_new_flag(&self, feature: Feature) -> ApiResult<ApiResponse> {
        let body = early_access::new_flag_body(&feature.name, &feature.stage);
        let alongside = Alongside {
            trigger: Value::Null,
            feature: Some(FeatureWrite::Create(feature.clone())),
        };
        let flag =
            feature_flags::create_flag(self.ctx, self.caller, self.project, &body, alongside)
                .await?;
        let feature = Feature {
            feature_flag_id: Some(flag.id),
            ..feature
        };
        Ok(ApiResponse::json(201, self.show(&feature, Some(&flag))))
    }

    /// §11.4: stage changes add or remove the enrollment gate; other fields never touch the flag.
    async fn update(
        &self,
        id: &str,
        body: &Map<String, Value>,
        partial: bool,
    ) -> ApiResult<ApiResponse> {
        let before = self.find(id).await?;
        let input: FeatureInput = early_access::parse(body, partial, false)?;
        let mut after = before.clone();
        after.apply(&input);
        after.version = before.version + 1;
        let write = FeatureWrite::Update {
            before: Box::new(before.clone()),
            after: Box::new(after.clone()),
        };
        match (before.feature_flag_id, input.stage.as_deref()) {
            (Some(flag_id), Some(stage))
                if !early_access::enrols(&before.stage) && early_access::enrols(stage) =>
            {
                let cipher = self.ctx.cipher;
                let alongside = Alongside {
                    trigger: Value::Null,
                    feature: Some(write),
                };
                feature_flags::update_flag(
                    self.ctx,
                    self.caller,
                    self.project,
                    flag_id,
                    |current| Ok(enrollment_body(current, cipher)),
                    alongside,
                )
                .await?;
            }
            (Some(flag_id), Some(stage)) if !early_access::enrols(stage) => {
                feature_flags::remove_enrollment(
                    self.ctx,
                    self.caller,
                    self.project,
                    flag_id,
                    write,
                )
                .await?;
            }
            _ => self.write_alone(write).await?,
        }
        Ok(ApiResponse::ok(self.show_one(&after).await?))
    }

    /// §11.5: drop the gate from the flag (which is kept) and hard-delete the feature.
    async fn delete(&self, id: &str) -> ApiResult<ApiResponse> {
        let feature = self.find(id).await?;
        let write = FeatureWrite::Delete(feature.clone());
        match feature.feature_flag_id {
            Some(flag_id) => {
                feature_flags::remove_enrollment(
                    self.ctx,
                    self.caller,
                    self.project,
                    flag_id,
                    write,
                )
                .await?
            }
            None => self.write_alone(write).await?,
        }
        Ok(ApiResponse::empty(204))
    }

    /// A change that touches no flag. A concurrent writer got in first: tell the client.
    async fn write_alone(&self, write: FeatureWrite) -> ApiResult<()> {
        match self.store().write_feature(write).await {
            Ok(()) => Ok(()),
            Err(WriteError::Api(e)) => Err(e),
            Err(WriteError::Retry | WriteError::KeyTaken) => Err(ApiError::Conflict(
                "The early access feature was changed by another request at the same time. Please refresh and try again.".into(),
            )),
        }
    }
}

/// The PATCH body that adds the gate to `flag`'s filters. Stored payloads are ciphertext when
/// encrypted; the update path expects what a reader sends, so reveal them first.
fn enrollment_body(flag: &Flag, cipher: &crate::crypto::PayloadCipher) -> Map<String, Value> {
    let mut filters = flag.effective_filters();
    if flag.has_encrypted_payloads == Some(true) {
        filters = cipher.reveal(&filters, true);
    }
    let mut body = Map::new();
    body.insert(
        "filters".into(),
        early_access::with_enrollment(&filters, &flag.key),
    );
    body
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
