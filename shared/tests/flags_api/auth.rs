//! §2: credentials, scopes, project resolution and access, and the order of those checks.

use serde_json::json;
use shared::http::ApiRequest;
use shared::identity::{Organization, PersonalApiKey};
use shared::store::IdentityAdmin;

use crate::common::{World, add_user, assert_error};
use crate::support::*;

const NO_SECRET: &str = "This action does not support project secret API key access";

#[tokio::test]
async fn missing_credentials_is_401_on_every_route() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    for (method, rest) in [
        ("GET", String::new()),
        ("POST", String::new()),
        ("GET", id.to_string()),
        ("PATCH", id.to_string()),
        ("PUT", id.to_string()),
        ("DELETE", id.to_string()),
        ("GET", format!("{id}/status")),
        ("GET", format!("{id}/dependent_flags")),
        ("GET", format!("{id}/remote_config")),
    ] {
        let r = w
            .send(ApiRequest::new(method, &w.path(&rest)).with_json(&json!({"name": "x"})))
            .await;
        assert_error(
            &r,
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            None,
        );
    }
    // A Bearer header without a token, or another scheme, is no credential either.
    let r = w
        .send(ApiRequest::new("GET", &w.path("")).with_header("authorization", "Bearer   "))
        .await;
    assert_error(
        &r,
        401,
        "not_authenticated",
        "Authentication credentials were not provided.",
        None,
    );
    let r = w
        .send(
            ApiRequest::new("GET", &w.path(""))
                .with_header("authorization", &format!("Basic {}", w.key)),
        )
        .await;
    assert_error(
        &r,
        401,
        "not_authenticated",
        "Authentication credentials were not provided.",
        None,
    );
}

#[tokio::test]
async fn invalid_personal_key_names_where_it_was_found() {
    let w = World::new().await;
    let r = w
        .send(bearer(
            ApiRequest::new("GET", &w.path("")),
            "phx_doesnotexist",
        ))
        .await;
    assert_error(
        &r,
        401,
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
        None,
    );

    // Any other bearer token (no JWT or OAuth support here) ends the same way.
    for token in ["not-a-key", "pha_oauthtoken", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let r = w
            .send(bearer(ApiRequest::new("GET", &w.path("")), token))
            .await;
        assert_error(
            &r,
            401,
            "authentication_failed",
            "Personal API key found in request Authorization header is invalid.",
            None,
        );
    }

    let body = json!({"personal_api_key": "phx_doesnotexist", "key": "via-body"});
    let r = w
        .send(ApiRequest::new("POST", &w.path("")).with_json(&body))
        .await;
    assert_error(
        &r,
        401,
        "authentication_failed",
        "Personal API key found in request body is invalid.",
        None,
    );

    let r = w
        .send(
            ApiRequest::new("GET", &w.path("")).with_query("personal_api_key", "phx_doesnotexist"),
        )
        .await;
    assert_error(
        &r,
        401,
        "authentication_failed",
        "Personal API key found in request query string is invalid.",
        None,
    );

    // The header wins over a valid key in the query string.
    let req = bearer(ApiRequest::new("GET", &w.path("")), "phx_doesnotexist")
        .with_query("personal_api_key", &w.key);
    assert_error(
        &w.send(req).await,
        401,
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
        None,
    );
}

#[tokio::test]
async fn valid_key_in_body_or_query_string_works() {
    let w = World::new().await;
    let body = json!({"personal_api_key": w.key, "key": "via-body"});
    let r = w
        .send(ApiRequest::new("POST", &w.path("")).with_json(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["key"], "via-body");
    let r = w
        .send(ApiRequest::new("GET", &w.path("")).with_query("personal_api_key", &w.key))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(keys(&r.body), ["via-body"]);
    // Surrounding whitespace in the header is tolerated.
    let req = ApiRequest::new("GET", &w.path(""))
        .with_header("authorization", &format!("  Bearer   {}  ", w.key));
    assert_eq!(w.send(req).await.status, 200);
}

#[tokio::test]
async fn project_api_token_is_not_a_management_credential() {
    let w = World::new().await;
    let r = w
        .send(bearer(
            ApiRequest::new("GET", &w.path("")),
            &w.project.api_token,
        ))
        .await;
    assert_error(
        &r,
        401,
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
        None,
    );
}

#[tokio::test]
async fn inactive_user_is_401() {
    let w = World::new().await;
    let mut user = add_user(&w.store, &w.org.id, "gone@example.com").await;
    let key = w.add_key(user.id, &["*"], None).await;
    assert_eq!(call_as(&w, &key, "GET", "", None).await.status, 200);
    user.is_active = false;
    w.store.put_user(&user).await.unwrap();
    let r = call_as(&w, &key, "GET", "", None).await;
    assert_error(
        &r,
        401,
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
        None,
    );
}

#[tokio::test]
async fn project_secret_key_is_refused_outside_remote_config() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    for (method, rest) in [
        ("GET", String::new()),
        ("POST", String::new()),
        ("GET", id.to_string()),
        ("PATCH", id.to_string()),
        ("DELETE", id.to_string()),
        ("GET", format!("{id}/status")),
        ("GET", format!("{id}/dependent_flags")),
    ] {
        let r = call_as(&w, &w.secret_key, method, &rest, Some(json!({"key": "x"}))).await;
        assert_error(&r, 403, "permission_denied", NO_SECRET, None);
    }
    // Refused before it is even looked up.
    let r = call_as(&w, "phs_unknown", "GET", "", None).await;
    assert_error(&r, 403, "permission_denied", NO_SECRET, None);
}

