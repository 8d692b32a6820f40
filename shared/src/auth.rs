//! Credentials, scopes and project access (flag-management-rules.md §2).

use rand::Rng;
use sha2::{Digest, Sha256};

/// A new random secret with PostHog's prefix (`phx_`, `phc_`, `phs_`): 43 alphanumerics
/// (~256 bits).
pub fn generate_key(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..43)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{body}")
}

/// SHA-256 hex: how personal API keys and project secret keys are stored and looked up.
pub fn hash_key(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::http::ApiRequest;
use crate::identity::{Organization, PersonalApiKey, Project, User};
use crate::store::IdentityStore;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A personal API key and its user.
    Personal {
        key: Box<PersonalApiKey>,
        user: Box<User>,
    },
    /// A project secret key (`phs_…`): only local evaluation and remote config accept it.
    ProjectSecret { project: Project },
}

/// What an endpoint accepts besides personal API keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Accepts {
    PersonalKeys,
    PersonalKeysOrProjectSecret,
}

/// Finds the credential the way PostHog does: Bearer header, then `personal_api_key` in the
/// body, then in the query string; the first one present decides.
pub async fn authenticate(
    req: &ApiRequest,
    body: Option<&Map<String, Value>>,
    store: &impl IdentityStore,
    accepts: Accepts,
) -> ApiResult<Caller> {
    let (value, source) = find_credential(req, body).ok_or(ApiError::NotAuthenticated)?;
    if value.starts_with("phs_") {
        if accepts == Accepts::PersonalKeys {
            return Err(ApiError::PermissionDenied(
                "This action does not support project secret API key access".into(),
            ));
        }
        return match store.project_by_secret_hash(&hash_key(&value)).await? {
            Some(project) => Ok(Caller::ProjectSecret { project }),
            None => Err(ApiError::AuthenticationFailed(
                "Project secret API key is invalid.".into(),
            )),
        };
    }
    let invalid = || {
        ApiError::AuthenticationFailed(format!(
            "Personal API key found in request {source} is invalid."
        ))
    };
    let key = store
        .api_key_by_hash(&hash_key(&value))
        .await?
        .ok_or_else(invalid)?;
    let user = store.user(key.user_id).await?.ok_or_else(invalid)?;
    if !user.is_active {
        return Err(invalid());
    }
    Ok(Caller::Personal {
        key: Box::new(key),
        user: Box::new(user),
    })
}

fn find_credential(
    req: &ApiRequest,
    body: Option<&Map<String, Value>>,
) -> Option<(String, &'static str)> {
    if let Some(header) = req.header("authorization") {
        let header = header.trim();
        let token = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .map(|_| header[7..].trim());
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            return Some((token.to_string(), "Authorization header"));
        }
    }
    if let Some(Value::String(key)) = body.and_then(|b| b.get("personal_api_key"))
        && !key.trim().is_empty()
    {
        return Some((key.trim().to_string(), "body"));
    }
    req.query_value("personal_api_key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| (k.to_string(), "query string"))
}

/// `:write` implies `:read` on the same object; `*` and legacy keys without scopes allow all.
pub fn has_scope(key: &PersonalApiKey, required: &str) -> bool {
    let Some(scopes) = &key.scopes else {
        return true;
    };
    let write = required
        .strip_suffix(":read")
        .map(|object| format!("{object}:write"));
    scopes
        .iter()
        .any(|s| s == "*" || s == required || Some(s) == write.as_ref())
}

impl Caller {
    /// Checks a scope; project secret keys carry no scopes and pass only where accepted.
    pub fn require_scope(&self, scope: &str) -> ApiResult<()> {
        match self {
            Caller::Personal { key, .. } if !has_scope(key, scope) => {
                Err(ApiError::missing_scope(scope))
            }
            _ => Ok(()),
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::Personal { user, .. } => Some(user),
            Caller::ProjectSecret { .. } => None,
        }
    }

    /// Personal API key callers see decrypted payloads; everyone else sees the sentinel.
    pub fn sees_decrypted_payloads(&self) -> bool {
        matches!(self, Caller::Personal { .. })
    }

    /// Resolves `{project_id}` of the path (an integer or `@current`) to a project this caller
    /// may use: unknown → 404, not a member or outside the key's projects → 403.
    pub async fn project(&self, segment: &str, store: &impl IdentityStore) -> ApiResult<Project> {
        let id = match (segment, self) {
            ("@current", Caller::Personal { user, .. }) => current_project_id(user, store).await?,
            ("@current", Caller::ProjectSecret { project }) => project.id,
            (digits, _) => digits
                .parse::<i64>()
                .map_err(|_| ApiError::project_not_found())?,
        };
        let project = store
            .project(id)
            .await?
            .ok_or_else(ApiError::project_not_found)?;
        crate::request_log::note_project(project.id);
        match self {
            Caller::Personal { key, user } => {
                if let Some(teams) = &key.scoped_teams
                    && !teams.contains(&project.id)
                {
                    return Err(ApiError::PermissionDenied(format!(
                        "API key does not have access to the requested project: ID {}.",
                        project.id
                    )));
                }
                if !user.organization_ids.contains(&project.organization_id) {
                    return Err(ApiError::PermissionDenied(
                        "You don't have access to the project.".into(),
                    ));
                }
            }
            Caller::ProjectSecret { project: own } if own.id != project.id => {
                return Err(ApiError::PermissionDenied(
                    "You don't have access to the project.".into(),
                ));
            }
            Caller::ProjectSecret { .. } => {}
        }
        Ok(project)
    }

