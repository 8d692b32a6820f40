//! What posthog-js in a browser calls, as it sends it: the remote config (`/array/{token}/config`
//! and `config.js`), `/flags/?v=2&compression=base64` as a base64 form, and events gzipped as
//! `text/plain` under `compression=gzip-js`.

use base64::Engine;
use serde_json::{Value, json};
use shared::http::{ApiRequest, ApiResponse};
use shared::store::PersonStore;

use crate::support::{Sdk, body, everyone, gzip, header, text, with_property};

async fn get(sdk: &Sdk, path: &str) -> ApiResponse {
    sdk.send(ApiRequest::new("GET", path).with_header("origin", "http://127.0.0.1:1"))
        .await
}

fn raw_text(r: &ApiResponse) -> &str {
    r.body.as_ref().and_then(Value::as_str).unwrap_or_default()
}

/// The `config` object the script assigns, read back as JSON.
fn script_config(js: &str, token: &str) -> Value {
    let assignment = format!("window._POSTHOG_REMOTE_CONFIG['{token}'] = {{\n    config: ");
    let start = js.find(&assignment).expect("assignment") + assignment.len();
    let end = js[start..].find(",\n    siteApps: []").expect("siteApps") + start;
    serde_json::from_str(&js[start..end]).expect("config is JSON")
}

#[tokio::test]
async fn remote_config_turns_every_product_but_flags_off() {
    let sdk = Sdk::new().await;
    let path = format!("/array/{}/config", sdk.token());
    let r = get(&sdk, &path).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "cache-control"), Some("public, max-age=300"));
    assert_eq!(header(&r, "vary"), Some("Origin, Referer"));
    let config = body(&r);
    assert_eq!(config["hasFeatureFlags"], false, "no flags yet");
    for off in [
        "sessionRecording",
        "heatmaps",
        "conversations",
        "productTours",
        "captureDeadClicks",
        "capturePerformance",
        "autocaptureExceptions",
    ] {
        assert_eq!(config[off], false, "{off}");
    }
    assert_eq!(config["errorTracking"]["autocaptureExceptions"], false);
    assert_eq!(config["logs"]["captureConsoleLogs"], false);
    assert_eq!(config["siteApps"], json!([]));
    assert_eq!(config["supportedCompression"], json!(["gzip", "gzip-js"]));
    assert_eq!(config["analytics"]["endpoint"], "/i/v0/e/");
    assert!(config.get("token").is_none(), "sanitized as PostHog does");
    assert!(
        config.get("surveys").is_none(),
        "posthog-js loads surveys.js on `false`"
    );

    // Only active flags count, and the next request sees a new one.
    let id = sdk
        .create(json!({"key": "off", "active": false, "filters": everyone(100.0)}))
        .await;
    assert!(id > 0);
    assert_eq!(body(&get(&sdk, &path).await)["hasFeatureFlags"], false);
    sdk.create(json!({"key": "on", "filters": everyone(100.0)}))
        .await;
    assert_eq!(body(&get(&sdk, &path).await)["hasFeatureFlags"], true);
    assert_eq!(
        body(&get(&sdk, &format!("{path}/")).await)["hasFeatureFlags"],
        true
    );
    let staged = get(&sdk, &format!("/prod{path}")).await;
    assert_eq!(staged.status, 200, "a stage prefix still routes");
}

#[tokio::test]
async fn remote_config_script_sets_the_same_config_under_the_token() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "on", "filters": everyone(100.0)}))
        .await;
    let token = sdk.token().to_string();
    let r = get(&sdk, &format!("/array/{token}/config.js")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "content-type"), Some("application/javascript"));
    assert_eq!(header(&r, "cache-control"), Some("public, max-age=300"));
    let js = raw_text(&r);
    assert!(js.starts_with(
        "(function() {\n  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
    ));
    assert!(js.ends_with("\n  }\n})();"), "{js}");
    let mut json_config = body(&get(&sdk, &format!("/array/{token}/config")).await);
    json_config.as_object_mut().unwrap().remove("siteApps");
    assert_eq!(script_config(js, &token), json_config);

    // As the Lambda answer: the script goes out as it is, not as a JSON string.
    let lambda = r.into_lambda();
    assert_eq!(lambda.headers()["content-type"], "application/javascript");
    let lambda_http::Body::Text(sent) = lambda.body() else {
        panic!("not text")
    };
    assert!(sent.starts_with("(function() {"));
}

#[tokio::test]
async fn remote_config_errors_are_posthogs() {
    let sdk = Sdk::new().await;
    for path in ["/array/phc_unknown/config", "/array/phc_unknown/config.js"] {
        let r = get(&sdk, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, None, "{path}: empty body");
    }
    let r = get(&sdk, "/array/token.with.dots/config").await;
    assert_eq!(r.status, 400);
    assert_eq!(text(&r), "Invalid token format");
    let r = get(&sdk, &format!("/array/{}/config.js", "a".repeat(201))).await;
    assert_eq!(r.status, 400);
    assert_eq!(text(&r), "Token too long");

    let path = format!("/array/{}/config.js", sdk.token());
    let head = sdk.send(ApiRequest::new("HEAD", &path)).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("application/javascript")
    );
    let options = sdk.send(ApiRequest::new("OPTIONS", &path)).await;
    assert_eq!(options.status, 204);
    assert_eq!(header(&options, "allow"), Some("GET, OPTIONS, HEAD"));
    let post = sdk.send(ApiRequest::new("POST", &path)).await;
    assert_eq!(post.status, 405);
}

/// posthog-js's `Compression.Base64` body: `data=` + the URI-encoded base64 of the JSON.
fn base64_form(body: &Value) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    let encoded: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
    format!("data={encoded}").into_bytes()
}

#[tokio::test]
async fn flags_as_posthog_js_posts_them() {
    let sdk = Sdk::new().await;
    sdk.create(json!({"key": "pro-only", "filters": with_property(
        json!({"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}))}))
        .await;
    let request = json!({"token": sdk.token(), "distinct_id": "anon-1", "groups": {},
        "person_properties": {"plan": "pro", "$initial_referrer": "$direct"},
        "$anon_distinct_id": "anon-1", "timezone": "UTC"});
    let mut req = ApiRequest::new("POST", "/flags/")
        .with_query("v", "2")
        .with_query("compression", "base64")
        .with_header("content-type", "application/x-www-form-urlencoded");
    req.body = base64_form(&request);
    let r = sdk.send(req).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(body(&r)["flags"]["pro-only"]["enabled"], true);
}

#[tokio::test]
async fn events_gzipped_as_text_plain_reach_the_person() {
    let sdk = Sdk::new().await;
    let events = json!([{"event": "$identify", "properties": {"token": sdk.token(),
        "distinct_id": "user-1", "$anon_distinct_id": "anon-1", "$set": {"plan": "pro"}},
        "timestamp": "2026-01-01T00:00:00Z", "uuid": "0190f0a0-0000-7000-8000-000000000001"}]);
    let mut req = ApiRequest::new("POST", "/i/v0/e/")
        .with_query("ip", "0")
        .with_query("_", "1767225600000")
        .with_query("ver", "1.449.2")
        .with_query("compression", "gzip-js")
        .with_header("content-type", "text/plain");
    req.body = gzip(events.to_string().as_bytes());
    let r = sdk.send(req).await;
    assert_eq!(r.status, 200, "{r:?}");
    let person = sdk
        .world
        .store
        .person_by_distinct_id(sdk.world.project.id, "user-1")
        .await
        .unwrap()
        .expect("person from the gzipped $identify");
    assert_eq!(person.properties["plan"], "pro");
}
