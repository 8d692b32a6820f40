//! End to end: the OpenAPI document served at `/api/schema/` through the local API server and
//! its router, and every route it names (with and without the trailing slash) reaching a
//! function rather than the router's "no such route" answer. `make test` starts all of it.

use e2e::Server;

#[tokio::test]
async fn the_schema_is_served_as_yaml_and_as_json() {
    let s = Server::from_env();
    let yaml = s.send("GET", "/api/schema/", None, None).await;
    assert_eq!(yaml.status, 200, "{}", yaml.text);
    assert!(
        yaml.text.starts_with("openapi: 3."),
        "{}",
        &yaml.text[..80.min(yaml.text.len())]
    );
    let json = s.send("GET", "/api/schema?format=json", None, None).await;
    assert_eq!(json.status, 200, "{}", json.text);
    let doc = json.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(doc["paths"]["/api/projects/{project_id}/feature_flags/"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Error"].is_object());
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str, project_id: i64) -> String {
    path.replace("{project_id}", &project_id.to_string())
        .replace("{id}", "999999999")
        .replace("{activity_id}", "01890000-0000-7000-8000-000000000001")
}

#[tokio::test]
async fn every_documented_route_reaches_a_function() {
    let s = Server::from_env();
    let doc = s
        .send("GET", "/api/schema/?format=json", None, None)
        .await
        .json();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let with_slash = concrete(path, s.project_id);
            let twin = match with_slash.strip_suffix('/') {
                Some(bare) => bare.to_string(),
                None => format!("{with_slash}/"),
            };
            for url in [with_slash, twin] {
                // No credential: each function answers for itself (401, 400, 404, 405, ...).
                let reply = s.send(&method.to_uppercase(), &url, None, None).await;
                assert!(
                    !reply.text.contains("default function route") && reply.status != 502,
                    "{} {url} did not reach a function: {} {}",
                    method.to_uppercase(),
                    reply.status,
                    reply.text
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} routes checked");
}
