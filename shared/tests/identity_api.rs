//! The identity function in-process against DynamoDB Local (`DYNAMODB_ENDPOINT`): the caller's
//! key, `/api/users/@me/`, home settings, organizations, members and projects (PostHog's
//! shapes, scopes, scoped keys, project create and rename with their validation).

mod common;

use common::{Response, World, add_user, assert_error};
use serde_json::{Value, json};
use shared::api::Group;
use shared::auth::{generate_key, hash_key};
use shared::http::{ApiRequest, ApiResponse};
use shared::identity::{Organization, PersonalApiKey, User};
use shared::store::{IdentityAdmin, IdentityStore};

async fn call(w: &World, key: &str, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut req =
        ApiRequest::new(method, path).with_header("authorization", &format!("Bearer {key}"));
    if let Some(body) = body {
        req = req.with_json(&body);
    }
    let ApiResponse { status, body, .. } = w.send_to(Group::Identity, req).await;
    Response {
        status,
        body: body.unwrap_or(Value::Null),
    }
}

async fn get(w: &World, key: &str, path: &str) -> Response {
    call(w, key, "GET", path, None).await
}

/// A key of `user` with the given scopes and restrictions; returns its value.
async fn key_with(
    w: &World,
    user_id: i64,
    scopes: &[&str],
    teams: Option<Vec<i64>>,
    orgs: Option<Vec<String>>,
) -> String {
    let plain = generate_key("phx_");
    let key = PersonalApiKey {
        id: uuid::Uuid::new_v4().to_string(),
        user_id,
        label: "scoped".into(),
        secure_value: hash_key(&plain),
        mask_value: format!("phx_...{}", &plain[plain.len() - 4..]),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        scoped_teams: teams,
        scoped_organizations: orgs,
        created_at: chrono::Utc::now(),
    };
    w.store.put_api_key(&key).await.unwrap();
    plain
}

async fn organization(w: &World, name: &str) -> Organization {
    let org = Organization {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        created_at: chrono::Utc::now(),
    };
    w.store.put_organization(&org).await.unwrap();
    org
}

/// A second organization with one project, and the world's user made a member of it.
async fn second_membership(w: &World) -> (Organization, i64) {
    let org = organization(w, "Second Org").await;
    let project = w.add_project(&org.id).await;
    let mut user = w.user.clone();
    user.organization_ids.push(org.id.clone());
    w.store.put_user(&user).await.unwrap();
    (org, project.id)
}

fn ids(list: &Value) -> Vec<Value> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The caller's key

#[tokio::test]
async fn current_key_shows_its_scopes_and_never_its_value() {
    let w = World::new().await;
    let key = key_with(
        &w,
        w.user.id,
        &["feature_flag:read"],
        Some(vec![w.project.id]),
        None,
    )
    .await;
    let r = get(&w, &key, "/api/personal_api_keys/@current").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scopes"], json!(["feature_flag:read"]));
    assert_eq!(r.body["scoped_teams"], json!([w.project.id]));
    assert_eq!(r.body["scoped_organizations"], json!([]));
    assert_eq!(r.body["value"], Value::Null);
    assert_eq!(r.body["user_id"], json!(w.user.id));
    assert!(
        r.body["mask_value"]
            .as_str()
            .unwrap()
            .starts_with("phx_...")
    );
    let text = r.body.to_string();
    assert!(!text.contains(&key) && !text.contains(&hash_key(&key)));

    // By its own id too; another key of the same user is refused, an unknown one not found.
    let own_id = r.body["id"].as_str().unwrap().to_string();
    let r = get(&w, &key, &format!("/api/personal_api_keys/{own_id}/")).await;
    assert_eq!(r.status, 200);
    let other_id = get(&w, &w.key, "/api/personal_api_keys/@current")
        .await
        .body["id"]
        .clone();
    let r = get(
        &w,
        &key,
        &format!("/api/personal_api_keys/{}/", other_id.as_str().unwrap()),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = get(&w, &key, "/api/personal_api_keys/nope/").await;
    assert_error(&r, 404, "not_found", "Not found.", None);
    let r = call(&w, &key, "DELETE", "/api/personal_api_keys/@current/", None).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "This action does not support Personal API Key access",
        None,
    );
}

