//! §3.1 defaults, §5.2 create: key rules (E1–E5), choice fields, tags and evaluation tags
//! (E34), payload normalisation, key reuse after soft delete.

use serde_json::{Value, json};
use shared::flag::Flag;
use shared::http::ApiRequest;
use shared::identity::UserSummary;
use shared::store::{FlagStore, FlagWrite};

use crate::common::{World, assert_error};
use crate::support::*;

const TAKEN: &str = "There is already a feature flag with this key.";
const CHARSET: &str = "Only letters, numbers, hyphens (-) & underscores (_) are allowed.";

#[tokio::test]
async fn create_returns_every_default() {
    let w = World::new().await;
    let before = chrono::Utc::now();
    let r = w.call("POST", "", Some(json!({"key": "defaults"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r.body;
    let id = id_of(&body);
    let created_at = body["created_at"].as_str().unwrap().to_string();
    let ts = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").unwrap();
    assert!(ts.is_match(&created_at), "{created_at}");
    let parsed = shared::time::parse(&created_at).unwrap();
    assert!(parsed >= before - chrono::TimeDelta::seconds(1) && parsed <= chrono::Utc::now());
    let user = user_json(&w.user);
    // PostHog generates a usage dashboard for every new flag (§5.2).
    let dashboard = body["usage_dashboard"].clone();
    assert!(dashboard.is_i64(), "{body}");
    let expected = json!({
        "id": id,
        "name": "",
        "key": "defaults",
        "filters": {"groups": [{"properties": [], "rollout_percentage": null}]},
        "deleted": false,
        "active": true,
        "archived": false,
        "created_by": user,
        "created_at": created_at,
        "updated_at": body["updated_at"],
        "version": 1,
        "last_modified_by": user,
        "ensure_experience_continuity": false,
        "experiment_set": [],
        "surveys": [],
        "features": [],
        "rollback_conditions": null,
        "performed_rollback": null,
        "can_edit": true,
        "tags": [],
        "evaluation_tags": [],
        "usage_dashboard": dashboard,
        "analytics_dashboards": [],
        "has_enriched_analytics": false,
        "user_access_level": "editor",
        "is_remote_configuration": false,
        "has_encrypted_payloads": false,
        "status": "ACTIVE",
        "evaluation_runtime": "all",
        "bucketing_identifier": "distinct_id",
        "last_called_at": null,
    });
    assert_eq!(body, expected);
    assert!(ts.is_match(body["updated_at"].as_str().unwrap()));
    assert_eq!(
        retrieve(&w, id).await,
        body,
        "retrieve shows what create answered"
    );
    // The user summary has exactly PostHog's keys.
    let mut summary_keys: Vec<&String> = body["created_by"].as_object().unwrap().keys().collect();
    summary_keys.sort();
    assert_eq!(
        summary_keys,
        [
            "distinct_id",
            "email",
            "first_name",
            "hedgehog_config",
            "id",
            "is_email_verified",
            "last_name",
            "role_at_organization",
            "uuid"
        ]
    );
    assert_eq!(body["created_by"]["email"], "owner@example.com");
}

#[tokio::test]
async fn create_stores_writable_fields_and_ignores_server_ones() {
    let w = World::new().await;
    let body = json!({
        "key": "everything",
        "name": "  A description  ",
        "filters": everyone(30),
        "active": false,
        "ensure_experience_continuity": null,
        "rollback_conditions": [{"threshold": 5, "operator": "gt"}],
        "performed_rollback": true,
        "has_enriched_analytics": true,
        "is_remote_configuration": true,
        "evaluation_runtime": "server",
        "bucketing_identifier": "device_id",
        "creation_context": "surveys",
        "created_at": "2020-01-02T03:04:05Z",
        "last_called_at": "2021-01-02T03:04:05.123456Z",
        "analytics_dashboards": [],
        // Server-owned or unknown: ignored.
        "id": 987654,
        "version": 42,
        "created_by": null,
        "status": "STALE",
        "usage_dashboard": 7,
        "unknown_field": {"x": 1},
    });
    let r = w.call("POST", "", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let f = r.body;
    assert_ne!(f["id"], 987654);
    assert_eq!(f["name"], "A description", "DRF trims CharFields");
    assert_eq!(f["filters"], everyone(30));
    assert_eq!(f["active"], false);
    assert_eq!(f["ensure_experience_continuity"], Value::Null);
    assert_eq!(
        f["rollback_conditions"],
        json!([{"threshold": 5, "operator": "gt"}])
    );
    assert_eq!(f["performed_rollback"], true);
    assert_eq!(f["has_enriched_analytics"], true);
    assert_eq!(f["is_remote_configuration"], true);
    assert_eq!(f["evaluation_runtime"], "server");
    assert_eq!(f["bucketing_identifier"], "device_id");
    assert_eq!(f["created_at"], "2020-01-02T03:04:05.000000Z");
    assert_eq!(f["last_called_at"], "2021-01-02T03:04:05.123456Z");
    assert_eq!(f["version"], 1, "a client version is ignored on create");
    assert_eq!(f["created_by"], user_json(&w.user));
    assert!(
        f["usage_dashboard"].is_i64(),
        "a client usage_dashboard is ignored"
    );
    assert_ne!(f["usage_dashboard"], 7);
    assert!(f.get("unknown_field").is_none() && f.get("creation_context").is_none());
    assert_eq!(
        stored(&w, id_of(&f)).await.unwrap().creation_context,
        "surveys"
    );
}

#[tokio::test]
async fn create_with_active_true_resets_performed_rollback() {
    let w = World::new().await;
    let f = w
        .create(json!({"key": "k", "active": true, "performed_rollback": true}))
        .await;
    assert_eq!(f["performed_rollback"], false);
}

#[tokio::test]
async fn form_encoded_body() {
    let w = World::new().await;
    let mut req = w
        .req("POST", "")
        .with_header("content-type", "application/x-www-form-urlencoded");
    req.body = b"key=form-flag&active=False&name=from+a+form".to_vec();
    let r = w.send(req).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.body["key"].clone(), r.body["active"].clone()),
        (json!("form-flag"), json!(false))
    );
    assert_eq!(r.body["name"], "from a form");
}

#[tokio::test]
async fn key_required_blank_null_and_max_length() {
    let w = World::new().await;
    assert_error(
        &w.call("POST", "", Some(json!({"name": "no key"}))).await,
        400,
        "required",
        "This field is required.",
        Some("key"),
    );
    assert_error(
        &w.call("POST", "", Some(json!({}))).await,
        400,
        "required",
        "This field is required.",
        Some("key"),
    );
    assert_error(
        &w.send(w.req("POST", "")).await,
        400,
        "required",
        "This field is required.",
        Some("key"),
    );
    for blank in ["", "   "] {
        let r = w.call("POST", "", Some(json!({"key": blank}))).await;
        assert_error(
            &r,
            400,
            "blank",
            "This field may not be blank.",
            Some("key"),
        );
    }
    assert_error(
        &w.call("POST", "", Some(json!({"key": null}))).await,
        400,
        "null",
        "This field may not be null.",
        Some("key"),
    );
    let r = w
        .call("POST", "", Some(json!({"key": "a".repeat(401)})))
        .await;
    assert_error(
        &r,
        400,
        "max_length",
        "Ensure this field has no more than 400 characters.",
        Some("key"),
    );
    let f = w.create(json!({"key": "a".repeat(400)})).await;
    assert_eq!(f["key"].as_str().unwrap().len(), 400);
    assert_eq!(
        list(&w, &[]).await["count"],
        1,
        "failed creates store nothing"
    );
}

#[tokio::test]
async fn key_charset() {
    let w = World::new().await;
    for bad in ["a b", "a.b", "a/b", "ключ", "a:b", "emoji-🚀", "a+b"] {
        let r = w.call("POST", "", Some(json!({"key": bad}))).await;
        assert_error(&r, 400, "invalid_key", CHARSET, Some("key"));
    }
    for good in ["a-b_C9", "UPPER", "123", "-_-"] {
        assert_eq!(w.create(json!({"key": good})).await["key"], good);
    }
}

#[tokio::test]
async fn key_unique_among_non_deleted_and_case_sensitive() {
    let w = World::new().await;
    w.create(json!({"key": "taken"})).await;
    assert_error(
        &w.call("POST", "", Some(json!({"key": "taken"}))).await,
        400,
        "unique",
        TAKEN,
        Some("key"),
    );
    assert_error(
        &w.call("POST", "", Some(json!({"key": " taken "}))).await,
        400,
        "unique",
        TAKEN,
        Some("key"),
    );
    assert_eq!(
        w.create(json!({"key": "Taken"})).await["key"],
        "Taken",
        "keys are case-sensitive"
    );
    // Another project may use the same key.
    let other = w.add_project(&w.org.id).await;
    let req = bearer(
        ApiRequest::new(
            "POST",
            &format!("/api/projects/{}/feature_flags/", other.id),
        ),
        &w.key,
    )
    .with_json(&json!({"key": "taken"}));
    assert_eq!(w.send(req).await.status, 201);
}

#[tokio::test]
async fn uniqueness_is_checked_before_charset() {
    let w = World::new().await;
    // A legacy flag whose key predates the charset rule, written straight to the store.
    let creator = UserSummary::from(&w.user);
    let legacy = Flag::new(
        w.store.next_flag_id().await.unwrap(),
        w.project.id,
        "legacy key".into(),
        creator,
        chrono::Utc::now(),
    );
    w.store
        .write_flag(FlagWrite {
            before: None,
            after: legacy,
            purge: vec![],
            feature: None,
            dashboard: None,
            schedule: None,
            activity: None,
        })
        .await
        .unwrap();
    assert_error(
        &w.call("POST", "", Some(json!({"key": "legacy key"}))).await,
        400,
        "unique",
        TAKEN,
        Some("key"),
    );
    assert_error(
        &w.call("POST", "", Some(json!({"key": "other key"}))).await,
        400,
        "invalid_key",
        CHARSET,
        Some("key"),
    );
}

#[tokio::test]
async fn key_error_comes_before_filters_error() {
    let w = World::new().await;
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "", "filters": {"groups": []}})),
        )
        .await;
    assert_error(
        &r,
        400,
        "blank",
        "This field may not be blank.",
        Some("key"),
    );
    w.create(json!({"key": "dup"})).await;
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "dup", "filters": {"groups": []}})),
        )
        .await;
    assert_error(&r, 400, "unique", TAKEN, Some("key"));
}

