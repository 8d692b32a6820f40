//! Fixture for handler tests: a store on fresh DynamoDB Local tables with one organization,
//! project, user and personal API key, plus helpers to call the flags endpoint in-process.
#![allow(dead_code)]

use serde_json::Value;
use shared::api::flags::DefinitionsCache;
use shared::api::{Context, Group, activity, feature_flags};
use shared::auth::{generate_key, hash_key};
use shared::crypto::PayloadCipher;
use shared::http::{ApiRequest, ApiResponse};
use shared::identity::{Organization, PersonalApiKey, Project, User};
use shared::store::dynamo::DynamoStore;
use shared::store::testing::local_store;
use shared::store::{IdentityAdmin, IdentityWrites};

pub const TEST_FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

pub struct World {
    pub store: DynamoStore,
    pub cipher: PayloadCipher,
    pub org: Organization,
    pub project: Project,
    pub user: User,
    /// A `*` key of `user`.
    pub key: String,
    pub secret_key: String,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl World {
    pub async fn new() -> Self {
        let store = local_store().await;
        let now = chrono::Utc::now();
        let org = Organization {
            id: uuid::Uuid::new_v4().to_string(),
            name: "Org".into(),
            created_at: now,
        };
        store.put_organization(&org).await.unwrap();
        let secret_key = generate_key("phs_");
        let project = Project {
            id: store.next_id("project").await.unwrap(),
            organization_id: org.id.clone(),
            name: "Project".into(),
            api_token: generate_key("phc_"),
            secret_api_key_hash: hash_key(&secret_key),
            created_at: now,
        };
        store.put_project(&project).await.unwrap();
        let user = add_user(&store, &org.id, "owner@example.com").await;
        let mut world = World {
            cipher: PayloadCipher::from_keys(TEST_FERNET_KEY),
            store,
            org,
            project,
            user,
            key: String::new(),
            secret_key,
        };
        world.key = world.add_key(world.user.id, &["*"], None).await;
        world
    }

    pub async fn add_key(
        &self,
        user_id: i64,
        scopes: &[&str],
        projects: Option<Vec<i64>>,
    ) -> String {
        let plain = generate_key("phx_");
        let key = PersonalApiKey {
            id: uuid::Uuid::new_v4().to_string(),
            user_id,
            label: "test".into(),
            secure_value: hash_key(&plain),
            mask_value: format!("phx_...{}", &plain[plain.len() - 4..]),
            scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            scoped_teams: projects,
            scoped_organizations: None,
            created_at: chrono::Utc::now(),
        };
        self.store.put_api_key(&key).await.unwrap();
        plain
    }

    /// Another project in its own organization, which this world's user is not a member of.
    pub async fn foreign_project(&self) -> Project {
        let org = Organization {
            id: uuid::Uuid::new_v4().to_string(),
            name: "Other".into(),
            created_at: chrono::Utc::now(),
        };
        self.store.put_organization(&org).await.unwrap();
        self.add_project(&org.id).await
    }

    pub async fn add_project(&self, org_id: &str) -> Project {
        let project = Project {
            id: self.store.next_id("project").await.unwrap(),
            organization_id: org_id.into(),
            name: "Another".into(),
            api_token: generate_key("phc_"),
            secret_api_key_hash: hash_key(&generate_key("phs_")),
            created_at: chrono::Utc::now(),
        };
        self.store.put_project(&project).await.unwrap();
        project
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/api/projects/{}/feature_flags/{rest}", self.project.id)
    }

    pub async fn send(&self, req: ApiRequest) -> Response {
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now: chrono::Utc::now(),
            cache: &DefinitionsCache::default(),
        };
        let ApiResponse { status, body, .. } =
            feature_flags::handle(&ctx, &req.with_header("host", "testserver")).await;
        Response {
            status,
            body: body.unwrap_or(Value::Null),
        }
    }