#[tokio::test]
async fn project_secret_keys_and_missing_credentials_are_refused() {
    let w = World::new().await;
    let r = get(&w, &w.secret_key, "/api/users/@me/").await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "This action does not support project secret API key access",
        None,
    );
    let ApiResponse { status, .. } = w
        .send_to(
            Group::Identity,
            ApiRequest::new("GET", "/api/organizations/"),
        )
        .await;
    assert_eq!(status, 401);
}

// ---------------------------------------------------------------------------------------------
// Users

#[tokio::test]
async fn me_carries_what_the_tool_catalog_reads() {
    let w = World::new().await;
    let r = get(&w, &w.key, "/api/users/@me/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = &r.body;
    assert_eq!(me["uuid"], json!(w.user.uuid));
    assert_eq!(me["distinct_id"], json!(w.user.distinct_id));
    assert_eq!(me["email"], json!(w.user.email));
    assert_eq!(me["organization"]["id"], json!(w.org.id));
    assert_eq!(me["organization"]["name"], json!("Org"));
    assert_eq!(me["team"]["id"], json!(w.project.id));
    assert_eq!(me["team"]["organization"], json!(w.org.id));
    assert_eq!(me["organizations"][0]["id"], json!(w.org.id));
    assert!(me.get("password").is_none() && me.get("set_current_team").is_none());

    // Own uuid works; anyone else's is PostHog's non-staff 403.
    assert_eq!(
        get(&w, &w.key, &format!("/api/users/{}/", w.user.uuid))
            .await
            .status,
        200
    );
    let other = add_user(&w.store, &w.org.id, "other@example.com").await;
    let r = get(&w, &w.key, &format!("/api/users/{}/", other.uuid)).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "As a non-staff user you're only allowed to access the `@me` user instance.",
        None,
    );
    let flags_only = key_with(&w, w.user.id, &["feature_flag:read"], None, None).await;
    let r = get(&w, &flags_only, "/api/users/@me/").await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'user:read'",
        None,
    );
    // A key restricted to projects still reads its user (PostHog exempts `user` from scoping).
    let scoped = key_with(
        &w,
        w.user.id,
        &["user:read"],
        Some(vec![w.project.id]),
        None,
    )
    .await;
    assert_eq!(get(&w, &scoped, "/api/users/@me/").await.status, 200);
}

