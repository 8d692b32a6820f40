//! One list of routes, kept in three places: the `cargo lambda watch` router in the workspace
//! Cargo.toml (path → function), the HttpApi events of template.yaml (method + path → function)
//! and openapi.yaml (method + path → operation), which this function serves. These tests fail
//! when a route is in one and not in the others.
//!
//! The router has no methods (each function answers 405 itself), so methods are compared between
//! the template and the document, paths among all three. The template and the router list every
//! path with and without its trailing slash; the document lists each path once, so paths are
//! compared with trailing slashes trimmed (and the twins are checked separately). The console's
//! `/` and greedy `{proxy+}` routes have no twins.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const TEMPLATE: &str = include_str!("../../../template.yaml");
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");
const OPENAPI: &str = include_str!("../../../openapi.yaml");

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("parses as YAML")
}

fn trimmed(path: &str) -> String {
    match path.trim_end_matches('/') {
        "" => "/".to_string(),
        bare => bare.to_string(),
    }
}

/// (METHOD, path as written, function) of every HttpApi event in the template. The function is
/// the package directory of its `CodeUri` (= the bin name `cargo lambda watch` serves).
fn template_routes() -> BTreeSet<(String, String, String)> {
    // serde_yaml_ng's own Value: it keeps CloudFormation's short tags (`!Ref`), JSON's can't.
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(TEMPLATE).expect("template.yaml");
    let mut routes = BTreeSet::new();
    for (_, resource) in doc["Resources"].as_mapping().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let code_uri = resource["Properties"]["CodeUri"].as_str().expect("CodeUri");
        let function = code_uri.trim_end_matches('/').rsplit('/').next().unwrap();
        let events = resource["Properties"]["Events"].as_mapping();
        for (_, event) in events.into_iter().flatten() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let path = event["Properties"]["Path"].as_str().expect("Path");
            let method = event["Properties"]["Method"].as_str().expect("Method");
            routes.insert((
                method.to_uppercase(),
                path.to_string(),
                function.to_string(),
            ));
        }
    }
    routes
}

/// `"path" = "function"` lines of `[workspace.metadata.lambda.watch.router]`.
fn router_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut in_router = false;
    for line in WORKSPACE_MANIFEST.lines().map(str::trim) {
        if line.starts_with('[') {
            in_router = line == "[workspace.metadata.lambda.watch.router]";
            continue;
        }
        if !in_router || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, function) = line
            .split_once('=')
            .expect("router line is path = function");
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        routes.insert((unquote(path), unquote(function)));
    }
    routes
}

/// (METHOD, path as written) of every operation in the document.
fn document_routes() -> BTreeSet<(String, String)> {
    let doc = yaml(OPENAPI);
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if HTTP_METHODS.contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn router_and_template_send_every_path_to_the_same_function() {
    let template: BTreeSet<(String, String)> = template_routes()
        .into_iter()
        .map(|(_, path, function)| (path, function))
        .collect();
    assert!(template.len() > 20, "template routes were not found");
    let router = router_routes();
    let missing: Vec<_> = template.difference(&router).collect();
    let extra: Vec<_> = router.difference(&template).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in template.yaml but not in the Cargo.toml router: {missing:?}\n\
         in the router but not in template.yaml: {extra:?}"
    );
}

#[test]
fn template_and_document_name_the_same_method_and_path_pairs() {
    let template: BTreeSet<(String, String)> = template_routes()
        .into_iter()
        .map(|(method, path, _)| (method, trimmed(&path)))
        .collect();
    let document: BTreeSet<(String, String)> = document_routes()
        .into_iter()
        .map(|(method, path)| (method, trimmed(&path)))
        .collect();
    let undocumented: Vec<_> = template.difference(&document).collect();
    let unserved: Vec<_> = document.difference(&template).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served (template.yaml) but not in openapi.yaml: {undocumented:?}\n\
         in openapi.yaml but not served: {unserved:?}"
    );
}

#[test]
fn every_path_is_served_with_and_without_its_trailing_slash_and_documented_once() {
    let served: BTreeSet<(String, String)> = template_routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    for (method, path) in &served {
        // The root has no twin, and a greedy `{name+}` (the console's pages and assets) must
        // be the last segment, so it takes the rest of the path, slashes included.
        if path == "/" || path.ends_with("+}") {
            continue;
        }
        let twin = match path.strip_suffix('/') {
            Some(bare) => bare.to_string(),
            None => format!("{path}/"),
        };
        assert!(
            served.contains(&(method.clone(), twin.clone())),
            "{method} {path} has no twin {twin} in template.yaml"
        );
    }
    let mut seen = BTreeMap::new();
    for path in yaml(OPENAPI)["paths"].as_object().unwrap().keys() {
        if let Some(other) = seen.insert(trimmed(path), path.clone()) {
            panic!("openapi.yaml lists both {other} and {path}; list each path once");
        }
    }
}

/// Every `$ref` in the document points at something that exists.
#[test]
fn every_reference_in_the_document_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(list) => list.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = yaml(OPENAPI);
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(refs.len() > 50);
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "$ref {r} resolves to nothing"
        );
    }
}

/// Operation ids are unique, every operation answers something, names only security schemes
/// that exist, and declares each `{parameter}` of its path.
#[test]
fn every_operation_is_complete() {
    let doc = yaml(OPENAPI);
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let resolve = |p: &Value| -> Value {
        match p["$ref"].as_str() {
            Some(r) => doc.pointer(&r[1..]).cloned().unwrap_or(Value::Null),
            None => p.clone(),
        }
    };
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let declared_in = |params: &Value| -> BTreeSet<String> {
            params
                .as_array()
                .into_iter()
                .flatten()
                .map(&resolve)
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        let wanted: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        for (method, op) in item.as_object().unwrap() {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{id}: no responses"
            );
            let declared: BTreeSet<String> = declared_in(&item["parameters"])
                .union(&declared_in(&op["parameters"]))
                .cloned()
                .collect();
            assert_eq!(declared, wanted, "{id}: path parameters of {path}");
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains_key(scheme),
                        "{id}: unknown security scheme {scheme}"
                    );
                }
            }
        }
    }
}

/// The one route the document itself adds is served by this function.
#[test]
fn the_document_is_served_at_api_schema() {
    let schema: Vec<_> = template_routes()
        .into_iter()
        .filter(|(_, path, _)| trimmed(path) == "/api/schema")
        .collect();
    assert_eq!(
        schema,
        [
            (
                "GET".to_string(),
                "/api/schema".to_string(),
                "api-schema".to_string()
            ),
            (
                "GET".to_string(),
                "/api/schema/".to_string(),
                "api-schema".to_string()
            ),
        ]
    );
}
