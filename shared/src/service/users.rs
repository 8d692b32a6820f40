//! What a user may change of their own record through the API (PostHog's `UserSerializer` and
//! `UserHomeSettingsViewSet` rules): names, the current organization and project, and the
//! pinned tabs and homepage of each project.

use serde_json::{Map, Value, json};

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Project, User};
use crate::python::{char_field, type_name};
use crate::store::{IdentityStore, IdentityWrites, UserChanges};

/// Django's `first_name` / `last_name` columns hold 150 characters.
pub const MAX_NAME_CHARS: usize = 150;
/// Pinned tabs kept per user and project (PostHog sets no bound; an item must fit DynamoDB).
pub const MAX_PINNED_TABS: usize = 100;
/// The stored home settings of one project, as JSON text.
pub const MAX_HOME_SETTINGS_BYTES: usize = 64 * 1024;

/// A validated `PATCH /api/users/@me/`.
#[derive(Debug, Default)]
pub struct UserUpdate {
    first_name: Option<String>,
    last_name: Option<String>,
    organization: Option<String>,
    project: Option<String>,
}

impl UserUpdate {
    /// Reads the fields this service keeps; PostHog's other settings are accepted and ignored.
    /// A key may never change the login email or the password (PostHog's 403, checked before
    /// anything else so an error cannot reveal which emails exist).
    pub fn from_body(body: &Map<String, Value>, user: &User) -> ApiResult<Self> {
        let changes_email = body.get("email").is_some_and(|email| {
            email
                .as_str()
                .is_none_or(|e| !e.trim().eq_ignore_ascii_case(user.email.trim()))
        });
        if changes_email || body.contains_key("password") {
            return Err(ApiError::PermissionDenied(
                "You can only change your email or password from the PostHog app, not with an API key or token."
                    .into(),
            ));
        }
        Ok(UserUpdate {
            first_name: optional_text(body, "first_name", MAX_NAME_CHARS, true)?,
            last_name: optional_text(body, "last_name", MAX_NAME_CHARS, true)?,
            organization: optional_text(body, "set_current_organization", 200, false)?,
            project: optional_text(body, "set_current_team", 200, false)?,
        })
    }
}

/// Applies the update: `set_current_organization` must name one of the user's organizations,
/// `set_current_team` one of their projects (and, with both, a project of that organization);
/// choosing an organization alone moves to its first project, a project alone to its
/// organization.
pub async fn apply<S: IdentityWrites>(store: &S, user: &User, update: UserUpdate) -> ApiResult<()> {
    let does_not_exist = |attr: &str, value: &str| {
        ApiError::field(
            attr,
            "does_not_exist",
            format!("Object with id={value} does not exist."),
        )
    };
    let organization = match &update.organization {
        Some(value) => {
            let org = match uuid::Uuid::parse_str(value) {
                Ok(id) if user.organization_ids.contains(&id.to_string()) => {
                    store.organization(&id.to_string()).await?
                }
                _ => None,
            };
            Some(org.ok_or_else(|| does_not_exist("set_current_organization", value))?)
        }
        None => None,
    };
    let project = match &update.project {
        Some(value) => {
            let project = match value.trim().parse::<i64>() {
                Ok(id) => store
                    .project(id)
                    .await?
                    .filter(|p| user.organization_ids.contains(&p.organization_id)),
                Err(_) => None,
            };
            Some(project.ok_or_else(|| does_not_exist("set_current_team", value))?)
        }
        None => None,
    };
    let mut changes = UserChanges {
        first_name: update.first_name,
        last_name: update.last_name,
        ..UserChanges::default()
    };
    match (organization, project) {
        (Some(org), project) => {
            let project = match project {
                Some(p) if p.organization_id != org.id => {
                    return Err(ApiError::invalid(
                        "set_current_team",
                        "Team must belong to the same organization in set_current_organization.",
                    ));
                }
                Some(p) => Some(p.id),
                None => store
                    .organization_projects(&org.id)
                    .await?
                    .first()
                    .map(|p| p.id),
            };
            changes.current_organization_id = Some(org.id);
            changes.current_project_id = project;
        }
        (None, Some(project)) => {
            changes.current_organization_id = Some(project.organization_id);
            changes.current_project_id = Some(project.id);
        }
        (None, None) => {}
    }
    store.update_user(user.id, &changes).await
}

