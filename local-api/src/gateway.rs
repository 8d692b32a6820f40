//! What API Gateway's HTTP API does around a Lambda function, for one request: the payload
//! format 2.0 event it sends (body as text or base64, headers, query, cookies, path parameters),
//! its size limits, its CORS answers (template.yaml's `CorsConfiguration`) and how it turns the
//! function's response back into HTTP.

use base64::Engine;
use lambda_http::{Body, Request, Response, request::LambdaRequest};
use serde_json::{Map, Value, json};

use crate::routes::Matched;

/// API Gateway refuses larger request bodies with 413 before invoking anything.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;
/// Lambda's synchronous invocation limit, for the event and for the response alike.
pub const MAX_INVOKE_PAYLOAD: usize = 6 * 1024 * 1024;

/// What a request looks like on the wire, before API Gateway touches it.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    /// Lower-cased names, in arrival order; a repeated header appears repeatedly.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A CORS preflight: API Gateway answers it itself when CORS is configured.
    pub fn is_preflight(&self) -> bool {
        self.method == "OPTIONS"
            && self.header("origin").is_some()
            && self.header("access-control-request-method").is_some()
    }
}

/// The body travels as text only when its type says text and nothing encodes it: a gzip body
/// labelled `application/json` (posthog-python, posthog-js) goes base64 like any binary, so the
/// function gets its bytes unchanged either way.
fn is_text(incoming: &Incoming) -> bool {
    let encoded = incoming
        .header("content-encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
    let text_type = incoming.header("content-type").is_some_and(|ct| {
        let ct = ct.trim().to_ascii_lowercase();
        ct.starts_with("text/")
            || [
                "application/json",
                "application/javascript",
                "application/xml",
            ]
            .iter()
            .any(|t| ct.starts_with(t))
            || ct.split(';').next().is_some_and(|t| t.ends_with("+json"))
            || ct.starts_with("application/x-www-form-urlencoded")
    });
    text_type && !encoded && std::str::from_utf8(incoming.body).is_ok()
}

/// The payload format 2.0 event, as documented by AWS for HTTP API Lambda integrations.
pub fn event(incoming: &Incoming, matched: &Matched, request_id: &str) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &incoming.headers {
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| Value::from(c.trim())));
            continue;
        }
        // Repeated headers are joined with commas, as format 2.0 has no multi-value headers.
        match headers.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::from(value.as_str()));
            }
        }
    }
    let mut query = Map::new();
    for (k, v) in url::form_urlencoded::parse(incoming.raw_query.unwrap_or("").as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::from(v.into_owned()));
            }
        }
    }
    let text = is_text(incoming);
    let body = if incoming.body.is_empty() {
        Value::Null
    } else if text {
        Value::from(String::from_utf8_lossy(incoming.body).into_owned())
    } else {
        Value::from(base64::engine::general_purpose::STANDARD.encode(incoming.body))
    };
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": matched.route.key(),
        "rawPath": incoming.raw_path,
        "rawQueryString": incoming.raw_query.unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": incoming.header("host").unwrap_or("localhost"),
            "domainPrefix": "local",
            "http": {
                "method": incoming.method,
                "path": incoming.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": incoming.header("user-agent").unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": matched.route.key(),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": !text && !incoming.body.is_empty(),
    });
    let fields = event.as_object_mut().expect("an object");
    if !cookies.is_empty() {
        fields.insert("cookies".into(), Value::from(cookies));
    }
    if !query.is_empty() {
        fields.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !matched.params.is_empty() {
        let params: Map<String, Value> = matched
            .params
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        fields.insert("pathParameters".into(), Value::Object(params));
    }
    if !body.is_null() {
        fields.insert("body".into(), body);
    }
    event
}

/// The request as the function's runtime builds it from the event's JSON text (lambda_http's
/// own conversion, so handlers see exactly what they see on AWS).
pub fn lambda_request(event: &str) -> Result<Request, String> {
    let request: LambdaRequest =
        serde_json::from_str(event).map_err(|e| format!("event rejected: {e}"))?;
    Ok(Request::from(request))
}

/// A plain answer of API Gateway's own (`{"message": …}`), as for a missing route.
pub fn gateway_error(status: u16, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::Text(json!({ "message": message }).to_string()));
    *response.status_mut() = status.try_into().unwrap_or_default();
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("a valid header"),
    );
    response
}

