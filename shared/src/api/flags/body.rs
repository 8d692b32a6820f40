//! SDK request bodies and the errors the SDK endpoints answer with (evaluation-rules.md §3.7): PostHog
//! answers decoding and parsing failures in plain text and token failures in its JSON envelope.
//!
//! Bodies arrive as JSON, gzip (`Content-Encoding: gzip`, `?compression=gzip` or `gzip-js`, or
//! just the gzip magic bytes: Node gzips its batches, posthog-js its events as `text/plain`),
//! base64 (`?compression=base64`), or a form with the base64 (or the JSON) in `data`, as
//! posthog-js posts `/flags/` and its beacons.

use std::io::Read;

use base64::Engine;
use flate2::read::GzDecoder;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("Failed to decode request: {0}. Please check your request format and try again.")]
    Decode(String),
    #[error(
        "Request body exceeded {limit} bytes (got {size}). Send fewer events or properties per request."
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "Failed to parse request: {0}. Please ensure your request is properly formatted and all required fields are present."
    )]
    Parse(String),
    #[error(
        "The distinct_id field is missing from the request. Please include a valid identifier."
    )]
    MissingDistinctId,
    #[error("No API token provided. Please include a valid API token in your request.")]
    NoToken,
    #[error(
        "The provided API key is invalid or has expired. Please check your API key and try again."
    )]
    InvalidToken,
    #[error("Method \"{0}\" not allowed.")]
    Method(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<SdkError> for ApiResponse {
    fn from(e: SdkError) -> Self {
        let text = e.to_string();
        match e {
            SdkError::Decode(_) | SdkError::Parse(_) | SdkError::MissingDistinctId => {
                ApiResponse::text(400, text)
            }
            SdkError::TooLarge { .. } => ApiResponse::text(413, text),
            SdkError::Method(_) => ApiResponse::text(405, text),
            SdkError::NoToken => ApiError::Unauthorized {
                code: "not_authenticated",
                detail: text,
            }
            .into(),
            SdkError::InvalidToken => ApiError::Unauthorized {
                code: "authentication_failed",
                detail: text,
            }
            .into(),
            SdkError::Api(e) => e.into(),
        }
    }
}

/// Body size limits: what may arrive, and what it may expand to once decompressed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub raw: usize,
    pub decoded: usize,
}

/// The body as JSON, after undoing whatever encoding the client used.
pub fn json(req: &ApiRequest, limits: Limits) -> Result<Value, SdkError> {
    let bytes = decode(req, limits)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SdkError::Parse("the request body is empty".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| SdkError::Parse(e.to_string()))
}

/// What `?compression=` says the body (or a form's `data`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Base64,
}

impl Compression {
    fn of(req: &ApiRequest) -> Result<Compression, SdkError> {
        let value = req.query_value("compression").unwrap_or_default();
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(Compression::None),
            "gzip" | "gzip-js" => Ok(Compression::Gzip),
            "base64" => Ok(Compression::Base64),
            other => Err(SdkError::Decode(format!(
                "unsupported compression {other:?} (use gzip, gzip-js or base64)"
            ))),
        }
    }
}

/// The body's bytes, decompressed and base64-decoded as the request says.
///
/// PostHog's semantics (its feature-flags service's `decode_form_data` and capture's
/// `extract_payload_bytes`): a form's `data` field is base64 text decoded exactly once, and
/// `compression=base64` names that very encoding (posthog-js posts `/flags/?compression=base64`
/// with `data=<base64>`), so it never adds a second decode; gzip is refused for forms. Any other
/// body is base64-decoded when `compression=base64` and gunzipped when the header, the query or
/// the gzip magic bytes say so (posthog-js gzips events as `text/plain`).
pub fn decode(req: &ApiRequest, limits: Limits) -> Result<Vec<u8>, SdkError> {
    let size = req.body.len();
    if size > limits.raw {
        return Err(SdkError::TooLarge {
            size,
            limit: limits.raw,
        });
    }
    let compression = Compression::of(req)?;
    let mut bytes = match form_data(req)? {
        Some(_) if compression == Compression::Gzip => {
            return Err(SdkError::Decode(
                "gzip compression is not supported for form data (send base64 in `data`)".into(),
            ));
        }
        Some(data) if looks_like_json(data.as_bytes()) => data.into_bytes(),
        Some(data) => base64_decode(data.as_bytes())?,
        None if compression == Compression::Base64 => base64_decode(&req.body)?,
        None => req.body.clone(),
    };
    let gzip_header = req
        .header("content-encoding")
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if gzip_header || bytes.starts_with(&[0x1f, 0x8b]) {
        bytes = gunzip(&bytes, limits.decoded)?;
    }
    if bytes.len() > limits.decoded {
        return Err(SdkError::TooLarge {
            size: bytes.len(),
            limit: limits.decoded,
        });
    }
    Ok(bytes)
}

fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// The `data` field of a form body (still encoded); `None` for other bodies. A form that is
/// bare base64 without `data=` counts as its `data`, as PostHog reads it.
fn form_data(req: &ApiRequest) -> Result<Option<String>, SdkError> {
    let is_form = req.header("content-type").is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    // curl's `-d` labels JSON as a form; a body that is JSON is read as JSON.
    if !is_form || looks_like_json(&req.body) {
        return Ok(None);
    }
    if let Some((_, data)) = url::form_urlencoded::parse(&req.body).find(|(k, _)| k == "data") {
        return Ok(Some(data.into_owned()));
    }
    let bare = std::str::from_utf8(&req.body).unwrap_or_default().trim();
    if !bare.is_empty() && bare.bytes().all(is_base64_byte) {
        return Ok(Some(bare.to_string()));
    }
    Err(SdkError::Decode("form body without a `data` field".into()))
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=')
}

/// Standard or URL-safe alphabet, padded or not. Surrounding whitespace is ignored and inner
/// spaces are `+` signs that form decoding turned into spaces (PostHog restores them too).
fn base64_decode(bytes: &[u8]) -> Result<Vec<u8>, SdkError> {
    let text: Vec<u8> = bytes
        .trim_ascii()
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n' | b'\t'))
        .map(|&b| if b == b' ' { b'+' } else { b })
        .collect();
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(&text);
    let standard = base64::engine::general_purpose::STANDARD_NO_PAD.decode(text);
    standard
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|e| SdkError::Decode(format!("invalid base64: {e}")))
}