/// PostHog makes a project its creator's current one.
pub async fn switch_to_created<S: IdentityWrites>(
    store: &S,
    user: &User,
    project: &Project,
) -> ApiResult<()> {
    let changes = UserChanges {
        current_organization_id: Some(project.organization_id.clone()),
        current_project_id: Some(project.id),
        ..UserChanges::default()
    };
    store.update_user(user.id, &changes).await
}

/// The user's current project: the one they chose, else the first project of their current
/// organization; `None` when that organization has none.
pub async fn current_project<S: IdentityStore>(store: &S, user: &User) -> ApiResult<Option<i64>> {
    if let Some(id) = user.current_project_id {
        return Ok(Some(id));
    }
    match auth::current_organization_id(user, store).await? {
        Some(org) => Ok(store
            .organization_projects(&org)
            .await?
            .first()
            .map(|p| p.id)),
        None => Ok(None),
    }
}

fn no_current_project() -> ApiError {
    ApiError::object("Current team is required to manage pinned scene tabs.")
}

/// `{"tabs": [...], "homepage": {...} | null}` of the user's current project.
pub async fn home_settings<S: IdentityStore>(
    store: &S,
    user: &User,
    project: Option<i64>,
) -> ApiResult<Value> {
    let project = project.ok_or_else(no_current_project)?;
    let stored = store.home_settings(user.id, project).await?;
    Ok(shown_settings(stored.as_ref()))
}

/// Replaces `tabs` and/or `homepage` (whichever the body has) and answers the result.
pub async fn update_home_settings<S: IdentityWrites>(
    store: &S,
    user: &User,
    project: Option<i64>,
    body: &Map<String, Value>,
) -> ApiResult<Value> {
    let tabs = match body.get("tabs") {
        None => None,
        Some(Value::Null) => {
            return Err(ApiError::field(
                "tabs",
                "null",
                "This field may not be null.",
            ));
        }
        Some(Value::Array(items)) => {
            if items.len() > MAX_PINNED_TABS {
                return Err(ApiError::field(
                    "tabs",
                    "max_length",
                    format!("Ensure this field has no more than {MAX_PINNED_TABS} elements."),
                ));
            }
            let tabs = items
                .iter()
                .enumerate()
                .map(|(i, tab)| pinned_tab(tab, &format!("tabs__{i}")))
                .collect::<ApiResult<Vec<Value>>>()?;
            Some(tabs)
        }
        Some(other) => {
            return Err(ApiError::field(
                "tabs",
                "not_a_list",
                format!(
                    "Expected a list of items but got type \"{}\".",
                    type_name(other)
                ),
            ));
        }
    };
    let homepage = match body.get("homepage") {
        None => None,
        Some(Value::Null) => Some(Value::Null),
        Some(tab) => Some(pinned_tab(tab, "homepage")?),
    };
    let project = project.ok_or_else(no_current_project)?;
    let mut settings = shown_settings(store.home_settings(user.id, project).await?.as_ref());
    if let Some(tabs) = tabs {
        settings["tabs"] = Value::Array(tabs);
    }
    if let Some(homepage) = homepage {
        settings["homepage"] = homepage;
    }
    if settings.to_string().len() > MAX_HOME_SETTINGS_BYTES {
        return Err(ApiError::object(format!(
            "Home settings may take at most {} KB; pin fewer or smaller tabs.",
            MAX_HOME_SETTINGS_BYTES / 1024
        )));
    }
    store.put_home_settings(user.id, project, &settings).await?;
    Ok(settings)
}

/// Stored settings as PostHog shows them: missing parts defaulted, every tab pinned.
fn shown_settings(stored: Option<&Value>) -> Value {
    let tabs: Vec<Value> = stored
        .and_then(|s| s.get("tabs"))
        .and_then(Value::as_array)
        .map(|tabs| tabs.iter().map(pinned).collect())
        .unwrap_or_default();
    let homepage = stored
        .and_then(|s| s.get("homepage"))
        .map(pinned)
        .unwrap_or(Value::Null);
    json!({"tabs": tabs, "homepage": homepage})
}

