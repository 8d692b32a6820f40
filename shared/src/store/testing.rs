//! DynamoDB Local helpers for tests, `flagsctl` and dev seeding: a client with dummy
//! credentials for a local endpoint, and a store on freshly created, uniquely prefixed tables.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::{Client, Config};

use super::Tables;
use super::dynamo::DynamoStore;
use super::tables::create_missing_tables;

/// template.yaml, compiled in: the tables tests create are exactly the deployed ones.
pub const TEMPLATE: &str = include_str!("../../../template.yaml");

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8000";

/// A client for DynamoDB Local at `endpoint`. It runs with `-sharedDb`, so the dummy
/// credentials and region don't partition the data.
pub fn local_client(endpoint: &str) -> Client {
    let config = Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "dynamodb-local",
        ))
        .interceptor(super::dynamo::CapacityMeter)
        .build();
    Client::from_conf(config)
}

/// `DYNAMODB_ENDPOINT` (set by `make test`), else DynamoDB Local's default port.
pub fn local_endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// A table prefix no other test uses, so tests run in parallel against one DynamoDB Local
/// and never need cleanup.
pub fn unique_prefix() -> String {
    format!("t{}-", uuid::Uuid::new_v4().simple())
}

/// A store on new tables (from template.yaml, under a fresh prefix) in the DynamoDB Local at
/// [`local_endpoint`]. Panics when DynamoDB Local is unreachable: tests can't run without it.
pub async fn local_store() -> DynamoStore {
    let endpoint = local_endpoint();
    let client = local_client(&endpoint);
    let tables = Tables::prefixed(&unique_prefix());
    if let Err(e) = create_missing_tables(&client, TEMPLATE, &tables).await {
        panic!("creating tables in DynamoDB Local at {endpoint} (is it running?): {e:?}");
    }
    DynamoStore::new(client, tables)
}
