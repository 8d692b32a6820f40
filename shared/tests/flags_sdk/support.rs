//! An SDK's view of a `World`: requests to the `flags` function's handler through one
//! long-lived cache, as a warm Lambda instance serves them.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use shared::api::flags::DefinitionsCache;
use shared::api::{Context, Group};
use shared::http::{ApiRequest, ApiResponse};
use shared::store::{FlagStore, GroupType};

use crate::common::World;

pub struct Sdk {
    pub world: World,
    pub cache: DefinitionsCache,
}

impl Sdk {
    pub async fn new() -> Sdk {
        Sdk {
            world: World::new().await,
            cache: DefinitionsCache::default(),
        }
    }

    pub fn token(&self) -> &str {
        &self.world.project.api_token
    }

    /// Through the `flags` function's handler, with this instance's cache.
    pub async fn send(&self, req: ApiRequest) -> ApiResponse {
        let ctx = Context {
            store: &self.world.store,
            cipher: &self.world.cipher,
            now: chrono::Utc::now(),
            cache: &self.cache,
        };
        Group::Flags
            .handle(&ctx, &req.with_header("host", "testserver"))
            .await
    }

    /// `POST /flags/?v=4` with `body` plus this project's token, as posthog-python sends it.
    pub async fn flags(&self, mut body: Value) -> ApiResponse {
        body["api_key"] = json!(self.token());
        let req = ApiRequest::new("POST", "/flags/")
            .with_query("v", "4")
            .with_header("user-agent", "posthog-python/7.91.1")
            .with_json(&body);
        self.send(req).await
    }

    /// The `flags` of a successful v4 answer for `distinct_id` with `extra` body fields.
    pub async fn evaluate(&self, distinct_id: &str, extra: Value) -> Value {
        let mut body = json!({"distinct_id": distinct_id});
        if let Value::Object(fields) = extra {
            body.as_object_mut().unwrap().extend(fields);
        }
        let r = self.flags(body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body.unwrap()["flags"].clone()
    }

    /// Creates a flag through the management API; returns its id.
    pub async fn create(&self, body: Value) -> i64 {
        self.world.create(body).await["id"].as_i64().unwrap()
    }

    pub async fn group_type(&self, index: i32, name: &str) {
        use shared::store::DefinitionsStore;
        let group = GroupType {
            project_id: self.world.project.id,
            index,
            name: name.into(),
        };
        self.world.store.create_group_type(&group).await.unwrap();
    }

    /// The stored flag, as the management API's store sees it.
    pub async fn stored(&self, id: i64) -> shared::flag::Flag {
        self.world
            .store
            .get_flag(self.world.project.id, id)
            .await
            .unwrap()
            .unwrap()
    }

    /// `GET <path>` with `Authorization: Bearer <key>`.
    pub async fn definitions_as(&self, path: &str, key: &str) -> ApiResponse {
        let req = ApiRequest::new("GET", path)
            .with_query("token", self.token())
            .with_query("send_cohorts", "")
            .with_header("authorization", &format!("Bearer {key}"));
        self.send(req).await
    }
}

pub fn body(r: &ApiResponse) -> Value {
    r.body.clone().unwrap_or(Value::Null)
}

/// A plain-text error body.
pub fn text(r: &ApiResponse) -> String {
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/plain")),
        "not plain text: {r:?}"
    );
    r.body
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn header<'a>(r: &'a ApiResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn everyone(rollout: f64) -> Value {
    json!({"groups": [{"properties": [], "rollout_percentage": rollout}]})
}

/// One condition holding `prop`, for everyone it matches.
pub fn with_property(prop: Value) -> Value {
    json!({"groups": [{"properties": [prop], "rollout_percentage": 100}]})
}
