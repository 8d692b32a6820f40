//! Organizations, projects, users and the caller's personal API key: `/api/organizations/…`,
//! `/api/projects/`, `/api/projects/{id}/`, `/api/users/…`, `/api/user_home_settings/…`,
//! `/api/personal_api_keys/…`. Shapes are PostHog's serializers (`OrganizationSerializer`,
//! `ProjectBackwardCompatSerializer`, `UserSerializer`, `PersonalAPIKeySerializer`); fields
//! this service has no data for carry PostHog's defaults (docs/differences-from-posthog.md).
//! Project rules are [`ProjectService`]'s, user rules [`crate::service::users`]'.

use serde_json::{Map, Value, json};

use super::Context;
use crate::auth::{self, Accepts, Caller};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, paginate};
use crate::identity::{Organization, PersonalApiKey, Project, User, UserSummary};
use crate::service::ProjectService;
use crate::service::projects::{CreatedProject, project_name};
use crate::service::users::{self, UserUpdate};
use crate::store::IdentityWrites;
use crate::time::format;

/// PostHog's `OrganizationMembership.Level.ADMIN`: every member may manage projects here, as
/// PostHog's admins may (there are no roles).
const MEMBERSHIP_LEVEL: i64 = 8;

pub async fn handle<S: IdentityWrites>(ctx: &Context<'_, S>, req: &ApiRequest) -> ApiResponse {
    route(ctx, req).await.unwrap_or_else(ApiResponse::from)
}

/// The scope each route needs, by method; `None` is a path this function does not serve.
fn scope(method: &str, rest: &[&str]) -> Option<Result<&'static str, ApiError>> {
    let read_write = |read: &'static str, write: &'static str, writes: &[&str]| {
        if method == "GET" {
            Ok(read)
        } else if writes.contains(&method) {
            Ok(write)
        } else {
            Err(ApiError::MethodNotAllowed(method.to_string()))
        }
    };
    Some(match rest {
        // PostHog's key endpoint takes no scope: a key may always read itself.
        ["personal_api_keys", _] => Ok(""),
        ["users", _] | ["user_home_settings", _] => {
            read_write("user:read", "user:write", &["PATCH"])
        }
        ["organizations"] | ["organizations", _] => {
            read_write("organization:read", "organization:write", &[])
        }
        ["organizations", _, "members"] => {
            read_write("organization_member:read", "organization_member:write", &[])
        }
        ["organizations", _, "projects"] => read_write("project:read", "project:write", &["POST"]),
        ["organizations", _, "projects", _] | ["projects", _] => {
            read_write("project:read", "project:write", &["PATCH"])
        }
        ["projects"] => read_write("project:read", "project:write", &[]),
        _ => return None,
    })
}

