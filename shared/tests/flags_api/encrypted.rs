//! §5.7: remote configuration and encrypted payloads.

use serde_json::{Value, json};
use shared::flag::ENCRYPTED_SENTINEL;
use shared::http::ApiRequest;

use crate::common::{World, assert_error};
use crate::support::*;

const SECRET: &str = r#"{"api_key": "s3cr3t", "n": 1}"#;

fn payload_filters(text: &str) -> Value {
    json!({"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": text}})
}

async fn encrypted_remote_config(w: &World, key: &str) -> Value {
    w.create(json!({
        "key": key,
        "is_remote_configuration": true,
        "has_encrypted_payloads": true,
        "filters": payload_filters(SECRET),
    }))
    .await
}

fn parsed(v: &Value) -> Value {
    serde_json::from_str(v.as_str().unwrap_or_else(|| panic!("not JSON text: {v}"))).unwrap()
}

/// The stored payload text (ciphertext when encrypted).
async fn stored_payload(w: &World, id: i64) -> String {
    stored(w, id).await.unwrap().filters["payloads"]["true"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn encrypted_payloads_are_stored_encrypted_and_shown_decrypted_to_personal_keys() {
    let w = World::new().await;
    let created = encrypted_remote_config(&w, "config").await;
    let id = id_of(&created);
    assert_eq!(
        parsed(&created["filters"]["payloads"]["true"]),
        parsed(&json!(SECRET)),
        "create response is decrypted"
    );
    assert_eq!(created["has_encrypted_payloads"], true);

    let at_rest = stored_payload(&w, id).await;
    assert!(!at_rest.contains("s3cr3t"), "stored in clear: {at_rest}");
    assert_ne!(at_rest, ENCRYPTED_SENTINEL);
    let revealed = w
        .cipher
        .reveal(&stored(&w, id).await.unwrap().filters, true);
    assert_eq!(
        parsed(&revealed["payloads"]["true"]),
        parsed(&json!(SECRET))
    );

    assert_eq!(
        parsed(&retrieve(&w, id).await["filters"]["payloads"]["true"]),
        parsed(&json!(SECRET))
    );
    let page = list(&w, &[]).await;
    assert_eq!(
        parsed(&page["results"][0]["filters"]["payloads"]["true"]),
        parsed(&json!(SECRET))
    );
    let updated = patch_ok(&w, id, json!({"name": "renamed"})).await;
    assert_eq!(
        parsed(&updated["filters"]["payloads"]["true"]),
        parsed(&json!(SECRET))
    );
    assert_eq!(
        stored_payload(&w, id).await,
        at_rest,
        "an unrelated update keeps the ciphertext"
    );
}

#[tokio::test]
async fn remote_config_by_id_and_by_key_with_personal_key_or_project_secret() {
    let w = World::new().await;
    let id = id_of(&encrypted_remote_config(&w, "config").await);
    let read = w.add_key(w.user.id, &["feature_flag:read"], None).await;
    for credential in [w.key.as_str(), read.as_str(), w.secret_key.as_str()] {
        for target in [id.to_string(), "config".to_string()] {
            let r = raw(
                &w,
                req_as(&w, credential, "GET", &format!("{target}/remote_config")),
            )
            .await;
            assert_eq!(r.status, 200, "{target} with {}", &credential[..4]);
            let body = r.body.expect("a JSON body");
            assert_eq!(parsed(&body), parsed(&json!(SECRET)), "decrypted JSON text");
        }
    }
    // Trailing slash and @current work for the secret key too.
    let req = bearer(
        ApiRequest::new(
            "GET",
            "/api/projects/@current/feature_flags/config/remote_config/",
        ),
        &w.secret_key,
    );
    assert_eq!(raw(&w, req).await.status, 200);
}

#[tokio::test]
async fn remote_config_of_plain_payloads_and_without_payload() {
    let w = World::new().await;
    let text = r#"{"test": true}"#;
    w.create(
        json!({"key": "plain", "is_remote_configuration": true, "filters": payload_filters(text)}),
    )
    .await;
    let r = raw(&w, w.req("GET", "plain/remote_config")).await;
    assert_eq!(
        (r.status, r.body),
        (200, Some(json!(text))),
        "the JSON payload text itself"
    );
    w.create(json!({"key": "empty", "is_remote_configuration": true}))
        .await;
    let r = raw(&w, w.req("GET", "empty/remote_config")).await;
    assert_eq!(
        (r.status, r.body),
        (200, Some(Value::Null)),
        "null, not an empty body"
    );
}

#[tokio::test]
async fn remote_config_is_404_with_empty_body_unless_a_live_remote_config_flag() {
    let w = World::new().await;
    let normal = create_id(
        &w,
        json!({"key": "normal", "filters": payload_filters("1")}),
    )
    .await;
    let gone = create_id(
        &w,
        json!({"key": "gone", "is_remote_configuration": true, "filters": payload_filters("1")}),
    )
    .await;
    patch_ok(&w, gone, json!({"deleted": true})).await;
    let other = w.add_project(&w.org.id).await;
    let req = bearer(ApiRequest::new("POST", &format!("/api/projects/{}/feature_flags/", other.id)), &w.key)
        .with_json(&json!({"key": "elsewhere", "is_remote_configuration": true, "filters": payload_filters("1")}));
    let elsewhere = id_of(&w.send(req).await.body);
    for target in [
        normal.to_string(),
        "normal".into(),
        gone.to_string(),
        "gone".into(),
        elsewhere.to_string(),
        "elsewhere".into(),
        "999999999".into(),
        "no-such-key".into(),
    ] {
        let r = raw(&w, w.req("GET", &format!("{target}/remote_config"))).await;
        assert_eq!((r.status, r.body), (404, None), "{target}");
    }
}

#[tokio::test]
async fn remote_config_secret_key_of_another_project_is_403_and_unknown_is_401() {
    let w = World::new().await;
    create_id(
        &w,
        json!({"key": "config", "is_remote_configuration": true, "filters": payload_filters("1")}),
    )
    .await;
    let (_, other_secret) = project_with_secret(&w, &w.org.id).await;
    let r = w
        .send(req_as(&w, &other_secret, "GET", "config/remote_config"))
        .await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "You don't have access to the project.",
        None,
    );
    let r = w
        .send(req_as(
            &w,
            "phs_not_a_real_secret",
            "GET",
            "config/remote_config",
        ))
        .await;
    assert_error(
        &r,
        401,
        "authentication_failed",
        "Project secret API key is invalid.",
        None,
    );
    // A personal key without flag scopes can't read it either.
    let none = w.add_key(w.user.id, &["activity_log:read"], None).await;
    let r = w
        .send(req_as(&w, &none, "GET", "config/remote_config"))
        .await;
    assert_error(
        &r,
        403,
        "permission_denied",
        "API key missing required scope 'feature_flag:read'",
        None,
    );
}

#[tokio::test]
async fn echoed_sentinel_keeps_the_stored_ciphertext() {
    let w = World::new().await;
    let id = id_of(&encrypted_remote_config(&w, "config").await);
    let before = stored_payload(&w, id).await;
    let f = patch_ok(
        &w,
        id,
        json!({"has_encrypted_payloads": true, "filters": payload_filters(ENCRYPTED_SENTINEL)}),
    )
    .await;
    assert_eq!(
        parsed(&f["filters"]["payloads"]["true"]),
        parsed(&json!(SECRET))
    );
    assert_eq!(
        stored_payload(&w, id).await,
        before,
        "ciphertext kept byte for byte"
    );
    // Also when the body does not repeat has_encrypted_payloads (the flag still has it).
    let f = patch_ok(
        &w,
        id,
        json!({"filters": payload_filters(ENCRYPTED_SENTINEL), "name": "n"}),
    )
    .await;
    assert_eq!(f["has_encrypted_payloads"], true);
    assert_eq!(stored_payload(&w, id).await, before);
    let r = raw(&w, req_as(&w, &w.secret_key, "GET", "config/remote_config")).await;
    assert_eq!(parsed(&r.body.unwrap()), parsed(&json!(SECRET)));
}

#[tokio::test]
async fn new_payload_on_an_encrypted_flag_is_encrypted_again() {
    let w = World::new().await;
    let id = id_of(&encrypted_remote_config(&w, "config").await);
    let before = stored_payload(&w, id).await;
    let new = r#"{"api_key": "rotated"}"#;
    let f = patch_ok(&w, id, json!({"filters": payload_filters(new)})).await;
    assert_eq!(
        parsed(&f["filters"]["payloads"]["true"]),
        parsed(&json!(new))
    );
    let after = stored_payload(&w, id).await;
    assert!(
        after != before && !after.contains("rotated"),
        "re-encrypted: {after}"
    );
    let r = raw(&w, w.req("GET", &format!("{id}/remote_config"))).await;
    assert_eq!(parsed(&r.body.unwrap()), parsed(&json!(new)));
}

#[tokio::test]
async fn switching_encryption_on_and_off_keeps_the_payload_readable() {
    let w = World::new().await;
    let text = r#"{"plain": 1}"#;
    let id = create_id(
        &w,
        json!({"key": "config", "is_remote_configuration": true, "filters": payload_filters(text)}),
    )
    .await;
    assert_eq!(stored_payload(&w, id).await, text);
    let f = patch_ok(&w, id, json!({"has_encrypted_payloads": true})).await;
    assert_eq!(
        parsed(&f["filters"]["payloads"]["true"]),
        parsed(&json!(text))
    );
    assert!(
        !stored_payload(&w, id).await.contains("plain"),
        "encrypted at rest once switched on"
    );
    let f = patch_ok(&w, id, json!({"has_encrypted_payloads": false})).await;
    assert_eq!(
        parsed(&f["filters"]["payloads"]["true"]),
        parsed(&json!(text))
    );
    assert_eq!(
        parsed(&json!(stored_payload(&w, id).await)),
        parsed(&json!(text)),
        "stored in clear once switched off"
    );
}

#[tokio::test]
async fn renaming_an_encrypted_early_access_flag_keeps_its_payload() {
    let w = World::new().await;
    // The key rename rewrites the enrollment super group, so the stored filters change even
    // though the client sent none: the stored ciphertext must not be encrypted a second time.
    let enrollment = |key: &str| json!([{"properties": [{"key": format!("$feature_enrollment/{key}"), "type": "person", "operator": "exact", "value": ["true"]}], "rollout_percentage": 100}]);
    let mut filters = payload_filters(SECRET);
    filters["super_groups"] = enrollment("config");
    let id = create_id(
        &w,
        json!({"key": "config", "is_remote_configuration": true, "has_encrypted_payloads": true, "filters": filters}),
    )
    .await;
    let f = patch_ok(&w, id, json!({"key": "config-v2"})).await;
    assert_eq!(f["filters"]["super_groups"], enrollment("config-v2"));
    assert_eq!(
        parsed(&f["filters"]["payloads"]["true"]),
        parsed(&json!(SECRET))
    );
    let r = raw(
        &w,
        req_as(&w, &w.secret_key, "GET", "config-v2/remote_config"),
    )
    .await;
    assert_eq!(parsed(&r.body.unwrap()), parsed(&json!(SECRET)));
}
