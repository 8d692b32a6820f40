//! flagsctl: admin CLI for organizations, projects, users, personal API keys and tables.
//!
//! Every call prints exactly one JSON object on stdout; failures print one line on stderr and
//! exit non-zero (2 for bad arguments, 1 for everything else). By default it talks to DynamoDB
//! Local (`AWS_ENDPOINT_URL_DYNAMODB`, else `http://127.0.0.1:${DYNAMODB_PORT:-8000}`, the
//! instance `make dev` runs); `--aws` (or `FLAGSCTL_AWS=1`) uses the normal AWS credential chain
//! and endpoints. Table names come from `FLAGS_TABLE`, `ACTIVITY_TABLE`, `IDENTITY_TABLE`,
//! `EARLY_ACCESS_TABLE`, `HASH_KEY_OVERRIDES_TABLE`, `PERSONS_TABLE`, `COHORTS_TABLE` and
//! `USAGE_TABLE` (the stack outputs of a deployment), else `TABLE_PREFIX` + the local default
//! names.

mod import;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::ApiError;
use shared::auth::{generate_key, hash_key};
use shared::identity::{Organization, PersonalApiKey, Project, User};
use shared::service::ProjectService;
use shared::service::projects::project_name;
use shared::store::dynamo::DynamoStore;
use shared::store::tables::create_missing_tables;
use shared::store::{
    DefinitionsStore, GROUP_TYPES_LIMIT, GroupType, GroupTypeError, IdentityAdmin, IdentityStore,
    Tables, testing,
};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "flagsctl",
    version,
    about = "Admin CLI for the feature-flag service"
)]
struct Cli {
    /// Use real AWS (default credential chain and endpoints) instead of DynamoDB Local.
    #[arg(long, global = true, env = "FLAGSCTL_AWS")]
    aws: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an organization.
    CreateOrg {
        #[arg(long)]
        name: String,
    },
    /// Create a project with its public token (phc_) and secret key (phs_, shown only here).
    CreateProject {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
    },
    /// Create a user in an organization.
    CreateUser {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
    },
    /// Create a personal API key (phx_, shown only here).
    CreateKey {
        #[arg(long)]
        user: i64,
        /// Comma-separated: `*` or `<object>:read|write`, e.g. feature_flag:write,activity_log:read
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Comma-separated project ids the key is restricted to (default: all of the user's).
        #[arg(long, value_delimiter = ',')]
        projects: Option<Vec<i64>>,
        #[arg(long, default_value = "flagsctl")]
        label: String,
    },
    /// List a user's personal API keys (masked).
    ListKeys {
        #[arg(long)]
        user: i64,
    },
    /// Revoke a personal API key by id.
    RevokeKey {
        #[arg(long)]
        id: String,
    },
    /// Name a project's group type (index 0–4), as `$groupidentify` events would.
    CreateGroupType {
        #[arg(long)]
        project: i64,
        #[arg(long)]
        index: i32,
        #[arg(long)]
        name: String,
    },
    /// Create the tables of template.yaml that don't exist yet.
    CreateTables {
        /// Default: ./template.yaml if present, else the template flagsctl was built with.
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// Copy a project from a PostHog-compatible host (PostHog Cloud, self-hosted, another
    /// deployment of ours) into a project of this deployment, through both management APIs:
    /// cohorts, flags, early access features (docs/importing.md). Re-runs update in place.
    Import {
        /// The source's API host, e.g. https://us.posthog.com
        #[arg(long)]
        from_host: String,
        /// A personal API key of the source (phx_…) that reads flags, cohorts and early access
        /// features
        #[arg(long, env = "FLAGSCTL_FROM_KEY", hide_env_values = true)]
        from_key: String,
        /// The source project's id
        #[arg(long)]
        from_project: String,
        /// This deployment's API URL (the stack's ApiUrl; make dev: http://127.0.0.1:9000)
        #[arg(
            long,
            env = "FLAGSCTL_TO_HOST",
            default_value = "http://127.0.0.1:9000"
        )]
        to_host: String,
        /// A personal API key of this deployment with feature_flag, cohort and
        /// early_access_feature write scopes (flagsctl create-key)
        #[arg(long, env = "FLAGSCTL_TO_KEY", hide_env_values = true)]
        to_key: String,
        /// The target project's id
        #[arg(long)]
        to_project: String,
        /// Print what would be created or updated, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Ensure a dev organization, project, user and `*` key exist; write their credentials.
    SeedDev {
        #[arg(long, default_value = ".local/dev-credentials.json")]
        out: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        api_url: String,
    },
}

/// A failure, shown as one line on stderr.
#[derive(Debug)]
enum CliError {
    /// Bad input (exit 2).
    Usage(String),
    /// Anything else (exit 1).
    Failed(String),
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        match e {
            // The API hides internal causes from clients; an operator needs them.
            ApiError::Internal(cause) if cause.contains("DispatchFailure") => {
                CliError::Failed(format!(
                    "cannot reach DynamoDB (is DynamoDB Local running? try `make dev`): {cause}"
                ))
            }
            ApiError::Internal(cause) if cause.contains("ResourceNotFoundException") => {
                CliError::Failed(format!(
                    "a DynamoDB table is missing (run `flagsctl create-tables`; names come from \
                     FLAGS_TABLE, ACTIVITY_TABLE, IDENTITY_TABLE, EARLY_ACCESS_TABLE, \
                     HASH_KEY_OVERRIDES_TABLE, PERSONS_TABLE, COHORTS_TABLE, USAGE_TABLE): {cause}"
                ))
            }
            ApiError::Internal(cause) => CliError::Failed(cause),
            ApiError::Validation { .. } | ApiError::BadRequest { .. } => {
                CliError::Usage(e.to_string())
            }
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl CliError {
    fn one_line(&self) -> String {
        let text = match self {
            CliError::Usage(t) | CliError::Failed(t) => t,
        };
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

type CliResult<T> = Result<T, CliError>;

fn usage(text: impl Into<String>) -> CliError {
    CliError::Usage(text.into())
}

fn failed(text: impl Into<String>) -> CliError {
    CliError::Failed(text.into())
}

/// DynamoDB Local's URL: the SDK's own override variable if set, else the `make dev` port.
fn local_endpoint(endpoint_var: Option<String>, port_var: Option<String>) -> String {
    if let Some(endpoint) = endpoint_var.filter(|e| !e.trim().is_empty()) {
        return endpoint;
    }
    let port = port_var.filter(|p| !p.trim().is_empty());
    format!("http://127.0.0.1:{}", port.as_deref().unwrap_or("8000"))
}

async fn connect(aws: bool) -> DynamoStore {
    if aws {
        return DynamoStore::from_env().await;
    }
    let endpoint = local_endpoint(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok(),
        std::env::var("DYNAMODB_PORT").ok(),
    );
    DynamoStore::new(testing::local_client(&endpoint), Tables::from_env())
}

/// `*` or `<object>:read|write`; duplicates dropped, order kept.
fn validate_scopes(scopes: &[String]) -> CliResult<Vec<String>> {
    let pattern = Regex::new(r"^[a-z][a-z_]*:(read|write)$").expect("valid regex");
    let mut valid: Vec<String> = Vec::new();
    for scope in scopes.iter().map(|s| s.trim()) {
        if scope != "*" && !pattern.is_match(scope) {
            return Err(usage(format!(
                "invalid scope '{scope}': use '*' or '<object>:read' / '<object>:write'"
            )));
        }
        if !valid.iter().any(|v| v == scope) {
            valid.push(scope.to_string());
        }
    }
    if valid.is_empty() {
        return Err(usage("--scopes needs at least one scope"));
    }
    Ok(valid)
}

/// PostHog's `mask_key_value`: `phx_...abcd`.
fn mask_key(value: &str) -> String {
    if value.chars().count() < 16 {
        return "********".into();
    }
    let head: String = value.chars().take(4).collect();
    let tail: String = value.chars().skip(value.chars().count() - 4).collect();
    format!("{head}...{tail}")
}

fn validate_email(email: &str) -> CliResult<()> {
    let pattern = Regex::new(r"^[^@\s]+@[^@\s]+\.[^@\s]+$").expect("valid regex");
    if pattern.is_match(email) {
        Ok(())
    } else {
        Err(usage(format!("invalid email '{email}'")))
    }
}

fn non_empty<'a>(flag: &str, value: &'a str) -> CliResult<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        Err(usage(format!("{flag} must not be empty")))
    } else {
        Ok(value)
    }
}

fn now() -> shared::time::Timestamp {
    chrono::Utc::now()
}

async fn existing_org(store: &impl IdentityAdmin, id: &str) -> CliResult<Organization> {
    store
        .organization(id)
        .await?
        .ok_or_else(|| failed(format!("no organization with id {id}")))
}

async fn existing_user(store: &impl IdentityAdmin, id: i64) -> CliResult<User> {
    store
        .user(id)
        .await?
        .ok_or_else(|| failed(format!("no user with id {id}")))
}

async fn create_org(store: &impl IdentityAdmin, name: &str) -> CliResult<Organization> {
    let org = Organization {
        id: Uuid::now_v7().to_string(),
        name: non_empty("--name", name)?.to_string(),
        created_at: now(),
    };
    store.put_organization(&org).await?;
    Ok(org)
}

/// The project and its secret key, which is stored only as a hash.
async fn create_project(
    store: &impl IdentityAdmin,
    org_id: &str,
    name: &str,
) -> CliResult<(Project, String)> {
    let name = project_name(&json!(non_empty("--name", name)?))?;
    let org = existing_org(store, org_id).await?;
    let created = ProjectService::new(store)
        .create(&org, Some(name), now())
        .await?;
    Ok((created.project, created.secret_api_key))
}

fn project_json(project: &Project, secret: &str) -> Value {
    json!({
        "id": project.id,
        "name": project.name,
        "organization_id": project.organization_id,
        "api_token": project.api_token,
        "secret_api_key": secret,
    })
}

async fn create_user(
    store: &impl IdentityAdmin,
    org_id: &str,
    email: &str,
    first_name: &str,
    last_name: &str,
) -> CliResult<User> {
    let email = email.trim();
    validate_email(email)?;
    let org = existing_org(store, org_id).await?;
    let current_project_id = store
        .organization_projects(&org.id)
        .await?
        .first()
        .map(|p| p.id);
    let user = User {
        id: store.next_id("user").await?,
        uuid: Uuid::now_v7().to_string(),
        distinct_id: Uuid::new_v4().simple().to_string(),
        email: email.to_string(),
        first_name: first_name.trim().to_string(),
        last_name: last_name.trim().to_string(),
        organization_ids: vec![org.id],
        current_project_id,
        current_organization_id: None,
        is_active: true,
        created_at: now(),
    };
    store.put_user(&user).await?;
    Ok(user)
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "uuid": user.uuid,
        "distinct_id": user.distinct_id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "organization_ids": user.organization_ids,
    })
}