#[tokio::test]
async fn patching_me_renames_and_switches_organization_and_project() {
    let w = World::new().await;
    let (second_org, second_project) = second_membership(&w).await;
    let r = call(
        &w,
        &w.key,
        "PATCH",
        "/api/users/@me/",
        Some(json!({"first_name": "  Grace ", "theme_mode": "dark"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["first_name"], json!("Grace"));

    // A project alone moves the organization along.
    let body = json!({"set_current_team": second_project});
    let r = call(&w, &w.key, "PATCH", "/api/users/@me/", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["team"]["id"], json!(second_project));
    assert_eq!(r.body["organization"]["id"], json!(second_org.id));
    assert_eq!(r.body["organizations"].as_array().unwrap().len(), 2);
    // An organization alone moves to its first project.
    let body = json!({"set_current_organization": w.org.id});
    let r = call(&w, &w.key, "PATCH", "/api/users/@me/", Some(body)).await;
    assert_eq!(r.body["team"]["id"], json!(w.project.id));
    let stored = w.store.user(w.user.id).await.unwrap().unwrap();
    assert_eq!(stored.current_project_id, Some(w.project.id));
    assert_eq!(stored.first_name, "Grace");

    // An organization without projects leaves no current project.
    let empty = organization(&w, "Empty").await;
    let mut user = w.store.user(w.user.id).await.unwrap().unwrap();
    user.organization_ids.push(empty.id.clone());
    w.store.put_user(&user).await.unwrap();
    let body = json!({"set_current_organization": empty.id});
    let r = call(&w, &w.key, "PATCH", "/api/users/@me/", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["organization"]["id"], json!(empty.id));
    assert_eq!(r.body["team"], Value::Null);
    let r = get(&w, &w.key, "/api/user_home_settings/@me/").await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Current team is required to manage pinned scene tabs.",
        None,
    );

    let r = call(
        &w,
        &w.key,
        "PATCH",
        "/api/users/@me/",
        Some(json!({"set_current_organization": w.org.id, "set_current_team": second_project})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Team must belong to the same organization in set_current_organization.",
        Some("set_current_team"),
    );
    let foreign = w.foreign_project().await;
    let body = json!({"set_current_team": foreign.id});
    let r = call(&w, &w.key, "PATCH", "/api/users/@me/", Some(body)).await;
    let detail = format!("Object with id={} does not exist.", foreign.id);
    assert_error(&r, 400, "does_not_exist", &detail, Some("set_current_team"));
    let body = json!({"set_current_organization": foreign.organization_id});
    let r = call(&w, &w.key, "PATCH", "/api/users/@me/", Some(body)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["attr"], json!("set_current_organization"));

    let r = call(
        &w,
        &w.key,
        "PATCH",
        "/api/users/@me/",
        Some(json!({"email": "x@example.com"})),
    )
    .await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "You can only change your email or password from the PostHog app, not with an API key or token.",
        None,
    );
    let reader = key_with(&w, w.user.id, &["user:read"], None, None).await;
    let r = call(
        &w,
        &reader,
        "PATCH",
        "/api/users/@me/",
        Some(json!({"first_name": "X"})),
    )
    .await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'user:write'",
        None,
    );
}

#[tokio::test]
async fn home_settings_are_kept_per_project_and_always_pinned() {
    let w = World::new().await;
    let path = "/api/user_home_settings/@me/";
    let r = get(&w, &w.key, path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"tabs": [], "homepage": null}));

    let body = json!({
        "tabs": [{"pathname": "/feature_flags", "title": "Flags", "active": true, "junk": 1}],
        "homepage": {"pathname": "/home", "sceneParams": {"a": 1}}
    });
    let r = call(&w, &w.key, "PATCH", path, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = json!({
        "tabs": [{"pathname": "/feature_flags", "title": "Flags", "pinned": true}],
        "homepage": {"pathname": "/home", "sceneParams": {"a": 1}, "pinned": true}
    });
    assert_eq!(r.body, expected);
    assert_eq!(get(&w, &w.key, path).await.body, expected);
    // Only what the body names changes.
    let r = call(&w, &w.key, "PATCH", path, Some(json!({"homepage": null}))).await;
    assert_eq!(r.body["tabs"], expected["tabs"]);
    assert_eq!(r.body["homepage"], Value::Null);

    let r = call(
        &w,
        &w.key,
        "PATCH",
        path,
        Some(json!({"tabs": {"pathname": "/x"}})),
    )
    .await;
    assert_error(
        &r,
        400,
        "not_a_list",
        "Expected a list of items but got type \"dict\".",
        Some("tabs"),
    );
    let r = call(
        &w,
        &w.key,
        "PATCH",
        path,
        Some(json!({"tabs": [{"pathname": ""}]})),
    )
    .await;
    assert_error(
        &r,
        400,
        "blank",
        "This field may not be blank.",
        Some("tabs__0__pathname"),
    );
}

// ---------------------------------------------------------------------------------------------
// Organizations and members