async fn route<S: IdentityWrites>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
) -> ApiResult<ApiResponse> {
    let segments = req.segments();
    let start = segments
        .iter()
        .position(|s| *s == "api")
        .ok_or_else(ApiError::not_found)?;
    let rest = &segments[start + 1..];
    let scope = scope(&req.method, rest).ok_or_else(ApiError::not_found)?;
    let body = req.body_object();
    let caller =
        auth::authenticate(req, body.as_ref().ok(), ctx.store, Accepts::PersonalKeys).await?;
    let scope = scope?;
    if !scope.is_empty() {
        caller.require_scope(scope)?;
    }
    let endpoint = Identity {
        ctx,
        req,
        caller: &caller,
    };
    match (req.method.as_str(), rest) {
        ("GET", ["personal_api_keys", id]) => endpoint.api_key(id).await,
        (_, ["personal_api_keys", _]) => Err(ApiError::PermissionDenied(
            "This action does not support Personal API Key access".into(),
        )),
        ("GET", ["users", uuid]) => {
            endpoint.own_user(uuid)?;
            endpoint.user_response().await
        }
        ("PATCH", ["users", uuid]) => {
            endpoint.own_user(uuid)?;
            endpoint.update_user(&body?).await
        }
        ("GET", ["user_home_settings", uuid]) => {
            endpoint.own_user(uuid)?;
            endpoint.home_settings(None).await
        }
        ("PATCH", ["user_home_settings", uuid]) => {
            endpoint.own_user(uuid)?;
            endpoint.home_settings(Some(&body?)).await
        }
        ("GET", ["organizations"]) => endpoint.organizations().await,
        ("GET", ["organizations", org]) => endpoint.organization(org).await,
        ("GET", ["organizations", org, "members"]) => endpoint.members(org).await,
        ("GET", ["organizations", org, "projects"]) => endpoint.organization_projects(org).await,
        ("POST", ["organizations", org, "projects"]) => endpoint.create_project(org, &body?).await,
        ("GET", ["organizations", org, "projects", id]) => {
            let project = endpoint.organization_project(org, id).await?;
            Ok(ApiResponse::ok(endpoint.project_json(&project, None)))
        }
        ("PATCH", ["organizations", org, "projects", id]) => {
            let project = endpoint.organization_project(org, id).await?;
            endpoint.update_project(project, &body?).await
        }
        ("GET", ["projects"]) => endpoint.projects().await,
        ("GET", ["projects", id]) => {
            let project = caller.project(id, ctx.store).await?;
            Ok(ApiResponse::ok(endpoint.project_json(&project, None)))
        }
        ("PATCH", ["projects", id]) => {
            let project = caller.project(id, ctx.store).await?;
            endpoint.update_project(project, &body?).await
        }
        (method, _) => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

struct Identity<'a, S> {
    ctx: &'a Context<'a, S>,
    req: &'a ApiRequest,
    caller: &'a Caller,
}

impl<S: IdentityWrites> Identity<'_, S> {
    fn store(&self) -> &S {
        self.ctx.store
    }

    /// Only personal keys get past authentication here.
    fn key_and_user(&self) -> (&PersonalApiKey, &User) {
        match self.caller {
            Caller::Personal { key, user } => (key, user),
            Caller::ProjectSecret { .. } => {
                unreachable!("identity routes accept personal keys only")
            }
        }
    }

    fn user(&self) -> &User {
        self.key_and_user().1
    }

    // ---- personal API keys -------------------------------------------------------------

    /// `@current` or the key's own id: the key itself. Another key of the same user is PostHog's
    /// 403 (a key may only read itself); anything else is 404.
    async fn api_key(&self, id: &str) -> ApiResult<ApiResponse> {
        let (key, user) = self.key_and_user();
        if id == "@current" || id == key.id {
            return Ok(ApiResponse::ok(api_key_json(key)));
        }
        let owned = self.store().user_api_keys(user.id).await?;
        if owned.iter().any(|k| k.id == id) {
            return Err(ApiError::PermissionDenied(
                "You do not have permission to perform this action.".into(),
            ));
        }
        Err(ApiError::not_found())
    }

    // ---- users -------------------------------------------------------------------------

    /// `@me` or the caller's own uuid; PostHog lets only staff read other users.
    fn own_user(&self, uuid: &str) -> ApiResult<()> {
        if uuid == "@me" || uuid == self.user().uuid {
            return Ok(());
        }
        Err(ApiError::PermissionDenied(
            "As a non-staff user you're only allowed to access the `@me` user instance.".into(),
        ))
    }

    /// The caller's user as stored now (after a PATCH, with its changes).
    async fn fresh_user(&self) -> ApiResult<User> {
        self.store()
            .user(self.user().id)
            .await?
            .ok_or_else(|| ApiError::internal("authenticated user vanished"))
    }

    async fn user_response(&self) -> ApiResult<ApiResponse> {
        let user = self.fresh_user().await?;
        Ok(ApiResponse::ok(self.user_json(&user).await?))
    }

    async fn update_user(&self, body: &Map<String, Value>) -> ApiResult<ApiResponse> {
        let update = UserUpdate::from_body(body, self.user())?;
        users::apply(self.store(), self.user(), update).await?;
        self.user_response().await
    }

    /// `PATCH` with `Some(body)`, `GET` with `None`: the settings of the user's current project.
    async fn home_settings(&self, body: Option<&Map<String, Value>>) -> ApiResult<ApiResponse> {
        let user = self.user();
        let project_id = users::current_project(self.store(), user).await?;
        let settings = match body {
            Some(body) => users::update_home_settings(self.store(), user, project_id, body).await?,
            None => users::home_settings(self.store(), user, project_id).await?,
        };
        Ok(ApiResponse::ok(settings))
    }

    /// PostHog's `UserSerializer`: the current organization in full, the current project
    /// (`team`) in its basic shape, every organization in the basic shape.
    async fn user_json(&self, user: &User) -> ApiResult<Value> {
        let store = self.store();
        let organization = match auth::current_organization_id(user, store).await? {
            Some(id) => match store.organization(&id).await? {
                Some(org) => Some(self.organization_json(&org).await?),
                None => None,
            },
            None => None,
        };
        let team = match users::current_project(store, user).await? {
            Some(id) => store.project(id).await?.map(|p| team_basic_json(&p)),
            None => None,
        };
        let mut organizations = Vec::new();
        for id in &user.organization_ids {
            if let Some(org) = store.organization(id).await? {
                organizations.push(organization_basic_json(&org));
            }
        }
        let mut shown = json!({
            "date_joined": format(&user.created_at),
            "uuid": user.uuid,
            "distinct_id": user.distinct_id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
            "pending_email": null,
            "is_email_verified": null,
            "notification_settings": {},
            "notification_locks": [],
            "anonymize_data": false,
            "allow_impersonation": null,
            "toolbar_mode": null,
            "has_password": false,
            "id": user.id,
            "is_staff": false,
            "is_impersonated": false,
            "is_impersonated_until": null,
            "is_impersonated_read_only": null,
            "is_impersonated_reason": null,
            "sensitive_session_expires_at": null,
            "fresh_reauth_expires_at": null,
            "team": team,
            "organization": organization,
            "organizations": organizations,
        });
        let settings = json!({
            "events_column_config": {"active": "DEFAULT"},
            "is_2fa_enabled": false,
            "has_social_auth": false,
            "has_sso_enforcement": false,
            "has_seen_product_intro_for": null,
            "scene_personalisation": [],
            "theme_mode": null,
            "hedgehog_config": null,
            "allow_sidebar_suggestions": null,
            "shortcut_position": "above",
            "role_at_organization": null,
            "passkeys_enabled_for_2fa": false,
            "hide_mcp_hints": false,
            "ui_configuration": null,
            "onboarding_skipped_at": null,
            "onboarding_skipped_reason": null,
            "onboarding_skipped_organization_id": null,
            "onboarding_delegated_to_invite": null,
            "onboarding_delegated_to_organization_id": null,
            "onboarding_delegation_accepted_at": null,
            "is_organization_first_user": null,
            "active_realtime_notification_types": [],
            "pending_invites": [],
            "requires_credential_review": false,
        });
        if let (Value::Object(base), Value::Object(settings)) = (&mut shown, settings) {
            base.extend(settings);
        }
        Ok(shown)
    }

    // ---- organizations -----------------------------------------------------------------

    /// Whether a list shows this organization: one of the user's, within the key's
    /// `scoped_organizations`; a key restricted to projects sees the organizations holding
    /// them (as [`Caller::organization`] lets it reach them).
    async fn sees_organization(&self, org: &Organization) -> ApiResult<bool> {
        let (key, user) = self.key_and_user();
        if !user.organization_ids.contains(&org.id) {
            return Ok(false);
        }
        if let Some(orgs) = key.scoped_organizations.as_ref().filter(|o| !o.is_empty())
            && !orgs.contains(&org.id)
        {
            return Ok(false);
        }
        if let Some(teams) = key.scoped_teams.as_ref().filter(|t| !t.is_empty()) {
            let projects = self.store().organization_projects(&org.id).await?;
            return Ok(projects.iter().any(|p| teams.contains(&p.id)));
        }
        Ok(true)
    }

    async fn organizations(&self) -> ApiResult<ApiResponse> {
        let mut shown = Vec::new();
        for id in &self.user().organization_ids {
            if let Some(org) = self.store().organization(id).await?
                && self.sees_organization(&org).await?
            {
                shown.push(self.organization_json(&org).await?);
            }
        }
        Ok(ApiResponse::ok(paginate(self.req, shown)))
    }

    async fn organization(&self, segment: &str) -> ApiResult<ApiResponse> {
        let org = self.caller.organization(segment, self.store()).await?;
        Ok(ApiResponse::ok(self.organization_json(&org).await?))
    }

    /// The projects of the organization this caller sees.
    async fn visible_projects(&self, organization_id: &str) -> ApiResult<Vec<Project>> {
        let projects = self.store().organization_projects(organization_id).await?;
        Ok(projects
            .into_iter()
            .filter(|p| self.caller.sees_project(p))
            .collect())
    }

    /// PostHog's `OrganizationSerializer`.
    async fn organization_json(&self, org: &Organization) -> ApiResult<Value> {
        let projects = self.visible_projects(&org.id).await?;
        let member_count = self.store().organization_members(&org.id).await?.len();
        Ok(json!({
            "id": org.id,
            "name": org.name,
            "slug": slug(&org.name),
            "logo_media_id": null,
            "created_at": format(&org.created_at),
            "updated_at": format(&org.created_at),
            "membership_level": MEMBERSHIP_LEVEL,
            "plugins_access_level": 0,
            "teams": projects.iter().map(team_basic_json).collect::<Vec<_>>(),
            "projects": projects
                .iter()
                .map(|p| json!({"id": p.id, "organization_id": p.organization_id, "name": p.name}))
                .collect::<Vec<_>>(),
            "available_product_features": [],
            "is_member_join_email_enabled": false,
            "metadata": {"instance_tag": "none"},
            "customer_id": null,
            "enforce_2fa": null,
            "members_can_invite": false,
            "members_can_use_personal_api_keys": true,
            "allow_publicly_shared_resources": true,
            "member_count": member_count,
            "is_ai_data_processing_approved": null,
            "default_experiment_stats_method": "bayesian",
            "default_role_id": null,
        }))
    }

    /// PostHog's `OrganizationMemberSerializer`, active members only, paginated.
    async fn members(&self, segment: &str) -> ApiResult<ApiResponse> {
        let org = self.caller.organization(segment, self.store()).await?;
        let members = self
            .store()
            .organization_members(&org.id)
            .await?
            .into_iter()
            .filter(|u| u.is_active)
            .map(|u| {
                json!({
                    "id": u.uuid,
                    "user": UserSummary::from(&u).to_json(),
                    "level": MEMBERSHIP_LEVEL,
                    "joined_at": format(&u.created_at),
                    "updated_at": format(&u.created_at),
                    "is_2fa_enabled": false,
                    "has_social_auth": false,
                    "last_login": null,
                })
            })
            .collect();
        Ok(ApiResponse::ok(paginate(self.req, members)))
    }

    // ---- projects ----------------------------------------------------------------------

    /// `/api/projects/`: the projects of the user's current organization the caller sees.
    async fn projects(&self) -> ApiResult<ApiResponse> {
        let projects = match auth::current_organization_id(self.user(), self.store()).await? {
            Some(org) => self.visible_projects(&org).await?,
            None => Vec::new(),
        };
        let shown = projects.iter().map(team_basic_json).collect();
        Ok(ApiResponse::ok(paginate(self.req, shown)))
    }

    async fn organization_projects(&self, segment: &str) -> ApiResult<ApiResponse> {
        let org = self.caller.organization(segment, self.store()).await?;
        let projects = self.visible_projects(&org.id).await?;
        let shown = projects.iter().map(team_basic_json).collect();
        Ok(ApiResponse::ok(paginate(self.req, shown)))
    }

    /// A project of the organization by id (`@current`: the user's current project); one in
    /// another organization is not found here.
    async fn organization_project(&self, org_segment: &str, id: &str) -> ApiResult<Project> {
        let org = self.caller.organization(org_segment, self.store()).await?;
        if id != "@current" && id.parse::<i64>().is_err() {
            return Err(ApiError::not_found());
        }
        let project = self.caller.project(id, self.store()).await?;
        if project.organization_id != org.id {
            return Err(ApiError::not_found());
        }
        Ok(project)
    }

    /// PostHog answers a create in the organization (members may create projects here).
    async fn create_project(
        &self,
        org_segment: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<ApiResponse> {
        let org = self.caller.organization(org_segment, self.store()).await?;
        let (key, _) = self.key_and_user();
        if key.scoped_teams.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::PermissionDenied(
                "API keys with scoped projects are only supported on project-based endpoints."
                    .into(),
            ));
        }
        let name = body.get("name").map(project_name).transpose()?;
        let CreatedProject {
            project,
            secret_api_key,
        } = ProjectService::new(self.store())
            .create(&org, name, self.ctx.now)
            .await?;
        // PostHog makes the new project the creator's current one.
        users::switch_to_created(self.store(), self.user(), &project).await?;
        Ok(ApiResponse::json(
            201,
            self.project_json(&project, Some(&secret_api_key)),
        ))
    }

    /// `name` is the setting this service keeps; other settings are accepted and ignored (as
    /// DRF ignores fields a serializer does not know).
    async fn update_project(
        &self,
        project: Project,
        body: &Map<String, Value>,
    ) -> ApiResult<ApiResponse> {
        let project = match body.get("name") {
            Some(value) => {
                let name = project_name(value)?;
                ProjectService::new(self.store())
                    .rename(project, name)
                    .await?
            }
            None => project,
        };
        Ok(ApiResponse::ok(self.project_json(&project, None)))
    }

    /// PostHog's `ProjectBackwardCompatSerializer`. The secret key exists in clear only in
    /// the create response; afterwards `secret_api_token` is null.
    fn project_json(&self, project: &Project, secret: Option<&str>) -> Value {
        let mut value = team_basic_json(project);
        let extra = json!({
            "product_description": null,
            "created_at": format(&project.created_at),
            "updated_at": format(&project.created_at),
            "effective_membership_level": MEMBERSHIP_LEVEL,
            "has_group_types": false,
            "group_types": [],
            "live_events_token": null,
            "app_urls": [],
            "anonymize_ips": false,
            "test_account_filters": [],
            "test_account_filters_default_checked": false,
            "path_cleaning_filters": [],
            "data_attributes": ["data-attr"],
            "person_display_name_properties": null,
            "correlation_config": {},
            "autocapture_opt_out": null,
            "autocapture_exceptions_opt_in": null,
            "autocapture_web_vitals_opt_in": null,
            "autocapture_web_vitals_allowed_metrics": null,
            "autocapture_exceptions_errors_to_ignore": null,
            "capture_console_log_opt_in": null,
            "capture_performance_opt_in": null,
        });
        let recording = json!({
            "session_recording_opt_in": false,
            "session_recording_sample_rate": null,
            "session_recording_minimum_duration_milliseconds": null,
            "session_recording_linked_flag": null,
            "session_recording_network_payload_capture_config": null,
            "session_recording_masking_config": null,
            "session_recording_url_trigger_config": [],
            "session_recording_url_blocklist_config": [],
            "session_recording_event_trigger_config": [],
            "session_recording_trigger_match_type_config": null,
            "session_recording_trigger_groups": null,
            "session_recording_retention_period": "30d",
            "session_replay_config": null,
            "survey_config": null,
        });
        let rest = json!({
            "week_start_day": null,
            "primary_dashboard": null,
            "live_events_columns": null,
            "recording_domains": [],
            "person_on_events_querying_enabled": false,
            "inject_web_apps": false,
            "extra_settings": null,
            "modifiers": null,
            "default_modifiers": {},
            "surveys_opt_in": null,
            "heatmaps_opt_in": null,
            "product_intents": [],
            "flags_persistence_default": false,
            "secret_api_token": secret,
            "secret_api_token_backup": null,
            "receive_org_level_activity_logs": false,
            "business_model": null,
            "conversations_enabled": null,
            "conversations_settings": null,
            "logs_settings": null,
            "proactive_tasks_enabled": null,
            "available_setup_task_ids": [],
            "is_pending_deletion": false,
            "user_access_level": "admin",
            "managed_viewsets": {},
            "base_currency": "USD",
            "capture_dead_clicks": false,
            "cookieless_server_hash_mode": null,
            "human_friendly_comparison_periods": false,
            "feature_flag_confirmation_enabled": false,
            "feature_flag_confirmation_message": null,
            "default_evaluation_contexts_enabled": false,
            "require_evaluation_contexts": false,
            "default_data_theme": null,
            "onboarding_tasks": null,
            "web_analytics_pre_aggregated_tables_enabled": false,
            "event_retention_months": null,
            "events_retention_enforced": false,
        });
        for part in [extra, recording, rest] {
            if let (Value::Object(base), Value::Object(part)) = (&mut value, part) {
                base.extend(part);
            }
        }
        value
    }
}