/// The stored key and its plaintext value, which is never stored.
async fn create_key(
    store: &impl IdentityAdmin,
    user_id: i64,
    scopes: &[String],
    projects: Option<&[i64]>,
    label: &str,
) -> CliResult<(PersonalApiKey, String)> {
    let scopes = validate_scopes(scopes)?;
    let label = non_empty("--label", label)?;
    if label.chars().count() > 40 {
        return Err(usage("--label is at most 40 characters"));
    }
    let user = existing_user(store, user_id).await?;
    let scoped_teams = match projects {
        None => None,
        Some([]) => return Err(usage("--projects needs at least one project id")),
        Some(ids) => {
            let mut teams = Vec::new();
            for &id in ids {
                let project = store
                    .project(id)
                    .await?
                    .ok_or_else(|| failed(format!("no project with id {id}")))?;
                if !user.organization_ids.contains(&project.organization_id) {
                    return Err(failed(format!(
                        "user {user_id} is not in the organization of project {id}"
                    )));
                }
                if !teams.contains(&id) {
                    teams.push(id);
                }
            }
            Some(teams)
        }
    };
    let value = generate_key("phx_");
    let key = PersonalApiKey {
        id: Uuid::now_v7().to_string(),
        user_id,
        label: label.to_string(),
        secure_value: hash_key(&value),
        mask_value: mask_key(&value),
        scopes: Some(scopes),
        scoped_teams,
        scoped_organizations: None,
        created_at: now(),
    };
    store.put_api_key(&key).await?;
    Ok((key, value))
}

