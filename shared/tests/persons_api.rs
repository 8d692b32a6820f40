//! Persons against DynamoDB Local: capture builds them (batched, conditional writes), the
//! persons API reads them, `/flags` merges their properties under the request's.

mod common;

use common::{Response, World};
use serde_json::{Value, json};
use shared::api::flags::DefinitionsCache;
use shared::api::{Context, Group};
use shared::http::{ApiRequest, ApiResponse};
use shared::store::PersonStore;

struct Env {
    world: World,
    cache: DefinitionsCache,
}

impl Env {
    async fn new() -> Env {
        Env {
            world: World::new().await,
            cache: DefinitionsCache::default(),
        }
    }

    async fn send(&self, group: Group, req: ApiRequest) -> ApiResponse {
        let ctx = Context {
            store: &self.world.store,
            cipher: &self.world.cipher,
            now: chrono::Utc::now(),
            cache: &self.cache,
        };
        group
            .handle(&ctx, &req.with_header("host", "testserver"))
            .await
    }

    /// `POST /batch/` with these events; asserts PostHog's `{"status": 1}`.
    async fn capture(&self, events: Value) {
        let body = json!({"api_key": self.world.project.api_token, "batch": events});
        let r = self
            .send(
                Group::Flags,
                ApiRequest::new("POST", "/batch/").with_json(&body),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, Some(json!({"status": 1})));
    }

    /// `GET /api/projects/<project>/persons/?<query>` with `key`.
    async fn persons_as(&self, key: &str, query: &[(&str, &str)]) -> Response {
        let path = format!("/api/projects/{}/persons/", self.world.project.id);
        let mut req =
            ApiRequest::new("GET", &path).with_header("authorization", &format!("Bearer {key}"));
        for (k, v) in query {
            req = req.with_query(k, v);
        }
        let ApiResponse { status, body, .. } = self.send(Group::Persons, req).await;
        Response {
            status,
            body: body.unwrap_or(Value::Null),
        }
    }

    async fn persons(&self, query: &[(&str, &str)]) -> Response {
        self.persons_as(&self.world.key, query).await
    }

    /// The person holding `distinct_id` through the API (asserting 0 or 1 result).
    async fn person(&self, distinct_id: &str) -> Option<Value> {
        let r = self.persons(&[("distinct_id", distinct_id)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let results = r.body["results"].as_array().unwrap().clone();
        assert!(results.len() <= 1);
        assert_eq!(r.body["next"], Value::Null);
        results.into_iter().next()
    }

    /// `/flags` v4 for `distinct_id` with `extra` body fields: the `flags` map.
    async fn flags(&self, distinct_id: &str, extra: Value) -> Value {
        let mut body = json!({"api_key": self.world.project.api_token, "distinct_id": distinct_id});
        if let Value::Object(fields) = extra {
            body.as_object_mut().unwrap().extend(fields);
        }
        let req = ApiRequest::new("POST", "/flags/")
            .with_query("v", "4")
            .with_json(&body);
        let r = self.send(Group::Flags, req).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body.unwrap()["flags"].clone()
    }
}

fn enabled(flags: &Value, key: &str) -> bool {
    flags[key]["enabled"].as_bool().unwrap()
}

#[tokio::test]
async fn capture_set_and_set_once_build_a_person_the_api_reads() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "$pageview", "distinct_id": "u1", "properties": {"$set": {"plan": "free"}, "$set_once": {"first": "a"}}},
        {"event": "$pageview", "distinct_id": "u1", "$set": {"plan": "pro"}, "properties": {"$set_once": {"first": "b"}}},
        {"event": "$pageview", "distinct_id": "u1", "properties": {"$set": {"gone": 1}}},
        {"event": "$pageview", "distinct_id": "u1", "properties": {"$unset": ["gone"]}},
        {"event": "$groupidentify", "distinct_id": "g", "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"x": 1}}},
    ]))
    .await;
    let person = env.person("u1").await.expect("person");
    assert_eq!(person["properties"], json!({"plan": "pro", "first": "a"}));
    assert_eq!(person["distinct_ids"], json!(["u1"]));
    assert_eq!(person["is_identified"], false);
    assert_eq!(person["name"], "u1");
    assert_eq!(person["id"], person["uuid"]);
    assert!(person["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        env.person("g").await,
        None,
        "$groupidentify makes no person"
    );
    assert_eq!(env.person("nobody").await, None);

    // A later capture updates the same person.
    env.capture(json!([{"event": "e", "distinct_id": "u1", "properties": {"$set": {"plan": "team"}, "$set_once": {"first": "c"}}}]))
        .await;
    let again = env.person("u1").await.unwrap();
    assert_eq!(again["uuid"], person["uuid"]);
    assert_eq!(again["properties"], json!({"plan": "team", "first": "a"}));
}