#[tokio::test]
async fn soft_deleted_flag_with_same_key_is_purged_and_key_reused() {
    let w = World::new().await;
    let old = create_id(&w, json!({"key": "reuse", "name": "old"})).await;
    patch_ok(&w, old, json!({"deleted": true})).await;
    let new = w.create(json!({"key": "reuse", "name": "new"})).await;
    assert_ne!(id_of(&new), old);
    assert_eq!(new["version"], 1);
    let r = get(&w, &old.to_string()).await;
    assert_error(&r, 404, "not_found", "Not found.", None);
    assert!(
        stored(&w, old).await.is_none(),
        "the soft-deleted row is hard-deleted"
    );
    assert_eq!(keys(&list(&w, &[]).await), ["reuse"]);
}

#[tokio::test]
async fn choice_fields() {
    let w = World::new().await;
    for (field, bad) in [
        ("evaluation_runtime", "both"),
        ("evaluation_runtime", "SERVER"),
        ("bucketing_identifier", "user_id"),
        ("creation_context", "bogus"),
    ] {
        let r = w
            .call("POST", "", Some(json!({"key": "k", field: bad})))
            .await;
        assert_error(
            &r,
            400,
            "invalid_choice",
            &format!("\"{bad}\" is not a valid choice."),
            Some(field),
        );
    }
    for runtime in ["server", "client", "all"] {
        let f = w
            .create(json!({"key": format!("rt-{runtime}"), "evaluation_runtime": runtime}))
            .await;
        assert_eq!(f["evaluation_runtime"], runtime);
    }
    for context in [
        "feature_flags",
        "experiments",
        "surveys",
        "early_access_features",
        "web_experiments",
        "product_tours",
    ] {
        w.create(json!({"key": format!("ctx-{context}"), "creation_context": context}))
            .await;
    }
}

