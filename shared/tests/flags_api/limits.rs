//! Request limits and body errors: 1 MB bodies, the DynamoDB item budget, malformed JSON,
//! non-object bodies, unsupported media types. Never a 500.

use serde_json::{Value, json};

use crate::common::{World, assert_error};
use crate::support::*;

/// A boolean flag whose `true` payload is a JSON string of `len` characters.
fn big_payload_body(key: &str, len: usize) -> Value {
    let text = serde_json::to_string(&"x".repeat(len)).unwrap();
    json!({"key": key, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "payloads": {"true": text}}})
}

fn assert_too_large_to_store(r: &crate::common::Response) {
    assert_eq!(r.status, 400, "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("This feature flag is too large to store: it takes ")
            && detail.contains("the limit is 194560 bytes"),
        "{detail}"
    );
    assert_eq!(
        r.body,
        json!({"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": null})
    );
}

#[tokio::test]
async fn body_over_1_mb_is_refused_before_parsing() {
    let w = World::new().await;
    let body = big_payload_body("huge", 1024 * 1024);
    let req = w.req("POST", "").with_json(&body);
    let size = req.body.len();
    let r = w.send(req).await;
    let detail = format!("Request body is {size} bytes; the limit is 1048576 bytes (1 MB).");
    assert_error(&r, 400, "request_too_large", &detail, None);
    let id = create_id(&w, json!({"key": "k"})).await;
    let r = w
        .send(w.req("PATCH", &id.to_string()).with_json(&body))
        .await;
    assert_error(
        &r,
        400,
        "request_too_large",
        &format!("Request body is {size} bytes; the limit is 1048576 bytes (1 MB)."),
        None,
    );
    assert_eq!(list(&w, &[]).await["count"], 1);
}

#[tokio::test]
async fn flag_over_the_item_budget_is_400_on_create_and_update() {
    let w = World::new().await;
    assert_too_large_to_store(
        &w.call("POST", "", Some(big_payload_body("big", 300 * 1024)))
            .await,
    );
    assert_eq!(list(&w, &[]).await["count"], 0, "nothing stored");
    // Just under the budget works, and so does its update (whose activity entry holds both).
    let f = w.create(big_payload_body("fits", 150 * 1024)).await;
    let id = id_of(&f);
    let r = patch(&w, id, big_payload_body("fits", 160 * 1024)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_too_large_to_store(&patch(&w, id, big_payload_body("fits", 250 * 1024)).await);
    assert_eq!(retrieve(&w, id).await["version"], 2);
    // Many conditions count as much as one big payload.
    let values: Vec<Value> = (0..1000)
        .map(|i| json!(format!("{i:0>200}@example.com")))
        .collect();
    let prop = json!({"key": "email", "type": "person", "operator": "exact", "value": values});
    let r = w
        .call(
            "POST",
            "",
            Some(json!({"key": "many", "filters": with_property(prop)})),
        )
        .await;
    assert_too_large_to_store(&r);
}

#[tokio::test]
async fn a_flag_at_the_budget_can_still_be_changed_entirely() {
    let w = World::new().await;
    // The update's activity entry holds the old and the new filters: twice the flag.
    let id = id_of(&w.create(big_payload_body("edge", 185 * 1024)).await);
    let r = patch(&w, id, big_payload_body("edge", 186 * 1024)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    let r = patch(
        &w,
        id,
        json!({"key": "edge-renamed", "name": "x".repeat(2000)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn encrypted_payload_growth_counts_against_the_budget() {
    let w = World::new().await;
    // ~170 KB of clear text fits, but its Fernet token (base64, +~35%) does not.
    let mut body = big_payload_body("enc", 170 * 1024);
    body["has_encrypted_payloads"] = json!(true);
    assert_too_large_to_store(&w.call("POST", "", Some(body)).await);
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let w = World::new().await;
    for text in ["{\"key\": ", "{key: 1}", "{\"key\": \"a\",}", "nul"] {
        let mut req = w
            .req("POST", "")
            .with_header("content-type", "application/json");
        req.body = text.as_bytes().to_vec();
        let expected = format!(
            "JSON parse error - {}",
            serde_json::from_str::<Value>(text).unwrap_err()
        );
        assert_error(&w.send(req).await, 400, "parse_error", &expected, None);
    }
    let id = create_id(&w, json!({"key": "k"})).await;
    let mut req = w
        .req("PATCH", &id.to_string())
        .with_header("content-type", "application/json; charset=utf-8");
    req.body = b"{\"name\": \"unterminated".to_vec();
    let expected = format!(
        "JSON parse error - {}",
        serde_json::from_str::<Value>("{\"name\": \"unterminated").unwrap_err()
    );
    assert_error(&w.send(req).await, 400, "parse_error", &expected, None);
    assert_eq!(retrieve(&w, id).await["version"], 1);
}

#[tokio::test]
async fn non_object_bodies_are_400() {
    let w = World::new().await;
    for (body, kind) in [
        (json!([1]), "list"),
        (json!("key"), "str"),
        (json!(5), "int"),
        (json!(true), "bool"),
    ] {
        let r = w.send(w.req("POST", "").with_json(&body)).await;
        assert_error(
            &r,
            400,
            "invalid_input",
            &format!("Invalid data. Expected a dictionary, but got {kind}."),
            None,
        );
    }
    let id = create_id(&w, json!({"key": "k"})).await;
    let r = w
        .send(w.req("PATCH", &id.to_string()).with_json(&json!(["name"])))
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Invalid data. Expected a dictionary, but got list.",
        None,
    );
}

#[tokio::test]
async fn unsupported_media_type_is_415() {
    let w = World::new().await;
    let mut req = w.req("POST", "").with_header("content-type", "text/xml");
    req.body = b"<flag key='k'/>".to_vec();
    assert_error(
        &w.send(req).await,
        415,
        "unsupported_media_type",
        "Unsupported media type \"text/xml\" in request.",
        None,
    );
}

#[tokio::test]
async fn empty_body_reads_as_an_empty_object() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "k"})).await;
    let r = w.send(w.req("PATCH", &id.to_string())).await;
    assert_eq!((r.status, r.body["version"].clone()), (200, json!(2)));
}