#[tokio::test]
async fn identify_links_and_merges_persons() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "$pageview", "distinct_id": "anon-1", "properties": {"$set": {"a": 1, "shared": "anon"}}},
        {"event": "$pageview", "distinct_id": "user-1", "properties": {"$set": {"shared": "user"}}},
    ]))
    .await;
    let anon = env.person("anon-1").await.unwrap();
    let user = env.person("user-1").await.unwrap();
    assert_ne!(anon["uuid"], user["uuid"]);

    env.capture(json!([
        {"event": "$identify", "distinct_id": "user-1", "properties": {"$anon_distinct_id": "anon-1", "$set": {"email": "u@example.com"}}},
    ]))
    .await;
    let merged = env.person("anon-1").await.unwrap();
    assert_eq!(merged["uuid"], user["uuid"]);
    assert_eq!(env.person("user-1").await.unwrap(), merged);
    assert_eq!(
        merged["properties"],
        json!({"a": 1, "shared": "user", "email": "u@example.com"})
    );
    assert_eq!(merged["is_identified"], true);
    assert_eq!(merged["name"], "u@example.com");
    let mut ids: Vec<String> = serde_json::from_value(merged["distinct_ids"].clone()).unwrap();
    ids.sort();
    assert_eq!(ids, ["anon-1", "user-1"]);
    // The anonymous person is gone.
    let gone = env
        .world
        .store
        .persons_by_ids(
            env.world.project.id,
            &[anon["uuid"].as_str().unwrap().to_string()],
        )
        .await
        .unwrap();
    assert!(gone.is_empty());

    // A new anonymous id of an identified person joins it; an identified person never merges
    // into another through $identify.
    env.capture(json!([
        {"event": "$identify", "distinct_id": "user-1", "properties": {"$anon_distinct_id": "anon-2"}},
        {"event": "$identify", "distinct_id": "user-2", "properties": {"$anon_distinct_id": "user-1"}},
    ]))
    .await;
    assert_eq!(env.person("anon-2").await.unwrap()["uuid"], user["uuid"]);
    let user2 = env.person("user-2").await.unwrap();
    assert_eq!(
        user2["uuid"], user["uuid"],
        "user-2 joined the existing person"
    );
}

#[tokio::test]
async fn concurrent_captures_for_one_person_lose_no_update() {
    let env = Env::new().await;
    // Both for an existing person and for one that does not exist yet (racing creates).
    env.capture(json!([{"event": "e", "distinct_id": "old"}]))
        .await;
    let captures = (0..8).map(|i| {
        let key = format!("k{i}");
        env.capture(json!([
            {"event": "e", "distinct_id": "old", "properties": {"$set": {key.clone(): i}}},
            {"event": "e", "distinct_id": "new", "properties": {"$set": {key: i}}},
        ]))
    });
    futures::future::join_all(captures).await;
    for distinct_id in ["old", "new"] {
        let person = env.person(distinct_id).await.unwrap();
        let props = person["properties"].as_object().unwrap();
        assert_eq!(props.len(), 8, "{distinct_id}: {props:?}");
    }
    let (all, _) = env
        .world
        .store
        .persons_page(env.world.project.id, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "one person per distinct id, no duplicates");
}

#[tokio::test]
async fn a_thousand_events_are_stored_and_paged_through() {
    let env = Env::new().await;
    // 1,000 persons with $set, then 100 persons × 10 events.
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"event": "e", "distinct_id": format!("p{i:04}"), "properties": {"$set": {"n": i}}}))
        .collect();
    env.capture(Value::Array(events)).await;
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"event": "e", "distinct_id": format!("p{:04}", i % 100), "properties": {"$set": {"last": i}}}))
        .collect();
    env.capture(Value::Array(events)).await;

    // The store's pages walk every person exactly once, resumably.
    let project = env.world.project.id;
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = env
            .world
            .store
            .persons_page(project, cursor.as_deref(), 300)
            .await
            .unwrap();
        for p in &page {
            assert!(seen.insert(p.uuid.clone()));
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1000);
    let uuids: Vec<String> = seen.into_iter().collect();
    let fetched = env
        .world
        .store
        .persons_by_ids(project, &uuids)
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1000);
    let p7 = fetched
        .iter()
        .find(|p| p.distinct_ids == ["p0007"])
        .unwrap();
    assert_eq!(p7.properties["n"], 7);
    assert_eq!(p7.properties["last"], 907);

    // The API pages with `limit` and an absolute `next` URL.
    let first = env.persons(&[("limit", "400")]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 400);
    assert_eq!(first.body["previous"], Value::Null);
    let next = first.body["next"].as_str().unwrap();
    assert!(
        next.starts_with("http://testserver/api/projects/"),
        "{next}"
    );
    let cursor = url::Url::parse(next)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "cursor")
        .unwrap()
        .1
        .to_string();
    let second = env.persons(&[("limit", "400"), ("cursor", &cursor)]).await;
    assert_eq!(second.body["results"].as_array().unwrap().len(), 400);
    assert_ne!(
        second.body["results"][0]["uuid"],
        first.body["results"][0]["uuid"]
    );
    let bad = env.persons(&[("cursor", "nope")]).await;
    common::assert_error(&bad, 404, "not_found", "Invalid cursor", None);
}

