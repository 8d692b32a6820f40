//! The persons API beyond the list (issue 13) and the static-cohort member actions, against
//! DynamoDB Local: one person, its cohorts, property values, property changes racing captures,
//! bulk deletes and everything they must take with them, and adding/removing static members.

mod common;

use common::{Response, World, assert_error};
use serde_json::{Value, json};
use shared::api::Group;
use shared::http::ApiRequest;
use shared::store::{CohortStore, HashKeyOverrideStore, PersonStore};

struct Env {
    world: World,
}

impl Env {
    async fn new() -> Env {
        Env {
            world: World::new().await,
        }
    }

    fn project(&self) -> i64 {
        self.world.project.id
    }

    /// `POST /batch/` with these events. A 503 (capture lost too many races to concurrent
    /// writers of the same person) is sent again, as SDKs do.
    async fn capture(&self, events: Value) {
        let body = json!({"api_key": self.world.project.api_token, "batch": events});
        for _ in 0..10 {
            let req = ApiRequest::new("POST", "/batch/").with_json(&body);
            // Boxed: the handlers' futures are large in debug builds, and tests nest several.
            let r = Box::pin(self.world.send_to(Group::Flags, req)).await;
            if r.status != 503 {
                assert_eq!(r.status, 200, "{:?}", r.body);
                return;
            }
        }
        panic!("capture kept answering 503");
    }

    /// `method /api/projects/<p>/<rest>` to `group` as `key`; `query` pairs, optional JSON body.
    async fn call_as(
        &self,
        key: &str,
        group: Group,
        method: &str,
        rest: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        self.world
            .call_group(group, key, method, rest, query, body)
            .await
    }

    async fn persons(&self, method: &str, rest: &str, body: Option<Value>) -> Response {
        let rest = format!("persons/{rest}");
        self.call_as(&self.world.key, Group::Persons, method, &rest, &[], body)
            .await
    }

    async fn persons_get(&self, rest: &str, query: &[(&str, &str)]) -> Response {
        let rest = format!("persons/{rest}");
        self.call_as(&self.world.key, Group::Persons, "GET", &rest, query, None)
            .await
    }

    async fn cohorts(&self, method: &str, rest: &str, body: Option<Value>) -> Response {
        let rest = format!("cohorts/{rest}");
        self.call_as(&self.world.key, Group::Cohorts, method, &rest, &[], body)
            .await
    }

    /// The stored person holding `distinct_id`.
    async fn person(&self, distinct_id: &str) -> Option<shared::person::Person> {
        self.world
            .store
            .person_by_distinct_id(self.project(), distinct_id)
            .await
            .unwrap()
    }

    async fn uuid(&self, distinct_id: &str) -> String {
        self.person(distinct_id).await.expect(distinct_id).uuid
    }

