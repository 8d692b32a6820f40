//! The HTTP edge shared by every function: a plain request model (so handlers can be tested
//! without the Lambda runtime), body parsing with DRF's rules, responses and pagination links.

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Request bodies above this are refused before parsing (API Gateway would allow 10 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    /// Path as the client sent it, trailing slash included.
    pub path: String,
    /// Query pairs in request order; repeated keys stay repeated.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn new(method: &str, path: &str) -> Self {
        ApiRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            ..Default::default()
        }
    }

    pub fn with_query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn with_json(mut self, body: &Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.with_header("content-type", "application/json")
    }

    pub fn from_lambda(req: &Request) -> Self {
        let query = req
            .query_string_parameters_ref()
            .map(|q| {
                q.iter()
                    .flat_map(|(k, _)| {
                        q.all(k)
                            .unwrap_or_default()
                            .into_iter()
                            .map(move |v| (k.to_string(), v.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let headers = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = match req.body() {
            Body::Empty => Vec::new(),
            Body::Text(t) => t.as_bytes().to_vec(),
            Body::Binary(b) => b.clone(),
            _ => Vec::new(),
        };
        ApiRequest {
            method: req.method().as_str().to_string(),
            path: decode_path(req.uri().path()),
            query,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Django's `QueryDict.get`: the last value of a repeated key.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path segments without empty ones, so `/a/b/` and `/a/b` read the same.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The body as a JSON object. JSON and form-encoded bodies are accepted like DRF does; an
    /// empty body is `{}`.
    pub fn body_object(&self) -> ApiResult<Map<String, Value>> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::BadRequest {
                code: "request_too_large",
                detail: format!(
                    "Request body is {} bytes; the limit is {} bytes (1 MB).",
                    self.body.len(),
                    MAX_BODY_BYTES
                ),
            });
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        let content_type = self
            .header("content-type")
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let value = match content_type.as_str() {
            "application/x-www-form-urlencoded" => form_object(&self.body),
            ct if ct == "application/json" || ct.ends_with("+json") || ct.is_empty() => {
                serde_json::from_slice(&self.body).map_err(|e| ApiError::BadRequest {
                    code: "parse_error",
                    detail: format!("JSON parse error - {e}"),
                })?
            }
            other => return Err(ApiError::UnsupportedMediaType(other.to_string())),
        };
        match value {
            Value::Object(map) => Ok(map),
            other => Err(ApiError::Validation {
                code: "invalid_input".into(),
                detail: format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    crate::python::type_name(&other)
                ),
                attr: None,
            }),
        }
    }

    /// `scheme://host` as the client reached us (API Gateway sets `x-forwarded-proto`).
    pub fn origin(&self) -> String {
        if let Ok(base) = std::env::var("PUBLIC_BASE_URL") {
            return base.trim_end_matches('/').to_string();
        }
        let host = self
            .header("x-forwarded-host")
            .or_else(|| self.header("host"))
            .unwrap_or("localhost");
        let scheme = self.header("x-forwarded-proto").unwrap_or("http");
        format!("{scheme}://{host}")
    }

    /// This request's absolute URL with `set` params replaced (or added) and `remove` dropped,
    /// query sorted by key like DRF's `replace_query_param`.
    pub fn url_with(&self, set: &[(&str, String)], remove: &[&str]) -> String {
        let mut pairs: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(k, _)| !remove.contains(&k.as_str()) && !set.iter().any(|(s, _)| s == k))
            .cloned()
            .collect();
        pairs.extend(set.iter().map(|(k, v)| (k.to_string(), v.clone())));
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut url = format!("{}{}", self.origin(), self.path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        url
    }

    /// This request's absolute URL with each `set` param's value replaced where it stands, or
    /// appended in `set` order when absent; other params keep their order. PostHog builds the
    /// activity log's `next`/`previous` this way (`format_query_params_absolute_url`), unlike
    /// DRF's sorted [`Self::url_with`].
    pub fn url_replacing(&self, set: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(k, v)| {
                let replaced = set
                    .iter()
                    .find(|(s, _)| s == k)
                    .map(|(_, new)| new.as_str());
                (k.as_str(), replaced.unwrap_or(v.as_str()))
            })
            .collect();
        for (k, v) in set {
            if !self.query.iter().any(|(q, _)| q == k) {
                pairs.push((k, v.as_str()));
            }
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut url = format!("{}{}", self.origin(), self.path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        url
    }
}

/// Python's `urllib.parse.quote_plus`, which DRF's links go through: unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) kept, space as `+`, every other UTF-8 byte as `%XX`. (The WHATWG
/// form encoder differs on `~` and `*`.)
/// The path with each segment's percent-escapes undone (`%40current` is `@current`, as Django
/// resolves it); an escape that would split a segment (`%2F`) or is not UTF-8 stays as sent.
fn decode_path(path: &str) -> String {
    path.split('/')
        .map(
            |segment| match percent_encoding::percent_decode_str(segment).decode_utf8() {
                Ok(decoded) if !decoded.contains('/') => decoded.into_owned(),
                _ => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn form_object(body: &[u8]) -> Value {
    let mut map = Map::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        map.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    Value::Object(map)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    /// `None` is an empty body.
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl ApiResponse {
    pub fn json(status: u16, body: Value) -> Self {
        ApiResponse {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    pub fn empty(status: u16) -> Self {
        ApiResponse {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// A plain-text answer: the SDK endpoints' errors are plain text, as PostHog's are.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        ApiResponse {
            status,
            body: Some(Value::String(text.into())),
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        }
    }

    /// A text body sent as it is under `content_type` (`/array/{token}/config.js` is JavaScript).
    pub fn raw(status: u16, content_type: &str, text: impl Into<String>) -> Self {
        ApiResponse {
            status,
            body: Some(Value::String(text.into())),
            headers: vec![("content-type".into(), content_type.into())],
        }
    }

    /// Whether a string body goes out as it is: any content type but JSON.
    fn is_text(&self) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type") && !v.starts_with("application/json")
        })
    }

    /// Asks [`Self::into_lambda`] to gzip the body when the client accepts gzip (both PostHog
    /// SDKs do): definitions and `/flags` answers shrink several times, which keeps big
    /// projects far from Lambda's 6 MB response limit.
    pub fn gzip_if_accepted(mut self, req: &ApiRequest) -> Self {
        let accepts = req.header("accept-encoding").is_some_and(|v| {
            v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("gzip")
            })
        });
        self.headers.push(("vary".into(), "Accept-Encoding".into()));
        if accepts {
            self.headers
                .push(("content-encoding".into(), "gzip".into()));
        }
        self
    }

    fn has_header(&self, name: &str, value: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case(value))
    }

    pub fn into_lambda(self) -> Response<Body> {
        let text = self.is_text();
        let gzip = self.has_header("content-encoding", "gzip");
        let mut builder = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("content-encoding") {
                builder = builder.header(k, v);
            }
        }
        let body = match self.body {
            Some(Value::String(t)) if text => t,
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                v.to_string()
            }
            None => String::new(),
        };
        let body = match gzip_body(&body).filter(|_| gzip) {
            Some(bytes) => {
                builder = builder.header("content-encoding", "gzip");
                Body::Binary(bytes)
            }
            None if body.is_empty() => Body::Empty,
            None => Body::Text(body),
        };
        if let Some(error) = too_large_for_lambda(&body, gzip) {
            return error;
        }
        builder.body(body).unwrap_or_else(|_| {
            let mut fallback = Response::new(Body::Empty);
            *fallback.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }
}

/// The largest body a function answers. AWS Lambda refuses responses over 6 MB (6,291,556
/// bytes of payload); API Gateway's envelope escapes a text body's quotes and base64-encodes a
/// binary (gzipped) one (4/3), so a body is held to 4.5 MB as sent, which leaves room for both.
pub const MAX_RESPONSE_BYTES: usize = 4_500_000;

/// A clear answer instead of the body Lambda would refuse (API Gateway would answer a bare 502):
/// 406 when gzip, which the client did not accept, would fit (a project's full definitions
/// exceed it in plain JSON from ~8,000 flags, and are ~20 times smaller gzipped), 500 otherwise.
fn too_large_for_lambda(body: &Body, gzipped: bool) -> Option<Response<Body>> {
    let sent = match body {
        Body::Text(text) => text.len(),
        Body::Binary(bytes) => bytes.len().div_ceil(3) * 4,
        _ => 0,
    };
    if sent <= MAX_RESPONSE_BYTES {
        return None;
    }
    let (status, detail) = if gzipped {
        (
            500,
            format!(
                "This response would be {sent} bytes even gzipped, more than the {MAX_RESPONSE_BYTES} bytes a function can answer (AWS Lambda's 6 MB limit)."
            ),
        )
    } else {
        (
            406,
            format!(
                "This response would be {sent} bytes, more than the {MAX_RESPONSE_BYTES} bytes a function can answer uncompressed (AWS Lambda's 6 MB limit). Send `Accept-Encoding: gzip` (PostHog's SDKs do) to receive it gzipped."
            ),
        )
    };
    let envelope = serde_json::json!({
        "type": "server_error",
        "code": "response_too_large",
        "detail": detail,
        "attr": null,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(envelope.to_string()))
        .ok()
}

/// Bodies smaller than this are sent as they are: gzip would not pay for its header.
const GZIP_MIN_BYTES: usize = 1024;

fn gzip_body(text: &str) -> Option<Vec<u8>> {
    use std::io::Write;
    if text.len() < GZIP_MIN_BYTES {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).ok()?;
    encoder.finish().ok()
}

impl From<ApiError> for ApiResponse {
    fn from(e: ApiError) -> Self {
        if let ApiError::Internal(cause) = &e {
            tracing::error!(%cause, "request failed");
        }
        let headers = match &e {
            ApiError::Throttled { wait_seconds } => {
                vec![("retry-after".to_string(), wait_seconds.to_string())]
            }
            _ => Vec::new(),
        };
        ApiResponse {
            status: e.status(),
            body: e.body(),
            headers,
        }
    }
}

/// DRF `LimitOffsetPagination`: default 100, no maximum; bad values fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    pub fn of(req: &ApiRequest) -> Page {
        let limit = req
            .query_value("limit")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&l| l > 0)
            .unwrap_or(100);
        let offset = req
            .query_value("offset")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        Page { limit, offset }
    }

    /// The envelope of this page: `results` out of `count` items, with links to its neighbours.
    pub fn body(&self, req: &ApiRequest, count: usize, results: Vec<Value>) -> Value {
        let Page { limit, offset } = *self;
        let next = (offset.saturating_add(limit) < count).then(|| {
            req.url_with(
                &[
                    ("limit", limit.to_string()),
                    ("offset", (offset + limit).to_string()),
                ],
                &[],
            )
        });
        let previous = (offset > 0).then(|| {
            let prev = offset.saturating_sub(limit);
            if prev == 0 {
                req.url_with(&[("limit", limit.to_string())], &["offset"])
            } else {
                req.url_with(
                    &[("limit", limit.to_string()), ("offset", prev.to_string())],
                    &[],
                )
            }
        });
        serde_json::json!({"count": count, "next": next, "previous": previous, "results": results})
    }
}

/// One page of `items` (all of them), as [`Page::of`] the request.
pub fn paginate(req: &ApiRequest, items: Vec<Value>) -> Value {
    let page = Page::of(req);
    let count = items.len();
    let results = items
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .collect();
    page.body(req, count, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaped_path_segments_are_read_decoded() {
        assert_eq!(
            decode_path("/api/projects/%40current/feature_flags/a%20b/"),
            "/api/projects/@current/feature_flags/a b/"
        );
        assert_eq!(decode_path("/x/a%2Fb/%FF/"), "/x/a%2Fb/%FF/");
    }

    fn list_request() -> ApiRequest {
        ApiRequest::new("GET", "/api/projects/1/feature_flags/").with_header("host", "host")
    }

    #[test]
    fn next_and_previous_links_follow_drf() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let page = paginate(
            &list_request()
                .with_query("limit", "2")
                .with_query("offset", "2"),
            items.clone(),
        );
        assert_eq!(page["count"], 5);
        assert_eq!(page["results"], json!([2, 3]));
        assert_eq!(
            page["next"],
            "http://host/api/projects/1/feature_flags/?limit=2&offset=4"
        );
        assert_eq!(
            page["previous"],
            "http://host/api/projects/1/feature_flags/?limit=2"
        );
        let last = paginate(
            &list_request()
                .with_query("limit", "2")
                .with_query("offset", "4"),
            items,
        );
        assert_eq!(last["next"], Value::Null);
        assert_eq!(
            last["previous"],
            "http://host/api/projects/1/feature_flags/?limit=2&offset=2"
        );
    }

    #[test]
    fn bad_limit_and_offset_fall_back() {
        let items: Vec<Value> = (0..3).map(|i| json!(i)).collect();
        let page = paginate(
            &list_request()
                .with_query("limit", "0")
                .with_query("offset", "-4"),
            items,
        );
        assert_eq!(page["results"], json!([0, 1, 2]));
        assert_eq!(page["previous"], Value::Null);
    }

    #[test]
    fn offset_past_the_end_is_empty_with_real_count() {
        let page = paginate(&list_request().with_query("offset", "50"), vec![json!(1)]);
        assert_eq!(page["count"], 1);
        assert_eq!(page["results"], json!([]));
    }

    #[test]
    fn other_params_are_kept_and_sorted() {
        let req = list_request()
            .with_query("search", "a b")
            .with_query("limit", "1");
        let page = paginate(&req, vec![json!(1), json!(2)]);
        assert_eq!(
            page["next"],
            "http://host/api/projects/1/feature_flags/?limit=1&offset=1&search=a+b"
        );
    }

    #[test]
    fn replacing_keeps_param_order_and_appends_missing_ones() {
        let bare = ApiRequest::new("GET", "/api/projects/1/feature_flags/activity")
            .with_header("host", "testserver");
        assert_eq!(
            bare.url_replacing(&[("page", "2".into()), ("limit", "10".into())]),
            "http://testserver/api/projects/1/feature_flags/activity?page=2&limit=10"
        );
        let req = ApiRequest::new("GET", "/a/")
            .with_header("host", "h")
            .with_query("limit", "3")
            .with_query("z", "x y")
            .with_query("page", "4");
        assert_eq!(
            req.url_replacing(&[("page", "5".into()), ("limit", "3".into())]),
            "http://h/a/?limit=3&z=x+y&page=5"
        );
    }

    #[test]
    fn gzip_only_when_accepted_and_worth_it() {
        use std::io::Read;
        let big = json!({"k": "x".repeat(5000)});
        let req = ApiRequest::new("GET", "/").with_header("accept-encoding", "gzip, deflate");
        let out = ApiResponse::ok(big.clone())
            .gzip_if_accepted(&req)
            .into_lambda();
        assert_eq!(out.headers()["content-encoding"], "gzip");
        assert_eq!(out.headers()["vary"], "Accept-Encoding");
        let Body::Binary(bytes) = out.body() else {
            panic!("not binary")
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), big);

        let small = ApiResponse::ok(json!({"k": 1}))
            .gzip_if_accepted(&req)
            .into_lambda();
        assert!(small.headers().get("content-encoding").is_none());
        assert!(matches!(small.body(), Body::Text(_)));
        let identity = ApiRequest::new("GET", "/").with_header("accept-encoding", "br");
        let plain = ApiResponse::ok(big)
            .gzip_if_accepted(&identity)
            .into_lambda();
        assert!(plain.headers().get("content-encoding").is_none());
        let empty = ApiResponse::empty(304).gzip_if_accepted(&req).into_lambda();
        assert!(matches!(empty.body(), Body::Empty));
    }

    #[test]
    fn a_body_lambda_would_refuse_is_a_clear_error_and_gzip_fits_it() {
        let huge = json!({"flags": vec!["feature-flag-key"; MAX_RESPONSE_BYTES / 16]});
        let identity = ApiRequest::new("GET", "/");
        let refused = ApiResponse::ok(huge.clone())
            .gzip_if_accepted(&identity)
            .into_lambda();
        assert_eq!(refused.status(), 406);
        let Body::Text(text) = refused.body() else {
            panic!("not text")
        };
        let error: Value = serde_json::from_str(text).unwrap();
        assert_eq!(error["code"], "response_too_large");
        assert!(
            error["detail"]
                .as_str()
                .unwrap()
                .contains("Accept-Encoding: gzip")
        );
        let req = ApiRequest::new("GET", "/").with_header("accept-encoding", "gzip");
        let zipped = ApiResponse::ok(huge).gzip_if_accepted(&req).into_lambda();
        assert_eq!(zipped.status(), 200);
        assert!(matches!(zipped.body(), Body::Binary(_)));
    }

    #[test]
    fn bodies_json_form_and_errors() {
        let req = ApiRequest::new("POST", "/").with_json(&json!({"key": "a"}));
        assert_eq!(req.body_object().unwrap()["key"], "a");
        let mut form = ApiRequest::new("PATCH", "/")
            .with_header("content-type", "application/x-www-form-urlencoded");
        form.body = b"active=False&name=replaced".to_vec();
        assert_eq!(form.body_object().unwrap()["active"], "False");
        let mut bad = ApiRequest::new("POST", "/").with_header("content-type", "application/json");
        bad.body = b"{nope".to_vec();
        assert_eq!(
            bad.body_object().unwrap_err().body().unwrap()["code"],
            "parse_error"
        );
        let list = ApiRequest::new("POST", "/").with_json(&json!([1]));
        assert_eq!(
            list.body_object().unwrap_err().to_string(),
            "Invalid data. Expected a dictionary, but got list."
        );
        let mut big = ApiRequest::new("POST", "/").with_header("content-type", "application/json");
        big.body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(big.body_object().unwrap_err().status(), 400);
        let mut xml = ApiRequest::new("POST", "/").with_header("content-type", "text/xml");
        xml.body = b"<a/>".to_vec();
        assert_eq!(xml.body_object().unwrap_err().status(), 415);
    }
}
