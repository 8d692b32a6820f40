//! SDK request bodies and the errors the SDK endpoints answer with (evaluation.md §3.7): PostHog
//! answers decoding and parsing failures in plain text and token failures in its JSON envelope.
//!
//! Bodies arrive as JSON, gzip (`Content-Encoding: gzip`, `?compression=gzip` or `gzip-js`, or
//! just the gzip magic bytes: Node gzips its batches), base64 (`?compression=base64`), or a
//! form with the JSON (or its base64) in `data` as older browser SDKs post it.

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

/// The body's bytes, decompressed and base64-decoded as the request says.
pub fn decode(req: &ApiRequest, limits: Limits) -> Result<Vec<u8>, SdkError> {
    let size = req.body.len();
    if size > limits.raw {
        return Err(SdkError::TooLarge {
            size,
            limit: limits.raw,
        });
    }
    let mut bytes = form_data(req)?.unwrap_or_else(|| req.body.clone());
    let compression = req
        .query_value("compression")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if compression == "base64" {
        bytes = base64_decode(&bytes)?;
    } else if !matches!(compression.as_str(), "" | "gzip" | "gzip-js") {
        return Err(SdkError::Decode(format!(
            "unsupported compression {compression:?} (use gzip, gzip-js or base64)"
        )));
    }
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

/// `data=` of a form body, base64-decoded unless it already is JSON; `None` for other bodies.
fn form_data(req: &ApiRequest) -> Result<Option<Vec<u8>>, SdkError> {
    let is_form = req.header("content-type").is_some_and(|ct| {
        ct.trim_start()
            .starts_with("application/x-www-form-urlencoded")
    });
    // curl's `-d` labels JSON as a form; a body that is JSON is read as JSON.
    let looks_like_json = req
        .body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    if !is_form || looks_like_json {
        return Ok(None);
    }
    let data = url::form_urlencoded::parse(&req.body)
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| SdkError::Decode("form body without a `data` field".into()))?;
    let trimmed = data.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Ok(Some(data.into_bytes()));
    }
    base64_decode(data.as_bytes()).map(Some)
}

/// Standard or URL-safe alphabet, padded or not, surrounding whitespace ignored.
fn base64_decode(bytes: &[u8]) -> Result<Vec<u8>, SdkError> {
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
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

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const LIMITS: Limits = Limits {
        raw: 1000,
        decoded: 2000,
    };

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
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
