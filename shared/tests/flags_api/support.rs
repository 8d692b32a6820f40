//! Helpers on top of `common::World` shared by the flag API tests.

use chrono::TimeDelta;
use serde_json::{Value, json};
use shared::api::flags::DefinitionsCache;
use shared::api::{Context, feature_flags};
use shared::auth::{generate_key, hash_key};
use shared::flag::Flag;
use shared::http::{ApiRequest, ApiResponse};
use shared::identity::{Project, User};
use shared::store::{FlagStore, IdentityAdmin, IdentityWrites};
use shared::time::{self, Timestamp};

use crate::common::{Response, World};

/// The handler's answer as it leaves the function: `body: None` is an empty body (the fixture's
/// `send` cannot tell an empty body from a JSON `null`).
pub async fn raw(world: &World, req: ApiRequest) -> ApiResponse {
    let ctx = Context {
        store: &world.store,
        cipher: &world.cipher,
        now: chrono::Utc::now(),
        cache: &DefinitionsCache::default(),
    };
    feature_flags::handle(&ctx, &req.with_header("host", "testserver")).await
}

pub fn bearer(req: ApiRequest, key: &str) -> ApiRequest {
    req.with_header("authorization", &format!("Bearer {key}"))
}

/// A request on this world's project path, authenticated with `key`.
pub fn req_as(world: &World, key: &str, method: &str, rest: &str) -> ApiRequest {
    bearer(ApiRequest::new(method, &world.path(rest)), key)
}

pub async fn call_as(
    world: &World,
    key: &str,
    method: &str,
    rest: &str,
    body: Option<Value>,
) -> Response {
    let mut req = req_as(world, key, method, rest);
    if let Some(body) = body {
        req = req.with_json(&body);
    }
    world.send(req).await
}

pub async fn get(world: &World, rest: &str) -> Response {
    world.call("GET", rest, None).await
}

pub async fn retrieve(world: &World, id: i64) -> Value {
    let r = get(world, &id.to_string()).await;
    assert_eq!(r.status, 200, "retrieve {id}: {}", r.body);
    r.body
}

pub async fn patch(world: &World, id: i64, body: Value) -> Response {
    world.call("PATCH", &id.to_string(), Some(body)).await
}

/// PATCH that must succeed; returns the representation.
pub async fn patch_ok(world: &World, id: i64, body: Value) -> Value {
    let r = patch(world, id, body.clone()).await;
    assert_eq!(r.status, 200, "PATCH {id} {body} → {}", r.body);
    r.body
}

/// Creates a flag and returns its id.
pub async fn create_id(world: &World, body: Value) -> i64 {
    id_of(&world.create(body).await)
}

pub fn id_of(flag: &Value) -> i64 {
    flag["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {flag}"))
}

/// A list response's result keys, in order.
pub fn keys(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect()
}

/// `GET /feature_flags/?<params>` → 200, the page.
pub async fn list(world: &World, params: &[(&str, &str)]) -> Value {
    let mut req = world.req("GET", "");
    for (k, v) in params {
        req = req.with_query(k, v);
    }
    let r = world.send(req).await;
    assert_eq!(r.status, 200, "list {params:?}: {}", r.body);
    r.body
}

/// Sorted keys of a list call (for filters whose order doesn't matter).
pub async fn listed(world: &World, params: &[(&str, &str)]) -> Vec<String> {
    let mut k = keys(&list(world, params).await);
    k.sort();
    k
}

/// One release condition for everyone at `rollout`%.
pub fn everyone(rollout: u32) -> Value {
    json!({"groups": [{"properties": [], "rollout_percentage": rollout}]})
}

/// A flag-dependency property on flag `id`.
pub fn depends_on(id: i64) -> Value {
    json!({"key": id.to_string(), "type": "flag", "value": true, "operator": "flag_evaluates_to"})
}

/// Filters whose single group depends on every flag in `ids`.
pub fn filters_depending_on(ids: &[i64]) -> Value {
    let props: Vec<Value> = ids.iter().map(|id| depends_on(*id)).collect();
    json!({"groups": [{"properties": props, "rollout_percentage": 100}]})
}

/// Filters with one property in one group.
pub fn with_property(prop: Value) -> Value {
    json!({"groups": [{"properties": [prop], "rollout_percentage": 100}]})
}

pub fn ago(days: i64, hours: i64) -> String {
    let ts: Timestamp = chrono::Utc::now() - TimeDelta::days(days) - TimeDelta::hours(hours);
    time::format(&ts)
}

/// PostHog's `UserBasicSerializer` shape for a user.
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "uuid": u.uuid,
        "distinct_id": u.distinct_id,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "email": u.email,
        "is_email_verified": null,
        "hedgehog_config": null,
        "role_at_organization": null,
    })
}

/// A project of `org_id` whose secret key (`phs_…`) the test knows.
pub async fn project_with_secret(world: &World, org_id: &str) -> (Project, String) {
    let secret = generate_key("phs_");
    let project = Project {
        id: world.store.next_id("project").await.unwrap(),
        organization_id: org_id.into(),
        name: "With secret".into(),
        api_token: generate_key("phc_"),
        secret_api_key_hash: hash_key(&secret),
        created_at: chrono::Utc::now(),
    };
    world.store.put_project(&project).await.unwrap();
    (project, secret)
}

/// The flag as stored in DynamoDB (ciphertext included).
pub async fn stored(world: &World, id: i64) -> Option<Flag> {
    world.store.get_flag(world.project.id, id).await.unwrap()
}

/// Every stored flag of the world's project, deleted ones included.
pub async fn stored_all(world: &World) -> Vec<Flag> {
    world.store.project_flags(world.project.id).await.unwrap()
}

/// Stores flags as a version before the indexes did: the flag items alone, live ones with
/// their key items (no dependency, deleted-key or list index items, no markers).
pub async fn store_as_before_indexes(world: &World, flags: &[Flag]) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = &world.store;
    let table = &store.tables.flags;
    for flag in flags {
        let mut item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(flag).unwrap();
        let pk = AttributeValue::S(format!("PROJECT#{}", flag.project_id));
        item.insert("pk".into(), pk.clone());
        item.insert("sk".into(), AttributeValue::S(format!("FLAG#{}", flag.id)));
        // Versions before the indexes stored every flag at revision 1 or more.
        let revision = flag.revision.max(1).to_string();
        item.insert("revision".into(), AttributeValue::N(revision));
        store
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
        if !flag.deleted {
            store
                .client
                .put_item()
                .table_name(table)
                .item("pk", pk)
                .item("sk", AttributeValue::S(format!("FLAGKEY#{}", flag.key)))
                .item("flag_id", AttributeValue::N(flag.id.to_string()))
                .send()
                .await
                .unwrap();
        }
    }
}