/// Reads at most `limit + 1` bytes, so a small bomb can't expand into memory unchecked.
fn gunzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, SdkError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(bytes)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| SdkError::Decode(format!("invalid gzip data: {e}")))?;
    if out.len() > limit {
        return Err(SdkError::TooLarge {
            size: out.len(),
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;

    use super::*;

    const LIMITS: Limits = Limits {
        raw: 1000,
        decoded: 2000,
    };

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn post(body: Vec<u8>) -> ApiRequest {
        let mut req = ApiRequest::new("POST", "/batch/");
        req.body = body;
        req
    }

    #[test]
    fn plain_gzip_and_base64_bodies() {
        let plain = post(br#"{"a": 1}"#.to_vec());
        assert_eq!(json(&plain, LIMITS).unwrap()["a"], 1);
        let zipped = post(gzip(br#"{"a": 2}"#)).with_header("content-encoding", "gzip");
        assert_eq!(json(&zipped, LIMITS).unwrap()["a"], 2);
        let sniffed = post(gzip(br#"{"a": 3}"#)).with_query("compression", "gzip-js");
        assert_eq!(json(&sniffed, LIMITS).unwrap()["a"], 3);
        let b64 = post(b"eyJhIjogNH0=".to_vec()).with_query("compression", "base64");
        assert_eq!(json(&b64, LIMITS).unwrap()["a"], 4);
    }

    #[test]
    fn form_bodies_carry_json_or_base64_in_data() {
        let mut form = post(b"data=eyJhIjogNX0%3D".to_vec())
            .with_header("content-type", "application/x-www-form-urlencoded");
        assert_eq!(json(&form, LIMITS).unwrap()["a"], 5);
        form.body = b"data=%7B%22a%22%3A6%7D".to_vec();
        assert_eq!(json(&form, LIMITS).unwrap()["a"], 6);
        form.body = b"other=1".to_vec();
        assert!(matches!(json(&form, LIMITS), Err(SdkError::Decode(_))));
        form.body = br#" {"a": 7}"#.to_vec();
        assert_eq!(
            json(&form, LIMITS).unwrap()["a"],
            7,
            "curl -d sends JSON as a form"
        );
        form.body = b"eyJhIjogOH0=".to_vec();
        assert_eq!(
            json(&form, LIMITS).unwrap()["a"],
            8,
            "bare base64 without data="
        );
    }

    /// posthog-js's `encodePostData` for `Compression.Base64`: `data=` + the URI-encoded
    /// base64 of the UTF-8 JSON, as a form.
    fn posthog_js_base64_form(body: &Value) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(body.to_string());
        let encoded: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
        format!("data={encoded}").into_bytes()
    }

    /// Every body posthog-js 1.449 sends: `/flags/?v=2&compression=base64` as a base64 form
    /// (the field is decoded once: `compression=base64` names its encoding), events as gzip
    /// `text/plain` under `compression=gzip-js` (beacons too), and plain JSON when compression
    /// is off or its gzip failed.
    #[test]
    fn every_body_posthog_js_sends() {
        // `+` and `/` in the base64, non-ASCII text in the JSON.
        let flags = serde_json::json!({"token": "phc_x", "distinct_id": ">>>?", "groups": {},
            "person_properties": {"name": "ü"}});
        let base64_flags = post(posthog_js_base64_form(&flags))
            .with_query("v", "2")
            .with_query("compression", "base64")
            .with_header("content-type", "application/x-www-form-urlencoded");
        let sent = String::from_utf8_lossy(&base64_flags.body).into_owned();
        assert!(sent.contains("%2B") && sent.contains("%2F"), "{sent}");
        assert_eq!(json(&base64_flags, LIMITS).unwrap(), flags);

        let mut without_param = base64_flags.clone();
        without_param.query.retain(|(k, _)| k != "compression");
        assert_eq!(json(&without_param, LIMITS).unwrap(), flags);

        // A client that left `+` unescaped: form decoding makes it a space, restored here.
        let b64 = base64::engine::general_purpose::STANDARD.encode(flags.to_string());
        assert!(b64.contains('+'));
        let mut raw_plus = base64_flags.clone();
        raw_plus.body = format!("data={b64}").into_bytes();
        assert_eq!(json(&raw_plus, LIMITS).unwrap(), flags);

        let events = serde_json::json!([{"event": "$pageview", "properties": {"token": "phc_x"}}]);
        let gzip_events = post(gzip(events.to_string().as_bytes()))
            .with_query("compression", "gzip-js")
            .with_query("ver", "1.449.2")
            .with_header("content-type", "text/plain");
        assert!(std::str::from_utf8(&gzip_events.body).is_err());
        assert_eq!(json(&gzip_events, LIMITS).unwrap(), events);
        let beacon = gzip_events.clone().with_query("beacon", "1");
        assert_eq!(json(&beacon, LIMITS).unwrap(), events);

        let beacon_fallback = post(posthog_js_base64_form(&events))
            .with_query("compression", "base64")
            .with_query("beacon", "1")
            .with_header("content-type", "application/x-www-form-urlencoded");
        assert_eq!(json(&beacon_fallback, LIMITS).unwrap(), events);

        let plain = post(flags.to_string().into_bytes())
            .with_query("v", "2")
            .with_header("content-type", "application/json");
        assert_eq!(json(&plain, LIMITS).unwrap(), flags);
    }

    #[test]
    fn base64_bodies_are_decoded_once() {
        let inner = base64::engine::general_purpose::STANDARD.encode(br#"{"a": 9}"#);
        let twice = base64::engine::general_purpose::STANDARD.encode(&inner);
        let body = post(twice.into_bytes()).with_query("compression", "base64");
        assert_eq!(decode(&body, LIMITS).unwrap(), inner.as_bytes());
        let gzip_in_base64 =
            base64::engine::general_purpose::STANDARD.encode(gzip(br#"{"a": 10}"#));
        let body = post(gzip_in_base64.into_bytes()).with_query("compression", "base64");
        assert_eq!(json(&body, LIMITS).unwrap()["a"], 10);
    }

    #[test]
    fn forms_refuse_gzip_as_posthog_does() {
        let form = post(b"data=eyJhIjogNX0%3D".to_vec())
            .with_query("compression", "gzip-js")
            .with_header("content-type", "application/x-www-form-urlencoded");
        assert!(matches!(decode(&form, LIMITS), Err(SdkError::Decode(_))));
    }

    #[test]
    fn limits_apply_before_and_after_decompression() {
        let big = post(vec![b' '; 1001]);
        assert!(matches!(
            decode(&big, LIMITS),
            Err(SdkError::TooLarge { limit: 1000, .. })
        ));
        let bomb = post(gzip(&vec![b' '; 5000]));
        assert!(matches!(
            decode(&bomb, LIMITS),
            Err(SdkError::TooLarge { limit: 2000, .. })
        ));
    }

    #[test]
    fn broken_encodings_are_decode_errors() {
        let bad_gzip = post(b"nope".to_vec()).with_header("content-encoding", "gzip");
        assert!(matches!(
            decode(&bad_gzip, LIMITS),
            Err(SdkError::Decode(_))
        ));
        let lz = post(b"x".to_vec()).with_query("compression", "lz64");
        assert!(matches!(decode(&lz, LIMITS), Err(SdkError::Decode(_))));
        let bad_json = post(b"{nope".to_vec());
        let err = json(&bad_json, LIMITS).unwrap_err();
        assert!(err.to_string().starts_with("Failed to parse request: "));
    }
}
