//! Local-evaluation definitions (evaluation-rules.md §4): paths, auth, payload, ETag and 304.

use serde_json::{Value, json};
use shared::http::ApiRequest;

use crate::support::{Sdk, body, everyone, header};

const PATHS: [&str; 3] = [
    "/flags/definitions",
    "/api/feature_flag/local_evaluation/",
    "/api/projects/@current/feature_flags/local_evaluation",
];

#[tokio::test]
async fn secret_key_gets_the_payload_on_every_path() {
    let sdk = Sdk::new().await;
    sdk.group_type(0, "company").await;
    let base = sdk
        .create(json!({"key": "z-base", "filters": everyone(40.0)}))
        .await;
    sdk.create(json!({"key": "a-dependent", "filters": {"groups": [{"properties": [
        {"key": base.to_string(), "type": "flag", "operator": "flag_evaluates_to", "value": true}], "rollout_percentage": 100}]}}))
        .await;
    sdk.create(json!({"key": "m-off", "active": false, "filters": everyone(100.0)}))
        .await;
    for path in PATHS {
        let r = sdk.definitions_as(path, &sdk.world.secret_key).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        let payload = body(&r);
        let keys: Vec<&str> = payload["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["a-dependent", "m-off", "z-base"]);
        assert_eq!(payload["group_type_mapping"], json!({"0": "company"}));
        assert_eq!(payload["cohorts"], json!({}));
        let dependency = &payload["flags"][0]["filters"]["groups"][0]["properties"][0];
        assert_eq!(dependency["key"], "z-base");
        assert_eq!(dependency["dependency_chain"], json!(["z-base"]));
        assert_eq!(payload["flags"][1]["active"], false);
        let flag = &payload["flags"][2];
        for field in [
            "id",
            "team_id",
            "name",
            "key",
            "filters",
            "deleted",
            "active",
            "ensure_experience_continuity",
            "version",
            "evaluation_runtime",
            "bucketing_identifier",
        ] {
            assert!(flag.get(field).is_some(), "{field} missing from {flag}");
        }
        assert_eq!(flag["team_id"], sdk.world.project.id);
        assert_eq!(
            header(&r, "cache-control"),
            Some("private, must-revalidate")
        );
    }
}

#[tokio::test]
async fn etag_and_not_modified() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "one", "filters": everyone(10.0)}))
        .await;
    let first = sdk.definitions_as(PATHS[0], &sdk.world.secret_key).await;
    let etag = header(&first, "etag").unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let again = poll(&sdk, &etag).await;
    assert_eq!(again.status, 304);
    assert_eq!(again.body, None, "304 has an empty body");
    assert_eq!(header(&again, "etag"), Some(etag.as_str()));

    sdk.create(json!({"key": "two", "filters": everyone(10.0)}))
        .await;
    let changed = poll(&sdk, &etag).await;
    assert_eq!(changed.status, 200);
    assert_eq!(body(&changed)["flags"].as_array().unwrap().len(), 2);
    let newer = header(&changed, "etag").unwrap().to_string();
    assert_ne!(newer, etag);

    sdk.group_type(2, "team").await;
    let mapped = poll(&sdk, &newer).await;
    assert_eq!(
        mapped.status, 200,
        "a new group type changes the definitions"
    );
    assert_eq!(body(&mapped)["group_type_mapping"], json!({"2": "team"}));
}

async fn poll(sdk: &Sdk, etag: &str) -> shared::http::ApiResponse {
    let req = ApiRequest::new("GET", "/flags/definitions")
        .with_query("token", sdk.token())
        .with_query("send_cohorts", "")
        .with_header("authorization", &format!("Bearer {}", sdk.world.secret_key))
        .with_header("if-none-match", etag);
    sdk.send(req).await
}

