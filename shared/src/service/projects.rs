//! Projects of an organization: creating one (id, public token, secret key, a name unique in
//! the organization) and renaming it, for the API and for `flagsctl` alike.

use serde_json::Value;

use crate::auth::{generate_key, hash_key};
use crate::error::{ApiError, ApiResult};
use crate::identity::{Organization, Project};
use crate::python::char_field;
use crate::retry::Backoff;
use crate::store::{IdentityWrites, WriteError};
use crate::time::Timestamp;

use super::MAX_WRITE_ATTEMPTS;

/// PostHog's `ProjectBackwardCompatSerializer.name`: 1 to 200 characters after trimming.
pub const MAX_NAME_CHARS: usize = 200;
/// PostHog's `MAX_ALLOWED_PROJECTS_PER_ORG`.
pub const MAX_PROJECTS_PER_ORGANIZATION: usize = 2000;
/// The name a project gets when created without one (then "Default project 2", …).
const DEFAULT_NAME: &str = "Default project";

pub struct ProjectService<'a, S> {
    store: &'a S,
}

/// A project just created, with the secret key that exists in clear only now.
pub struct CreatedProject {
    pub project: Project,
    pub secret_api_key: String,
}

impl<'a, S: IdentityWrites> ProjectService<'a, S> {
    pub fn new(store: &'a S) -> Self {
        ProjectService { store }
    }

    /// A new project in `organization`, named `name` (validated with [`project_name`]) or a
    /// free default name. The project, its token and secret pointers and its name claim are
    /// one transaction.
    pub async fn create(
        &self,
        organization: &Organization,
        name: Option<String>,
        now: Timestamp,
    ) -> ApiResult<CreatedProject> {
        let existing = self.store.organization_projects(&organization.id).await?;
        if existing.len() >= MAX_PROJECTS_PER_ORGANIZATION {
            return Err(ApiError::object(format!(
                "An organization can have at most {MAX_PROJECTS_PER_ORGANIZATION} projects."
            )));
        }
        let name = match name {
            Some(name) => {
                if name_holder(&existing, &name, None).is_some() {
                    return Err(name_taken(&name));
                }
                name
            }
            None => default_name(&existing),
        };
        let id = self.store.next_id("project").await?;
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let secret_api_key = generate_key("phs_");
            let project = Project {
                id,
                organization_id: organization.id.clone(),
                name: name.clone(),
                api_token: generate_key("phc_"),
                secret_api_key_hash: hash_key(&secret_api_key),
                created_at: now,
            };
            match self.store.create_project(&project).await {
                Ok(()) => {
                    return Ok(CreatedProject {
                        project,
                        secret_api_key,
                    });
                }
                Err(WriteError::KeyTaken) => return Err(name_taken(&name)),
                Err(WriteError::Retry) => Backoff::WRITE_RACE.pause(attempt).await,
                Err(WriteError::Api(e)) => return Err(e),
            }
        }
        Err(busy())
    }

    /// Renames the project (a name already validated with [`project_name`]); the same name is
    /// no change. Returns the project as stored afterwards.
    pub async fn rename(&self, project: Project, name: String) -> ApiResult<Project> {
        let mut current = project;
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            if current.name == name {
                return Ok(current);
            }
            let siblings = self
                .store
                .organization_projects(&current.organization_id)
                .await?;
            if name_holder(&siblings, &name, Some(current.id)).is_some() {
                return Err(name_taken(&name));
            }
            match self.store.rename_project(&current, &name).await {
                Ok(()) => {
                    current.name = name;
                    return Ok(current);
                }
                Err(WriteError::KeyTaken) => return Err(name_taken(&name)),
                Err(WriteError::Retry) => {
                    Backoff::WRITE_RACE.pause(attempt).await;
                    current = self
                        .store
                        .project(current.id)
                        .await?
                        .ok_or_else(ApiError::project_not_found)?;
                }
                Err(WriteError::Api(e)) => return Err(e),
            }
        }
        Err(busy())
    }
}

/// A project name from a request body, as DRF's `CharField(min_length=1, max_length=200)`
/// reads it: strings and numbers, trimmed; not blank, not null, not too long.
pub fn project_name(value: &Value) -> ApiResult<String> {
    char_field("name", value, false, MAX_NAME_CHARS)
}

/// The project other than `except` whose name equals `name` ignoring case and surrounding
/// spaces (older projects hold no name claim, so the list is checked too).
fn name_holder<'p>(
    projects: &'p [Project],
    name: &str,
    except: Option<i64>,
) -> Option<&'p Project> {
    let wanted = name.trim().to_lowercase();
    projects
        .iter()
        .find(|p| Some(p.id) != except && p.name.trim().to_lowercase() == wanted)
}

fn default_name(existing: &[Project]) -> String {
    (1..)
        .map(|n| match n {
            1 => DEFAULT_NAME.to_string(),
            n => format!("{DEFAULT_NAME} {n}"),
        })
        .find(|candidate| name_holder(existing, candidate, None).is_none())
        .unwrap_or_else(|| DEFAULT_NAME.to_string())
}

/// PostHog answers a duplicate name with 409 Conflict.
fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "There is already a project called \"{}\" in this organization. Choose a different name.",
        name.trim()
    ))
}

fn busy() -> ApiError {
    ApiError::Conflict(
        "The project is being changed by many requests at once. Please retry.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(id: i64, name: &str) -> Project {
        Project {
            id,
            organization_id: "o".into(),
            name: name.into(),
            api_token: String::new(),
            secret_api_key_hash: String::new(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(project_name(&json!("  Web  ")).unwrap(), "Web");
        assert_eq!(project_name(&json!(42)).unwrap(), "42");
        let code = |v: Value| match project_name(&v) {
            Err(ApiError::Validation { code, attr, .. }) => {
                assert_eq!(attr.as_deref(), Some("name"));
                code
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(code(json!("   ")), "blank");
        assert_eq!(code(json!(null)), "null");
        assert_eq!(code(json!(["a"])), "invalid_input");
        assert_eq!(code(json!("x".repeat(201))), "max_length");
        assert_eq!(
            project_name(&json!("é".repeat(200)))
                .unwrap()
                .chars()
                .count(),
            200
        );
    }

    #[test]
    fn duplicate_names_ignore_case_and_spaces() {
        let projects = [project(1, "Web "), project(2, "App")];
        assert_eq!(name_holder(&projects, " web", None).map(|p| p.id), Some(1));
        assert!(name_holder(&projects, "web", Some(1)).is_none());
        assert!(name_holder(&projects, "Webs", None).is_none());
    }

    #[test]
    fn default_names_skip_taken_ones() {
        assert_eq!(default_name(&[]), "Default project");
        let taken = [
            project(1, "default PROJECT"),
            project(2, "Default project 2"),
        ];
        assert_eq!(default_name(&taken), "Default project 3");
    }
}