#[tokio::test]
async fn read_only_key_cannot_write_and_delete_is_403_before_405() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let read = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    for (method, rest) in [
        ("POST", String::new()),
        ("PATCH", id.to_string()),
        ("PUT", id.to_string()),
        ("DELETE", id.to_string()),
        ("DELETE", "999999999".to_string()),
    ] {
        let r = call_as(
            &w,
            &read,
            method,
            &rest,
            Some(json!({"key": "x", "name": "x"})),
        )
        .await;
        assert_error(
            &r,
            403,
            "permission_denied",
            "API key missing required scope 'feature_flag:write'",
            None,
        );
    }
    for rest in [
        String::new(),
        id.to_string(),
        format!("{id}/status"),
        format!("{id}/dependent_flags"),
    ] {
        assert_eq!(
            call_as(&w, &read, "GET", &rest, None).await.status,
            200,
            "GET {rest}"
        );
    }
    assert_eq!(retrieve(&w, id).await["name"], "", "nothing was written");
}

#[tokio::test]
async fn key_without_flag_scopes_cannot_read() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k", "is_remote_configuration": true})).await;
    let other = w
        .add_key(
            w.user.id,
            &["activity_log:read", "early_access_feature:write"],
            None,
        )
        .await;
    for rest in [
        String::new(),
        id.to_string(),
        format!("{id}/status"),
        format!("{id}/dependent_flags"),
        format!("{id}/remote_config"),
        "k/remote_config".to_string(),
    ] {
        let r = call_as(&w, &other, "GET", &rest, None).await;
        assert_error(
            &r,
            403,
            "permission_denied",
            "API key missing required scope 'feature_flag:read'",
            None,
        );
    }
}