/// PostHog's `PersonalAPIKeySerializer`: never the key's value or hash, only its mask.
fn api_key_json(key: &PersonalApiKey) -> Value {
    json!({
        "id": key.id,
        "label": key.label,
        "value": null,
        "mask_value": key.mask_value,
        "created_at": format(&key.created_at),
        "last_used_at": null,
        "user_id": key.user_id,
        "scopes": key.scopes.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| vec!["*".into()]),
        // `[]` when unrestricted: @posthog/agent-toolkit's schema requires arrays.
        "scoped_teams": key.scoped_teams.clone().unwrap_or_default(),
        "scoped_organizations": key.scoped_organizations.clone().unwrap_or_default(),
        "last_rolled_at": null,
    })
}

/// PostHog's `TeamBasicSerializer` (also what project lists show).
fn team_basic_json(project: &Project) -> Value {
    json!({
        "id": project.id,
        "uuid": project_uuid(project.id),
        "organization": project.organization_id,
        "project_id": project.id,
        "api_token": project.api_token,
        "name": project.name,
        "completed_snippet_onboarding": false,
        "has_completed_onboarding_for": null,
        "ingested_event": false,
        "is_demo": false,
        "timezone": "UTC",
        "access_control": false,
    })
}

/// PostHog's `OrganizationBasicSerializer`.
fn organization_basic_json(org: &Organization) -> Value {
    json!({
        "id": org.id,
        "name": org.name,
        "slug": slug(&org.name),
        "logo_media_id": null,
        "membership_level": MEMBERSHIP_LEVEL,
        "members_can_use_personal_api_keys": true,
        "is_active": true,
        "is_not_active_reason": null,
        "is_pending_deletion": false,
    })
}