fn key_json(key: &PersonalApiKey, value: &str) -> Value {
    json!({
        "id": key.id,
        "key": value,
        "scopes": key.scopes,
        "label": key.label,
        "scoped_teams": key.scoped_teams,
    })
}

fn key_listing_json(keys: &[PersonalApiKey]) -> Value {
    let results: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "label": k.label,
                "mask_value": k.mask_value,
                "scopes": k.scopes,
                "scoped_teams": k.scoped_teams,
                "created_at": shared::time::format(&k.created_at),
            })
        })
        .collect();
    json!({ "results": results })
}

fn read_template(path: Option<&Path>) -> CliResult<String> {
    let default = Path::new("template.yaml");
    let path = match path {
        Some(path) => path,
        None if default.exists() => default,
        None => return Ok(testing::TEMPLATE.to_string()),
    };
    std::fs::read_to_string(path).map_err(|e| failed(format!("reading {}: {e}", path.display())))
}

/// What `make dev` hands to people and to the end-to-end tests (docs/reference/decisions.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DevCredentials {
    api_url: String,
    project_id: i64,
    personal_api_key: String,
    project_api_token: String,
    project_secret_key: String,
}

const DEV_ORG: &str = "Dev Organization";
const DEV_PROJECT: &str = "Dev Project";
const DEV_EMAIL: &str = "dev@example.com";