    async fn create_cohort(&self, body: Value) -> Value {
        let r = self.cohorts("POST", "", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    async fn cohort(&self, id: i64) -> Value {
        let r = self.cohorts("GET", &format!("{id}/"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// `/flags` v4 for `distinct_id`: whether `key` is enabled.
    async fn enabled(&self, distinct_id: &str, key: &str) -> bool {
        let body = json!({"api_key": self.world.project.api_token, "distinct_id": distinct_id});
        let req = ApiRequest::new("POST", "/flags/")
            .with_query("v", "4")
            .with_json(&body);
        let r = Box::pin(self.world.send_to(Group::Flags, req)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body.unwrap()["flags"][key]["enabled"]
            .as_bool()
            .unwrap_or(false)
    }

    async fn cohort_ids_of(&self, uuid: &str) -> Vec<i64> {
        let r = self.persons_get("cohorts/", &[("person_id", uuid)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    }
}

fn cohort_flag(key: &str, cohort_id: i64) -> Value {
    json!({"key": key, "filters": {"groups": [{"properties": [
        {"key": "id", "type": "cohort", "value": cohort_id, "operator": "in"}
    ], "rollout_percentage": 100}]}})
}

#[tokio::test]
async fn one_person_by_uuid_and_the_ids_posthog_refuses() {
    let env = Env::new().await;
    env.capture(
        json!([{"event": "e", "distinct_id": "u1", "properties": {"$set": {"email": "u1@x.com"}}}]),
    )
    .await;
    let uuid = env.uuid("u1").await;
    let r = env.persons("GET", &format!("{uuid}/"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = env.persons_get("", &[("distinct_id", "u1")]).await;
    assert_eq!(r.body, listed.body["results"][0]);
    assert_eq!(r.body["uuid"], uuid.as_str());
    assert_eq!(r.body["name"], "u1@x.com");
    // Without the trailing slash and in capitals it is the same person.
    let upper = env.persons("GET", &uuid.to_uppercase(), None).await;
    assert_eq!(upper.body["uuid"], uuid.as_str());

    // An integer primary key finds nobody here; a distinct id is PostHog's 400.
    assert_error(
        &env.persons("GET", "42/", None).await,
        404,
        "not_found",
        "Not found.",
        None,
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        env.persons("GET", &format!("{unknown}/"), None)
            .await
            .status,
        404
    );
    assert_error(
        &env.persons("GET", "u1/", None).await,
        400,
        "invalid_input",
        "The ID provided does not look like a personID. If you are using a distinctId, please use /persons?distinct_id=u1 instead.",
        None,
    );
    // Other methods on a person are 405 (after authentication).
    assert_eq!(
        env.persons("DELETE", &format!("{uuid}/"), None)
            .await
            .status,
        405
    );
}

#[tokio::test]
async fn properties_are_set_and_removed_with_posthog_answers() {
    let env = Env::new().await;
    env.capture(json!([{"event": "e", "distinct_id": "u", "properties": {"$set": {"plan": "free", "a": 1, "b": 2}}}]))
        .await;
    let uuid = env.uuid("u").await;
    let set_path = format!("{uuid}/update_property/");
    let set = |body: Value| env.persons("POST", &set_path, Some(body));

    let r = set(json!({"key": "plan", "value": "pro"})).await;
    assert_eq!((r.status, &r.body), (202, &Value::Null));
    let r = set(json!({"key": "nested", "value": {"x": [1, 2]}})).await;
    assert_eq!(r.status, 202);
    let stored = env.person("u").await.unwrap();
    assert_eq!(stored.properties["plan"], "pro");
    assert_eq!(stored.properties["nested"], json!({"x": [1, 2]}));

    // PostHog's own envelope for a missing value or key: `value` first, code and detail swapped.
    let missing = set(json!({"key": "plan", "value": null})).await;
    assert_error(
        &missing,
        400,
        "This field is required.",
        "required",
        Some("value"),
    );
    let missing = set(json!({"value": 1})).await;
    assert_error(
        &missing,
        400,
        "This field is required.",
        "required",
        Some("key"),
    );
    let long = set(json!({"key": "k".repeat(401), "value": 1})).await;
    assert_error(
        &long,
        400,
        "max_length",
        "Ensure this field has no more than 400 characters.",
        Some("key"),
    );
    let r = set(json!({"key": 7, "value": 1})).await;
    assert_error(&r, 400, "invalid_input", "Not a valid string.", Some("key"));
    let big = set(json!({"key": "big", "value": "x".repeat(310 * 1024)})).await;
    assert_eq!(big.status, 400, "{}", big.body);
    assert_eq!(big.body["attr"], "value");
    assert!(
        big.body["detail"]
            .as_str()
            .unwrap()
            .contains("307200 bytes")
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = env
        .persons(
            "POST",
            &format!("{unknown}/update_property/"),
            Some(json!({"key": "k", "value": 1})),
        )
        .await;
    assert_eq!(r.status, 404);

    let unset_path = format!("{uuid}/delete_property/");
    let unset = |body: Value| env.persons("POST", &unset_path, Some(body));
    let r = unset(json!({"$unset": "a"})).await;
    assert_eq!((r.status, &r.body), (201, &json!({"success": true})));
    let r = unset(json!({"$unset": ["b", "nested", "never-set"]})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = env.person("u").await.unwrap();
    assert_eq!(Value::Object(stored.properties), json!({"plan": "pro"}));
    assert_error(
        &unset(json!({})).await,
        400,
        "required",
        "This field is required.",
        Some("$unset"),
    );
    let r = unset(json!({"$unset": []})).await;
    assert_eq!((r.status, r.body["attr"].as_str()), (400, Some("$unset")));
    let r = unset(json!({"$unset": vec!["k"; 1001]})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("1000"),
        "{}",
        r.body
    );
    let r = unset(json!({"$unset": [""]})).await;
    assert_eq!(r.status, 400);
    let r = env
        .persons(
            "POST",
            &format!("{unknown}/delete_property/"),
            Some(json!({"$unset": "a"})),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn property_updates_and_captures_racing_lose_nothing() {
    let env = Env::new().await;
    env.capture(json!([{"event": "e", "distinct_id": "racer"}]))
        .await;
    let uuid = env.uuid("racer").await;
    let env = &env;
    let api = (0..8).map(|i| {
        let path = format!("{uuid}/update_property/");
        async move {
            let r = env
                .persons(
                    "POST",
                    &path,
                    Some(json!({"key": format!("api{i}"), "value": i})),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
    });
    let captures = (0..8).map(|i| {
        env.capture(json!([{"event": "e", "distinct_id": "racer", "properties": {"$set": {format!("cap{i}"): i}}}]))
    });
    futures::future::join(
        futures::future::join_all(api),
        futures::future::join_all(captures),
    )
    .await;
    let stored = env.person("racer").await.unwrap();
    for i in 0..8 {
        assert_eq!(
            stored.properties[&format!("api{i}")],
            i,
            "{:?}",
            stored.properties
        );
        assert_eq!(
            stored.properties[&format!("cap{i}")],
            i,
            "{:?}",
            stored.properties
        );
    }
}

#[tokio::test]
async fn a_person_is_in_static_cohorts_holding_them_and_property_cohorts_they_match() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "e", "distinct_id": "pro", "properties": {"$set": {"plan": "pro"}}},
        {"event": "e", "distinct_id": "free", "properties": {"$set": {"plan": "free"}}},
    ]))
    .await;
    let (pro, free) = (env.uuid("pro").await, env.uuid("free").await);
    let fixed = env
        .create_cohort(
            json!({"name": "Fixed", "is_static": true, "_create_static_person_ids": [free]}),
        )
        .await;
    let fixed_id = fixed["id"].as_i64().unwrap();
    let plan = |value: &str| {
        json!({"properties": {"type": "AND", "values": [
            {"key": "plan", "type": "person", "value": value, "operator": "exact"}]}})
    };
    let pros = env
        .create_cohort(json!({"name": "Pros", "filters": plan("pro")}))
        .await["id"]
        .as_i64()
        .unwrap();
    let nested = env
        .create_cohort(
            json!({"name": "In fixed", "filters": {"properties": {"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": fixed_id, "operator": "in"}]}}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let gone = env
        .create_cohort(json!({"name": "Gone", "filters": plan("pro")}))
        .await["id"]
        .as_i64()
        .unwrap();
    let r = env
        .cohorts("PATCH", &format!("{gone}/"), Some(json!({"deleted": true})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(env.cohort_ids_of(&pro).await, [pros]);
    assert_eq!(env.cohort_ids_of(&free).await, [fixed_id, nested]);
    let r = env.persons_get("cohorts/", &[("person_id", &free)]).await;
    assert_eq!(
        r.body["results"][0], fixed,
        "each cohort as the cohorts API shows it"
    );

    // Matching is live: a property change moves the person between cohorts.
    let r = env
        .persons(
            "POST",
            &format!("{free}/update_property/"),
            Some(json!({"key": "plan", "value": "pro"})),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(env.cohort_ids_of(&free).await, [fixed_id, pros, nested]);

    assert_error(
        &env.persons_get("cohorts/", &[]).await,
        400,
        "required",
        "This field is required.",
        Some("person_id"),
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        env.persons_get("cohorts/", &[("person_id", &unknown)])
            .await
            .status,
        404
    );

    // PostHog's action needs both scopes.
    let person_only = env
        .world
        .add_key(env.world.user.id, &["person:read"], None)
        .await;
    let r = env
        .call_as(
            &person_only,
            Group::Persons,
            "GET",
            "persons/cohorts/",
            &[("person_id", &pro)],
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let both = env
        .world
        .add_key(env.world.user.id, &["person:read", "cohort:read"], None)
        .await;
    let r = env
        .call_as(
            &both,
            Group::Persons,
            "GET",
            "persons/cohorts/",
            &[("person_id", &pro)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn values_of_a_property_with_counts_most_frequent_first() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "e", "distinct_id": "a", "properties": {"$set": {"plan": "pro", "seats": 5}}},
        {"event": "e", "distinct_id": "b", "properties": {"$set": {"plan": "pro", "seats": "5"}}},
        {"event": "e", "distinct_id": "c", "properties": {"$set": {"plan": "Pro team", "seats": true}}},
        {"event": "e", "distinct_id": "d", "properties": {"$set": {"plan": "free", "seats": {"b": 1, "a": 2}}}},
        {"event": "e", "distinct_id": "e", "properties": {"$set": {"plan": ""}}},
        {"event": "e", "distinct_id": "f"},
    ]))
    .await;
    let env = &env;
    let values = |query: Vec<(&'static str, &'static str)>| async move {
        let r = env.persons_get("values/", &query).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    assert_eq!(
        values(vec![("key", "plan")]).await,
        json!([{"name": "pro", "count": 2}, {"name": "Pro team", "count": 1}, {"name": "free", "count": 1}])
    );
    assert_eq!(
        values(vec![("key", "plan"), ("value", "PRO")]).await,
        json!([{"name": "pro", "count": 2}, {"name": "Pro team", "count": 1}])
    );
    assert_eq!(
        values(vec![("key", "seats")]).await,
        json!([{"name": "5", "count": 2}, {"name": "true", "count": 1}, {"name": "{\"a\": 2, \"b\": 1}", "count": 1}])
    );
    assert_eq!(
        values(vec![("key", "distinct_id"), ("value", "B")]).await,
        json!([{"name": "b", "count": 1}])
    );
    assert_eq!(values(vec![]).await, json!([]));
    assert_eq!(values(vec![("key", "$virt_revenue")]).await, json!([]));
    assert_eq!(values(vec![("key", "nobody-has-it")]).await, json!([]));
}

#[tokio::test]
async fn bulk_delete_takes_ids_overrides_and_memberships_with_the_person() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "e", "distinct_id": "gone-1", "properties": {"$set": {"plan": "pro"}}},
        {"event": "$identify", "distinct_id": "gone-2", "properties": {"$anon_distinct_id": "gone-2-anon"}},
        {"event": "e", "distinct_id": "stays", "properties": {"$set": {"plan": "pro"}}},
    ]))
    .await;
    let (gone1, gone2, stays) = (
        env.uuid("gone-1").await,
        env.uuid("gone-2").await,
        env.uuid("stays").await,
    );
    let cohort = env
        .create_cohort(json!({"name": "Fixed", "is_static": true, "_create_static_person_ids": [gone1, gone2, stays]}))
        .await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(env.cohort(cohort).await["count"], 3);
    env.world.create(cohort_flag("fixed-only", cohort)).await;
    assert!(env.enabled("gone-1", "fixed-only").await);
    let project = env.project();
    env.world
        .store
        .add_hash_key_overrides(project, &["gone-2-anon", "stays"], &["some-flag"], "h")
        .await
        .unwrap();

    // Validation first, PostHog's messages.
    let bulk = |body: Value| env.persons("POST", "bulk_delete/", Some(body));
    assert_error(
        &bulk(json!({})).await,
        400,
        "invalid_input",
        "You need to specify either distinct_ids or ids",
        None,
    );
    assert_error(
        &bulk(json!({"ids": vec![gone1.clone(); 1001]})).await,
        400,
        "invalid_input",
        "You can only pass 1000 ids in one call",
        None,
    );
    assert_error(
        &bulk(json!({"distinct_ids": vec!["x"; 1001]})).await,
        400,
        "invalid_input",
        "You can only pass 1000 distinct_ids in one call",
        None,
    );
    assert_error(
        &bulk(json!({"ids": ["nope"]})).await,
        400,
        "invalid_input",
        "\"nope\" is not a valid UUID.",
        Some("ids"),
    );
    // keep_person keeps them (only events and recordings would go, and none are stored).
    let r = bulk(json!({"ids": [gone1], "keep_person": true})).await;
    assert_eq!(r.status, 202);
    assert!(env.person("gone-1").await.is_some());

    // By uuid and by distinct id (one id of a person takes the whole person).
    let r = bulk(json!({"ids": [gone1, uuid::Uuid::now_v7().to_string()]})).await;
    assert_eq!((r.status, &r.body), (202, &Value::Null));
    let r =
        bulk(json!({"distinct_ids": ["gone-2-anon", "never-seen"], "delete_events": true})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    for id in ["gone-1", "gone-2", "gone-2-anon"] {
        assert!(env.person(id).await.is_none(), "{id}");
    }
    for uuid in [&gone1, &gone2] {
        assert_eq!(
            env.persons("GET", &format!("{uuid}/"), None).await.status,
            404
        );
    }
    let listed = env.persons_get("", &[]).await;
    assert_eq!(listed.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["results"][0]["uuid"], stays.as_str());

    // Out of the static cohort, its count corrected; flags no longer see them.
    assert_eq!(env.cohort(cohort).await["count"], 1);
    let (members, _) = env
        .world
        .store
        .cohort_members_page(project, cohort, None, 10)
        .await
        .unwrap();
    assert_eq!(members, std::slice::from_ref(&stays));
    assert!(!env.enabled("gone-1", "fixed-only").await);
    assert!(env.enabled("stays", "fixed-only").await);
    let store = &env.world.store;
    assert!(
        store
            .hash_key_overrides(project, "gone-2-anon")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .hash_key_overrides(project, "stays")
            .await
            .unwrap()
            .len(),
        1
    );

    // The distinct id is free again: the next event makes a new person.
    env.capture(json!([{"event": "e", "distinct_id": "gone-1"}]))
        .await;
    let again = env.person("gone-1").await.unwrap();
    assert_ne!(again.uuid, gone1);
    assert!(again.properties.is_empty());
}

#[tokio::test]
async fn person_writes_need_person_write() {
    let env = Env::new().await;
    env.capture(json!([{"event": "e", "distinct_id": "u"}]))
        .await;
    let uuid = env.uuid("u").await;
    let read = env
        .world
        .add_key(env.world.user.id, &["person:read"], None)
        .await;
    for (method, rest, body) in [
        (
            "POST",
            format!("persons/{uuid}/update_property/"),
            json!({"key": "k", "value": 1}),
        ),
        (
            "POST",
            format!("persons/{uuid}/delete_property/"),
            json!({"$unset": "k"}),
        ),
        (
            "POST",
            "persons/bulk_delete/".to_string(),
            json!({"ids": [uuid]}),
        ),
    ] {
        let r = env
            .call_as(&read, Group::Persons, method, &rest, &[], Some(body))
            .await;
        assert_eq!(r.status, 403, "{rest}: {}", r.body);
        assert_eq!(r.body["code"], "permission_denied");
    }
    for rest in [format!("persons/{uuid}/"), "persons/values/".into()] {
        let r = env
            .call_as(&read, Group::Persons, "GET", &rest, &[("key", "k")], None)
            .await;
        assert_eq!(r.status, 200, "{rest}: {}", r.body);
    }
    assert!(env.person("u").await.is_some());
    let r = env
        .call_as(
            "",
            Group::Persons,
            "GET",
            &format!("persons/{uuid}/"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn static_members_are_added_and_removed_with_counts_kept() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "e", "distinct_id": "a"},
        {"event": "e", "distinct_id": "b"},
        {"event": "e", "distinct_id": "c"},
    ]))
    .await;
    let (a, b, c) = (
        env.uuid("a").await,
        env.uuid("b").await,
        env.uuid("c").await,
    );
    let cohort = env
        .create_cohort(json!({"name": "Hand-picked", "is_static": true}))
        .await["id"]
        .as_i64()
        .unwrap();
    env.world.create(cohort_flag("picked", cohort)).await;
    let add_path = format!("{cohort}/add_persons_to_static_cohort/");
    let remove_path = format!("{cohort}/remove_person_from_static_cohort/");
    let add = |body: Value| env.cohorts("PATCH", &add_path, Some(body));
    let remove = |body: Value| env.cohorts("PATCH", &remove_path, Some(body));

    let r =
        add(json!({"person_ids": [a, b.to_uppercase(), uuid::Uuid::now_v7().to_string()]})).await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    assert_eq!(env.cohort(cohort).await["count"], 2);
    assert!(env.enabled("a", "picked").await && !env.enabled("c", "picked").await);
    // Members already in are not counted twice.
    let r = add(json!({"person_ids": [a, c]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.cohort(cohort).await["count"], 3);
    assert!(env.enabled("c", "picked").await);

    // PostHog's checks, in its order.
    assert_error(
        &add(json!({"person_ids": "x"})).await,
        400,
        "invalid_input",
        "person_ids must be a list",
        None,
    );
    assert_error(
        &add(json!({})).await,
        400,
        "invalid_input",
        "person_ids must be a list",
        None,
    );
    assert_error(
        &add(json!({"person_ids": []})).await,
        400,
        "invalid_input",
        "person_ids cannot be empty",
        None,
    );
    let r = add(json!({"person_ids": vec![a.clone(); 1001]})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("List size exceeds limit"),
        "{}",
        r.body
    );
    let r = add(json!({"person_ids": ["not-a-uuid"]})).await;
    assert_eq!(
        (r.status, r.body["attr"].as_str()),
        (400, Some("person_ids"))
    );
    assert_error(
        &add(json!({"person_ids": [uuid::Uuid::now_v7().to_string()]})).await,
        400,
        "invalid_input",
        "No valid users to add to cohort",
        None,
    );

    let r = remove(json!({"person_id": b})).await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    assert_eq!(env.cohort(cohort).await["count"], 2);
    assert!(!env.enabled("b", "picked").await);
    // A person who exists but is not a member: silent success, count unchanged.
    let r = remove(json!({"person_id": b})).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.cohort(cohort).await["count"], 2);
    assert_error(
        &remove(json!({})).await,
        400,
        "invalid_input",
        "person_id is required",
        None,
    );
    assert_error(
        &remove(json!({"person_id": 5})).await,
        400,
        "invalid_input",
        "person_id must be a string",
        None,
    );
    assert_error(
        &remove(json!({"person_id": "x"})).await,
        400,
        "invalid_input",
        "person_id must be a valid UUID",
        None,
    );
    assert_error(
        &remove(json!({"person_id": uuid::Uuid::now_v7().to_string()})).await,
        404,
        "not_found",
        "Person with this UUID does not exist in the cohort's team",
        None,
    );

    // Concurrent removals of one member lower the count once.
    let racing = (0..6).map(|_| remove(json!({"person_id": a})));
    for r in futures::future::join_all(racing).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(env.cohort(cohort).await["count"], 1);
    assert_eq!(env.cohort_ids_of(&c).await, [cohort]);
    assert!(env.cohort_ids_of(&a).await.is_empty());

    // Only static cohorts; unknown cohorts 404; cohort:write needed.
    let dynamic = env
        .create_cohort(
            json!({"name": "Dyn", "filters": {"properties": {"type": "AND", "values": [
            {"key": "plan", "type": "person", "value": "pro", "operator": "exact"}]}}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let r = env
        .cohorts(
            "PATCH",
            &format!("{dynamic}/add_persons_to_static_cohort/"),
            Some(json!({"person_ids": [a]})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Can only add users to static cohorts",
        None,
    );
    let r = env
        .cohorts(
            "PATCH",
            &format!("{dynamic}/remove_person_from_static_cohort/"),
            Some(json!({"person_id": a})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "Can only remove users from static cohorts",
        None,
    );
    let r = env
        .cohorts(
            "PATCH",
            "999999/add_persons_to_static_cohort/",
            Some(json!({"person_ids": [a]})),
        )
        .await;
    assert_eq!(r.status, 404);
    let read = env
        .world
        .add_key(env.world.user.id, &["cohort:read"], None)
        .await;
    let r = env
        .call_as(
            &read,
            Group::Cohorts,
            "PATCH",
            &format!("cohorts/{cohort}/add_persons_to_static_cohort/"),
            &[],
            Some(json!({"person_ids": [a]})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = env
        .cohorts(
            "POST",
            &format!("{cohort}/add_persons_to_static_cohort/"),
            Some(json!({"person_ids": [a]})),
        )
        .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn a_large_bulk_delete_corrects_every_static_cohort() {
    let env = Env::new().await;
    let events: Vec<Value> = (0..300)
        .map(|i| json!({"event": "e", "distinct_id": format!("p{i:03}")}))
        .collect();
    env.capture(Value::Array(events)).await;
    let (persons, _) = env
        .world
        .store
        .persons_page(env.project(), None, 1000)
        .await
        .unwrap();
    let uuids: Vec<String> = persons.iter().map(|p| p.uuid.clone()).collect();
    assert_eq!(uuids.len(), 300);
    let mut cohorts = Vec::new();
    for n in 0..5 {
        let body = json!({"name": format!("All {n}"), "is_static": true, "_create_static_person_ids": uuids});
        cohorts.push(env.create_cohort(body).await["id"].as_i64().unwrap());
    }
    // More (person, cohort) pairs than one membership lookup takes: several run side by side.
    let r = env
        .persons("POST", "bulk_delete/", Some(json!({"ids": uuids[..250]})))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for id in cohorts {
        assert_eq!(env.cohort(id).await["count"], 50, "cohort {id}");
    }
    let (left, _) = env
        .world
        .store
        .persons_page(env.project(), None, 1000)
        .await
        .unwrap();
    let left: Vec<&String> = left.iter().map(|p| &p.uuid).collect();
    assert_eq!(left, uuids[250..].iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn the_list_filters_by_email_and_search_as_the_catalog_asks() {
    let env = Env::new().await;
    env.capture(json!([
        {"event": "e", "distinct_id": "anna", "properties": {"$set": {"email": "anna@example.com", "name": "Anna Smith"}}},
        {"event": "e", "distinct_id": "ben", "properties": {"$set": {"name": "Benjamin"}}},
        {"event": "e", "distinct_id": "carl@example.com", "properties": {"$set": {"email": "carl@example.com"}}},
        {"event": "e", "distinct_id": "carlos", "properties": {"$set": {"email": "carl@example.com.au"}}},
    ]))
    .await;
    let names = |query: Vec<(&'static str, String)>| {
        let env = &env;
        async move {
            let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = env.persons_get("", &pairs).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let mut names: Vec<String> = r.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["distinct_ids"][0].as_str().unwrap().to_string())
                .collect();
            names.sort();
            (names, r.body["next"].clone())
        }
    };
    assert_eq!(names(vec![("search", "ANNA".into())]).await.0, ["anna"]);
    assert_eq!(names(vec![("search", "jamin".into())]).await.0, ["ben"]);
    assert_eq!(
        names(vec![("search", "example.com".into())]).await.0,
        ["anna", "carl@example.com", "carlos"]
    );
    // A whole email naming a distinct id, or a whole uuid, answers that person alone.
    assert_eq!(
        names(vec![("search", "carl@example.com".into())]).await.0,
        ["carl@example.com"]
    );
    let ben = env.uuid("ben").await;
    assert_eq!(names(vec![("search", ben.to_uppercase())]).await.0, ["ben"]);
    assert_eq!(
        names(vec![("email", "anna@example.com".into())]).await.0,
        ["anna"]
    );
    assert!(
        names(vec![("email", "ANNA@example.com".into())])
            .await
            .0
            .is_empty()
    );
    assert_eq!(
        names(vec![
            ("email", "anna@example.com".into()),
            ("distinct_id", "anna".into())
        ])
        .await
        .0,
        ["anna"]
    );
    assert!(
        names(vec![
            ("email", "x@y.z".into()),
            ("distinct_id", "anna".into())
        ])
        .await
        .0
        .is_empty()
    );

    // Filtered pages follow `next` like the plain list.
    let (first, next) = names(vec![("search", "example".into()), ("limit", "2".into())]).await;
    assert_eq!(first.len(), 2);
    let cursor = url::Url::parse(next.as_str().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "cursor")
        .unwrap()
        .1
        .to_string();
    let (rest, _) = names(vec![
        ("search", "example".into()),
        ("limit", "2".into()),
        ("cursor", cursor),
    ])
    .await;
    let mut all = [first, rest].concat();
    all.sort();
    assert_eq!(all, ["anna", "carl@example.com", "carlos"]);
}