#[tokio::test]
async fn personal_keys_need_feature_flag_read_and_access() {
    let sdk = Sdk::new().await;
    let reader = sdk
        .world
        .add_key(sdk.world.user.id, &["feature_flag:read"], None)
        .await;
    assert_eq!(sdk.definitions_as(PATHS[0], &reader).await.status, 200);
    let writer = sdk
        .world
        .add_key(sdk.world.user.id, &["feature_flag:write"], None)
        .await;
    assert_eq!(sdk.definitions_as(PATHS[1], &writer).await.status, 200);
    let other_scope = sdk
        .world
        .add_key(sdk.world.user.id, &["activity_log:read"], None)
        .await;
    let r = sdk.definitions_as(PATHS[0], &other_scope).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        body(&r)["detail"],
        "API key missing required scope 'feature_flag:read'"
    );
    let elsewhere = sdk
        .world
        .add_key(
            sdk.world.user.id,
            &["*"],
            Some(vec![sdk.world.project.id + 1000]),
        )
        .await;
    assert_eq!(sdk.definitions_as(PATHS[0], &elsewhere).await.status, 403);
}

#[tokio::test]
async fn wrong_credentials_and_tokens() {
    let sdk = Sdk::new().await;
    let r = sdk.definitions_as(PATHS[0], "phs_wrong").await;
    assert_eq!(r.status, 401);
    assert_eq!(body(&r)["detail"], "Project secret API key is invalid.");
    let r = sdk.definitions_as(PATHS[0], sdk.token()).await;
    assert_eq!(r.status, 401, "the public token is not a secret");
    let anonymous = ApiRequest::new("GET", "/flags/definitions").with_query("token", sdk.token());
    let r = sdk.send(anonymous).await;
    assert_eq!(r.status, 401);
    assert_eq!(body(&r)["code"], "not_authenticated");

    let other = sdk.world.foreign_project().await;
    let foreign = ApiRequest::new("GET", "/flags/definitions")
        .with_query("token", &other.api_token)
        .with_header("authorization", &format!("Bearer {}", sdk.world.secret_key));
    assert_eq!(sdk.send(foreign).await.status, 403);
    // posthog-rs names the project in a header instead of `?token=`.
    let by_header = ApiRequest::new("GET", "/flags/definitions")
        .with_header("x-posthog-project-api-key", &other.api_token)
        .with_header("authorization", &format!("Bearer {}", sdk.world.secret_key));
    assert_eq!(sdk.send(by_header).await.status, 403);

    let unknown = ApiRequest::new("GET", "/flags/definitions")
        .with_query("token", "phc_unknown")
        .with_header("authorization", &format!("Bearer {}", sdk.world.secret_key));
    let r = sdk.send(unknown).await;
    assert_eq!(r.status, 401);
    assert_eq!(body(&r)["code"], "authentication_failed");

    let no_token = ApiRequest::new("GET", "/flags/definitions")
        .with_header("authorization", &format!("Bearer {}", sdk.world.secret_key));
    assert_eq!(
        sdk.send(no_token).await.status,
        200,
        "a secret key names its project"
    );

    let post = ApiRequest::new("POST", "/flags/definitions")
        .with_header("authorization", &format!("Bearer {}", sdk.world.secret_key));
    assert_eq!(sdk.send(post).await.status, 405);
}

#[tokio::test]
async fn encrypted_flags_and_their_dependents_stay_on_the_server() {
    let sdk = Sdk::new().await;
    let secret = sdk
        .create(json!({"key": "secret", "is_remote_configuration": true, "has_encrypted_payloads": true,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": "1"}}}))
        .await;
    sdk.create(json!({"key": "on-secret", "filters": {"groups": [{"properties": [
        {"key": secret.to_string(), "type": "flag", "operator": "flag_evaluates_to", "value": true}], "rollout_percentage": 100}]}}))
        .await;
    sdk.create(json!({"key": "plain", "filters": everyone(1.0)}))
        .await;
    let r = sdk.definitions_as(PATHS[0], &sdk.world.secret_key).await;
    let keys: Vec<Value> = body(&r)["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, [json!("plain")]);
}

#[tokio::test]
async fn project_path_checks_the_project() {
    let sdk = Sdk::new().await;
    let path = format!(
        "/api/projects/{}/feature_flags/local_evaluation/",
        sdk.world.project.id
    );
    let r = sdk.definitions_as(&path, &sdk.world.key).await;
    assert_eq!(r.status, 200);
    let r = sdk
        .definitions_as(
            "/api/projects/999999/feature_flags/local_evaluation/",
            &sdk.world.key,
        )
        .await;
    assert_eq!(r.status, 404);
}
