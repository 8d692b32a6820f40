//! Organizations, projects, users and personal API keys: who may call, and on what.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::time::{Timestamp, serde_ts};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub organization_id: String,
    pub name: String,
    /// Public project token (`phc_…`), used by SDKs; not a secret.
    pub api_token: String,
    /// SHA-256 of the project secret key (`phs_…`); the key itself is never stored.
    pub secret_api_key_hash: String,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub uuid: String,
    pub distinct_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub organization_ids: Vec<String>,
    /// Project that `@current` resolves to; defaults to the first project of the first org.
    #[serde(default)]
    pub current_project_id: Option<i64>,
    /// Organization that `@current` resolves to (`set_current_organization`); when unset or no
    /// longer the user's, the current project's organization, else the first.
    #[serde(default)]
    pub current_organization_id: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
}

fn yes() -> bool {
    true
}

/// PostHog's `UserBasicSerializer` shape, stored with flags so reads need no user lookups.
/// The default (all empty) stands for nobody, e.g. on the probe flags evaluations build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: i64,
    pub uuid: String,
    pub distinct_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

impl UserSummary {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "uuid": self.uuid,
            "distinct_id": self.distinct_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "is_email_verified": null,
            "hedgehog_config": null,
            "role_at_organization": null,
        })
    }
}

impl From<&User> for UserSummary {
    fn from(u: &User) -> Self {
        UserSummary {
            id: u.id,
            uuid: u.uuid.clone(),
            distinct_id: u.distinct_id.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email: u.email.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalApiKey {
    pub id: String,
    pub user_id: i64,
    pub label: String,
    /// SHA-256 hex of the full `phx_…` value.
    pub secure_value: String,
    /// Shown in listings so people can tell keys apart: `phx_…` plus the last four characters.
    pub mask_value: String,
    /// `None` is a legacy key with full access.
    pub scopes: Option<Vec<String>>,
    /// Project ids the key is restricted to; `None` means every project the user can see.
    #[serde(default)]
    pub scoped_teams: Option<Vec<i64>>,
    /// Organization ids the key is restricted to; `None` means every organization of the user.
    #[serde(default)]
    pub scoped_organizations: Option<Vec<String>>,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
}