/// The recorded project, if it still exists with the recorded token and secret.
async fn recorded_project(
    store: &impl IdentityAdmin,
    creds: &DevCredentials,
) -> CliResult<Option<Project>> {
    let Some(project) = store.project(creds.project_id).await? else {
        return Ok(None);
    };
    let intact = project.api_token == creds.project_api_token
        && project.secret_api_key_hash == hash_key(&creds.project_secret_key)
        && store
            .organization(&project.organization_id)
            .await?
            .is_some();
    Ok(intact.then_some(project))
}

/// Whether the recorded key still grants everything on `project`.
async fn recorded_key_works(
    store: &impl IdentityAdmin,
    key: &str,
    project: &Project,
) -> CliResult<bool> {
    let Some(key) = store.api_key_by_hash(&hash_key(key)).await? else {
        return Ok(false);
    };
    let all_scopes = key
        .scopes
        .as_ref()
        .is_none_or(|s| s.iter().any(|s| s == "*"));
    let all_projects = key
        .scoped_teams
        .as_ref()
        .is_none_or(|t| t.contains(&project.id));
    let user = store
        .user(key.user_id)
        .await?
        .filter(|u| u.is_active && u.organization_ids.contains(&project.organization_id));
    if let Some(user) = &user {
        // Rewritten so a user recorded before organizations listed their members gets its
        // `MEMBER#` items (idempotent).
        store.put_user(user).await?;
    }
    Ok(all_scopes && all_projects && user.is_some())
}

/// Ensures a dev organization, project, user and `*` key exist, reusing the ones recorded in
/// `previous` (the out file: keys are stored hashed, so it is the only place the plaintext
/// lives) while they still exist.
async fn seed_dev(
    store: &impl IdentityAdmin,
    previous: Option<DevCredentials>,
    api_url: &str,
) -> CliResult<DevCredentials> {
    let mut reused = None;
    if let Some(creds) = previous
        && let Some(project) = recorded_project(store, &creds).await?
    {
        reused = Some((project, creds));
    }
    let (project, secret, mut key) = match reused {
        Some((project, creds)) => (
            project,
            creds.project_secret_key,
            Some(creds.personal_api_key),
        ),
        None => {
            let org = create_org(store, DEV_ORG).await?;
            let (project, secret) = create_project(store, &org.id, DEV_PROJECT).await?;
            (project, secret, None)
        }
    };
    if let Some(value) = &key
        && !recorded_key_works(store, value, &project).await?
    {
        key = None;
    }
    let key = match key {
        Some(key) => key,
        None => {
            let user =
                create_user(store, &project.organization_id, DEV_EMAIL, "Dev", "User").await?;
            let scopes = ["*".to_string()];
            create_key(store, user.id, &scopes, None, "dev").await?.1
        }
    };
    Ok(DevCredentials {
        api_url: api_url.to_string(),
        project_id: project.id,
        personal_api_key: key,
        project_api_token: project.api_token,
        project_secret_key: secret,
    })
}