    /// Through the activity function's handler; the raw answer, so an empty body (`None`)
    /// differs from JSON `null`.
    pub async fn send_activity(&self, req: ApiRequest) -> ApiResponse {
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now: chrono::Utc::now(),
            cache: &DefinitionsCache::default(),
        };
        activity::handle(&ctx, &req.with_header("host", "testserver")).await
    }

    /// Through the early-access-features function's handler; the raw answer.
    pub async fn send_early_access(&self, req: ApiRequest) -> ApiResponse {
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now: chrono::Utc::now(),
            cache: &DefinitionsCache::default(),
        };
        Group::EarlyAccessFeatures
            .handle(&ctx, &req.with_header("host", "testserver"))
            .await
    }

    /// Through any function's handler (`group`), with a fresh SDK cache; the raw answer.
    pub async fn send_to(&self, group: Group, req: ApiRequest) -> ApiResponse {
        let ctx = Context {
            store: &self.store,
            cipher: &self.cipher,
            now: chrono::Utc::now(),
            cache: &DefinitionsCache::default(),
        };
        group
            .handle(&ctx, &req.with_header("host", "testserver"))
            .await
    }

    /// `/api/projects/<this project>/early_access_feature/<rest>` as this world's `*` key, with
    /// the body parsed (`Value::Null` for an empty one).
    pub async fn call_early_access(
        &self,
        method: &str,
        rest: &str,
        body: Option<Value>,
    ) -> Response {
        let rest = format!("early_access_feature/{rest}");
        self.call_group(
            Group::EarlyAccessFeatures,
            &self.key,
            method,
            &rest,
            &[],
            body,
        )
        .await
    }

    /// `method /api/projects/<this project>/<rest>` through `group`'s handler as `key`, with
    /// query pairs and an optional JSON body; the body parsed (`Value::Null` for an empty one).
    pub async fn call_group(
        &self,
        group: Group,
        key: &str,
        method: &str,
        rest: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let path = format!("/api/projects/{}/{rest}", self.project.id);
        let mut req =
            ApiRequest::new(method, &path).with_header("authorization", &format!("Bearer {key}"));
        for (k, v) in query {
            req = req.with_query(k, v);
        }
        if let Some(body) = body {
            req = req.with_json(&body);
        }
        // Boxed: the handlers' futures are large in debug builds, and tests nest several.
        let ApiResponse { status, body, .. } = Box::pin(self.send_to(group, req)).await;
        Response {
            status,
            body: body.unwrap_or(Value::Null),
        }
    }

    /// A request authenticated with this world's `*` key.
    pub fn req(&self, method: &str, rest: &str) -> ApiRequest {
        ApiRequest::new(method, &self.path(rest))
            .with_header("authorization", &format!("Bearer {}", self.key))
    }

    pub async fn call(&self, method: &str, rest: &str, body: Option<Value>) -> Response {
        let mut req = self.req(method, rest);
        if let Some(body) = body {
            req = req.with_json(&body);
        }
        self.send(req).await
    }

    /// The flag's activity entries in log order, read from the activity table's `by-item` index.
    pub async fn flag_activity(&self, flag_id: i64) -> Vec<shared::activity::ActivityEntry> {
        self.flag_activity_in(self.project.id, flag_id).await
    }

    /// [`World::flag_activity`] of a flag of another project.
    pub async fn flag_activity_in(
        &self,
        project_id: i64,
        flag_id: i64,
    ) -> Vec<shared::activity::ActivityEntry> {
        let item_pk = format!("PROJECT#{project_id}#FeatureFlag#{flag_id}");
        let out = self
            .store
            .client
            .query()
            .table_name(&self.store.tables.activity)
            .index_name("by-item")
            .key_condition_expression("item_pk = :pk")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(item_pk))
            .send()
            .await
            .unwrap();
        serde_dynamo::from_items(out.items.unwrap_or_default()).unwrap()
    }

    pub async fn create(&self, body: Value) -> Value {
        let r = self.call("POST", "", Some(body.clone())).await;
        assert_eq!(r.status, 201, "create {body} → {}", r.body);
        r.body
    }
}

pub async fn add_user(store: &DynamoStore, org_id: &str, email: &str) -> User {
    let id = store.next_id("user").await.unwrap();
    let user = User {
        id,
        uuid: uuid::Uuid::new_v4().to_string(),
        distinct_id: uuid::Uuid::new_v4().to_string(),
        email: email.into(),
        first_name: "Test".into(),
        last_name: "User".into(),
        organization_ids: vec![org_id.into()],
        current_project_id: None,
        current_organization_id: None,
        is_active: true,
        created_at: chrono::Utc::now(),
    };
    store.put_user(&user).await.unwrap();
    user
}

/// Asserts PostHog's envelope exactly.
pub fn assert_error(r: &Response, status: u16, code: &str, detail: &str, attr: Option<&str>) {
    assert_eq!(r.status, status, "body: {}", r.body);
    let kind = match status {
        400 if code == "parse_error" || code == "request_too_large" => "invalid_request",
        400 => "validation_error",
        401 => "authentication_error",
        403 => "authentication_error",
        404 | 405 | 415 => "invalid_request",
        _ => "server_error",
    };
    assert_eq!(
        r.body,
        serde_json::json!({"type": kind, "code": code, "detail": detail, "attr": attr}),
        "status {status}"
    );
}