#[tokio::test]
async fn boolean_fields_follow_drf() {
    let w = World::new().await;
    let r = w
        .call("POST", "", Some(json!({"key": "k", "active": "maybe"})))
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Must be a valid boolean.",
        Some("active"),
    );
    let r = w
        .call("POST", "", Some(json!({"key": "k", "active": null})))
        .await;
    assert_error(
        &r,
        400,
        "null",
        "This field may not be null.",
        Some("active"),
    );
    let f = w
        .create(json!({"key": "k", "active": "false", "is_remote_configuration": "true"}))
        .await;
    assert_eq!(
        (f["active"].clone(), f["is_remote_configuration"].clone()),
        (json!(false), json!(true))
    );
}

#[tokio::test]
async fn analytics_dashboards_must_exist() {
    let w = World::new().await;
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "k", "analytics_dashboards": [123]})),
        )
        .await;
    assert_error(
        &r,
        400,
        "does_not_exist",
        "Invalid pk \"123\" - object does not exist.",
        Some("analytics_dashboards"),
    );
}

#[tokio::test]
async fn tags_are_trimmed_lowercased_and_deduplicated() {
    let w = World::new().await;
    let f = w
        .create(json!({"key": "k", "tags": [" Beta", "beta", "Team-A", "BETA "]}))
        .await;
    assert_eq!(f["tags"], json!(["beta", "team-a"]));
    let id = id_of(&f);
    assert_eq!(
        patch_ok(&w, id, json!({"name": "x"})).await["tags"],
        json!(["beta", "team-a"]),
        "kept when absent"
    );
    assert_eq!(
        patch_ok(&w, id, json!({"tags": ["New"]})).await["tags"],
        json!(["new"]),
        "replaced when present"
    );
    assert_eq!(
        patch_ok(&w, id, json!({"tags": []})).await["tags"],
        json!([])
    );
}

