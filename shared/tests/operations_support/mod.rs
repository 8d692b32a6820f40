//! Requests as API Gateway hands them to a function, and function instances on a `World`'s
//! tables (shared by operations.rs and request_log.rs).
#![allow(dead_code)]

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;
use shared::api::{Function, Group};
use shared::crypto::PayloadCipher;
use shared::store::dynamo::DynamoStore;
use shared::store::testing::{local_client, local_endpoint};

use crate::common::{self, World};

/// A request as API Gateway hands it over, with its route key and request id.
pub fn event(
    method: &str,
    path: &str,
    route: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let body = match body {
        Some(b) => Body::Text(b.to_string()),
        None => Body::Empty,
    };
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route.into());
    context.request_id = Some(format!("req-{}", uuid::Uuid::new_v4()));
    builder
        .body(body)
        .unwrap()
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

/// A second Lambda instance of `group`: its own client and cache on the same tables.
pub fn instance(world: &World, group: Group) -> Function {
    let store = DynamoStore::new(local_client(&local_endpoint()), world.store.tables.clone());
    Function::new(
        group,
        store,
        PayloadCipher::from_keys(common::TEST_FERNET_KEY),
    )
}

pub fn definitions_poll(secret: &str) -> Request {
    event(
        "GET",
        "/flags/definitions",
        "GET /flags/definitions",
        &[
            ("authorization", &format!("Bearer {secret}")),
            ("host", "testserver"),
        ],
        None,
    )
}

pub fn header(r: &lambda_http::Response<Body>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

pub fn json_body(r: &lambda_http::Response<Body>) -> Value {
    match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        Body::Empty => Value::Null,
        _ => Value::Null,
    }
}