/// Projects store no uuid; this one is derived from the id, so it is stable.
fn project_uuid(id: i64) -> String {
    let hash = auth::hash_key(&format!("project:{id}"));
    let bytes: [u8; 16] = hex::decode(&hash[..32])
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The organization name as a URL slug (lowercase letters, digits and single dashes), as
/// PostHog derives one; not stored, so not guaranteed unique.
fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_project_uuids_are_stable() {
        assert_eq!(slug("  Acme, Inc. "), "acme-inc");
        assert_eq!(project_uuid(7), project_uuid(7));
        assert_ne!(project_uuid(7), project_uuid(8));
        assert!(uuid::Uuid::parse_str(&project_uuid(7)).is_ok());
    }

    #[test]
    fn every_served_path_has_a_scope() {
        assert_eq!(
            scope("GET", &["organizations", "x", "members"])
                .unwrap()
                .unwrap(),
            "organization_member:read"
        );
        assert_eq!(
            scope("POST", &["organizations", "x", "projects"])
                .unwrap()
                .unwrap(),
            "project:write"
        );
        assert!(matches!(
            scope("DELETE", &["projects", "1"]),
            Some(Err(ApiError::MethodNotAllowed(_)))
        ));
        assert!(scope("GET", &["projects", "1", "feature_flags"]).is_none());
    }
}