fn read_credentials(path: &Path) -> Option<DevCredentials> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Written whole (temp file + rename) and readable only by the owner: it holds secrets.
fn write_credentials(path: &Path, creds: &DevCredentials) -> CliResult<()> {
    let fail = |e: std::io::Error| failed(format!("writing {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let text = serde_json::to_string_pretty(creds).expect("credentials serialize") + "\n";
    std::fs::write(&tmp, text).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

async fn run(cli: Cli) -> CliResult<Value> {
    let store = connect(cli.aws).await;
    match cli.command {
        Command::CreateOrg { name } => {
            let org = create_org(&store, &name).await?;
            Ok(json!({ "id": org.id, "name": org.name }))
        }
        Command::CreateProject { org, name } => {
            let (project, secret) = create_project(&store, &org, &name).await?;
            Ok(project_json(&project, &secret))
        }
        Command::CreateUser {
            org,
            email,
            first_name,
            last_name,
        } => {
            let user = create_user(&store, &org, &email, &first_name, &last_name).await?;
            Ok(user_json(&user))
        }
        Command::CreateKey {
            user,
            scopes,
            projects,
            label,
        } => {
            let (key, value) =
                create_key(&store, user, &scopes, projects.as_deref(), &label).await?;
            Ok(key_json(&key, &value))
        }
        Command::ListKeys { user } => {
            existing_user(&store, user).await?;
            Ok(key_listing_json(&store.user_api_keys(user).await?))
        }
        Command::RevokeKey { id } => {
            if store.revoke_api_key(&id).await? {
                Ok(json!({ "id": id, "revoked": true }))
            } else {
                Err(failed(format!("no personal API key with id {id}")))
            }
        }
        Command::CreateGroupType {
            project,
            index,
            name,
        } => create_group_type(&store, project, index, &name).await,
        Command::CreateTables { template } => {
            let template = read_template(template.as_deref())?;
            let created = create_missing_tables(&store.client, &template, &store.tables).await?;
            Ok(json!({ "created": created }))
        }
        Command::Import {
            from_host,
            from_key,
            from_project,
            to_host,
            to_key,
            to_project,
            dry_run,
        } => import::run(import::Options {
            from_host,
            from_key,
            from_project,
            to_host,
            to_key,
            to_project,
            dry_run,
        })
        .await
        .map_err(failed),
        Command::SeedDev { out, api_url } => {
            let creds = seed_dev(&store, read_credentials(&out), &api_url).await?;
            write_credentials(&out, &creds)?;
            Ok(serde_json::to_value(&creds).expect("credentials serialize"))
        }
    }
}

/// Creates the mapping, or confirms it when exactly this one exists already (re-runnable).
async fn create_group_type(
    store: &(impl IdentityAdmin + DefinitionsStore),
    project: i64,
    index: i32,
    name: &str,
) -> CliResult<Value> {
    let name = non_empty("--name", name)?;
    if !(0..GROUP_TYPES_LIMIT).contains(&index) {
        return Err(usage(format!(
            "--index must be at least 0 and less than {GROUP_TYPES_LIMIT}"
        )));
    }
    if store.project(project).await?.is_none() {
        return Err(failed(format!("no project with id {project}")));
    }
    let group = GroupType {
        project_id: project,
        index,
        name: name.to_string(),
    };
    let existing = store.group_types(project).await?;
    let holder = |i: i32| existing.iter().find(|g| g.index == i);
    let result = match holder(index) {
        Some(same) if same.name == name => Ok(()),
        _ => store.create_group_type(&group).await,
    };
    match result {
        Ok(()) => Ok(json!({
            "project_id": project,
            "group_type_index": index,
            "group_type": name,
        })),
        Err(GroupTypeError::IndexTaken(_)) => Err(failed(format!(
            "group type index {index} of project {project} is already {:?}",
            holder(index).map_or("taken", |g| g.name.as_str())
        ))),
        Err(GroupTypeError::NameTaken(_)) => Err(failed(format!(
            "group type {name:?} of project {project} already has index {}",
            existing
                .iter()
                .find(|g| g.name == name)
                .map_or("(another)".to_string(), |g| g.index.to_string())
        ))),
        Err(GroupTypeError::Api(e)) => Err(e.into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            // clap's message spans several lines (tips, usage); the first one says it all.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            eprintln!(
                "flagsctl: {} (see flagsctl --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value).expect("json"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flagsctl: error: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_are_star_or_object_read_write() {
        assert_eq!(validate_scopes(&strings(&["*"])).unwrap(), ["*"]);
        assert_eq!(
            validate_scopes(&strings(&[
                "feature_flag:write",
                " activity_log:read",
                "feature_flag:write"
            ]))
            .unwrap(),
            ["feature_flag:write", "activity_log:read"]
        );
        for bad in [
            "feature_flag",
            "feature_flag:admin",
            ":read",
            "Feature:read",
            "a:read:write",
            "",
        ] {
            assert!(validate_scopes(&strings(&[bad])).is_err(), "{bad}");
        }
        assert!(validate_scopes(&[]).is_err());
    }

    #[test]
    fn keys_are_masked_like_posthog() {
        assert_eq!(mask_key("phx_abcdefghijklmnopWXYZ"), "phx_...WXYZ");
        assert_eq!(mask_key("short"), "********");
    }

    #[test]
    fn emails_need_an_at_and_a_domain() {
        assert!(validate_email("dev@example.com").is_ok());
        assert!(validate_email("dev").is_err());
        assert!(validate_email("dev@local").is_err());
        assert!(validate_email("a b@example.com").is_err());
    }

    #[test]
    fn local_endpoint_prefers_the_sdk_variable_then_the_port() {
        assert_eq!(local_endpoint(None, None), "http://127.0.0.1:8000");
        assert_eq!(
            local_endpoint(None, Some("8123".into())),
            "http://127.0.0.1:8123"
        );
        assert_eq!(
            local_endpoint(Some("http://127.0.0.1:9999".into()), Some("8123".into())),
            "http://127.0.0.1:9999"
        );
        assert_eq!(
            local_endpoint(Some(" ".into()), None),
            "http://127.0.0.1:8000"
        );
    }

    #[test]
    fn errors_are_one_line_and_show_internal_causes() {
        let e = CliError::from(ApiError::internal("dynamodb: boom\n  at line 2"));
        assert_eq!(e.one_line(), "dynamodb: boom at line 2");
        assert_eq!(e.exit_code(), 1);
        let e = CliError::from(ApiError::internal("dynamodb: DispatchFailure(x)"));
        assert!(e.one_line().contains("is DynamoDB Local running?"));
        assert_eq!(CliError::from(ApiError::object("bad")).exit_code(), 2);
    }

    #[test]
    fn dev_credentials_file_has_exactly_the_contract_keys() {
        let creds = DevCredentials {
            api_url: "http://127.0.0.1:9000".into(),
            project_id: 1,
            personal_api_key: "phx_a".into(),
            project_api_token: "phc_b".into(),
            project_secret_key: "phs_c".into(),
        };
        let value = serde_json::to_value(&creds).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "api_url",
                "project_id",
                "personal_api_key",
                "project_api_token",
                "project_secret_key"
            ]
        );
        let dir = std::env::temp_dir().join(format!("flagsctl-{}", Uuid::new_v4().simple()));
        let path = dir.join("creds.json");
        write_credentials(&path, &creds).unwrap();
        assert_eq!(read_credentials(&path), Some(creds));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cli_parses_comma_separated_lists() {
        let cli = Cli::try_parse_from([
            "flagsctl",
            "create-key",
            "--user",
            "3",
            "--scopes",
            "feature_flag:read,*",
            "--projects",
            "1,2",
        ])
        .unwrap();
        match cli.command {
            Command::CreateKey {
                user,
                scopes,
                projects,
                label,
            } => {
                assert_eq!(user, 3);
                assert_eq!(scopes, ["feature_flag:read", "*"]);
                assert_eq!(projects, Some(vec![1, 2]));
                assert_eq!(label, "flagsctl");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["flagsctl", "create-key", "--user", "x", "--scopes", "*"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["flagsctl", "create-key", "--user", "1"]).is_err());
    }
}