    /// Resolves `{organization_id}` of the path (a UUID or `@current`, the user's current
    /// organization) to an organization this caller may use, with PostHog's answers: not a
    /// UUID, unknown, or no current organization → 404 "Organization not found."; outside
    /// the key's `scoped_organizations` → 403; the user not a member → 403. A key restricted
    /// to projects (`scoped_teams`) reaches only organizations holding one of its projects
    /// (PostHog refuses such keys on every organization endpoint; see
    /// docs/differences-from-posthog.md). Scopes are the handler's to check first.
    pub async fn organization(
        &self,
        segment: &str,
        store: &impl IdentityStore,
    ) -> ApiResult<Organization> {
        let Caller::Personal { key, user } = self else {
            return Err(ApiError::PermissionDenied(
                "Project secret API keys are only supported on project-based endpoints.".into(),
            ));
        };
        let id = if segment == "@current" {
            current_organization_id(user, store)
                .await?
                .ok_or_else(ApiError::organization_not_found)?
        } else {
            uuid::Uuid::parse_str(segment)
                .map_err(|_| ApiError::organization_not_found())?
                .to_string()
        };
        let organization = store
            .organization(&id)
            .await?
            .ok_or_else(ApiError::organization_not_found)?;
        if let Some(orgs) = key.scoped_organizations.as_ref().filter(|o| !o.is_empty())
            && !orgs.contains(&organization.id)
        {
            return Err(ApiError::PermissionDenied(format!(
                "API key does not have access to the requested organization: ID {}.",
                organization.id
            )));
        }
        if !user.organization_ids.contains(&organization.id) {
            return Err(ApiError::PermissionDenied(
                "You do not have permission to perform this action.".into(),
            ));
        }
        if let Some(teams) = key.scoped_teams.as_ref().filter(|t| !t.is_empty()) {
            let projects = store.organization_projects(&organization.id).await?;
            if !projects.iter().any(|p| teams.contains(&p.id)) {
                return Err(ApiError::PermissionDenied(
                    "API keys with scoped projects are only supported on project-based endpoints."
                        .into(),
                ));
            }
        }
        Ok(organization)
    }

    /// Whether a list may show this project to the caller: its own project for a project
    /// secret key; else a project of one of the user's organizations, within the key's
    /// `scoped_teams` and `scoped_organizations` when it has them.
    pub fn sees_project(&self, project: &Project) -> bool {
        match self {
            Caller::ProjectSecret { project: own } => own.id == project.id,
            Caller::Personal { key, user } => {
                user.organization_ids.contains(&project.organization_id)
                    && key
                        .scoped_teams
                        .as_ref()
                        .filter(|t| !t.is_empty())
                        .is_none_or(|t| t.contains(&project.id))
                    && key
                        .scoped_organizations
                        .as_ref()
                        .filter(|o| !o.is_empty())
                        .is_none_or(|o| o.contains(&project.organization_id))
            }
        }
    }
}

/// The user's current organization: the one they chose (`set_current_organization`) while
/// still a member, else the current project's, else their first.
pub async fn current_organization_id(
    user: &User,
    store: &impl IdentityStore,
) -> ApiResult<Option<String>> {
    if let Some(id) = &user.current_organization_id
        && user.organization_ids.contains(id)
    {
        return Ok(Some(id.clone()));
    }
    if let Some(project_id) = user.current_project_id
        && let Some(project) = store.project(project_id).await?
        && user.organization_ids.contains(&project.organization_id)
    {
        return Ok(Some(project.organization_id));
    }
    Ok(user.organization_ids.first().cloned())
}

/// The project `@current` names: the user's chosen one, else the first project of their first
/// organization that has one; 404 when they have none.
pub async fn current_project_id(user: &User, store: &impl IdentityStore) -> ApiResult<i64> {
    if let Some(id) = user.current_project_id {
        return Ok(id);
    }
    for org in &user.organization_ids {
        if let Some(project) = store.organization_projects(org).await?.first() {
            return Ok(project.id);
        }
    }
    Err(ApiError::project_not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: Option<&[&str]>) -> PersonalApiKey {
        PersonalApiKey {
            id: "k".into(),
            user_id: 1,
            label: String::new(),
            secure_value: String::new(),
            mask_value: String::new(),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            scoped_teams: None,
            scoped_organizations: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn write_implies_read_but_not_the_reverse() {
        let k = key(Some(&["feature_flag:write"]));
        assert!(has_scope(&k, "feature_flag:read"));
        assert!(has_scope(&k, "feature_flag:write"));
        assert!(!has_scope(&k, "activity_log:read"));
        let r = key(Some(&["feature_flag:read"]));
        assert!(!has_scope(&r, "feature_flag:write"));
    }

    #[test]
    fn star_and_legacy_keys_allow_everything() {
        assert!(has_scope(&key(Some(&["*"])), "early_access_feature:write"));
        assert!(has_scope(&key(None), "feature_flag:write"));
    }

    #[test]
    fn credential_order_is_header_then_body_then_query() {
        let mut body = Map::new();
        body.insert("personal_api_key".into(), Value::String("phx_body".into()));
        let req = ApiRequest::new("GET", "/")
            .with_header("authorization", "  Bearer   phx_header ")
            .with_query("personal_api_key", "phx_query");
        assert_eq!(
            find_credential(&req, Some(&body)).unwrap(),
            ("phx_header".into(), "Authorization header")
        );
        let req = ApiRequest::new("GET", "/").with_query("personal_api_key", "phx_query");
        assert_eq!(find_credential(&req, Some(&body)).unwrap().1, "body");
        assert_eq!(find_credential(&req, None).unwrap().1, "query string");
        let basic = ApiRequest::new("GET", "/").with_header("authorization", "Basic abc");
        assert!(find_credential(&basic, None).is_none());
    }

    #[test]
    fn generated_keys_have_prefix_and_hash_is_sha256_hex() {
        let k = generate_key("phx_");
        assert!(k.starts_with("phx_") && k.len() == 47);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