/// The function's response as API Gateway returns it: over Lambda's payload limit it is an
/// integration failure (500); CORS headers are the gateway's, not the function's.
pub fn outgoing(mut response: Response<Body>, origin: Option<&str>) -> Response<Body> {
    let size = match response.body() {
        Body::Text(t) => t.len(),
        Body::Binary(b) => b.len().div_ceil(3) * 4,
        _ => 0,
    };
    if size > MAX_INVOKE_PAYLOAD {
        tracing::error!(
            size,
            "response over Lambda's 6 MB limit: API Gateway answers 500"
        );
        response = gateway_error(500, "Internal Server Error");
    }
    let headers = response.headers_mut();
    let theirs: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in theirs {
        headers.remove(name);
    }
    if origin.is_some() {
        headers.insert("access-control-allow-origin", "*".parse().expect("valid"));
        headers.insert(
            "access-control-expose-headers",
            "etag".parse().expect("valid"),
        );
    }
    response
}

/// The preflight answer of `CorsConfiguration` (origins, methods and headers `*`, max age one
/// day): the requested method and headers are echoed, which `*` allows.
pub fn preflight(incoming: &Incoming) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = 204u16.try_into().expect("a status");
    let headers = response.headers_mut();
    headers.insert("access-control-allow-origin", "*".parse().expect("valid"));
    if let Some(method) = incoming
        .header("access-control-request-method")
        .and_then(|m| m.parse().ok())
    {
        headers.insert("access-control-allow-methods", method);
    }
    if let Some(requested) = incoming
        .header("access-control-request-headers")
        .and_then(|h| h.parse().ok())
    {
        headers.insert("access-control-allow-headers", requested);
    }
    headers.insert("access-control-max-age", "86400".parse().expect("valid"));
    response
}

#[cfg(test)]
mod tests {
    use lambda_http::RequestExt;

    use super::*;
    use crate::routes::Routes;

    fn matched_event(incoming: &Incoming) -> Request {
        let routes = Routes::from_template(include_str!("../../template.yaml")).unwrap();
        let matched = routes.find(incoming.method, incoming.raw_path).unwrap();
        lambda_request(&event(incoming, &matched, "req-1").to_string()).unwrap()
    }

    fn incoming<'a>(content_type: &str, encoding: Option<&str>, body: &'a [u8]) -> Incoming<'a> {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        if let Some(e) = encoding {
            headers.push(("content-encoding".into(), e.into()));
        }
        Incoming {
            method: "POST",
            raw_path: "/batch/",
            raw_query: Some("compression=gzip-js&x=1&x=2"),
            headers,
            body,
        }
    }

    #[test]
    fn text_bodies_stay_text_and_everything_else_reaches_the_function_as_its_bytes() {
        let json = matched_event(&incoming("application/json", None, br#"{"a":1}"#));
        assert!(matches!(json.body(), Body::Text(t) if t == r#"{"a":1}"#));
        let gzip_bytes = [0x1f, 0x8b, 0x08, 0x00, 0xff];
        for (ct, enc) in [
            ("application/json", Some("gzip")),
            ("text/plain", None),
            ("application/octet-stream", None),
        ] {
            let req = matched_event(&incoming(ct, enc, &gzip_bytes));
            assert!(
                matches!(req.body(), Body::Binary(b) if b == &gzip_bytes),
                "{ct} {enc:?}"
            );
        }
    }

    #[test]
    fn query_repeats_and_path_parameters_reach_the_request() {
        let req = matched_event(&incoming("application/json", None, b""));
        let query = req.query_string_parameters();
        assert_eq!(query.all("x").unwrap(), vec!["1", "2"]);
        assert_eq!(req.uri().path(), "/batch/");
        let flag = Incoming {
            method: "GET",
            raw_path: "/api/projects/%40current/feature_flags/5/",
            raw_query: None,
            headers: vec![],
            body: b"",
        };
        let req = matched_event(&flag);
        assert_eq!(
            req.uri().path(),
            "/api/projects/%40current/feature_flags/5/"
        );
        assert_eq!(req.path_parameters().first("project_id"), Some("@current"));
    }

    #[test]
    fn cors_headers_are_the_gateways() {
        let mut response = Response::new(Body::Empty);
        response
            .headers_mut()
            .insert("access-control-allow-origin", "https://x".parse().unwrap());
        let out = outgoing(response, Some("https://app"));
        assert_eq!(out.headers()["access-control-allow-origin"], "*");
        assert_eq!(out.headers()["access-control-expose-headers"], "etag");
    }

    #[test]
    fn oversized_responses_fail_like_lambda() {
        let big = Response::new(Body::Text("x".repeat(MAX_INVOKE_PAYLOAD + 1)));
        assert_eq!(outgoing(big, None).status(), 500);
    }
}