#[tokio::test]
async fn evaluation_tags_must_be_a_subset_of_tags() {
    let w = World::new().await;
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "k", "tags": ["a"], "evaluation_tags": ["z", "a", "b"]})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Evaluation tags must be a subset of tags. Invalid evaluation tags: b, z",
        None,
    );
    // Without tags in the same body every evaluation tag is invalid.
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "k", "evaluation_tags": ["web"]})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Evaluation tags must be a subset of tags. Invalid evaluation tags: web",
        None,
    );
    // Compared after normalisation.
    let f = w
        .create(json!({"key": "k", "tags": ["Web", "api"], "evaluation_tags": [" WEB"]}))
        .await;
    assert_eq!(
        (f["tags"].clone(), f["evaluation_tags"].clone()),
        (json!(["web", "api"]), json!(["web"]))
    );
    let id = id_of(&f);
    // PATCH: evaluation tags without tags fail even if the stored tags contain them.
    let r = patch(&w, id, json!({"evaluation_tags": ["api"]})).await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Evaluation tags must be a subset of tags. Invalid evaluation tags: api",
        None,
    );
    assert_eq!(
        patch_ok(&w, id, json!({"name": "n"})).await["evaluation_tags"],
        json!(["web"]),
        "omitted → unchanged"
    );
    assert_eq!(
        patch_ok(&w, id, json!({"evaluation_tags": []})).await["evaluation_tags"],
        json!([]),
        "[] clears"
    );
}

#[tokio::test]
async fn payloads_are_stored_as_json_text() {
    let w = World::new().await;
    let cases = [
        json!({"a": 1, "b": [true, null]}),
        json!([1, 2, 3]),
        json!(5),
        json!(2.5),
        json!(true),
    ];
    for (i, value) in cases.iter().enumerate() {
        let filters = json!({"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": value}});
        let f = w
            .create(json!({"key": format!("p{i}"), "filters": filters}))
            .await;
        let text = f["filters"]["payloads"]["true"]
            .as_str()
            .unwrap_or_else(|| panic!("payload {value} not stored as text: {f}"));
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), *value);
        assert_eq!(
            retrieve(&w, id_of(&f)).await["filters"]["payloads"]["true"],
            text
        );
    }
    // Objects become Python-style JSON text, like the web app sends them.
    let filters = json!({"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": {"a": 1, "b": [true, null]}}});
    let f = w
        .create(json!({"key": "python-style", "filters": filters}))
        .await;
    assert_eq!(
        f["filters"]["payloads"]["true"],
        r#"{"a": 1, "b": [true, null]}"#
    );
    // A string payload must itself be JSON and is kept verbatim.
    let text = r#"{"nested": {"deep": [1, 2]}}"#;
    let filters = json!({"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": text}});
    let f = w
        .create(json!({"key": "verbatim", "filters": filters}))
        .await;
    assert_eq!(f["filters"]["payloads"]["true"], text);
}
