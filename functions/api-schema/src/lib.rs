//! `GET /api/schema/`: the OpenAPI document of every route (openapi.yaml at the
//! repository root), as YAML like PostHog's `/api/schema/`, or as JSON with `?format=json` or an
//! `Accept` asking for JSON. A function of its own so it needs no IAM permission, no table and no
//! key, and its cold start is the runtime's alone.

use lambda_http::{Body, Request, RequestExt, Response};

/// The document, exactly as kept in the repository.
const YAML: &str = include_str!("../../../openapi.yaml");
/// The same document as JSON, rendered by build.rs.
const JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The function's answer to one request.
pub fn handle(event: &Request) -> Response<Body> {
    let format = event
        .query_string_parameters_ref()
        .and_then(|q| q.first("format"))
        .map(str::to_string);
    let accept = event
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    answer(
        event.method().as_str(),
        format.as_deref(),
        accept.as_deref(),
    )
}

/// The whole behaviour, free of the runtime so tests can call it.
fn answer(method: &str, format: Option<&str>, accept: Option<&str>) -> Response<Body> {
    if !matches!(method, "GET" | "HEAD") {
        // PostHog's envelope, as every other management endpoint answers a wrong method.
        // An HTTP method is a token (no quotes or backslashes), so it needs no JSON escaping.
        let method: String = method
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let body = format!(
            r#"{{"type":"invalid_request","code":"method_not_allowed","detail":"Method \"{method}\" not allowed.","attr":null}}"#
        );
        return respond(405, "application/json", body.into())
            .map(|mut r| {
                r.headers_mut()
                    .insert("allow", "GET, HEAD".parse().expect("valid header"));
                r
            })
            .unwrap_or_else(|_| Response::new(Body::Empty));
    }
    let (content_type, text) = if wants_json(format, accept) {
        ("application/vnd.oai.openapi+json", JSON)
    } else {
        ("application/vnd.oai.openapi; charset=utf-8", YAML)
    };
    let body = if method == "HEAD" {
        Body::Empty
    } else {
        Body::Text(text.to_string())
    };
    respond(200, content_type, body).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// `?format=json` decides; without it, an `Accept` naming JSON but not YAML.
fn wants_json(format: Option<&str>, accept: Option<&str>) -> bool {
    match format.map(|f| f.trim().to_ascii_lowercase()) {
        Some(f) if f == "json" => true,
        Some(f) if f == "yaml" => false,
        _ => accept.is_some_and(|a| {
            let a = a.to_ascii_lowercase();
            a.contains("json") && !a.contains("yaml")
        }),
    }
}

fn respond(
    status: u16,
    content_type: &str,
    body: Body,
) -> Result<Response<Body>, lambda_http::http::Error> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: &Response<Body>) -> &str {
        match response.body() {
            Body::Text(t) => t,
            Body::Empty => "",
            Body::Binary(_) => panic!("binary body"),
            _ => panic!("unexpected body"),
        }
    }

    fn content_type(response: &Response<Body>) -> &str {
        response.headers()["content-type"].to_str().unwrap()
    }

    #[test]
    fn yaml_by_default_exactly_as_in_the_repository() {
        let r = answer("GET", None, None);
        assert_eq!(r.status(), 200);
        assert_eq!(
            content_type(&r),
            "application/vnd.oai.openapi; charset=utf-8"
        );
        assert_eq!(text(&r), YAML);
        assert!(text(&r).starts_with("openapi: 3."));
    }

    #[test]
    fn json_on_request_is_the_same_document() {
        let from_yaml: serde_json::Value = serde_yaml_ng::from_str(YAML).unwrap();
        for (format, accept) in [
            (Some("json"), None),
            (None, Some("application/json")),
            (Some("JSON"), Some("application/yaml")),
        ] {
            let r = answer("GET", format, accept);
            assert_eq!(content_type(&r), "application/vnd.oai.openapi+json");
            let served: serde_json::Value = serde_json::from_str(text(&r)).unwrap();
            assert_eq!(served, from_yaml);
        }
        let yaml = answer("GET", Some("yaml"), Some("application/json"));
        assert_eq!(text(&yaml), YAML);
        let browser = answer("GET", None, Some("text/html,application/xhtml+xml,*/*"));
        assert_eq!(text(&browser), YAML);
    }

    #[test]
    fn head_has_no_body_and_other_methods_are_405_in_the_envelope() {
        let head = answer("HEAD", None, None);
        assert_eq!((head.status().as_u16(), text(&head)), (200, ""));
        let post = answer("POST", None, None);
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()["allow"], "GET, HEAD");
        let body: serde_json::Value = serde_json::from_str(text(&post)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "invalid_request", "code": "method_not_allowed",
                "detail": "Method \"POST\" not allowed.", "attr": null})
        );
    }
}