/// PostHog's `_sanitize_tab`: an empty tab is none, a tab is always pinned, never active.
fn pinned(tab: &Value) -> Value {
    match tab {
        Value::Object(fields) if !fields.is_empty() => {
            let mut fields = fields.clone();
            fields.remove("active");
            fields.insert("pinned".into(), Value::Bool(true));
            Value::Object(fields)
        }
        _ => Value::Null,
    }
}

/// One tab as PostHog's `PinnedSceneTabSerializer` reads it: its known fields type-checked,
/// others dropped; then pinned.
fn pinned_tab(tab: &Value, attr: &str) -> ApiResult<Value> {
    let Value::Object(fields) = tab else {
        return Err(ApiError::invalid(
            attr,
            format!(
                "Invalid data. Expected a dictionary, but got {}.",
                type_name(tab)
            ),
        ));
    };
    // (field, blank allowed, null allowed)
    const TEXT: [(&str, bool, bool); 9] = [
        ("id", true, false),
        ("pathname", false, false),
        ("search", true, false),
        ("hash", true, false),
        ("title", true, false),
        ("customTitle", true, true),
        ("iconType", true, false),
        ("sceneId", true, true),
        ("sceneKey", true, true),
    ];
    let mut kept = Map::new();
    for (name, allow_blank, allow_null) in TEXT {
        let at = format!("{attr}__{name}");
        match fields.get(name) {
            None => {}
            Some(Value::Null) if allow_null => {
                kept.insert(name.into(), Value::Null);
            }
            Some(value) => {
                let text = char_field(&at, value, allow_blank, 2000)?;
                kept.insert(name.into(), Value::String(text));
            }
        }
    }
    if let Some(params) = fields.get("sceneParams") {
        kept.insert("sceneParams".into(), params.clone());
    }
    match fields.get("pinned") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => {
            return Err(ApiError::invalid(
                &format!("{attr}__pinned"),
                "Must be a valid boolean.",
            ));
        }
    }
    if kept.is_empty() && fields.get("pinned").is_none() {
        return Ok(Value::Null);
    }
    Ok(pinned(&Value::Object(kept)))
}

/// An optional `CharField` of the body: strings and numbers, trimmed, not null.
fn optional_text(
    body: &Map<String, Value>,
    attr: &str,
    max: usize,
    allow_blank: bool,
) -> ApiResult<Option<String>> {
    body.get(attr)
        .map(|value| char_field(attr, value, allow_blank, max))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: 1,
            uuid: "u".into(),
            distinct_id: "d".into(),
            email: "ada@example.com".into(),
            first_name: "Ada".into(),
            last_name: "L".into(),
            organization_ids: vec![],
            current_project_id: None,
            current_organization_id: None,
            is_active: true,
            created_at: chrono::Utc::now(),
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys_cannot_change_email_or_password() {
        let same = body(json!({"email": " ADA@example.com", "first_name": "A"}));
        assert!(UserUpdate::from_body(&same, &user()).is_ok());
        for b in [
            json!({"email": "eve@example.com"}),
            json!({"password": "x"}),
        ] {
            assert!(matches!(
                UserUpdate::from_body(&body(b), &user()),
                Err(ApiError::PermissionDenied(_))
            ));
        }
    }

    #[test]
    fn names_are_bounded() {
        let long = body(json!({"last_name": "x".repeat(151)}));
        assert!(matches!(
            UserUpdate::from_body(&long, &user()),
            Err(ApiError::Validation { code, .. }) if code == "max_length"
        ));
        let update =
            UserUpdate::from_body(&body(json!({"first_name": " Grace "})), &user()).unwrap();
        assert_eq!(update.first_name.as_deref(), Some("Grace"));
    }

    #[test]
    fn tabs_keep_known_fields_and_are_pinned() {
        let tab = json!({"pathname": "/flags", "title": "Flags", "active": true, "x": 1, "pinned": false});
        assert_eq!(
            pinned_tab(&tab, "tabs__0").unwrap(),
            json!({"pathname": "/flags", "title": "Flags", "pinned": true})
        );
        assert_eq!(pinned_tab(&json!({}), "homepage").unwrap(), Value::Null);
        let err = pinned_tab(&json!({"pathname": ""}), "tabs__2").unwrap_err();
        assert!(
            matches!(err, ApiError::Validation { attr: Some(a), .. } if a == "tabs__2__pathname")
        );
        assert!(pinned_tab(&json!("x"), "homepage").is_err());
    }
}
