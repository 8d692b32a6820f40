//! The web console (console/, a TypeScript single-page app) served from the API's own origin:
//! `GET /` and `GET /project/{proxy+}` (PostHog's deep-link paths, e.g.
//! `/project/1/feature_flags/12` and its `/feature-flags/` form) answer the page, whose script
//! reads the path; `GET /console/{file}` answers the hashed assets. A function of its own with no
//! IAM permission: the console is a client of the public management API and nothing more.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and requests from this
//! origin only, no inline script, no framing); the page is revalidated on every load, the
//! content-hashed assets are cached for a year, and both are gzipped when the browser accepts it.

use lambda_http::{Body, Request, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    gzip: Option<&'static [u8]>,
}

/// console/dist as build.rs found it.
const ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Nothing but this origin: no inline script or style element, no other host, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The prefix of the assets' paths (`/console/app-HASH.js`).
const ASSET_PREFIX: &str = "/console/";

/// The function's answer to one request.
pub fn handle(event: &Request) -> Response<Body> {
    let accept = event
        .headers()
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    answer(event.method().as_str(), event.uri().path(), accept)
}

/// The whole behaviour, free of the runtime so tests can call it.
fn answer(method: &str, path: &str, accept_encoding: &str) -> Response<Body> {
    if !matches!(method, "GET" | "HEAD") {
        let mut response = plain(405, "Method not allowed.");
        response
            .headers_mut()
            .insert("allow", "GET, HEAD".parse().expect("valid header"));
        return response;
    }
    let (asset, cache) = match path.strip_prefix(ASSET_PREFIX) {
        Some(name) => match ASSETS
            .iter()
            .find(|a| a.name == name && name != "index.html")
        {
            Some(asset) => (asset, "public, max-age=31536000, immutable"),
            None => return plain(404, "Not found."),
        },
        None if is_page(path) => (index(), "no-cache"),
        None => return plain(404, "Not found."),
    };
    let gzip = asset.gzip.filter(|_| accepts_gzip(accept_encoding));
    let bytes = gzip.unwrap_or(asset.body);
    let body = if method == "HEAD" {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let mut response = with_headers(200, asset.content_type, body);
    let headers = response.headers_mut();
    headers.insert("cache-control", cache.parse().expect("valid header"));
    headers.insert("vary", "Accept-Encoding".parse().expect("valid header"));
    if gzip.is_some() {
        headers.insert("content-encoding", "gzip".parse().expect("valid header"));
    }
    response
}

/// The console's pages: `/` and everything under `/project/` (the app shows its own "not found").
fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/project/")
}

fn index() -> &'static Asset {
    ASSETS
        .iter()
        .find(|a| a.name == "index.html")
        .expect("build.rs requires index.html")
}

/// `gzip` among the accepted codings, unless refused with `q=0`.
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|part| {
        let mut pieces = part.split(';').map(str::trim);
        let coding = pieces.next().unwrap_or("");
        let refused = pieces.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn plain(status: u16, text: &str) -> Response<Body> {
    let mut response = with_headers(
        status,
        "text/plain; charset=utf-8",
        Body::Text(text.to_string()),
    );
    response
        .headers_mut()
        .insert("cache-control", "no-store".parse().expect("valid header"));
    response
}

fn with_headers(status: u16, content_type: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn bytes(response: &Response<Body>) -> Vec<u8> {
        match response.body() {
            Body::Binary(b) => b.clone(),
            Body::Text(t) => t.as_bytes().to_vec(),
            _ => Vec::new(),
        }
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn html() -> String {
        String::from_utf8(bytes(&answer("GET", "/", ""))).unwrap()
    }

    /// `/console/<name>` of every asset the page references.
    fn referenced() -> Vec<String> {
        html()
            .split('"')
            .filter_map(|s| s.strip_prefix("/console/"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_page_answers_the_root_and_every_deep_link() {
        for path in [
            "/",
            "/project/1/feature_flags",
            "/project/1/feature_flags/12",
            "/project/1/feature-flags/12",
            "/project/2/early_access_features/7",
            "/project/1/cohorts",
        ] {
            let r = answer("GET", path, "");
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
            assert_eq!(header(&r, "cache-control"), "no-cache");
            assert_eq!(header(&r, "content-security-policy"), CSP);
            assert_eq!(header(&r, "x-frame-options"), "DENY");
            assert!(
                String::from_utf8(bytes(&r))
                    .unwrap()
                    .contains("<div id=\"app\">")
            );
        }
        assert_eq!(answer("GET", "/projects", "").status(), 404);
        assert_eq!(answer("GET", "/console/nope.js", "").status(), 404);
        assert_eq!(answer("GET", "/console/index.html", "").status(), 404);
    }

    #[test]
    fn the_page_has_no_inline_script_and_names_only_this_origin() {
        let page = html();
        assert!(page.contains("<script type=\"module\" src=\"/console/app-"));
        assert!(!page.contains("<script>") && !page.contains("<style"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
        let assets = referenced();
        assert_eq!(assets.len(), 2, "one script and one stylesheet: {assets:?}");
    }

    #[test]
    fn hashed_assets_are_cached_for_a_year_and_gzipped_when_accepted() {
        for name in referenced() {
            let path = format!("/console/{name}");
            let plain = answer("GET", &path, "");
            assert_eq!(plain.status(), 200, "{path}");
            assert_eq!(
                header(&plain, "cache-control"),
                "public, max-age=31536000, immutable"
            );
            assert_eq!(header(&plain, "content-encoding"), "");
            let expected = if name.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(header(&plain, "content-type"), expected);
            let zipped = answer("GET", &path, "br, gzip;q=0.8, deflate");
            assert_eq!(header(&zipped, "content-encoding"), "gzip");
            assert_eq!(header(&zipped, "vary"), "Accept-Encoding");
            let mut unzipped = Vec::new();
            let zipped_bytes = bytes(&zipped);
            flate2::read::GzDecoder::new(zipped_bytes.as_slice())
                .read_to_end(&mut unzipped)
                .unwrap();
            assert_eq!(unzipped, bytes(&plain));
            let refused = answer("GET", &path, "gzip;q=0");
            assert_eq!(header(&refused, "content-encoding"), "");
        }
    }

    #[test]
    fn head_has_no_body_and_other_methods_are_405() {
        let head = answer("HEAD", "/", "gzip");
        assert_eq!(head.status(), 200);
        assert!(bytes(&head).is_empty());
        let post = answer("POST", "/project/1/feature_flags", "");
        assert_eq!(post.status(), 405);
        assert_eq!(header(&post, "allow"), "GET, HEAD");
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("br"));
        assert!(!accepts_gzip("gzip;q=0"));
    }
}