#[tokio::test]
async fn organizations_are_the_users_own_within_the_keys_scope() {
    let w = World::new().await;
    let (second_org, second_project) = second_membership(&w).await;
    let stranger = organization(&w, "Stranger").await;

    let r = get(&w, &w.key, "/api/organizations/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut listed = ids(&r.body);
    listed.sort_by_key(|v| v.to_string());
    let mut expected = vec![json!(w.org.id), json!(second_org.id)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(listed, expected);

    let r = get(&w, &w.key, &format!("/api/organizations/{}/", w.org.id)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], json!("Org"));
    assert_eq!(r.body["slug"], json!("org"));
    assert_eq!(r.body["member_count"], json!(1));
    assert_eq!(r.body["teams"][0]["id"], json!(w.project.id));
    assert_eq!(r.body["projects"][0]["name"], json!("Project"));
    assert_eq!(
        get(&w, &w.key, "/api/organizations/@current/").await.body["id"],
        json!(w.org.id)
    );
    let r = get(&w, &w.key, &format!("/api/organizations/{}/", stranger.id)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = get(
        &w,
        &w.key,
        &format!("/api/organizations/{}/", uuid::Uuid::new_v4()),
    )
    .await;
    assert_error(&r, 404, "not_found", "Organization not found.", None);
    let r = get(&w, &w.key, "/api/organizations/not-a-uuid/").await;
    assert_eq!(r.status, 404);

    // Restricted to one organization: the list and the reach shrink to it.
    let scoped = key_with(
        &w,
        w.user.id,
        &["organization:read"],
        None,
        Some(vec![second_org.id.clone()]),
    )
    .await;
    assert_eq!(
        ids(&get(&w, &scoped, "/api/organizations/").await.body),
        vec![json!(second_org.id)]
    );
    let r = get(&w, &scoped, &format!("/api/organizations/{}/", w.org.id)).await;
    let detail = format!(
        "API key does not have access to the requested organization: ID {}.",
        w.org.id
    );
    assert_error(&r, 403, "permission_denied", &detail, None);
    // Restricted to a project: the organization holding it, showing only that project.
    let by_project = key_with(
        &w,
        w.user.id,
        &["organization:read"],
        Some(vec![second_project]),
        None,
    )
    .await;
    let r = get(&w, &by_project, "/api/organizations/").await;
    assert_eq!(ids(&r.body), vec![json!(second_org.id)]);
    assert_eq!(r.body["results"][0]["teams"].as_array().unwrap().len(), 1);

    let no_scope = key_with(&w, w.user.id, &["project:read"], None, None).await;
    let r = get(&w, &no_scope, "/api/organizations/").await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'organization:read'",
        None,
    );
}

#[tokio::test]
async fn members_are_listed_with_their_basic_user() {
    let w = World::new().await;
    let other = add_user(&w.store, &w.org.id, "second@example.com").await;
    let mut gone: User = add_user(&w.store, &w.org.id, "gone@example.com").await;
    gone.is_active = false;
    w.store.put_user(&gone).await.unwrap();
    let path = format!("/api/organizations/{}/members/", w.org.id);
    let r = get(&w, &w.key, &path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["count"], json!(2));
    let emails: Vec<&Value> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["user"]["email"])
        .collect();
    assert_eq!(
        emails,
        vec![&json!("owner@example.com"), &json!(other.email)]
    );
    assert_eq!(r.body["results"][1]["user"]["uuid"], json!(other.uuid));
    assert_eq!(r.body["results"][1]["level"], json!(8));
    let reader = key_with(&w, w.user.id, &["organization:read"], None, None).await;
    let r = get(&w, &reader, &path).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'organization_member:read'",
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Projects

#[tokio::test]
async fn project_lists_show_only_what_the_key_may_see() {
    let w = World::new().await;
    let second = w.add_project(&w.org.id).await;
    let r = get(&w, &w.key, "/api/projects/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec![json!(w.project.id), json!(second.id)]);
    let listed = &r.body["results"][0];
    assert_eq!(listed["organization"], json!(w.org.id));
    assert_eq!(listed["api_token"], json!(w.project.api_token));
    assert_eq!(listed["timezone"], json!("UTC"));

    let scoped = key_with(
        &w,
        w.user.id,
        &["project:read"],
        Some(vec![second.id]),
        None,
    )
    .await;
    assert_eq!(
        ids(&get(&w, &scoped, "/api/projects/").await.body),
        vec![json!(second.id)]
    );
    let org_path = format!("/api/organizations/{}/projects/", w.org.id);
    assert_eq!(
        ids(&get(&w, &scoped, &org_path).await.body),
        vec![json!(second.id)]
    );
    let r = get(&w, &scoped, &format!("/api/projects/{}/", w.project.id)).await;
    assert_eq!(r.status, 403, "{}", r.body);

    let r = get(&w, &w.key, &format!("/api/projects/{}/", w.project.id)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["organization"], json!(w.org.id));
    assert_eq!(r.body["name"], json!("Project"));
    assert_eq!(r.body["ingested_event"], json!(false));
    assert_eq!(r.body["secret_api_token"], Value::Null);
    assert_eq!(
        get(&w, &w.key, "/api/projects/@current/").await.body["id"],
        json!(w.project.id)
    );
    let r = get(&w, &w.key, &format!("{org_path}{}/", w.project.id)).await;
    assert_eq!(r.body["id"], json!(w.project.id));
    // A project of another organization is not found under this one.
    let (_, elsewhere) = second_membership(&w).await;
    let r = get(&w, &w.key, &format!("{org_path}{elsewhere}/")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = get(
        &w,
        &w.key,
        &format!("/api/projects/{}/", w.foreign_project().await.id),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn creating_a_project_gives_it_a_token_a_secret_and_a_unique_name() {
    let w = World::new().await;
    let path = format!("/api/organizations/{}/projects/", w.org.id);
    let r = call(
        &w,
        &w.key,
        "POST",
        &path,
        Some(json!({"name": "  Mobile  "})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["name"], json!("Mobile"));
    assert_eq!(r.body["organization"], json!(w.org.id));
    let token = r.body["api_token"].as_str().unwrap();
    let secret = r.body["secret_api_token"].as_str().unwrap();
    assert!(token.starts_with("phc_") && secret.starts_with("phs_"));
    // Stored with its pointers: the token and the secret find it; the secret only as a hash.
    assert_eq!(
        w.store.project_by_token(token).await.unwrap().unwrap().id,
        id
    );
    let stored = w
        .store
        .project_by_secret_hash(&hash_key(secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, id);
    assert_ne!(stored.secret_api_key_hash, secret);
    // It becomes the creator's current project; later reads never show the secret.
    assert_eq!(
        get(&w, &w.key, "/api/users/@me/").await.body["team"]["id"],
        json!(id)
    );
    assert_eq!(
        get(&w, &w.key, &format!("/api/projects/{id}/")).await.body["secret_api_token"],
        Value::Null
    );

    let r = call(&w, &w.key, "POST", &path, Some(json!({"name": "mobile"}))).await;
    let taken = "There is already a project called \"mobile\" in this organization. Choose a different name.";
    assert_error(&r, 409, "conflict", taken, None);
    // Older projects (no name claim) count too.
    let r = call(&w, &w.key, "POST", &path, Some(json!({"name": "PROJECT"}))).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = call(&w, &w.key, "POST", &path, Some(json!({"name": "   "}))).await;
    assert_error(
        &r,
        400,
        "blank",
        "This field may not be blank.",
        Some("name"),
    );
    let r = call(
        &w,
        &w.key,
        "POST",
        &path,
        Some(json!({"name": "x".repeat(201)})),
    )
    .await;
    assert_error(
        &r,
        400,
        "max_length",
        "Ensure this field has no more than 200 characters.",
        Some("name"),
    );
    let r = call(&w, &w.key, "POST", &path, Some(json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["name"], json!("Default project"));

    let reader = key_with(
        &w,
        w.user.id,
        &["project:read", "organization:read"],
        None,
        None,
    )
    .await;
    let r = call(&w, &reader, "POST", &path, Some(json!({"name": "Nope"}))).await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'project:write'",
        None,
    );
    let stranger = w.foreign_project().await;
    let other_path = format!("/api/organizations/{}/projects/", stranger.organization_id);
    let r = call(
        &w,
        &w.key,
        "POST",
        &other_path,
        Some(json!({"name": "Sneaky"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        w.store
            .organization_projects(&w.org.id)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn renaming_a_project_keeps_names_unique() {
    let w = World::new().await;
    let org_path = format!("/api/organizations/{}/projects/", w.org.id);
    let created = call(&w, &w.key, "POST", &org_path, Some(json!({"name": "Web"})))
        .await
        .body;
    let web = created["id"].as_i64().unwrap();

    let r = call(
        &w,
        &w.key,
        "PATCH",
        &format!("/api/projects/{web}/"),
        Some(json!({"name": "Website", "timezone": "Europe/Paris"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], json!("Website"));
    assert_eq!(w.store.project(web).await.unwrap().unwrap().name, "Website");
    // The old name is free again; a case change of one's own name is fine.
    let r = call(
        &w,
        &w.key,
        "PATCH",
        &format!("{org_path}{}/", w.project.id),
        Some(json!({"name": "web"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &w,
        &w.key,
        "PATCH",
        &format!("{org_path}{web}/"),
        Some(json!({"name": "WEBSITE"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &w,
        &w.key,
        "PATCH",
        &format!("{org_path}{web}/"),
        Some(json!({"name": "Web "})),
    )
    .await;
    let taken =
        "There is already a project called \"Web\" in this organization. Choose a different name.";
    assert_error(&r, 409, "conflict", taken, None);
    let r = call(
        &w,
        &w.key,
        "PATCH",
        &format!("{org_path}{web}/"),
        Some(json!({"name": null})),
    )
    .await;
    assert_error(&r, 400, "null", "This field may not be null.", Some("name"));
    // Unknown settings are ignored, as DRF does.
    let r = call(
        &w,
        &w.key,
        "PATCH",
        &format!("{org_path}{web}/"),
        Some(json!({"anonymize_ips": true})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], json!("WEBSITE"));

    let scoped = key_with(
        &w,
        w.user.id,
        &["project:write"],
        Some(vec![w.project.id]),
        None,
    )
    .await;
    let r = call(
        &w,
        &scoped,
        "PATCH",
        &format!("/api/projects/{web}/"),
        Some(json!({"name": "X"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call(&w, &w.key, "DELETE", &format!("/api/projects/{web}/"), None).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn parallel_creates_and_renames_to_one_name_give_one_winner() {
    let w = World::new().await;
    let path = format!("/api/organizations/{}/projects/", w.org.id);
    let body = || Some(json!({"name": "Race"}));
    let creates =
        futures::future::join_all((0..8).map(|_| call(&w, &w.key, "POST", &path, body()))).await;
    let mut statuses: Vec<u16> = creates.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409, 409, 409, 409, 409, 409, 409],
        "{:?}",
        creates.iter().map(|r| &r.body).collect::<Vec<_>>()
    );

    // Two other projects renamed to one new name at once: one gets it.
    let a = call(&w, &w.key, "POST", &path, Some(json!({"name": "A"})))
        .await
        .body["id"]
        .clone();
    let b = call(&w, &w.key, "POST", &path, Some(json!({"name": "B"})))
        .await
        .body["id"]
        .clone();
    let w = &w;
    let rename = |id: Value| async move {
        let path = format!("/api/projects/{id}/");
        call(w, &w.key, "PATCH", &path, Some(json!({"name": "Both"}))).await
    };
    let (ra, rb) = futures::join!(rename(a), rename(b));
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} {}", ra.body, rb.body);
    let names: Vec<String> = w
        .store
        .organization_projects(&w.org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.to_lowercase())
        .collect();
    assert_eq!(names.iter().filter(|n| *n == "both").count(), 1);
    assert_eq!(names.iter().filter(|n| *n == "race").count(), 1);
}