#[tokio::test]
async fn write_scope_implies_read() {
    let w = World::new().await;
    let write = w.add_key(w.user.id, &["feature_flag:write"], None).await;
    let r = call_as(
        &w,
        &write,
        "POST",
        "",
        Some(json!({"key": "k", "is_remote_configuration": true})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = id_of(&r.body);
    for rest in [
        String::new(),
        id.to_string(),
        format!("{id}/status"),
        format!("{id}/dependent_flags"),
        format!("{id}/remote_config"),
    ] {
        assert_eq!(
            call_as(&w, &write, "GET", &rest, None).await.status,
            200,
            "GET {rest}"
        );
    }
}

#[tokio::test]
async fn legacy_key_without_scopes_has_full_access() {
    let w = World::new().await;
    let plain = shared::auth::generate_key("phx_");
    let key = PersonalApiKey {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: w.user.id,
        label: "legacy".into(),
        secure_value: shared::auth::hash_key(&plain),
        mask_value: "phx_...".into(),
        scopes: None,
        scoped_teams: None,
        scoped_organizations: None,
        created_at: chrono::Utc::now(),
    };
    w.store.put_api_key(&key).await.unwrap();
    assert_eq!(
        call_as(&w, &plain, "POST", "", Some(json!({"key": "legacy"})))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn key_restricted_to_other_projects_is_403() {
    let w = World::new().await;
    let other = w.add_project(&w.org.id).await;
    let restricted = w.add_key(w.user.id, &["*"], Some(vec![other.id])).await;
    let detail = format!(
        "API key does not have access to the requested project: ID {}.",
        w.project.id
    );
    for method in ["GET", "POST"] {
        let r = call_as(&w, &restricted, method, "", Some(json!({"key": "k"}))).await;
        assert_error(&r, 403, "permission_denied", &detail, None);
    }
    let r = w
        .send(bearer(
            ApiRequest::new("GET", &format!("/api/projects/{}/feature_flags/", other.id)),
            &restricted,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A key restricted to this very project works here.
    let mine = w.add_key(w.user.id, &["*"], Some(vec![w.project.id])).await;
    assert_eq!(call_as(&w, &mine, "GET", "", None).await.status, 200);
}

#[tokio::test]
async fn project_of_another_organization_is_403() {
    let w = World::new().await;
    let foreign = w.foreign_project().await;
    for method in ["GET", "POST"] {
        let req = bearer(
            ApiRequest::new(
                method,
                &format!("/api/projects/{}/feature_flags/", foreign.id),
            ),
            &w.key,
        )
        .with_json(&json!({"key": "k"}));
        assert_error(
            &w.send(req).await,
            403,
            "permission_denied",
            "You don't have access to the project.",
            None,
        );
    }
}

#[tokio::test]
async fn non_integer_and_unknown_projects_are_404() {
    let w = World::new().await;
    for project in ["abc", "1.5", "999999999", "-1"] {
        let req = bearer(
            ApiRequest::new("GET", &format!("/api/projects/{project}/feature_flags/")),
            &w.key,
        );
        assert_error(
            &w.send(req).await,
            404,
            "not_found",
            "Project not found.",
            None,
        );
    }
}

#[tokio::test]
async fn checks_run_in_order_auth_scope_project() {
    let w = World::new().await;
    let foreign = w.foreign_project().await;
    // Bad credential on an unknown project: authentication first.
    let req = bearer(
        ApiRequest::new("GET", "/api/projects/abc/feature_flags/"),
        "phx_nope",
    );
    assert_eq!(w.send(req).await.status, 401);
    // Missing scope on a project the user can't see: scope first.
    let read = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    let req = bearer(
        ApiRequest::new(
            "POST",
            &format!("/api/projects/{}/feature_flags/", foreign.id),
        ),
        &read,
    )
    .with_json(&json!({"key": "k"}));
    assert_error(
        &w.send(req).await,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:write'",
        None,
    );
}

#[tokio::test]
async fn current_project_alias() {
    let w = World::new().await;
    let req = bearer(
        ApiRequest::new("POST", "/api/projects/@current/feature_flags/"),
        &w.key,
    )
    .with_json(&json!({"key": "via-current"}));
    let r = w.send(req).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let listed = list(&w, &[]).await;
    assert_eq!(
        keys(&listed),
        ["via-current"],
        "created in the user's project"
    );
    let req = bearer(
        ApiRequest::new("GET", "/api/projects/@current/feature_flags"),
        &w.key,
    );
    assert_eq!(keys(&w.send(req).await.body), ["via-current"]);

    // A user whose organization has no project has no current project.
    let org = Organization {
        id: uuid::Uuid::new_v4().to_string(),
        name: "Empty".into(),
        created_at: chrono::Utc::now(),
    };
    w.store.put_organization(&org).await.unwrap();
    let lonely = add_user(&w.store, &org.id, "lonely@example.com").await;
    let key = w.add_key(lonely.id, &["*"], None).await;
    let req = bearer(
        ApiRequest::new("GET", "/api/projects/@current/feature_flags/"),
        &key,
    );
    assert_error(
        &w.send(req).await,
        404,
        "not_found",
        "Project not found.",
        None,
    );
}

#[tokio::test]
async fn trailing_slash_is_optional() {
    let w = World::new().await;
    let path = w.path("");
    let bare = path.trim_end_matches('/');
    let r = w
        .send(bearer(ApiRequest::new("POST", bare), &w.key).with_json(&json!({"key": "no-slash"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = id_of(&r.body);
    for p in [
        format!("{bare}/{id}"),
        format!("{bare}/{id}/"),
        format!("{bare}/{id}/status"),
        format!("{bare}/{id}/status/"),
    ] {
        assert_eq!(
            w.send(bearer(ApiRequest::new("GET", &p), &w.key))
                .await
                .status,
            200,
            "{p}"
        );
    }
}

#[tokio::test]
async fn unsupported_methods_and_unknown_routes() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    assert_error(
        &w.call("DELETE", "", None).await,
        405,
        "method_not_allowed",
        "Method \"DELETE\" not allowed.",
        None,
    );
    assert_error(
        &w.call("PUT", "", Some(json!({}))).await,
        405,
        "method_not_allowed",
        "Method \"PUT\" not allowed.",
        None,
    );
    let r = w
        .call("POST", &format!("{id}/status"), Some(json!({})))
        .await;
    assert_error(
        &r,
        405,
        "method_not_allowed",
        "Method \"POST\" not allowed.",
        None,
    );
    let r = w.call("GET", &format!("{id}/nonsense"), None).await;
    assert_error(&r, 404, "not_found", "Not found.", None);
}