#[tokio::test]
async fn persons_api_needs_person_read() {
    let env = Env::new().await;
    let no_key = env.persons_as("", &[]).await;
    assert_eq!(no_key.status, 401, "{}", no_key.body);
    let flags_only = env
        .world
        .add_key(env.world.user.id, &["feature_flag:read"], None)
        .await;
    let denied = env.persons_as(&flags_only, &[]).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["code"], "permission_denied");
    for scope in ["person:read", "person:write"] {
        let key = env.world.add_key(env.world.user.id, &[scope], None).await;
        let ok = env.persons_as(&key, &[("distinct_id", "x")]).await;
        assert_eq!(ok.status, 200, "{scope}: {}", ok.body);
        assert_eq!(
            ok.body,
            json!({"next": null, "previous": null, "results": []})
        );
    }
    let foreign = env.world.foreign_project().await;
    let path = format!("/api/projects/{}/persons/", foreign.id);
    let req = ApiRequest::new("GET", &path)
        .with_header("authorization", &format!("Bearer {}", env.world.key));
    let r = env.send(Group::Persons, req).await;
    assert!(r.status == 403 || r.status == 404, "{}", r.status);
    let path = format!("/api/projects/{}/persons/", env.world.project.id);
    let req = ApiRequest::new("POST", &path)
        .with_header("authorization", &format!("Bearer {}", env.world.key));
    assert_eq!(env.send(Group::Persons, req).await.status, 405);
}

#[tokio::test]
async fn flags_use_stored_person_properties_and_the_request_wins() {
    let env = Env::new().await;
    env.world
        .create(json!({
            "key": "pro-only",
            "filters": {"groups": [{"properties": [
                {"key": "plan", "value": ["pro"], "operator": "exact", "type": "person"}
            ], "rollout_percentage": 100}]},
        }))
        .await;
    assert!(!enabled(&env.flags("u", json!({})).await, "pro-only"));
    env.capture(
        json!([{"event": "e", "distinct_id": "u", "properties": {"$set": {"plan": "pro"}}}]),
    )
    .await;
    assert!(enabled(&env.flags("u", json!({})).await, "pro-only"));
    assert!(
        !enabled(
            &env.flags("u", json!({"person_properties": {"plan": "free"}}))
                .await,
            "pro-only"
        ),
        "request properties win"
    );
    assert!(
        enabled(
            &env.flags("v", json!({"person_properties": {"plan": "pro"}}))
                .await,
            "pro-only"
        ),
        "no stored person: request alone"
    );
}

#[tokio::test]
async fn a_merged_person_leaves_its_static_cohorts_to_the_person_it_joins() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "$pageview", "distinct_id": "anon-9"},
        {"event": "$pageview", "distinct_id": "user-9"},
    ]))
    .await;
    let path = format!("/api/projects/{}/cohorts/", env.world.project.id);
    let req = ApiRequest::new("POST", &path)
        .with_header("authorization", &format!("Bearer {}", env.world.key))
        .with_json(&json!({"name": "Beta testers", "is_static": true, "distinct_ids": ["anon-9"]}));
    let created = env.send(Group::Cohorts, req).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let cohort_id = created.body.unwrap()["id"].as_i64().unwrap();
    let flag = env
        .world
        .create(
            json!({"key": "beta-only", "filters": {"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": cohort_id, "operator": "in"}
        ], "rollout_percentage": 100}]}}),
        )
        .await;
    assert_eq!(flag["key"], "beta-only");
    assert!(!enabled(&env.flags("user-9", json!({})).await, "beta-only"));

    // Both ids have persons, so $identify merges the anonymous one into user-9's.
    env.capture(json!([
        {"event": "$identify", "distinct_id": "user-9", "properties": {"$anon_distinct_id": "anon-9"}},
    ]))
    .await;
    let survivor = env.person("user-9").await.unwrap();
    assert_eq!(
        env.person("anon-9").await.unwrap()["uuid"],
        survivor["uuid"]
    );
    for id in ["user-9", "anon-9"] {
        assert!(
            enabled(&env.flags(id, json!({})).await, "beta-only"),
            "{id} is in the cohort through the merge"
        );
    }
}
